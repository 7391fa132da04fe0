"""Secret masking rules (render/mask.py), one behaviour per assert (mutation-checked)."""

from __future__ import annotations

import pytest

from pfmagic.render.mask import (
    MASK,
    is_reference,
    is_secret_name,
    is_secret_value,
    mask_mapping,
    mask_secret,
)


@pytest.mark.parametrize(
    "name",
    [
        "API_KEY",
        "OPENAI_KEY",
        "apiKey",
        "api-key",
        "keys",
        "MY_SECRET",
        "secrets",
        "SAS_TOKEN",
        "token",
        "PASSWORD",
        "db_passwd",
        "PWD",
        "credential",
        "CREDENTIALS",
        "SAS",
        "APIKEY",
        "CONNECTION_STRING",
        "AzureWebJobsConnectionString",
        "conn_str",
        "ssh_private_key",
        "AZURECONNECTIONSTRING",  # the phrase, not split into parts
        "SSH_PRIVATE_KEYDATA",
        "privateKey",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["MONKEY", "KEYBOARD_LAYOUT", "TOKENIZER", "MODE", "PASSAGE", "deployment", ""]
)
def test_plain_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "value",
    [
        "sk-abcdefgh",
        "sk-abc_def-1234",
        " sk-abcdefgh12 ",
        "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.sig-_",
        "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.",
        "ghp_" + "a" * 20,
        "gho_" + "B1" * 10,
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==",
        "Endpoint=sb://x/;SharedAccessKeyName=r;SharedAccessKey=abc",
        "sv=1;SharedAccessSignature=sig",
        "InstrumentationKey=0000;IngestionEndpoint=https://x",
        "Server=x;Password=hunter2",
        "server=x;PWD=hunter2",
        "accountkey=lowercase",
    ],
)
def test_secret_values(value: str) -> None:
    assert is_secret_value(value)


@pytest.mark.parametrize(
    "value",
    [
        "sk-short",  # 5 chars after sk-: not a key
        "task-abcdefghij",  # sk- inside a word
        "sk-abcdefgh!",  # not the key alphabet
        "eyJshort.a.b",
        "ghp_" + "a" * 19,
        "ghx_" + "a" * 20,
        "hello",
        "",
        42,
        None,
        "AccountName=a",
    ],
)
def test_plain_values(value: object) -> None:
    assert not is_secret_value(value)


def test_references() -> None:
    assert is_reference("${env:OPENAI_API_KEY}") and is_reference(" ${env:_X1} ")
    assert is_reference("${{azureml://connections/c/credentials/key}}")
    assert not is_reference("${env:1BAD}") and not is_reference("x ${env:A}")
    assert not is_reference("${env:A} x") and not is_reference(None)
    assert not is_reference("${{unclosed}")


def test_mask_secret_shows_nothing_of_the_value() -> None:
    assert mask_secret("sk-0123456789") == MASK == "****"
    assert mask_secret(12345) == MASK
    assert mask_secret("") == "''" and mask_secret(None) == "''"  # visibly empty


def test_mask_mapping() -> None:
    env = {
        "OPENAI_API_KEY": "abc123",
        "MODE": "serving",
        "ANYTHING": "sk-0123456789abc",
        "LLM_KEY": "${env:LLM_KEY}",
        "conn": "${{azureml://connections/c}}",
        "CUSTOM": "plain-looking",
        "EMPTY_TOKEN": "",
    }
    assert mask_mapping(env, secret_keys={"CUSTOM"}) == {
        "OPENAI_API_KEY": "****",
        "MODE": "serving",
        "ANYTHING": "****",
        "LLM_KEY": "${env:LLM_KEY}",  # a reference holds no secret
        "conn": "${{azureml://connections/c}}",
        "CUSTOM": "****",
        "EMPTY_TOKEN": "''",
    }
    assert mask_mapping(None) == {} and mask_mapping({}) == {}
    assert mask_mapping({"CUSTOM": "x"}) == {"CUSTOM": "x"}
    assert env["OPENAI_API_KEY"] == "abc123"  # a copy: the input is untouched

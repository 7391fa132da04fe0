"""``%%pf_connection``: promptflow connection YAML, parsed without promptflow, secrets masked."""

from __future__ import annotations

import sys

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from pfmagic.magics import session_of
from pfmagic.spec.connection import Connection, parse_connection

pytestmark = pytest.mark.usefixtures("no_atexit_reset")

OPEN_AI = """name: open_ai_connection
type: open_ai
api_key: sk-proj-abcdefghijklmnopqrstuvwxyz
base_url: http://127.0.0.1:9999/v1
"""


def test_open_ai_connection_is_masked(ip: InteractiveShell) -> None:
    conn = ip.run_cell_magic("pf_connection", "", OPEN_AI)
    assert isinstance(conn, Connection)
    assert (conn.name, conn.type) == ("open_ai_connection", "open_ai")
    assert conn.to_dict()["api_key"] == "sk-proj-abcdefghijklmnopqrstuvwxyz"  # for the backend
    for shown in (repr(conn), conn._repr_html_(), str(conn.masked())):
        assert "abcdefghij" not in shown
        assert "****" in shown and "http://127.0.0.1:9999/v1" in shown
    assert session_of(ip).connections["open_ai_connection"] is conn


def test_env_references_are_kept(ip: InteractiveShell) -> None:
    conn = ip.run_cell_magic(
        "pf_connection",
        "conn",
        OPEN_AI.replace("sk-proj-abcdefghijklmnopqrstuvwxyz", "${env:OPENAI_API_KEY}"),
    )
    assert conn is None
    stored = ip.user_ns["conn"]
    assert stored.to_dict()["api_key"] == "${env:OPENAI_API_KEY}"
    assert "${env:OPENAI_API_KEY}" in repr(stored)  # a reference is not a secret


def test_custom_connection_secrets_masked() -> None:
    conn = parse_connection(
        "name: my_custom\ntype: custom\nconfigs:\n  region: westeurope\n"
        "secrets:\n  token: abc123secret\n"
    )
    assert conn.masked() == {
        "name": "my_custom",
        "type": "custom",
        "configs": {"region": "westeurope"},
        "secrets": {"token": "****"},
    }
    assert "abc123secret" not in repr(conn)


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            OPEN_AI.replace("base_url", "api_base"),
            "field 'api_base', line 5: open_ai connections take base_url; promptflow 1.18.5 "
            "silently drops api_base (rename api_base to base_url)",
        ),
        (
            "name: c\ntype: open_ai\nbase_url: http://x\n",
            "field 'api_key': open_ai connections need api_key",
        ),
        (
            "name: c\ntype: openai\napi_key: k\n",
            "field 'type', line 3: unknown connection type 'openai' (did you mean 'open_ai'?)",
        ),
        (
            "name: c\ntype: azure_open_ai\napi_key: k\napi_bse: https://x\n",
            "field 'api_bse', line 5: unknown field for azure_open_ai connections "
            "(did you mean 'api_base'?)",
        ),
        ("type: serp\napi_key: k\n", "field 'name': required field is missing"),
        (
            "name: c\ntype: custom\nsecrets:\n  n: 1\n",
            "field 'secrets', line 4: secrets must be a mapping of strings",
        ),
        (
            "name: c\ntype: serp\napi_key: [k\n",
            "line 5: YAML syntax: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_bad_connections(ip: InteractiveShell, body: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("pf_connection", "", body)
    assert str(info.value) == expected


def test_create_stores_in_local_backend(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("pf_connection", "--create", OPEN_AI)
    out = capsys.readouterr().out
    assert "connection open_ai_connection stored in the local backend" in out
    assert "abcdefghij" not in out
    assert "open_ai_connection" in session_of(ip).backend.list_connections()


def test_promptflow_not_imported(ip: InteractiveShell) -> None:
    before = "promptflow" in sys.modules
    ip.run_cell_magic("pf_connection", "", OPEN_AI)
    assert ("promptflow" in sys.modules) == before

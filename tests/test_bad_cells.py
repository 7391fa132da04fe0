"""Bad cells: each gives one UsageError line naming the field and the cell line (YAML line + 1).

Run through ``InteractiveShell.run_cell`` as a notebook would: no traceback, the kernel stays
up, earlier entities are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixture_paths import FIXTURES_YAML
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from marshmallow import ValidationError

from pfmagic.magics import session_of
from pfmagic.spec.diagnose import _schema_for, _value_at, schema_problems
from pfmagic.spec.positions import Positions

pytestmark = pytest.mark.usefixtures("no_atexit_reset")

DEP = (
    "name: blue\nendpoint_name: basic-chat-endpoint\nmodel: azureml:basic-chat-model:1\n"
    "instance_type: Standard_DS3_v2\n"
)  # YAML lines 1-4 → cell lines 2-5
ENV = DEP + "environment_variables:\n  PROMPTFLOW_RUN_MODE: serving\n"  # + lines 6-7
ROUTES = (
    "    liveness_route: {path: /health, port: 8080}\n"
    "    readiness_route: {path: /health, port: 8080}\n"
)

CASES: list[tuple[str, str, str, str]] = [
    # id, magic + line, body, expected error (first line)
    # -- YAML syntax
    (
        "syntax-flow-seq",
        "pf_endpoint",
        "name: [a, b\n",
        "line 2: YAML syntax: while parsing a flow sequence: expected ',' or ']', but got "
        "'<stream end>'",
    ),
    (
        "syntax-tab",
        "pf_endpoint",
        "name: abc\n\tauth_mode: key\n",
        "line 3: YAML syntax: while scanning for the next token: found character '\\t' that cannot "
        "start any token (indent with spaces, not tabs)",
    ),
    (
        "syntax-indent",
        "pf_deployment",
        "name: blue\n  endpoint_name: ep\n",
        "line 3: YAML syntax: mapping values are not allowed here",
    ),
    (
        "syntax-quote",
        "pf_model",
        "name: 'unterminated\npath: .\n",
        "line 4: YAML syntax: while scanning a quoted scalar: found unexpected end of stream",
    ),
    (
        "empty",
        "pf_endpoint",
        "# only a comment\n",
        "the cell is empty: expected YAML fields such as 'name: ...'",
    ),
    (
        "top-level-list",
        "pf_endpoint",
        "- name: abc\n",
        "line 2: expected YAML fields (key: value lines), got a list",
    ),
    # -- unknown fields (with the closest valid one)
    (
        "unknown-top",
        "pf_endpoint",
        "name: my-ep\nauth_mod: key\n",
        "field 'auth_mod', line 3: unknown field (did you mean 'auth_mode'?)",
    ),
    (
        "unknown-nested",
        "pf_deployment",
        DEP + "request_settings:\n  request_timeout: 5000\n",
        "field 'request_settings.request_timeout', line 7: unknown field "
        "(did you mean 'request_timeout_ms'?)",
    ),
    # -- a shape azure-ai-ml's loader calls .get on ("'int' object has no attribute 'get'")
    (
        "deployment-model-number",
        "pf_deployment",
        DEP.replace("model: azureml:basic-chat-model:1", "model: 5"),
        "field 'model', line 4: expected a model (azureml:NAME:VERSION, a local path or a "
        "mapping), got 5",
    ),
    (
        "deployment-environment-list",
        "pf_deployment",
        DEP + "environment: [a, b]\n",
        "field 'environment', line 6: expected an environment (azureml:NAME:VERSION or a "
        "mapping), got a list",
    ),
    (
        "deployment-code-configuration-bool",
        "pf_deployment",
        DEP + "code_configuration: true\n",
        "field 'code_configuration', line 6: expected a mapping (code: and scoring_script:), "
        "got true",
    ),
    (
        "unknown-model",
        "pf_model",
        "name: m\npath: .\nversionx: 1\n",
        "field 'versionx', line 4: unknown field (did you mean 'version'?)",
    ),
    (
        "unknown-in-union",
        "pf_deployment",
        DEP + "environment:\n  image: img\n  inference_confg: {}\n",
        "field 'environment.inference_confg', line 8: unknown field "
        "(did you mean 'inference_config'?)",
    ),
    (
        "renamed-field",
        "pf_deployment",
        DEP + "target: azureml:cpu\n",
        "field 'target', line 6: unknown field (its successor is 'compute:')",
    ),
    (
        "unknown-in-sub-mapping",
        "pf_endpoint",
        "name: my-ep\nidentity:\n  typ: system_assigned\n",
        "field 'identity.typ', line 4: unknown field (did you mean 'type'?)",
    ),
    (
        "unknown-kubernetes-endpoint",
        "pf_endpoint",
        "name: my-ep\ncompute: azureml:k8s\nauth_mod: key\n",
        "field 'auth_mod', line 4: unknown field (did you mean 'auth_mode'?)",
    ),
    (
        "unknown-kubernetes-deployment",
        "pf_deployment",
        DEP + "type: kubernetes\nresources_x: {}\n",
        "field 'resources_x', line 7: unknown field (did you mean 'resources'?)",
    ),
    # read-only fields of the schema are never suggested
    ("hidden-id", "pf_endpoint", "name: my-ep\nidd: x\n", "field 'idd', line 3: unknown field"),
    (
        "hidden-provisioning-state",
        "pf_endpoint",
        "name: my-ep\nprovisioning_stat: x\n",
        "field 'provisioning_stat', line 3: unknown field",
    ),
    (
        "hidden-creation-context",
        "pf_endpoint",
        "name: my-ep\ncreation_contex: x\n",
        "field 'creation_contex', line 3: unknown field",
    ),
    (
        "hidden-schema-ignored",
        "pf_endpoint",
        "name: my-ep\nschema_ignore: x\n",
        "field 'schema_ignore', line 3: unknown field",
    ),
    (
        "hidden-latest-version",
        "pf_model",
        "name: m\npath: .\nlatest_versio: 1\n",
        "field 'latest_versio', line 4: unknown field (did you mean 'version'?)",
    ),
    (
        "unknown-no-hint",
        "pf_endpoint",
        "name: my-ep\nzzz: 1\n",
        "field 'zzz', line 3: unknown field",
    ),
    # -- wrong types / values
    (
        "int",
        "pf_deployment",
        DEP + "instance_count: two\n",
        "field 'instance_count', line 6: not a valid integer",
    ),
    (
        "nested-int",
        "pf_deployment",
        DEP + "request_settings:\n  request_timeout_ms: soon\n",
        "field 'request_settings.request_timeout_ms', line 7: not a valid integer",
    ),
    (
        "enum",
        "pf_endpoint",
        "name: my-ep\nauth_mode: keyz\n",
        "field 'auth_mode', line 3: Value 'keyz' passed is not in set ['aml_token', 'key', "
        "'aad_token']",
    ),
    (
        "bool",
        "pf_deployment",
        DEP + "app_insights_enabled: maybe\n",
        "field 'app_insights_enabled', line 6: not a valid boolean (true / false)",
    ),
    (
        "null",
        "pf_endpoint",
        "name:\nauth_mode: key\n",
        "field 'name', line 2: must not be empty",
    ),
    (
        "string",
        "pf_endpoint",
        "name: my-ep\ndescription: [a]\n",
        "field 'description', line 3: not a valid string",
    ),
    (
        "mapping",
        "pf_endpoint",
        "name: my-ep\ntags: abc\n",
        "field 'tags', line 3: expected a mapping (key: value lines)",
    ),
    (
        "union-type",
        "pf_deployment",
        DEP + "code_configuration: abc\n",
        "field 'code_configuration', line 6: wrong type",
    ),
    (
        "long-value",
        "pf_endpoint",
        "name: my-ep\nauth_mode: " + "k" * 300 + "\n",
        "field 'auth_mode', line 3: Value '" + "k" * 193,  # cut at 200 characters
    ),
    (
        "dict-entry-value",  # a Dict field's "value" wrapper is no field the user wrote
        "pf_deployment",
        DEP + "data_collector:\n  collections:\n    model_inputs:\n      enabled: maybe\n",
        "field 'data_collector.collections.model_inputs.enabled', line 9: Value 'maybe' passed "
        "is not in set ['true', 'false']",
    ),
    (
        "dict-entry-key",
        "pf_deployment",
        DEP + "data_collector:\n  collections:\n    5:\n      enabled: 'true'\n",
        "field 'data_collector.collections.5', line 8: invalid key: not a valid string",
    ),
    (
        "model-ref",
        "pf_deployment",
        DEP.replace("azureml:basic-chat-model:1", "basic-chat-model"),
        "field 'model', line 4: 'basic-chat-model' is not a valid reference "
        "(use azureml:<name>:<version>, or a mapping)",
    ),
    # -- missing required fields
    (
        "missing-instance-type",
        "pf_deployment",
        DEP.replace("instance_type: Standard_DS3_v2\n", ""),
        "field 'instance_type': required field is missing",
    ),
    (
        "missing-routes",
        "pf_deployment",
        DEP + "environment:\n  image: img\n  inference_config:\n" + ROUTES[: ROUTES.index("    r")],
        "field 'environment.inference_config.readiness_route', line 8: required field is missing\n"
        "field 'environment.inference_config.scoring_route', line 8: required field is missing",
    ),
    (
        "missing-scoring-route",
        "pf_deployment",
        DEP + "environment:\n  image: img\n  inference_config:\n" + ROUTES,
        "field 'environment.inference_config.scoring_route', line 8: required field is missing",
    ),
    # -- names (azure-ai-ml checks these only at create, after network calls)
    (
        "endpoint-name-short",
        "pf_endpoint",
        "name: ab\n",
        "field 'name', line 2: invalid endpoint name 'ab': 3-32 characters: a letter first, then "
        "letters, digits or hyphens (not at the end)",
    ),
    (
        "endpoint-name-pattern",
        "pf_endpoint",
        "name: 1-bad\n",
        "field 'name', line 2: invalid name '1-bad': 3-32 characters: a letter first, then "
        "letters, digits or hyphens (not at the end)",
    ),
    (
        "deployment-name",
        "pf_deployment",
        DEP.replace("name: blue", "name: 1bad_name!"),
        "field 'name', line 2: invalid deployment name '1bad_name!': 3-32 characters: a letter "
        "first, then letters, digits or hyphens (not at the end)",
    ),
    (
        "deployment-name-long",
        "pf_deployment",
        DEP.replace("name: blue", "name: " + "b" * 33),
        f"field 'name', line 2: invalid deployment name '{'b' * 33}': 3-32 characters: a letter "
        "first, then letters, digits or hyphens (not at the end)",
    ),
    (
        "deployment-endpoint-name",
        "pf_deployment",
        DEP.replace("endpoint_name: basic-chat-endpoint", "endpoint_name: chat-"),
        "field 'endpoint_name', line 3: invalid endpoint name 'chat-': 3-32 characters: a letter "
        "first, then letters, digits or hyphens (not at the end)",
    ),
    # -- environment variables
    (
        "env-list",
        "pf_deployment",
        ENV + "  PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: [answer]\n",
        "field 'environment_variables.PROMPTFLOW_RESPONSE_INCLUDED_FIELDS', line 8: environment "
        "variable values must be strings, got list",
    ),
    (
        "env-name",
        "pf_deployment",
        ENV + "  MY SETTING: x\n",
        "field 'environment_variables.MY SETTING', line 8: invalid environment variable name "
        "'MY SETTING'",
    ),
    (
        "included-not-json",
        "pf_deployment",
        ENV + "  PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: answer\n",
        "field 'environment_variables.PROMPTFLOW_RESPONSE_INCLUDED_FIELDS', line 8: "
        """PROMPTFLOW_RESPONSE_INCLUDED_FIELDS must be a JSON list of strings, e.g. '["answer"]'""",
    ),
    (
        "included-not-strings",
        "pf_deployment",
        ENV + "  PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: '[1, 2]'\n",
        "field 'environment_variables.PROMPTFLOW_RESPONSE_INCLUDED_FIELDS', line 8: "
        """PROMPTFLOW_RESPONSE_INCLUDED_FIELDS must be a JSON list of strings, e.g. '["answer"]'""",
    ),
    # -- missing local paths (azure-ai-ml: noisy union error, or nothing until create)
    (
        "model-path",
        "pf_model",
        "name: m\npath: ./no-such-flow\n",
        "field 'path', line 3: path does not exist: {nb}/no-such-flow",
    ),
    (
        "inline-model-path",
        "pf_deployment",
        DEP.replace("model: azureml:basic-chat-model:1", "model:\n  path: ./no-such-flow"),
        "field 'model', line 4: path does not exist: {nb}/no-such-flow",
    ),
    (
        "conda-file",
        "pf_deployment",
        DEP + "environment:\n  image: img\n  conda_file: env.yml\n",
        "field 'environment', line 6: path does not exist: {nb}/env.yml",
    ),
    # -- {{name}} interpolation
    (
        "undefined-var",
        "pf_endpoint",
        "name: {{ endpoint_name }}\n",
        "line 2: '{{endpoint_name}}': name 'endpoint_name' is not defined (define it in a cell "
        "above, or use --no-interpolate)",
    ),
    (
        "undefined-attr",
        "pf_endpoint",
        "name: abc\ndescription: '{{cfg.nope}}'\n",
        "line 3: '{{cfg.nope}}': 'cfg' has no 'nope'",
    ),
    # -- chat properties that name no flow input/output
    (
        "chat-input",
        "pf_model",
        "name: m\npath: ./flow\nproperties:\n  azureml.promptflow.mode: chat\n"
        "  azureml.promptflow.chat_input: query\n",
        "field 'properties.azureml.promptflow.chat_input', line 6: chat input 'query' is not a "
        "flow input (flow inputs: chat_history, question)",
    ),
    # -- flags and sources
    (
        "set-unknown",
        "pf_endpoint --set bogus=1",
        "name: my-ep\n",
        "field 'bogus': unknown field (from --set)",
    ),
    (
        "set-no-equals",
        "pf_endpoint --set instance_count",
        "name: my-ep\n",
        "--set instance_count: expected KEY=VALUE (e.g. --set instance_count=2)",
    ),
    (
        "file-and-cell",
        "pf_endpoint --file ep.yml",
        "name: my-ep\n",
        "give either --file or YAML in the cell, not both",
    ),
    (
        "missing-file",
        "pf_endpoint --file nope.yml",
        "",
        "cannot read --file {nb}/nope.yml: No such file or directory",
    ),
    (
        "dollar-undefined",
        "pf_endpoint",
        "$nothing_here\n",
        "$nothing_here is not defined; the cell needs YAML text",
    ),
    ("bad-var-name", "pf_endpoint 2x", "name: my-ep\n", "'2x' is not a valid Python variable name"),
    (
        "flags-without-create",
        "pf_deployment --all-traffic",
        DEP,
        "--all-traffic and --no-wait go with --create",
    ),
]


# -- the line a field path maps to (pfmagic/spec/positions.py), without a cell around it; first
#    in the file, so a mutant they catch (bench/mutate.sh, -x) fails before any cell runs
POSITIONS_YAML = """\
name: blue
environment:
  image: img
  inference_config:
    scoring_route: {path: /score, port: 8080}
env_list:
  - name: A
    value: '1'
  - name: B
name: green
? [complex, key]
: 1
"""


def test_a_field_path_maps_to_the_line_of_its_key() -> None:
    pos = Positions(POSITIONS_YAML)
    assert pos.line("environment.inference_config.scoring_route") == 5
    assert pos.line(("environment", "inference_config", "scoring_route", "port")) == 5
    assert pos.line(["environment", "image"]) == 3
    assert pos.line("name") == 10  # given twice: the last one is what YAML keeps
    assert pos.line("env_list.1.name") == 9  # a list item by index
    assert pos.line(("env_list", 0)) == 7  # the item's own line (it has no key)
    # missing: the deepest field that exists, where the missing one belongs
    assert pos.line("environment.inference_config.readiness_route") == 4
    assert pos.line("env_list.2.name") == 6  # past the end of the list
    assert pos.line("env_list.-1") == 6  # no negative indexes: YAML paths count from 0
    assert pos.line("env_list.first") == 6  # a list has no named fields
    assert pos.line("environment.image.tag") == 3  # a scalar has no fields either
    assert pos.line("environment.nope.image") == 2  # the walk stops at the first miss
    assert pos.line("nope") is None and pos.line("") is None
    assert pos.line("complex") is None  # a non-scalar key names no field


def test_exists_follows_the_same_path() -> None:
    pos = Positions(POSITIONS_YAML)
    assert pos.exists("environment.inference_config.scoring_route.port")
    assert pos.exists(("env_list", 1, "name")) and pos.exists("env_list.1")
    assert not pos.exists("env_list.2") and not pos.exists("env_list.1.value")
    assert not pos.exists("environment.inference_config.readiness_route")
    assert not pos.exists("environment.image.tag")


def test_duplicate_keys_are_listed_with_their_lines() -> None:
    text = "a: 1\nb:\n  c: 1\n  c: 2\nl:\n  - x: 1\n    x: 2\na: 3\n"
    assert list(Positions(text).duplicate_keys()) == [("b.c", 4), ("l.0.x", 7), ("a", 8)]
    assert list(Positions("a: 1\nb: 2\n").duplicate_keys()) == []


def test_yaml_that_does_not_parse_has_no_positions() -> None:
    pos = Positions("name: [a, b\n")
    assert pos.root is None and pos.line("name") is None and not pos.exists("name")
    assert list(pos.duplicate_keys()) == []


# -- azure-ai-ml's nested error messages → one-line problems (pfmagic/spec/diagnose.py), fed
#    marshmallow's own ValidationError; the cells below check them against azure-ai-ml's words
def problems(messages: Any, raw: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in schema_problems(ValidationError(messages), raw)]


def test_messages_at_every_depth_become_one_line_each() -> None:
    assert problems({"a": "Not a valid number.", "b": None, "c": 5}, {}) == [
        ("a", "not a valid number"),  # a bare string, not a list of them
        ("c", "5"),  # None is no message
    ]
    # a Dict field's entries: "value" is no field; a field named "value" stays one
    raw = {"m": {"x": {"value": 1}, "y": {"k": 1}}}
    messages = {"m": {"x": {"value": ["Unknown field."]}, "y": {"value": {"k": ["Bad."]}}}}
    assert problems(messages, raw) == [("m.x.value", "unknown field"), ("m.y.k", "Bad.")]
    # only the key's own problems say "invalid key"
    messages = {
        "a": ["Missing data for required field."],
        "m": {"y": {"key": ["Not a valid string."]}},
    }
    assert problems(messages, raw) == [
        ("a", "required field is missing"),
        ("m.y", "invalid key: not a valid string"),
    ]


def test_a_union_reports_the_alternative_that_fits() -> None:
    # no nested schema fits a number: the first alternative's first line
    messages = {"env": [["Invalid input type.\nsecond line"], ["Not a valid string."]]}
    assert problems(messages, {"env": 5}) == [("env", "wrong type")]
    messages = {"env": [{"_schema": ["Not a valid mapping type."]}, ["Not a valid string."]]}
    assert problems(messages, {"env": 5}) == [("env", "expected a mapping (key: value lines)")]
    missing = [["No such file or directory: /nb/env.yml"], "x"]  # unquoted, at a line's end
    assert problems({"env": missing}, {"env": {}}) == [("env", "path does not exist: /nb/env.yml")]


def test_the_written_value_is_found_by_its_path() -> None:
    raw = {"a": [{"b": "x"}, "y"], "s": "abc"}
    assert _value_at(raw, ("a", 0, "b")) == "x" and _value_at(raw, ("a", 1)) == "y"
    assert _value_at(raw, ("a", 2)) is None and _value_at(raw, ("a", -1)) is None
    assert _value_at(raw, ("a", "b")) is None  # a list has no named fields
    assert _value_at(raw, ("s", "b")) is None  # nor has a string
    assert _schema_for("no schema named here") is None


@pytest.fixture
def nb(ip: InteractiveShell, tmp_path: Path, echo_flow: Path) -> Path:
    import shutil

    folder = tmp_path / "nb"
    shutil.copytree(echo_flow, folder / "flow")
    ip.user_ns["__vsc_ipynb_file__"] = str(folder / "nb.ipynb")
    ip.user_ns["cfg"] = {"name": "x"}
    return folder


def test_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("magic, body, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_cell(ip: InteractiveShell, nb: Path, magic: str, body: str, expected: str) -> None:
    ip.run_cell("%%pf_endpoint\nname: keep-me\n")  # an earlier entity
    source = f"%%{magic}\n{body}" if body else f"%{magic}"
    result = ip.run_cell(source)
    error = result.error_in_exec
    assert isinstance(error, UsageError), repr(error)
    assert str(error) == expected.replace("{nb}", str(nb))
    assert "keep-me" in session_of(ip).endpoints


def test_azure_placeholders_are_errors(ip: InteractiveShell, nb: Path) -> None:
    ip.run_line_magic("config", "PfMagics.backend = 'azure'")
    body = (FIXTURES_YAML / "deployment_managed.yml").read_text()
    result = ip.run_cell("%%pf_deployment\n" + body)
    assert str(result.error_in_exec) == (
        "field 'environment_variables.PRT_CONFIG_OVERRIDE', line 29: PRT_CONFIG_OVERRIDE still "
        "holds placeholders: <deployment_name>, <endpoint_name>, <resource_group>, "
        "<subscription_id>, <workspace_name> (%pf_backend azure --fill-prt-config fills them "
        "from the workspace, or --set environment_variables.PRT_CONFIG_OVERRIDE=...)"
    )
    result = ip.run_cell(
        "%%pf_endpoint\n" + (FIXTURES_YAML / "endpoint_kubernetes.yml").read_text()
    )
    assert str(result.error_in_exec) == (
        "field 'compute', line 4: 'azureml:<Kubernetes compute name>' looks like a placeholder: "
        "put the real value, or --set compute=..."
    )


def test_kubernetes_deployment_to_managed_endpoint(ip: InteractiveShell, nb: Path) -> None:
    ip.run_cell("%%pf_endpoint\nname: basic-chat-endpoint\n")
    result = ip.run_cell(
        "%%pf_deployment\n" + DEP.replace("name: blue\n", "name: blue\ntype: kubernetes\n")
    )
    assert str(result.error_in_exec) == (
        "field 'type', line 3: a Kubernetes deployment cannot go to the managed endpoint "
        "basic-chat-endpoint"
    )


def test_errors_are_fatal_raises_real_exception(ip: InteractiveShell, nb: Path) -> None:
    from pfmagic.errors import SpecError

    ip.run_line_magic("config", "PfMagics.errors_are_fatal = True")
    with pytest.raises(SpecError) as info:
        ip.run_cell_magic("pf_endpoint", "", "name: ab\n")
    assert (info.value.field, info.value.line) == ("name", 2)

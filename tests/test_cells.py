"""YAML cells from the seed doc parse into azure-ai-ml's own classes, in a real InteractiveShell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fixture_paths import FIXTURES_YAML
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from pfmagic.magics import session_of
from pfmagic.render.entity import EntitySummary

pytestmark = pytest.mark.usefixtures("no_atexit_reset")


def seed(name: str) -> str:
    return (FIXTURES_YAML / name).read_text()


def cell(ip: InteractiveShell, magic: str, body: str, line: str = "") -> Any:
    return ip.run_cell_magic(magic, line, body)


def run(ip: InteractiveShell, source: str) -> Any:
    """Run a whole notebook cell (displayhook, ``_``, post_run_cell) and return its result."""
    return ip.run_cell(source, store_history=True)


def azure_class(entity: Any) -> type:
    """The azure-ai-ml class under the masking subclass a stored entity gets."""
    return next(c for c in type(entity).__mro__ if c.__module__.startswith("azure.ai.ml"))


def messages(summary: EntitySummary) -> list[str]:
    return [w.message for w in summary.warnings]


# -- the seed's YAMLs ------------------------------------------------------------------------
def test_seed_model(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import Model

    summary = cell(ip, "pf_model", seed("model.yml"))
    model = summary.entity
    assert azure_class(model) is Model  # a masking subclass of it (render/masked.py)
    assert model.name == "basic-chat-model"
    assert Path(model.path) == (seed_nb / "../../../../examples/flows/chat/basic-chat").resolve()
    assert model.properties["azureml.promptflow.mode"] == "chat"
    assert model.properties["azureml.promptflow.chat_input"] == "question"
    assert model.description == "register basic chat flow folder as a custom model"
    # chat properties agree with chat-echo's is_chat_input / is_chat_output: nothing to say
    assert summary.warnings == []
    assert session_of(ip).models["basic-chat-model"] is model


def test_seed_managed_endpoint(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    summary = cell(ip, "pf_endpoint", seed("endpoint_managed.yml"))
    ep = summary.entity
    assert azure_class(ep) is ManagedOnlineEndpoint
    assert (ep.name, ep.auth_mode) == ("basic-chat-endpoint", "key")
    assert ep.properties == {"enforce_access_to_default_secret_stores": "enabled"}
    assert summary.warnings == []
    assert session_of(ip).endpoints["basic-chat-endpoint"] is ep
    text = repr(summary)
    assert text.startswith("Managed online endpoint basic-chat-endpoint")
    assert re.search(r"kind\s+managed", text) and re.search(r"auth mode\s+key", text)


def test_seed_kubernetes_endpoint(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import KubernetesOnlineEndpoint

    summary = cell(ip, "pf_endpoint", seed("endpoint_kubernetes.yml"))
    ep = summary.entity
    assert azure_class(ep) is KubernetesOnlineEndpoint
    assert ep.compute.endswith("<Kubernetes compute name>")
    # the doc's placeholder is flagged (a warning locally) at the line of compute:
    placeholder = [w for w in summary.warnings if "placeholder" in w.message]
    assert [(w.field, w.line) for w in placeholder] == [("compute", 4)]


def test_compute_in_set_makes_kubernetes_endpoint(ip: InteractiveShell, seed_nb: Path) -> None:
    # azure-ai-ml's own rule: compute given in params_override also switches the class
    summary = cell(
        ip, "pf_endpoint", "name: k8s-ep\nauth_mode: key\n", line="--set compute=azureml:k8s"
    )
    assert type(summary.entity).__name__ == "KubernetesOnlineEndpoint"


def test_seed_user_assigned_identity(ip: InteractiveShell, seed_nb: Path) -> None:
    body = seed("endpoint_managed.yml") + seed("identity_user_assigned.yml")
    summary = cell(ip, "pf_endpoint", body)
    identity = summary.entity.identity
    assert identity.type == "user_assigned"
    assert identity.user_assigned_identities[0].resource_id == "user_identity_ARM_id_place_holder"
    assert any(
        w.field == "identity.user_assigned_identities.0.resource_id" and "placeholder" in w.message
        for w in summary.warnings
    )


def test_seed_managed_deployment(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    cell(ip, "pf_model", seed("model.yml"))
    summary = cell(ip, "pf_deployment", seed("deployment_managed.yml"))
    dep = summary.entity
    assert azure_class(dep) is ManagedOnlineDeployment
    assert (dep.name, dep.endpoint_name, dep.model) == (
        "blue",
        "basic-chat-endpoint",
        "basic-chat-model:1",
    )
    assert dep.environment.image == "mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest"
    assert dep.environment.inference_config["scoringRoute"] == {"path": "/score", "port": 8080}
    assert (dep.instance_type, dep.instance_count) == ("Standard_E16s_v3", 1)
    assert dep.environment_variables["PROMPTFLOW_RUN_MODE"] == "serving"
    assert dep.environment_variables["PRT_CONFIG_OVERRIDE"].startswith(
        "deployment.subscription_id=<subscription_id>"
    )
    # locally the placeholders are a warning naming field and cell line (YAML line 28 + 1)
    prt = [w for w in summary.warnings if w.field == "environment_variables.PRT_CONFIG_OVERRIDE"]
    assert len(prt) == 1 and prt[0].line == 29 and "<subscription_id>" in prt[0].message
    assert session_of(ip).deployments[("basic-chat-endpoint", "blue")] is dep
    text = repr(summary)
    assert "Standard_E16s_v3 (16 cores)" in text  # cores from pfmagic.skus
    assert "liveness /health:8080, readiness /health:8080, scoring /score:8080" in text
    assert re.search(r"instance count\s+1", text)


def test_seed_kubernetes_deployment(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import KubernetesOnlineDeployment

    summary = cell(ip, "pf_deployment", seed("deployment_kubernetes.yml"))
    dep = summary.entity
    assert azure_class(dep) is KubernetesOnlineDeployment
    assert dep.instance_type == "<kubernetes custom instance type>"
    assert re.search(r"kind\s+kubernetes", repr(summary))


def test_type_kubernetes_via_set_does_not_switch(ip: InteractiveShell, seed_nb: Path) -> None:
    # azure-ai-ml: only the raw YAML's type: kubernetes selects the Kubernetes class
    summary = cell(
        ip, "pf_deployment", seed("deployment_managed.yml"), line="--set type=kubernetes"
    )
    assert type(summary.entity).__name__ == "ManagedOnlineDeployment"


def test_seed_custom_build_context(ip: InteractiveShell, seed_nb: Path) -> None:
    text = seed("deployment_managed.yml")
    start, end = text.index("environment: \n"), text.index("instance_type:")
    body = text[:start] + seed("environment_build.yml") + text[end:]
    summary = cell(ip, "pf_deployment", body)
    env = summary.entity.environment
    assert env.build.path == "image_build_with_reqirements"  # resolved at create, like the CLI
    assert env.build.dockerfile_path == "Dockerfile"
    assert env.inference_config["livenessRoute"] == {"path": "/health", "port": 8080}
    assert not any("build" in w.field for w in summary.warnings)


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ("env_connection_name.yml", "<override_connection_name>"),
        ("env_connection_ref.yml", "${{azureml://connections/<override_connection_name>}}"),
    ],
)
def test_seed_connection_overrides(
    ip: InteractiveShell, seed_nb: Path, snippet: str, expected: str
) -> None:
    override = seed(snippet).split("\n", 1)[1]  # the indented line under environment_variables:
    summary = cell(ip, "pf_deployment", seed("deployment_managed.yml") + override)
    assert summary.entity.environment_variables["my_connection"] == expected
    assert any(w.field == "environment_variables.my_connection" for w in summary.warnings)


# -- storing, returning, showing -------------------------------------------------------------
def test_var_stores_entity_and_returns_none(
    ip: InteractiveShell, seed_nb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(ip, "%%pf_endpoint ep\n" + seed("endpoint_managed.yml"))
    assert result.success and result.result is None
    assert type(ip.user_ns["ep"]).__name__ == "ManagedOnlineEndpoint"
    assert "Managed online endpoint basic-chat-endpoint" in capsys.readouterr().out


def test_without_var_the_summary_is_the_result(ip: InteractiveShell, seed_nb: Path) -> None:
    result = run(ip, "%%pf_endpoint\n" + seed("endpoint_managed.yml"))
    assert isinstance(result.result, EntitySummary)
    assert ip.user_ns["_"] is result.result
    html = result.result._repr_html_()
    assert "<table>" in html and "basic-chat-endpoint" in html


def test_deployment_panel_follows_every_deployment(
    ip: InteractiveShell, seed_nb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    magics = ip.magics_manager.registry["CellsMagics"]
    shown: list[str] = []
    monkeypatch.setattr(magics, "show_deployment_panel", lambda dep: shown.append(dep.name))
    result = run(ip, "%%pf_deployment\n" + seed("deployment_managed.yml"))
    assert result.success and shown == ["blue"]  # after the result, via post_run_cell
    run(
        ip,
        "%%pf_deployment d\n" + seed("deployment_managed.yml").replace("name: blue", "name: green"),
    )
    assert shown == ["blue", "green"]
    run(ip, "x = 1")
    assert shown == ["blue", "green"]  # the one-shot hook is gone


def test_secret_env_vars_are_masked(ip: InteractiveShell, seed_nb: Path) -> None:
    body = seed("deployment_managed.yml") + (
        "  OPEN_AI_CONNECTION_API_KEY: sk-abcdefghijklmnop1234\n"
        "  STORAGE: DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0\n"
        "  MY_TOKEN: ${env:MY_TOKEN}\n"
    )
    summary = cell(ip, "pf_deployment", body)
    text, html = repr(summary), summary._repr_html_()
    for secret in ("sk-abcdefghijklmnop1234", "c2VjcmV0"):
        assert secret not in text and secret not in html
    assert re.search(r"env OPEN_AI_CONNECTION_API_KEY\s+\*\*\*\*", text)
    assert "${env:MY_TOKEN}" in text  # a reference, not a secret
    # the entity itself keeps the real value for the backend
    assert summary.entity.environment_variables["OPEN_AI_CONNECTION_API_KEY"].startswith("sk-")


# -- inputs: {{name}}, --set, --file, $var -----------------------------------------------------
def test_interpolation_from_namespace(ip: InteractiveShell, seed_nb: Path) -> None:
    ip.user_ns.update(sku="Standard_F4s_v2", n=3, cfg={"ep": "basic-chat-endpoint"})
    body = (
        seed("deployment_managed.yml")
        .replace("Standard_E16s_v3", "{{ sku }}")
        .replace("instance_count: 1", "instance_count: {{n}}")
        .replace("endpoint_name: basic-chat-endpoint", "endpoint_name: {{cfg.ep}}")
    )
    body += "  my_connection: ${{azureml://connections/other}}\n"
    dep = cell(ip, "pf_deployment", body).entity
    assert (dep.instance_type, dep.instance_count, dep.endpoint_name) == (
        "Standard_F4s_v2",
        3,
        "basic-chat-endpoint",
    )
    assert dep.environment_variables["my_connection"] == "${{azureml://connections/other}}"


def test_no_interpolate_keeps_braces(ip: InteractiveShell, seed_nb: Path) -> None:
    ep = cell(
        ip, "pf_endpoint", "name: abc\ndescription: '{{ not_defined }}'\n", line="--no-interpolate"
    ).entity
    assert ep.description == "{{ not_defined }}"


def test_set_overrides(ip: InteractiveShell, seed_nb: Path) -> None:
    dep = cell(
        ip,
        "pf_deployment",
        seed("deployment_managed.yml"),
        line="--set instance_count=3 --set environment_variables.FOO=bar",
    ).entity
    assert dep.instance_count == 3
    assert dep.environment_variables["FOO"] == "bar"


def test_file_and_dollar_var(ip: InteractiveShell, seed_nb: Path) -> None:
    (seed_nb / "endpoint.yml").write_text(seed("endpoint_managed.yml"))
    # the line form, since IPython refuses an empty %% cell
    assert ip.run_line_magic("pf_endpoint", "--file endpoint.yml").entity.auth_mode == "key"
    ip.user_ns["text"] = seed("endpoint_managed.yml").replace(
        "auth_mode: key", "auth_mode: aml_token"
    )
    assert cell(ip, "pf_endpoint", "$text\n").entity.auth_mode == "aml_token"


def test_error_keeps_earlier_entities_and_kernel(ip: InteractiveShell, seed_nb: Path) -> None:
    run(ip, "%%pf_endpoint\n" + seed("endpoint_managed.yml"))
    result = run(ip, "%%pf_endpoint\nname: other-ep\nauth_mode: nope\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "basic-chat-endpoint" in session_of(ip).endpoints
    assert "other-ep" not in session_of(ip).endpoints
    assert run(ip, "1 + 1").result == 2


# -- prompt-flow checks that warn ------------------------------------------------------------
def test_chat_properties_disagree_with_flow(ip: InteractiveShell, seed_nb: Path) -> None:
    body = seed("model.yml").replace("chat_output: answer", "chat_output: turns")
    summary = cell(ip, "pf_model", body)
    [warning] = summary.warnings
    assert warning.field == "properties.azureml.promptflow.chat_output"
    assert warning.line == 16  # YAML line 15, below the %% line
    assert warning.message == "chat output 'turns' but the flow marks 'answer' is_chat_output"


def test_chat_flow_without_chat_mode(ip: InteractiveShell, echo_flow: Path) -> None:
    summary = cell(ip, "pf_model", f"name: echo\npath: {echo_flow}\n")
    assert messages(summary) == [
        "the flow is a chat flow (is_chat_input: question) but azureml.promptflow.mode is not "
        "set; set it to chat for the Test tab"
    ]


def test_registered_model_is_looked_up_for_deployment(ip: InteractiveShell, seed_nb: Path) -> None:
    cell(ip, "pf_model", seed("model.yml").replace("mode: chat", "mode: completion"))
    summary = cell(ip, "pf_deployment", seed("deployment_managed.yml"))
    assert any("(model basic-chat-model)" in m for m in messages(summary))


def test_additional_includes_reported(ip: InteractiveShell) -> None:
    flow = Path(__file__).parent / "flows" / "with-includes"
    summary = cell(ip, "pf_model", f"name: inc\npath: {flow}\n")
    assert any("additional_includes (../shared/shout.py)" in m for m in messages(summary))


def test_deployment_warnings(ip: InteractiveShell, seed_nb: Path) -> None:
    body = (
        "name: blue\nendpoint_name: basic-chat-endpoint\nmodel: azureml:m:1\n"
        "environment:\n  image: img\ninstance_type: Standard_DS3_v2\n"
        "environment_variables:\n  PROMPTFLOW_RUN_MOD: serving\n"
    )
    summary = cell(ip, "pf_deployment", body)
    found = {(w.field, w.line, w.message) for w in summary.warnings}
    assert (
        "environment",
        5,
        "no inference_config: the prompt flow runtime image is BYOC, it "
        "needs liveness_route, readiness_route and scoring_route",
    ) in found
    assert (
        "environment_variables.PROMPTFLOW_RUN_MOD",
        9,
        "unknown variable (did you mean 'PROMPTFLOW_RUN_MODE'?)",
    ) in found
    # Current docs no longer set PROMPTFLOW_RUN_MODE: its absence is not worth a warning.
    assert not any("PROMPTFLOW_RUN_MODE: serving is missing" in m for *_, m in found)


def test_azure_target_missing_prt_config_warns(ip: InteractiveShell, seed_nb: Path) -> None:
    ip.run_line_magic("config", "PfMagics.backend = 'azure'")
    body = seed("deployment_managed.yml").replace("  PRT_CONFIG_OVERRIDE:", "  # PRT:")
    summary = cell(ip, "pf_deployment", body)
    assert any(m.startswith("PRT_CONFIG_OVERRIDE is missing") for m in messages(summary))


# -- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "magic, flags",
    [
        ("pf_model", ["--register", "--file", "--set", "--no-interpolate"]),
        ("pf_endpoint", ["--create", "--file", "--set", "--no-interpolate"]),
        ("pf_deployment", ["--create", "--all-traffic", "--no-wait", "--file", "--set"]),
        ("pf_connection", ["--create", "--file"]),
    ],
)
def test_help(ip: InteractiveShell, magic: str, flags: list[str]) -> None:
    doc = ip.find_cell_magic(magic).__doc__
    assert f"%%{magic} [" in doc  # usage spelt for a cell magic (magics-conventions §3)
    assert "Examples::" in doc and f"%%{magic}" in doc.split("Examples::")[1]
    for flag in flags:
        assert flag in doc


def test_cell_help_question_mark(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%%pf_endpoint?")
    out = capsys.readouterr().out
    assert "%%pf_endpoint [--create]" in out and "auth_mode: key" in out


# -- the action flags against the real local backend -----------------------------------------
def test_register_create_deploy_on_local_backend(
    ip: InteractiveShell, echo_flow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = session_of(ip)
    run(
        ip,
        f"%%pf_model m --register\nname: chat-echo\npath: {echo_flow}\nproperties:\n"
        "  azureml.promptflow.mode: chat\n  azureml.promptflow.chat_input: question\n"
        "  azureml.promptflow.chat_output: answer\n",
    )
    registered = ip.user_ns["m"]
    assert session.backend.get_model("chat-echo", registered.version).name == "chat-echo"
    assert f"registered chat-echo:{registered.version}" in capsys.readouterr().out
    ip.user_ns["version"] = registered.version
    try:
        result = run(ip, "%%pf_endpoint --create\nname: echo-ep\nauth_mode: key\n")
        assert result.success, result.error_in_exec
        assert "endpoint echo-ep created" in result.result.note
        result = run(
            ip,
            (
                "%%pf_deployment blue --create --all-traffic\n"
                "name: blue\nendpoint_name: echo-ep\nmodel: azureml:chat-echo:{{version}}\n"
                "environment:\n"
                "  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
                "  inference_config:\n"
                "    liveness_route: {path: /health, port: 8080}\n"
                "    readiness_route: {path: /health, port: 8080}\n"
                "    scoring_route: {path: /score, port: 8080}\n"
                "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
                "environment_variables:\n  PROMPTFLOW_RUN_MODE: serving\n"
            ),
        )
        assert result.success, result.error_in_exec
        assert session.last_endpoint == "echo-ep"
        assert session.backend.get_endpoint("echo-ep").traffic == {"blue": 100}
        assert session.backend.get_deployment("echo-ep", "blue").provisioning_state == "Succeeded"
        reply = session.backend.invoke("echo-ep", {"question": "hi there", "chat_history": []})
        assert reply.outputs["answer"].startswith("Echo: hi there")
    finally:
        session.backend.delete_endpoint("echo-ep").result(120)


def test_unknown_managed_sku_warns(ip: InteractiveShell, seed_nb: Path) -> None:
    body = seed("deployment_managed.yml").replace("Standard_E16s_v3", "Standard_E16_v3")
    summary = cell(ip, "pf_deployment", body)
    assert any(
        w.field == "instance_type"
        and w.message.startswith("'Standard_E16_v3' is not a managed online endpoint SKU")
        for w in summary.warnings
    )


@pytest.mark.parametrize(
    "name, value, masked",
    [
        ("OPENAI_API_KEY", "abc", True),
        ("apiKey", "abc", True),
        ("SAS_TOKEN", "abc", True),
        ("DB_PASSWORD", "abc", True),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=1;x=y", True),
        ("ANYTHING", "sk-abcdefghijklmnop", True),
        ("STORAGE", "DefaultEndpointsProtocol=https;AccountKey=abc==", True),
        ("OPENAI_API_KEY", "${env:OPENAI_API_KEY}", False),
        ("my_connection", "${{azureml://connections/other}}", False),
        ("MONKEY", "banana", False),
        ("PROMPTFLOW_RUN_MODE", "serving", False),
        ("PRT_CONFIG_OVERRIDE", "deployment.subscription_id=s", False),
    ],
)
def test_mask_rules(name: str, value: str, masked: bool) -> None:
    from pfmagic.render.mask import mask_mapping

    assert (mask_mapping({name: value})[name] == "****") is masked


def test_multiline_value_keeps_error_lines(ip: InteractiveShell) -> None:
    # a {{value}} spanning lines must not shift the line numbers of later errors
    ip.user_ns["tags"] = "\n  team: chat\n  stage: dev"
    result = run(ip, "%%pf_endpoint\nname: my-ep\ntags: {{tags}}\nauth_mode: keyz\n")
    assert str(result.error_in_exec).startswith("field 'auth_mode', line 4: Value 'keyz'")


def test_prt_placeholders_error_on_azure_unless_the_backend_fills_them() -> None:
    from pfmagic.errors import SpecError
    from pfmagic.spec.load import parse_deployment

    text = (FIXTURES_YAML / "deployment_managed.yml").read_text()
    with pytest.raises(SpecError, match="PRT_CONFIG_OVERRIDE still holds placeholders"):
        parse_deployment(text, backend_name="azure")
    parsed = parse_deployment(text, backend_name="azure", fill_prt_config=True)
    (warning,) = [w for w in parsed.warnings if "will be filled" in w.message]
    assert "<subscription_id>" in warning.message and warning.line

"""Inputs as az ml users write them (issue 14): --set forms, placeholders after --set, --file
paths relative to the file, null env values, prompt-flow checks only for prompt flows."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from fixture_paths import FIXTURES_YAML
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from pfmagic.magics import session_of

CLI = Path(__file__).parent / "corpus" / "azureml-examples" / "cli"
SKLEARN = (
    "name: blue\nendpoint_name: my-endpoint\n"
    "model:\n  path: ../../model-1/model/\n"
    "code_configuration:\n  code: ../../model-1/onlinescoring/\n  scoring_script: score.py\n"
    "environment:\n  conda_file: ../../model-1/environment/conda.yaml\n"
    "  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n"
    "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
)


@pytest.fixture
def azure(ip: InteractiveShell) -> InteractiveShell:
    ip.run_line_magic("config", "PfMagics.backend = 'azure'")
    return ip


def in_folder(ip: InteractiveShell, folder: Path) -> None:
    ip.user_ns["__vsc_ipynb_file__"] = str(folder / "nb.ipynb")


def test_placeholders_checked_after_set(azure: InteractiveShell) -> None:
    body = (FIXTURES_YAML / "endpoint_kubernetes.yml").read_text()
    with pytest.raises(UsageError, match=r"or --set compute=\.\.\.$"):
        azure.run_cell_magic("pf_endpoint", "", body)
    ep = azure.run_cell_magic("pf_endpoint", "--set compute=azureml:k8s-compute", body)
    assert ep.entity.compute.endswith("k8s-compute")


def test_set_takes_every_az_ml_form(ip: InteractiveShell) -> None:
    in_folder(ip, CLI / "endpoints" / "online" / "managed" / "sample")
    line = (
        "dep --set instance_count=2 'description=a b c' "
        '--set environment_variables.MY_VAR="x y" request_settings.request_timeout_ms=9000'
    )
    assert ip.run_cell_magic("pf_deployment", line, SKLEARN) is None
    dep = ip.user_ns["dep"]
    assert dep.instance_count == 2 and dep.description == "a b c"
    assert dep.environment_variables == {"MY_VAR": "x y"}
    assert dep.request_settings.request_timeout_ms == 9000


def test_set_list_index(azure: InteractiveShell) -> None:
    text = (
        CLI / "endpoints/online/managed/managed-identities/1-uai-create-endpoint.yml"
    ).read_text()
    with pytest.raises(UsageError, match=r"--set identity.user_assigned_identities\[0\]"):
        azure.run_cell_magic("pf_endpoint", "", text)
    rid = "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/x/uai"
    ep = azure.run_cell_magic(
        "pf_endpoint", f"--set identity.user_assigned_identities[0].resource_id={rid}", text
    )
    assert ep.entity.identity.user_assigned_identities[0].resource_id == rid


def test_set_without_value_is_refused(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        ip.run_cell_magic("pf_endpoint", "--set auth_mode", "name: my-endpoint\n")


def test_file_paths_are_relative_to_the_file(ip: InteractiveShell) -> None:
    in_folder(ip, CLI)  # where the azureml-examples scripts run az ml
    ip.run_line_magic(
        "pf_deployment",
        "dep --file endpoints/online/managed/sample/blue-deployment.yml "
        "--set endpoint_name=my-endpoint",
    )
    dep = ip.user_ns["dep"]
    assert Path(dep.model.path).resolve() == (CLI / "endpoints/online/model-1/model").resolve()


def test_missing_build_context_says_path_does_not_exist(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    in_folder(ip, tmp_path)
    body = SKLEARN.replace(
        "environment:\n  conda_file: ../../model-1/environment/conda.yaml\n"
        "  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n",
        "environment:\n  build:\n    path: ./no-such-context\n",
    ).replace("model:\n  path: ../../model-1/model/\n", "")
    body = body.replace("code_configuration:\n  code: ../../model-1/onlinescoring/\n", "")
    body = body.replace("  scoring_script: score.py\n", "")
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("pf_deployment", "", body)
    assert str(err.value) == (
        f"field 'environment', line 4: path does not exist: {tmp_path / 'no-such-context'}"
    )


def test_null_env_value_accepted_as_azure_ai_ml_does(ip: InteractiveShell) -> None:
    from azure.ai.ml import load_online_deployment

    in_folder(ip, CLI / "endpoints" / "online" / "managed" / "sample")
    body = SKLEARN + "environment_variables:\n  EMPTY:\n"
    load_online_deployment(
        io.StringIO(body), relative_origin=str(CLI / "endpoints/online/managed/sample/x.yml")
    )  # the oracle
    summary = ip.run_cell_magic("pf_deployment", "", body)
    assert summary.entity.environment_variables == {"EMPTY": None}
    assert not [w for w in summary.warnings if "EMPTY" in w.field]


def test_no_prompt_flow_warnings_for_a_sklearn_deployment(azure: InteractiveShell) -> None:
    in_folder(azure, CLI / "endpoints" / "online" / "managed" / "sample")
    summary = azure.run_cell_magic("pf_deployment", "", SKLEARN)
    assert summary.warnings == []


def test_prompt_flow_deployment_still_checked(azure: InteractiveShell, seed_nb: Path) -> None:
    body = (FIXTURES_YAML / "deployment_managed.yml").read_text()
    body = body.replace("  PRT_CONFIG_OVERRIDE:", "  # PRT:")
    summary = azure.run_cell_magic("pf_deployment", "", body)
    found = " | ".join(w.message for w in summary.warnings)
    assert "PRT_CONFIG_OVERRIDE is missing" in found


def test_known_variables_and_renamed_fields(ip: InteractiveShell, seed_nb: Path) -> None:
    body = (FIXTURES_YAML / "deployment_managed.yml").read_text()
    body = body.replace(
        "environment_variables:\n", "environment_variables:\n  PROMPTFLOW_MDC_ENABLE: 'true'\n"
    )
    summary = ip.run_cell_magic("pf_deployment", "", body)
    assert not [w for w in summary.warnings if "MDC" in w.field]
    with pytest.raises(
        UsageError, match=r"field 'target', line 3: unknown field \(its successor is 'compute:'\)"
    ):
        ip.run_cell_magic("pf_endpoint", "", "name: my-endpoint\ntarget: azureml:k8s\n")


def test_experimental_class_lines_stay_out_of_the_cell(ip: InteractiveShell) -> None:
    from azure.ai.ml._utils import _experimental

    _experimental._warning_cache.clear()
    in_folder(ip, CLI / "endpoints" / "online" / "managed" / "sample")
    body = SKLEARN + "data_collector:\n  collections:\n    model_inputs:\n      enabled: 'True'\n"
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        with capture_output() as out:
            ip.run_cell_magic("pf_deployment", "", body)
    finally:
        logging.getLogger().removeHandler(handler)
    assert not [r for r in seen if "experimental" in r.getMessage()]
    assert "experimental" not in out.stdout + out.stderr


def test_validation_only_azure_cell_reads_no_quota(ip: InteractiveShell, arm: Any) -> None:
    from test_azure_backend import make_backend

    session_of(ip).use_backend(make_backend(arm))
    in_folder(ip, CLI / "endpoints" / "online" / "managed" / "sample")
    with capture_output() as out:
        ip.run_cell_magic("pf_deployment", "dep", SKLEARN)
    assert "workspace usage not read (%pf_quota reads it)" in out.stdout
    assert arm.state.log == []


@pytest.mark.parametrize(
    "rel, said",
    [
        ("managed/vnet/mlflow/blue-deployment-vnet.yml", "an MLflow model"),
        ("triton/single-model/create-managed-deployment.yaml", "a Triton model"),
        (
            "custom-container/tfserving/half-plus-two-integrated/half-plus-two-integrated-deployment.yml",
            "custom container",
        ),
    ],
)
def test_kinds_the_local_backend_cannot_run_say_so(
    ip: InteractiveShell, rel: str, said: str | None
) -> None:
    """One line at create, before any endpoint process starts (nothing left half-running)."""
    from corpus_run import cases

    case = next(c for c in cases() if c.rel == f"endpoints/online/{rel}")
    in_folder(ip, case.path.parent)
    ip.user_ns.update(case.namespace)
    sets = " ".join(f"{k}={v}" for k, v in case.sets)
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic(
            "pf_deployment", "--create" + (f" --set {sets}" if sets else ""), case.path.read_text()
        )
    text = str(err.value)
    assert text.startswith("the local backend cannot run " + said) and "\n" not in text
    assert text.endswith("deploy it with %pf_backend azure")
    home = Path(ip.config.PfMagics.home)
    assert not list(home.glob("endpoints/*/router.json"))  # no router was started
    assert not session_of(ip).backend.list_endpoints()


@pytest.mark.slow  # starts an endpoint router
def test_missing_connection_is_named_before_any_instance(ip: InteractiveShell) -> None:
    repo = Path(__file__).parent.parent
    in_folder(ip, repo)  # from the repo root, as the README is run
    ip.run_cell_magic(
        "pf_model", "--register", "name: basic-chat-model\npath: notebooks/flows/basic-chat\n"
    )
    ip.run_cell_magic("pf_endpoint", "--create", "name: chat-noconn\nauth_mode: key\n")
    dep = (
        "name: blue\nendpoint_name: chat-noconn\nmodel: azureml:basic-chat-model@latest\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
    )
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("pf_deployment", "--create", dep)
    assert str(err.value).startswith(
        "connection 'open_ai_connection' not found — create it with %%pf_connection or map it "
        "with an environment variable"
    )
    assert "\n" not in str(err.value)
    assert [d.name for d in session_of(ip).backend.list_deployments("chat-noconn")] == []


def test_endpoint_table_shows_a_failed_deployment_as_failed() -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    from pfmagic.render.status import EndpointTable

    ep = ManagedOnlineEndpoint(name="my-endpoint")
    blue = ManagedOnlineDeployment(name="blue", endpoint_name="my-endpoint")
    green = ManagedOnlineDeployment(name="green", endpoint_name="my-endpoint")
    blue._provisioning_state, green._provisioning_state = "Succeeded", "Failed"  # read-only
    table = EndpointTable([ep], {"my-endpoint": [blue, green]})
    assert "green (Failed)" in repr(table)
    assert ">Failed</span>" in table._repr_html_()

"""%pf_export / %pf_apply: a notebook's cells → az ml files, deploy.sh, a CI workflow, and back.

The round trip runs on real local endpoints: cells create an endpoint with two deployments and a
90/10 split, the export is applied in a fresh PFMAGIC_HOME, and the recreated endpoint serves the
same deployments with the same split. deploy.sh runs under bash with a recording ``az`` on PATH
(Azure itself cannot run here), and is checked by shellcheck; the workflow against GitHub's schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from pfmagic.magics import session_of

API_KEY = "sk-live0123456789abcdefXYZ"
CONN_KEY = "sk-conn9876543210zyxwvuQRS"
EP = "export-ep"

MODEL = """\
# the chat flow, registered as a model
name: echo-model
path: {{flow_dir}}   # resolved from the notebook
properties:
  azureml.promptflow.source_flow_id: chat-echo
  azureml.promptflow.mode: chat
  azureml.promptflow.chat_input: question
  azureml.promptflow.chat_output: answer
"""
ENDPOINT = f"""\
name: {EP}
auth_mode: key  # keys, as the seed uses
"""
DEPLOYMENT = f"""\
name: {{{{color}}}}
endpoint_name: {EP}
model: azureml:echo-model:1
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
  inference_config:
    liveness_route: {{path: /health, port: 8080}}
    readiness_route: {{path: /health, port: 8080}}
    scoring_route: {{path: /score, port: 8080}}
instance_type: Standard_DS3_v2
instance_count: 1
environment_variables:
  PROMPTFLOW_RUN_MODE: serving
  OPENAI_API_KEY: {API_KEY}   # a literal key: must not reach the export
"""
CONNECTION = f"""\
name: open_ai_connection
type: open_ai
api_key: {CONN_KEY}
base_url: http://127.0.0.1:9/v1
"""


def _define(ip: Any, echo_flow: Path, *, create: bool) -> None:
    ns = ip.user_ns
    ns["flow_dir"] = str(echo_flow)
    with capture_output():
        ip.run_cell_magic("pf_connection", "--create" if create else "", CONNECTION)
        ip.run_cell_magic("pf_model", "--register" if create else "", MODEL)
        ip.run_cell_magic("pf_endpoint", "--create" if create else "", ENDPOINT)
        for color in ("blue", "green"):
            ns["color"] = color
            flags = "--create" if create else ""
            extra = " --set instance_count=1" if color == "green" else ""
            ip.run_cell_magic("pf_deployment", flags + extra, DEPLOYMENT)
        if create:
            ip.run_line_magic("pf_traffic", f"{EP} blue=90 green=10")


def _all_text(root: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


# -- files -------------------------------------------------------------------------------------


@pytest.fixture
def exported(ip: Any, echo_flow: Path, tmp_path: Path) -> Path:
    _define(ip, echo_flow, create=False)
    with capture_output():
        ip.run_line_magic("pf_export", str(tmp_path / "out"))
    return tmp_path / "out"


def test_yaml_keeps_comments_fills_vars_and_loads_equal(ip: Any, exported: Path) -> None:
    from azure.ai.ml import load_model, load_online_deployment, load_online_endpoint

    session = session_of(ip)
    model_text = (exported / "model-echo-model.yml").read_text()
    assert "# the chat flow, registered as a model" in model_text
    assert "{{" not in model_text and "path: ./flows/chat-echo" in model_text
    first = next(line for line in model_text.splitlines() if not line.startswith("#"))
    assert first == "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json"
    # The flow was copied in, without run output.
    assert (exported / "flows/chat-echo/flow.dag.yaml").is_file()
    assert not (exported / "flows/chat-echo/.promptflow").exists()

    model = load_model(exported / "model-echo-model.yml")
    cell_model = session.models["echo-model"]
    assert model.name == cell_model.name and model.properties == cell_model.properties
    assert Path(model.path).resolve() == (exported / "flows/chat-echo").resolve()

    endpoint = load_online_endpoint(exported / f"endpoint-{EP}.yml")
    assert endpoint._to_dict() == session.endpoints[EP]._to_dict()
    for color in ("blue", "green"):
        dep = load_online_deployment(exported / f"deployment-{EP}-{color}.yml")
        cell_dep = session.deployments[(EP, color)]
        got, want = dep._to_dict(), cell_dep._to_dict()
        # The one change: the literal key is now a reference that deploy.sh fills.
        assert got["environment_variables"].pop("OPENAI_API_KEY") == "${env:OPENAI_API_KEY}"
        assert want["environment_variables"].pop("OPENAI_API_KEY") == API_KEY
        assert got == want


def test_no_secret_in_any_file(exported: Path) -> None:
    text = _all_text(exported)
    assert API_KEY not in text and CONN_KEY not in text
    manifest = json.loads((exported / "pfmagic-export.json").read_text())
    assert manifest["secrets"] == ["OPENAI_API_KEY", "OPEN_AI_CONNECTION_API_KEY"]
    conn = yaml.safe_load((exported / "connection-open_ai_connection.yml").read_text())
    assert conn["api_key"] == "${env:OPEN_AI_CONNECTION_API_KEY}"
    readme = (exported / "README.md").read_text()
    assert "`OPENAI_API_KEY`" in readme and "RESOURCE_GROUP" in readme


def test_deploy_sh_runs_the_seed_sequence(exported: Path, tmp_path: Path) -> None:
    script = exported / "deploy.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    # A recording az: the existence checks (`show … --output none`) find nothing, so
    # everything is created.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "az.log"
    fake_az = '[[ "$*" == *" show "*"--output none"* ]] && exit 3\nexit 0\n'
    (bin_dir / "az").write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n{fake_az}')
    (bin_dir / "az").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "OPENAI_API_KEY": "from-ci",
        "OPEN_AI_CONNECTION_API_KEY": "from-ci",
    }
    missing = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "RESOURCE_GROUP" in missing.stderr
    env |= {"RESOURCE_GROUP": "rg", "WORKSPACE_NAME": "ws"}
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
    calls = [c for c in log.read_text().splitlines() if " show " not in f" {c} "]
    assert calls[0].startswith("ml model create --file model-echo-model.yml")
    assert calls[1].startswith(f"ml online-endpoint create --file endpoint-{EP}.yml")
    assert calls[2].startswith(f"ml online-deployment create --file deployment-{EP}-blue.yml")
    assert "--set environment_variables.OPENAI_API_KEY=from-ci" in calls[2]
    assert calls[3].startswith(f"ml online-deployment create --file deployment-{EP}-green.yml")
    assert all("--resource-group rg --workspace-name ws" in c for c in calls)


def test_workflow_logs_in_with_oidc_and_names_secrets(exported: Path) -> None:
    path = exported / f".github/workflows/deploy-{EP}.yml"
    flow = yaml.safe_load(path.read_text())
    assert flow["permissions"] == {"id-token": "write", "contents": "read"}
    steps = flow["jobs"]["deploy"]["steps"]
    login = next(s for s in steps if s.get("uses", "").startswith("azure/login@"))
    assert login["with"]["client-id"] == "${{ secrets.AZURE_CLIENT_ID }}"
    assert any("az extension add --name ml" in s.get("run", "") for s in steps)
    assert steps[-1]["run"] == "bash ./deploy.sh"
    assert flow["jobs"]["deploy"]["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    # GitHub's own workflow schema, as vendored by check-jsonschema (no network).
    checker = str(Path(sys.executable).parent / "check-jsonschema")
    args = [checker, "--builtin-schema", "vendor.github-workflows", str(path)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_refuses_non_empty_dir_and_empty_session(ip: Any, exported: Path) -> None:
    before = sorted(p.name for p in exported.iterdir())
    with pytest.raises(UsageError, match="not empty; nothing was written"):
        ip.run_line_magic("pf_export", str(exported))
    assert sorted(p.name for p in exported.iterdir()) == before
    with capture_output():
        ip.run_line_magic("pf_export", f"{exported} --force")
    session_of(ip).restore(
        {"models": {}, "endpoints": {}, "deployments": {}, "connections": {}, "sources": {}}
    )
    with pytest.raises(UsageError, match="nothing to export"):
        ip.run_line_magic("pf_export", str(exported.parent / "other"))
    with pytest.raises(UsageError, match="no endpoint 'nope'"):
        ip.run_line_magic("pf_export", f"{exported.parent / 'x'} --endpoint nope")


# -- round trip on real local endpoints ----------------------------------------------------------


def test_round_trip_recreates_endpoint_deployments_and_traffic(
    ip: Any, echo_flow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _define(ip, echo_flow, create=True)
    out = tmp_path / "repo"
    with capture_output():
        result = ip.run_line_magic("pf_export", str(out))
    assert "OPENAI_API_KEY" in repr(result)
    manifest = json.loads((out / "pfmagic-export.json").read_text())
    assert manifest["endpoints"][0]["traffic"] == {"blue": 90, "green": 10}
    assert manifest["endpoints"][0]["traffic_from"] == "the local backend"

    # A fresh session and a fresh PFMAGIC_HOME: only the export folder carries over.
    from pfmagic.backends.local.control import shutdown_all

    old_home = Path(session_of(ip).settings.home)
    session_of(ip).backend.close()
    shutdown_all(old_home)
    new_home = tmp_path / "fresh-home"
    monkeypatch.setenv("PFMAGIC_HOME", str(new_home))
    ip.run_line_magic("unload_ext", "pfmagic")
    ip.config.PfMagics.home = str(new_home)
    ip.run_line_magic("load_ext", "pfmagic")
    with pytest.raises(UsageError, match="needs these secrets in the environment"):
        ip.run_line_magic("pf_apply", str(out))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-applied-key-0123456789")
    monkeypatch.setenv("OPEN_AI_CONNECTION_API_KEY", "sk-applied-conn-0123456789")
    with capture_output() as cap:
        ip.run_line_magic("pf_apply", str(out))
    assert "traffic of export-ep: blue=90 green=10" in cap.stdout
    backend = session_of(ip).backend
    endpoint = backend.get_endpoint(EP)
    assert dict(endpoint.traffic) == {"blue": 90, "green": 10}
    assert sorted(d.name for d in backend.list_deployments(EP)) == ["blue", "green"]
    green = backend.get_deployment(EP, "green")
    assert green.environment_variables["OPENAI_API_KEY"] == "sk-applied-key-0123456789"
    reply = backend.invoke(EP, {"question": "hello", "chat_history": []}, deployment="blue")
    assert "hello" in json.dumps(reply.outputs)
    try:
        backend.close()
    finally:
        shutdown_all(new_home)

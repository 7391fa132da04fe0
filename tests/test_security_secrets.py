"""Issue 12, secrets (item 6) as an attacker reading a saved notebook or a log would.

Every display face of a stored variable (``dep``, ``print(dep)``, ``repr``, IPython's
text/plain and HTML, a saved .ipynb) is scanned for the planted secrets; the same objects must
still hand the real values to code. Log masking and per-deployment connection scoping are
checked on the real modules.
"""

from __future__ import annotations

import copy
import json
import pickle
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixture_paths import FIXTURES_YAML
from IPython.core.interactiveshell import InteractiveShell

pytestmark = pytest.mark.usefixtures("no_atexit_reset")

OPENAI = "sk-planted0SECRETabcdefghijklmnop"
ACCOUNT_KEY = "c2VjcmV0UGxhbnRlZEFjY291bnRLZXk="
DB_PASSWORD = "Hunter2Planted!"
URL_PASSWORD = "urlPlantedPw9"
SECRETS = (OPENAI, ACCOUNT_KEY, DB_PASSWORD, URL_PASSWORD)

DEPLOYMENT = (FIXTURES_YAML / "deployment_managed.yml").read_text() + (
    f"  OPENAI_API_KEY: {OPENAI}\n"
    f"  STORAGE: DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY}\n"
    f"  DB: Server=tcp:db.example,1433;User ID=app;Password={DB_PASSWORD};\n"
    f"  CACHE_URL: redis://app:{URL_PASSWORD}@cache.example:6379\n"
    "  MY_TOKEN: ${env:MY_TOKEN}\n"
)


def faces(ip: InteractiveShell, obj: Any) -> dict[str, str]:
    """Everything a notebook could show (and save) for ``obj``."""
    fmt = ip.display_formatter.format(obj)[0]
    return {
        "repr": repr(obj),
        "str": str(obj),
        **{f"format {mime}": str(data) for mime, data in fmt.items()},
        "html": obj._repr_html_() if hasattr(obj, "_repr_html_") else "",
    }


def leaks(texts: dict[str, str]) -> list[str]:
    return [f"{face}: {s}" for face, text in texts.items() for s in SECRETS if s in text]


def test_scanner_sees_the_raw_azure_object_leak(ip: InteractiveShell, seed_nb: Path) -> None:
    """Without masking azure-ai-ml's own faces show the secrets: the scan can fail."""
    import io

    from azure.ai.ml import load_online_deployment

    raw = load_online_deployment(source=io.StringIO(DEPLOYMENT))
    assert len(leaks(faces(ip, raw))) >= len(SECRETS)


@pytest.mark.parametrize("in_jupyter", [False, True])
def test_stored_deployment_is_masked_in_every_face(
    ip: InteractiveShell, seed_nb: Path, monkeypatch: pytest.MonkeyPatch, in_jupyter: bool
) -> None:
    import azure.ai.ml._telemetry.logging_handler as lh

    # azure-ai-ml's str() prints YAML in Jupyter and the field dict elsewhere: both faces
    monkeypatch.setattr(lh, "in_jupyter_notebook", lambda: in_jupyter)
    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    shown = faces(ip, dep)
    assert not leaks(shown), leaks(shown)
    assert "****" in shown["repr"] and "****" in shown["str"] and "****" in shown["html"]
    assert "${env:MY_TOKEN}" in shown["str"]  # references are not secrets
    # what the cell prints when the variable is typed (displayhook → saved output)
    result = ip.run_cell("dep", store_history=True)
    assert result.success and not leaks({"out": repr(result.result)})


def test_masked_deployment_keeps_real_values_and_type(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    assert isinstance(dep, ManagedOnlineDeployment)
    assert type(dep).__name__ == "ManagedOnlineDeployment"  # name checks unchanged
    assert dep.environment_variables["OPENAI_API_KEY"] == OPENAI
    assert f"AccountKey={ACCOUNT_KEY}" in dep.environment_variables["STORAGE"]
    # what azure-ai-ml sends (REST body) and dumps keeps the real values
    rest = dep._to_rest_object(location="westus")
    assert rest.properties.environment_variables["OPENAI_API_KEY"] == OPENAI
    assert dep._to_dict()["environment_variables"]["OPENAI_API_KEY"] == OPENAI
    # copies and pickles stay masked and real
    for clone in (copy.deepcopy(dep), pickle.loads(pickle.dumps(dep))):
        assert clone.environment_variables["OPENAI_API_KEY"] == OPENAI
        assert not leaks({"repr": repr(clone), "str": str(clone)})
    # the session holds the same (masked) object
    from pfmagic.magics import session_of

    assert session_of(ip).deployments[("basic-chat-endpoint", "blue")] is dep


def test_endpoint_and_model_variables_masked(ip: InteractiveShell, seed_nb: Path) -> None:
    ip.run_cell_magic(
        "pf_endpoint",
        "ep",
        f"name: ep-secret\nauth_mode: key\nproperties:\n  db_password: {DB_PASSWORD}\n"
        f"  storage: DefaultEndpointsProtocol=https;AccountKey={ACCOUNT_KEY}\n",
    )
    ep = ip.user_ns["ep"]
    assert ep.properties["db_password"] == DB_PASSWORD
    assert not leaks(faces(ip, ep))
    flow = seed_nb.parent.parent.parent.parent / "examples" / "flows" / "chat" / "basic-chat"
    ip.run_cell_magic("pf_model", "m", f"name: m\npath: {flow}\ntags:\n  api_key: {OPENAI}\n")
    assert ip.user_ns["m"].tags["api_key"] == OPENAI
    assert not leaks(faces(ip, ip.user_ns["m"]))


def test_saved_notebook_holds_no_secret(
    ip: InteractiveShell, seed_nb: Path, tmp_path: Path
) -> None:
    """The outputs a notebook would save for `dep`, `print(dep)` and `repr(dep)`."""
    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    outputs = []
    for source in ("dep", "print(dep)", "repr(dep)"):
        data, _ = ip.display_formatter.format(eval(source.replace("print", "str"), {"dep": dep}))
        outputs.append(
            nbformat.v4.new_output("execute_result", dict(data), execution_count=len(outputs))
        )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("dep", outputs=outputs)])
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    assert "****" in text
    assert not [s for s in SECRETS if s in text or json.dumps(s)[1:-1] in text]


# -- logs and connections: a real endpoint whose flow prints what it was given ---------------
PROBE_FLOW = """\
inputs:
  chat_history: {type: list, is_chat_history: true, default: []}
  question: {type: string, is_chat_input: true}
outputs:
  answer: {type: string, reference: "${probe.output}", is_chat_output: true}
nodes:
- name: probe
  type: python
  source: {type: code, path: probe.py}
  inputs:
    conn: used_conn
    question: ${inputs.question}
"""
PROBE_TOOL = """\
import json, os
from promptflow.connections import CustomConnection
from promptflow.core import tool
from promptflow.core._serving.utils import decode_dict


@tool
def probe(conn: CustomConnection, question: str) -> str:
    given = sorted(decode_dict(os.environ.get("PROMPTFLOW_ENCODED_CONNECTIONS", "")) or {})
    # what a careless flow prints into its log: every secret it holds
    print("token", conn.secrets["token"], "from env", conn.secrets["token2"], flush=True)
    print("DB_PASSWORD", os.environ.get("DB_PASSWORD"), "STORAGE", os.environ.get("STORAGE"))
    print("raw", os.environ.get("PROMPTFLOW_ENCODED_CONNECTIONS"), flush=True)
    return json.dumps(given)
"""
USED_TOKEN = "tok-PLANTED-used-1234567"
ENV_TOKEN = "env-PLANTED-token-7890"
UNUSED_KEY = "sk-PLANTEDunusedKEY0123456789"
DEP_PASSWORD = "pw-PLANTED-dep-xyz"


def test_instances_get_only_their_connections_and_logs_mask_every_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    from pfmagic.backends.local.backend import LocalBackend

    flow = tmp_path / "probe-flow"
    flow.mkdir()
    (flow / "flow.dag.yaml").write_text(PROBE_FLOW)
    (flow / "probe.py").write_text(PROBE_TOOL)
    monkeypatch.setenv("PF12_TOKEN", ENV_TOKEN)  # the kernel's value of ${env:PF12_TOKEN}
    backend = LocalBackend(home=str(tmp_path / "home"), prewarm=False)
    try:
        backend.create_connection(
            {
                "name": "used_conn",
                "type": "custom",
                "configs": {"region": "eu"},
                "secrets": {"token": USED_TOKEN, "token2": "${env:PF12_TOKEN}"},
            }
        )
        backend.create_connection(
            {
                "name": "unused_conn",
                "type": "open_ai",
                "api_key": UNUSED_KEY,
                "base_url": "http://x",
            }
        )
        backend.create_endpoint(ManagedOnlineEndpoint(name="ep-scope", auth_mode="key")).result(60)
        model = backend.create_model(Model(name="probe", path=str(flow)))
        backend.create_deployment(
            ManagedOnlineDeployment(
                name="blue",
                endpoint_name="ep-scope",
                model=model,
                instance_type="Standard_DS3_v2",
                instance_count=1,
                environment_variables={
                    "DB_PASSWORD": DEP_PASSWORD,
                    "STORAGE": f"DefaultEndpointsProtocol=https;AccountKey={ACCOUNT_KEY}",
                },
            ),
            all_traffic=True,
        ).result(240)
        answer = backend.invoke("ep-scope", {"question": "which?"})
        assert json.loads(answer.outputs["answer"]) == ["used_conn"]  # not unused_conn
        deadline = time.monotonic() + 10
        raw = backend.home.deployment_log("ep-scope", "blue").read_text()
        while "DB_PASSWORD" not in raw and time.monotonic() < deadline:
            time.sleep(0.2)
            raw = backend.home.deployment_log("ep-scope", "blue").read_text()
        # the raw file really holds them (the flow printed them): the check below can fail
        assert USED_TOKEN in raw and ENV_TOKEN in raw and DEP_PASSWORD in raw
        assert UNUSED_KEY not in raw  # never given to this deployment at all
        shown = backend.get_logs("ep-scope", "blue", lines=500)
        assert "stdout> ***" in shown  # promptflow logs each printed word on its own line
        for secret in (USED_TOKEN, ENV_TOKEN, DEP_PASSWORD, ACCOUNT_KEY):
            assert secret not in shown, secret
        assert "region" not in shown or "eu" in shown  # non-secret configs stay readable
    finally:
        backend.shutdown_all()


def test_used_by_reads_node_fields_inputs_and_overrides(tmp_path: Path) -> None:
    from pfmagic.backends.local import connections

    store = tmp_path / "connections.json"
    for name in ("open_ai_connection", "other", "alias_target", "unused"):
        connections.store(store, {"name": name, "type": "custom", "secrets": {"k": "v" * 8}})
    basic_chat = Path(__file__).parent / "flows" / "basic-chat"
    assert connections.used_by(basic_chat, store, {}) == ["open_ai_connection"]
    # the Azure name override: <flow connection>: <stored name> or ${{azureml://...}}
    env = {"open_ai_connection": "${{azureml://connections/alias_target}}", "X": "other"}
    assert connections.used_by(basic_chat, store, env) == ["alias_target", "open_ai_connection"]
    assert connections.used_by(Path(__file__).parent / "flows" / "chat-echo", store, {}) == []


def test_log_lines_are_written_when_a_connection_names_an_unset_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router starts before the notebook sets ``%env OPENAI_API_KEY``: a connection whose
    ``${env:VAR}`` is unset in the router must not stop its log lines (the first rollouts of
    CI died on a KeyError here and stayed "Creating" until the kernel gave up)."""
    from pfmagic.backends.local.logs import log_event

    home = tmp_path / "pfhome"
    home.mkdir()
    stored = {
        "unset": {"type": "open_ai", "api_key": "${env:PFMAGIC_UNSET_TEST_KEY}"},
        "set": {"type": "open_ai", "api_key": "${env:PFMAGIC_SET_TEST_KEY}"},
    }
    (home / "connections.json").write_text(json.dumps(stored))
    monkeypatch.delenv("PFMAGIC_UNSET_TEST_KEY", raising=False)
    monkeypatch.setenv("PFMAGIC_SET_TEST_KEY", "sk-set-0123456789abcdef")
    log = home / "logs" / "ep" / "dep" / "inference-server.log"
    log_event(log, "creating deployment dep; key sk-set-0123456789abcdef")
    line = log.read_text()
    assert "creating deployment dep" in line
    assert "sk-set-0123456789abcdef" not in line and "***" in line


def test_log_lines_keep_the_working_directory_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PWD is the shell's working directory (POSIX), not a password: a path in a log line
    stays readable, while a deployment variable named like a password is still masked."""
    from pfmagic.backends.local.logs import log_event

    cwd = str(tmp_path / "work" / "notebooks")
    monkeypatch.setenv("PWD", cwd)
    monkeypatch.setenv("DB_PWD", "hunter2-not-a-path")
    log = tmp_path / "pfhome" / "logs" / "ep" / "dep" / "inference-server.log"
    log_event(log, f"flow folder {cwd}/flow; db hunter2-not-a-path")
    line = log.read_text()
    assert f"flow folder {cwd}/flow" in line
    assert "hunter2-not-a-path" not in line

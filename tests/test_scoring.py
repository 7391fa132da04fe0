"""Scoring-script deployments (``code_configuration``) on the local backend, for real.

azureml-inference-server-http serves each script in an environment built with uv from the
deployment's conda file (shared by the module: ``PFMAGIC_ENVS_DIR``), behind the same router
as prompt flow deployments: key auth, traffic, targeting header, reply header, 429, 408.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import (
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineRequestSettings,
)

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.environments import scoring as environment
from pfmagic.errors import BackendError

HERE = Path(__file__).parent
SCRIPTS = HERE / "scoring"
SAMPLE = HERE / "corpus" / "azureml-examples" / "model-1"
SCORE, MIXED = "ep-score", "ep-mixed"

pytestmark = pytest.mark.timeout(600)


def _deployment(name: str, endpoint: str, code: Path, **kw: Any) -> ManagedOnlineDeployment:
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=endpoint,
        code_configuration=CodeConfiguration(code=str(code), scoring_script="score.py"),
        instance_type="Standard_DS3_v2",
        instance_count=kw.pop("instance_count", 1),
        **kw,
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    root = tmp_path_factory.mktemp("pfscoring")
    envs = os.environ.get("PFMAGIC_ENVS_DIR")
    # environments are keyed by content: one build per module, not per test
    os.environ["PFMAGIC_ENVS_DIR"] = envs or str(root / "envs")
    b = LocalBackend(home=str(root / "pfhome"), prewarm=False)
    try:
        yield b
    finally:
        b.shutdown_all()
        if envs is None:
            os.environ.pop("PFMAGIC_ENVS_DIR", None)


@pytest.fixture(scope="module")
def ops(backend: LocalBackend) -> dict[str, Any]:
    """Both endpoints and their deployments, started together."""
    for ep in (SCORE, MIXED):
        backend.create_endpoint(ManagedOnlineEndpoint(name=ep, auth_mode="key")).result(60)
    started = time.monotonic()
    out: dict[str, Any] = {}
    out["echo"] = backend.create_deployment(
        _deployment(
            "echo",
            SCORE,
            SCRIPTS / "echo",
            model=Model(name="weights", path=str(SCRIPTS / "model")),
            request_settings=OnlineRequestSettings(
                request_timeout_ms=1500, max_concurrent_requests_per_instance=1
            ),
        ),
        all_traffic=True,
    )
    out["broken"] = backend.create_deployment(_deployment("broken", SCORE, SCRIPTS / "broken-init"))
    out["blue"] = backend.create_deployment(
        ManagedOnlineDeployment(
            name="blue",
            endpoint_name=MIXED,
            model=Model(name="chat-echo", path=str(HERE / "flows" / "chat-echo")),
            instance_type="Standard_DS3_v2",
            instance_count=1,
        ),
        all_traffic=True,
    )
    out["green"] = backend.create_deployment(
        _deployment(
            "green",
            MIXED,
            SCRIPTS / "maf-chat",
            environment=Environment(
                image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
                conda_file=str(SCRIPTS / "maf-chat" / "conda.yml"),
            ),
        )
    )
    for op in out.values():
        op.wait(600)
    out["seconds"] = time.monotonic() - started
    return out


def _score(
    backend: LocalBackend, endpoint: str, body: Any, deployment: str | None = None
) -> httpx.Response:
    cfg = backend._config(endpoint)
    headers = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return httpx.post(
        f"http://127.0.0.1:{cfg['port']}/score",
        json=body,
        headers=headers,
        timeout=30,
        trust_env=False,
    )


def test_scoring_script_answers_through_key_auth(backend: LocalBackend, ops: dict) -> None:
    ops["echo"].result(0)
    reply = _score(backend, SCORE, {"question": "hi", "chat_history": [{"inputs": {}}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["answer"] == "Scored: hi" and body["turns"] == 1
    assert reply.headers["azureml-model-deployment"] == "echo"
    # AZUREML_MODEL_DIR is the model's registered copy, laid out as Azure does (<dir>/model/…)
    assert body["weights"] == "weights: 3"
    assert Path(body["model_dir"]).is_relative_to(backend.home.root)
    # no key, wrong key: the router's 401, the script never sees it
    cfg = backend._config(SCORE)
    url = f"http://127.0.0.1:{cfg['port']}/score"
    assert httpx.post(url, json={"question": "x"}, trust_env=False).status_code == 401
    bad = httpx.post(url, json={}, headers={"Authorization": "Bearer nope"}, trust_env=False)
    assert bad.status_code == 401
    via = backend.invoke(SCORE, {"question": "again"})
    assert via.status == 200 and via.outputs["answer"] == "Scored: again"
    dep = backend.get_deployment(SCORE, "echo")
    assert dep.code_configuration.scoring_script == "score.py"
    logs = backend.get_logs(SCORE, "echo", 300)
    assert "Azure ML Inferencing HTTP server" in logs
    assert "Users's init has completed successfully" in logs


def test_run_error_is_json_and_instance_keeps_serving(backend: LocalBackend, ops: dict) -> None:
    reply = _score(backend, SCORE, {"question": "explode"})
    # Azure wraps the model's 500 as 424 and keeps its body
    assert reply.status_code == 424, reply.text
    assert reply.headers["ms-azureml-model-error-statuscode"] == "500"
    message = reply.json()["message"]
    assert message.startswith("An unexpected error occurred in scoring script")
    assert "(ValueError: user asked for an explosion)" in message
    assert "user asked for an explosion" in backend.get_logs(SCORE, "echo", 300)
    assert _score(backend, SCORE, {"question": "still there"}).status_code == 200


def test_max_concurrent_requests_is_429(backend: LocalBackend, ops: dict) -> None:
    with ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(lambda _: _score(backend, SCORE, {"question": "q", "sleep": 1.0}), range(4))
        )
    codes = Counter(r.status_code for r in replies)
    assert codes[200] >= 1 and codes[429] >= 1, codes
    assert all(r.json()["answer"] == "Scored: q" for r in replies if r.status_code == 200)


def test_request_timeout_is_408(backend: LocalBackend, ops: dict) -> None:
    started = time.monotonic()
    reply = _score(backend, SCORE, {"question": "slow", "sleep": 4})
    assert reply.status_code == 408 and time.monotonic() - started < 3.5
    time.sleep(3)  # let the worker finish the abandoned request
    assert _score(backend, SCORE, {"question": "ok"}).status_code == 200


def test_failing_init_fails_the_deployment_fast(backend: LocalBackend, ops: dict) -> None:
    with pytest.raises(BackendError) as info:
        ops["broken"].result(0)
    message = str(info.value)
    assert "init() failed (score.py line 5)" in message
    assert "ModuleNotFoundError: No module named 'module_that_is_not_installed'" in message
    assert backend.get_deployment(SCORE, "broken").provisioning_state == "Failed"
    logs = backend.get_logs(SCORE, "broken", 300)
    assert "module_that_is_not_installed" in logs and "Traceback" in logs
    # the other deployment keeps serving
    assert _score(backend, SCORE, {"question": "x"}, deployment="echo").status_code == 200
    backend.delete_deployment(SCORE, "broken").result(60)
    assert [d.name for d in backend.list_deployments(SCORE)] == ["echo"]


def test_flow_and_agent_framework_workflow_on_one_endpoint(
    backend: LocalBackend, ops: dict
) -> None:
    ops["blue"].result(0), ops["green"].result(0)
    history = [{"inputs": {"question": "first"}, "outputs": {"answer": "Echo: first"}}]
    body = {"question": " second ", "chat_history": history}
    flow = _score(backend, MIXED, body, deployment="blue")
    workflow = _score(backend, MIXED, body, deployment="green")
    assert flow.status_code == workflow.status_code == 200, workflow.text
    assert workflow.headers["azureml-model-deployment"] == "green"
    # the same chat contract; the workflow trims the question, the flow does not
    assert workflow.json() == {"answer": "Echo: second (earlier: first)"}
    assert flow.json()["answer"].split() == workflow.json()["answer"].split()
    backend.set_traffic(MIXED, {"blue": 50, "green": 50})
    try:
        served = Counter(
            _score(backend, MIXED, {"question": "q"}).headers["azureml-model-deployment"]
            for _ in range(60)
        )
        # binomial(60, 0.5): sd ~3.9; 12..48 is ~4.6 sd either side
        assert 12 <= served["green"] <= 48 and served["blue"] + served["green"] == 60
        status = backend.router_status(MIXED)["deployments"]
        assert status["green"]["requests"] >= served["green"]
    finally:  # the split the fixture made, whichever test comes next
        backend.set_traffic(MIXED, {"blue": 100, "green": 0})


def test_environment_spec_from_conda_file() -> None:
    spec = environment.spec_of(Environment(conda_file=str(SAMPLE / "environment" / "conda.yaml")))
    assert spec["python"] == "3.12"
    assert "numpy==2.3.1" in spec["pip"] and "scikit-learn==1.7.0" in spec["pip"]
    assert "azureml-inference-server-http==1.4.1" in spec["pip"]
    assert not any(p.startswith(("pip", "python")) for p in spec["pip"])
    assert environment.spec_of(None)["pip"] == ["azureml-inference-server-http"]


@pytest.mark.slow
def test_scoring_environments_are_listed_and_in_use(backend: LocalBackend, ops: dict) -> None:
    """A scoring script's venv sits in the flows' environment cache: %pf_envs lists it with its
    packages, and it counts as in use (``--prune`` keeps it) while a deployment runs in it."""
    from pfmagic.environments import build

    maf = environment.spec_of(Environment(conda_file=str(SCRIPTS / "maf-chat" / "conda.yml")))
    server_only = environment.spec_of(None)
    listed = {e["key"]: e for e in build.list_envs(build.envs_root(backend.home.root))}
    for spec in (maf, server_only):
        key = environment.key_of(spec)
        assert listed[key]["packages"] == spec["pip"]
        assert key in build.in_use(backend.home)


def test_azureml_examples_model_1_sample(backend: LocalBackend, ops: dict) -> None:
    """cli/endpoints/online/managed/sample/blue-deployment.yml's model, script and conda file:
    the endpoint answers the sample request as the script does in-process."""
    op = backend.create_deployment(
        _deployment(
            "sample",
            SCORE,
            SAMPLE / "onlinescoring",
            model=Model(path=str(SAMPLE / "model")),
            environment=Environment(
                image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
                conda_file=str(SAMPLE / "environment" / "conda.yaml"),
            ),
        )
    )
    try:
        op.result(600)
        request = json.loads((SAMPLE / "sample-request.json").read_text())
        reply = _score(backend, SCORE, request, deployment="sample")
        assert reply.status_code == 200, reply.text
        predictions = reply.json()
        assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions)
        # the same script in-process, in the same environment, on the same model copy
        import subprocess

        python = backend._deployment_data(SCORE, "sample")["runtime"]["python"]
        model_dir = backend._deployment_data(SCORE, "sample")["runtime"]["model_dir"]
        code = (
            "import json, sys; sys.path.insert(0, sys.argv[1]); import score; score.init(); "
            "print(json.dumps(score.run(open(sys.argv[2]).read())))"
        )
        local = subprocess.run(
            [
                python,
                "-c",
                code,
                str(SAMPLE / "onlinescoring"),
                str(SAMPLE / "sample-request.json"),
            ],
            env={**os.environ, "AZUREML_MODEL_DIR": model_dir},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(local.stdout.strip().splitlines()[-1]) == predictions
    finally:  # SCORE's deployments as the fixture made them (test_failing_init lists them)
        backend.delete_deployment(SCORE, "sample").result(120)


def test_killed_scoring_instance_is_restarted(backend: LocalBackend, ops: dict) -> None:
    """The supervisor's watch and restart are the executor's too: SIGKILL the server's
    gunicorn master, the instance comes back on its own and answers."""
    import signal

    victim = backend.router_status(MIXED)["deployments"]["green"]["instances"][0]
    workers = _children(victim["pid"])
    assert workers, "the server runs its gunicorn worker as a child"
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        green = backend.router_status(MIXED)["deployments"]["green"]
        if green["ready"] == 1 and green["instances"][0]["restarts"] == 1:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"instance not restarted: {green}")
    reply = _score(backend, MIXED, {"question": "back"}, deployment="green")
    assert reply.status_code == 200 and reply.json() == {"answer": "Echo: back"}
    logs = backend.get_logs(MIXED, "green", 500)
    assert f"instance {victim['name']} exited with code -9; restarting" in logs
    # the killed master's worker does not linger (holding the socket and memory)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    from pfmagic.backends.local.procs import pid_alive

    return pid_alive(pid)


def test_plain_model_without_scoring_script_is_a_clear_error(
    backend: LocalBackend, ops: dict
) -> None:
    op = backend.create_deployment(
        ManagedOnlineDeployment(
            name="noscript",
            endpoint_name=SCORE,
            model=Model(name="plain", path=str(SCRIPTS / "model")),
            instance_type="Standard_DS3_v2",
            instance_count=1,
        )
    )
    with pytest.raises(BackendError, match="model 'plain' is not a prompt flow folder") as info:
        op.result(60)
    assert "code_configuration" in (info.value.hint or "")
    assert "noscript" not in [d.name for d in backend.list_deployments(SCORE)]

"""LocalBackend against real processes: router per endpoint, promptflow serving instances.

Everything listens on 127.0.0.1; expensive deployments are started once per module, all at
the same time, and shared. Teardown stops every process under the temporary home.

The tests run in any order (pytest-randomly): a test that changes a shared endpoint puts back
what it changed (traffic, mirror, green's spec, killed processes) in a ``finally``, and the
test that deletes a deployment and an endpoint has an endpoint of its own (DOOMED).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import (
    EndpointAuthToken,
    Environment,
    KubernetesOnlineDeployment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineRequestSettings,
    ProbeSettings,
)
from binomial import FALSE_FAILURE, false_failure, tail_bounds

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.backends.local.control import RouterControl
from pfmagic.backends.local.procs import pid_alive
from pfmagic.backends.local.state import read_json, write_json
from pfmagic.errors import BackendError, NotFound, PfError

# the OpenAI stand-in has one home, beside the notebooks that use it
sys.path.append(str(Path(__file__).resolve().parents[1] / "notebooks"))
from llm_standin import StandInLLM, echo  # noqa: E402

FLOWS = Path(__file__).parent / "flows"
MAIN, SIDE = "ep-main", "ep-side"
DOOMED = "ep-doomed"  # deleted by test_delete_deployment_and_endpoint, nothing else uses it
MAIN_READY = {"blue": 2, "green": 1}  # ready instances of MAIN's deployments, as started
LLM_KEY_VAR = "PFMAGIC_TEST_LLM_KEY"
LLM_KEY_REF = "${env:PFMAGIC_TEST_LLM_KEY}"
SEEN_PIDS: set[int] = set()

pytestmark = pytest.mark.timeout(300)


def _deployment(
    name: str, endpoint: str, model: Any, count: int = 1, **kw: Any
) -> ManagedOnlineDeployment:
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=endpoint,
        model=model,
        instance_type="Standard_DS3_v2",
        instance_count=count,
        **kw,
    )


def _routes(liveness: str = "/health", readiness: str = "/health") -> Environment:
    return Environment(
        image="mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest",
        inference_config={
            "liveness_route": {"path": liveness, "port": 8080},
            "readiness_route": {"path": readiness, "port": 8080},
            "scoring_route": {"path": "/score", "port": 8080},
        },
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pflocal") / "pfhome"


@pytest.fixture(scope="module")
def llm() -> Iterator[StandInLLM]:
    with StandInLLM(api_key="sk-local-backend-test-0123456789", answer=echo) as server:
        yield server


@pytest.fixture(scope="module")
def backend(home: Path, llm: StandInLLM) -> Iterator[LocalBackend]:
    # prewarm off: the test machine is shared, only endpoints with deployments import promptflow
    b = LocalBackend(home=str(home), token_lifetime=2.0, prewarm=False)
    try:
        yield b
    finally:
        b.shutdown_all()
        os.environ.pop(LLM_KEY_VAR, None)
        time.sleep(1.5)  # instances exit within a second of their router
        assert not [p for p in SEEN_PIDS if pid_alive(p)], "processes left behind"


@pytest.fixture(scope="module")
def ops(backend: LocalBackend, llm: StandInLLM) -> dict[str, Any]:
    """Both endpoints and all deployments, started together (they start in parallel)."""
    backend.create_connection(
        {"name": "my_openai", "type": "open_ai", "api_key": LLM_KEY_REF, "base_url": llm.base_url}
    )
    started = time.monotonic()
    main = backend.create_endpoint(ManagedOnlineEndpoint(name=MAIN, auth_mode="key"))
    side = backend.create_endpoint(ManagedOnlineEndpoint(name=SIDE, auth_mode="aml_token"))
    doomed = backend.create_endpoint(ManagedOnlineEndpoint(name=DOOMED, auth_mode="key"))
    main.result(60), side.result(60), doomed.result(60)
    # set after the routers started (as with %env in a notebook): the deployment carries it
    os.environ[LLM_KEY_VAR] = llm.api_key
    echo = backend.create_model(Model(name="chat-echo", path=str(FLOWS / "chat-echo")))
    result: dict[str, Any] = {"started": started}
    result["blue"] = backend.create_deployment(_deployment("blue", MAIN, echo, 2), all_traffic=True)
    result["green"] = backend.create_deployment(_deployment("green", MAIN, echo, 1))
    # DOOMED: blue slow (a request in flight when the endpoint is deleted), green deleted first
    result["doomed_blue"] = backend.create_deployment(
        _deployment("blue", DOOMED, echo, 1, environment_variables={"ECHO_DELAY": "0.2"}),
        all_traffic=True,
    )
    result["doomed_green"] = backend.create_deployment(_deployment("green", DOOMED, echo, 1))
    result["bad"] = backend.create_deployment(
        _deployment(
            "bad",
            SIDE,
            Model(path=str(FLOWS / "broken")),
            readiness_probe=ProbeSettings(
                initial_delay=0, period=1, timeout=2, failure_threshold=240
            ),
        )
    )
    result["unready"] = backend.create_deployment(
        _deployment(
            "unready",
            SIDE,
            echo,
            environment=_routes(readiness="/nope"),
            readiness_probe=ProbeSettings(
                initial_delay=0, period=1, timeout=1, failure_threshold=3
            ),
        )
    )
    result["slow"] = backend.create_deployment(
        _deployment(
            "slow",
            SIDE,
            echo,
            environment_variables={"ECHO_DELAY": "0.2"},
            request_settings=OnlineRequestSettings(
                max_concurrent_requests_per_instance=1,
                max_queue_wait_ms=100,
                request_timeout_ms=2000,
            ),
        )
    )
    # Kubernetes entities run locally like managed ones (instance_type is informational)
    result["probe"] = backend.create_deployment(
        KubernetesOnlineDeployment(
            name="probe",
            endpoint_name=SIDE,
            model=echo,
            instance_type="small",
            instance_count=1,
            environment=_routes(liveness="/nope"),
            liveness_probe=ProbeSettings(initial_delay=0, period=1, timeout=1, failure_threshold=2),
        )
    )
    result["inc"] = backend.create_deployment(
        _deployment("inc", SIDE, Model(path=str(FLOWS / "with-includes")))
    )
    result["chat"] = backend.create_deployment(
        _deployment(
            "chat",
            SIDE,
            Model(path=str(FLOWS / "basic-chat")),
            environment_variables={"open_ai_connection": "my_openai"},
        )
    )
    # no instance_type: azure-ai-ml's managed schema requires one when the entity is rebuilt
    # (its YAML loader refuses such a file; a Python entity gets through)
    result["nosku"] = backend.create_deployment(
        ManagedOnlineDeployment(
            name="nosku", endpoint_name=SIDE, model="azureml:chat-echo:1", instance_count=1
        )
    )
    return result


def _ready(backend: LocalBackend, op: Any, endpoint: str, timeout: float = 240) -> Any:
    """``op.result(timeout)``; a timeout says what the router saw (status, log tails)."""
    try:
        return op.result(timeout)
    except TimeoutError as exc:
        from pfmagic.backends.local.logs import tail

        status = backend.router_status(endpoint)
        logs = [f"router: {line}" for line in tail(backend.home.router_log(endpoint), 30)]
        for name in status.get("deployments", {}):
            log = backend.home.deployment_log(endpoint, name)
            logs += [f"{name}: {line}" for line in tail(log, 30)]
        detail = json.dumps(status, indent=1, default=str)
        raise AssertionError(f"{exc}\nrouter status: {detail}\n" + "\n".join(logs)) from exc


@pytest.fixture(scope="module")
def main(backend: LocalBackend, ops: dict[str, Any]) -> dict[str, Any]:
    _ready(backend, ops["blue"], MAIN)
    _ready(backend, ops["green"], MAIN)
    ops["main_ready_s"] = time.monotonic() - ops["started"]
    _remember_pids(backend, MAIN)
    return ops


def _settle(
    backend: LocalBackend, endpoint: str = MAIN, ready: dict[str, int] = MAIN_READY
) -> None:
    """Wait until each deployment has its instances ready again (after a kill or an update),
    so the next test, whichever it is, finds the endpoint as the fixture started it."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        deps = _remember_pids(backend, endpoint)["deployments"]
        now = {name: deps[name]["ready"] for name in ready if name in deps}
        starting = any(deps[name]["starting"] for name in now)
        if now == ready and not starting:
            return
        time.sleep(0.5)
    raise AssertionError(f"{endpoint} not back to {ready}: {now}")


def _remember_pids(backend: LocalBackend, endpoint: str) -> dict[str, Any]:
    status = backend.router_status(endpoint)
    SEEN_PIDS.add(status["pid"])
    for dep in status["deployments"].values():
        SEEN_PIDS.update(i["pid"] for i in dep["instances"] + dep["starting"])
    return status


def _score(
    backend: LocalBackend,
    endpoint: str,
    body: dict[str, Any],
    *,
    key: str | None = None,
    deployment: str | None = None,
    stream: bool = False,
    timeout: float = 60.0,
) -> httpx.Response:
    cfg = read_json(backend.home.endpoint_file(endpoint))
    headers = {"Accept": "text/event-stream, application/json" if stream else "application/json"}
    if key is None:
        key = cfg["keys"]["primary"]
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return httpx.post(
        f"http://127.0.0.1:{cfg['port']}/score",
        json=body,
        headers=headers,
        timeout=timeout,
        trust_env=False,
    )


# -- models ----------------------------------------------------------------------------
def test_model_registration_copies(backend: LocalBackend, tmp_path: Path) -> None:
    src = tmp_path / "flow"
    import shutil

    shutil.copytree(FLOWS / "chat-echo", src)
    m1 = backend.create_model(Model(name="copied", path=str(src), description="first"))
    assert m1.version == "1"
    registered = Path(m1.path)
    assert registered.is_relative_to(backend.home.root) and (registered / "echo.py").is_file()
    (src / "echo.py").write_text("# edited later\n")
    assert "edited" not in (registered / "echo.py").read_text()  # a copy, not a link
    m2 = backend.create_model(Model(name="copied", path=str(src)))
    assert m2.version == "2"
    assert backend.create_model(Model(name="copied", path=str(src))).version == "2"  # same
    assert backend.get_model("copied").version == "2"
    assert backend.get_model("copied", "1").description == "first"
    with pytest.raises(BackendError, match="already exists"):
        backend.create_model(Model(name="copied", version="1", path=str(src)))
    with pytest.raises(NotFound):
        backend.get_model("nope")
    assert {"copied"} <= {m.name for m in backend.list_models()}


def test_model_keeps_properties_description_and_tags(backend: LocalBackend) -> None:
    chat = {
        "azureml.promptflow.chat_input": "question",
        "azureml.promptflow.chat_output": "answer",
        "azureml.promptflow.mode": "chat",
    }
    made = backend.create_model(
        Model(
            name="chat-props",
            path=str(FLOWS / "chat-echo"),
            description="echo",
            tags={"team": "t"},
            properties=chat,
        )
    )
    listed = [m for m in backend.list_models() if m.name == "chat-props"]
    for got in (
        made,
        backend.get_model("chat-props"),
        backend.get_model("chat-props", "1"),
        *listed,
    ):
        assert chat.items() <= got.properties.items(), got.properties
        assert got.description == "echo" and got.tags == {"team": "t"}
    # the same flow with other properties is a new version, not the old one returned
    again = backend.create_model(
        Model(
            name="chat-props",
            path=str(FLOWS / "chat-echo"),
            properties={"azureml.promptflow.mode": "chat"},
        )
    )
    assert again.version == "2" and "azureml.promptflow.chat_input" not in again.properties
    assert (
        backend.get_model("chat-props", "1").properties["azureml.promptflow.chat_input"]
        == "question"
    )


def test_additional_includes_are_staged(backend: LocalBackend, ops: dict[str, Any]) -> None:
    dep = _ready(backend, ops["inc"], SIDE)
    name, version = dep.model.removeprefix("azureml:").split(":")
    flow = backend.home.model_dir(name, version) / "flow"
    assert (flow / "shout.py").is_file()
    assert "additional_includes" not in (flow / "flow.dag.yaml").read_text()
    _remember_pids(backend, SIDE)
    token = backend.get_keys(SIDE).access_token
    reply = _score(backend, SIDE, {"question": "hi"}, key=token, deployment="inc")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"answer": "HI!"}


# -- endpoints and auth -------------------------------------------------------------------
def test_endpoint_router_on_loopback_with_random_keys(
    backend: LocalBackend, main: dict[str, Any]
) -> None:
    import psutil

    ep = backend.get_endpoint(MAIN)
    assert ep.scoring_uri.startswith("http://127.0.0.1:") and ep.scoring_uri.endswith("/score")
    assert ep.provisioning_state == "Succeeded"
    assert ep.traffic == {"blue": 100, "green": 0}
    status = backend.router_status(MAIN)
    listening = [
        c.laddr
        for c in psutil.Process(status["pid"]).net_connections()
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(a.ip == "127.0.0.1" for a in listening)
    for dep in status["deployments"].values():
        for inst in dep["instances"]:
            conns = psutil.Process(inst["pid"]).net_connections()
            assert all(c.laddr.ip == "127.0.0.1" for c in conns if c.status == "LISTEN")
    keys = backend.get_keys(MAIN)
    assert keys.primary_key != keys.secondary_key and len(keys.primary_key) >= 40
    side_cfg = read_json(backend.home.endpoint_file(SIDE))
    assert keys.primary_key not in (side_cfg["keys"]["primary"], side_cfg["keys"]["secondary"])


def test_unauthorized_is_401_json(backend: LocalBackend, main: dict[str, Any]) -> None:
    for key in ("", "wrong-key"):
        reply = _score(backend, MAIN, {"question": "hi"}, key=key)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "Unauthorized"
    secondary = backend.get_keys(MAIN).secondary_key
    assert _score(backend, MAIN, {"question": "hi"}, key=secondary).status_code == 200
    regenerated = backend.regenerate_keys(MAIN, "secondary")
    assert regenerated.secondary_key != secondary
    assert _score(backend, MAIN, {"question": "hi"}, key=secondary).status_code == 401
    assert (
        _score(backend, MAIN, {"question": "hi"}, key=regenerated.secondary_key).status_code == 200
    )
    # updating the endpoint keeps its keys, port and traffic
    before = read_json(backend.home.endpoint_file(MAIN))
    backend.create_endpoint(
        ManagedOnlineEndpoint(name=MAIN, auth_mode="key", description="updated")
    ).result(60)
    after = read_json(backend.home.endpoint_file(MAIN))
    assert (after["keys"], after["port"], after["traffic"]) == (
        before["keys"],
        before["port"],
        before["traffic"],
    )
    assert backend.get_endpoint(MAIN).description == "updated"


def test_aml_token_expires(backend: LocalBackend, ops: dict[str, Any]) -> None:
    creds = backend.get_keys(SIDE)
    assert isinstance(creds, EndpointAuthToken)
    assert creds.expiry_time_utc > time.time()
    ok = _score(backend, SIDE, {"question": "hi"}, key=creds.access_token)
    assert ok.status_code != 401  # authenticated (no traffic on this endpoint: 404)
    assert (
        _score(backend, SIDE, {"question": "hi"}, key=creds.access_token + "x").status_code == 401
    )
    time.sleep(max(0.0, creds.expiry_time_utc - time.time()) + 0.3)
    expired = _score(backend, SIDE, {"question": "hi"}, key=creds.access_token)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    with pytest.raises(BackendError):
        backend.regenerate_keys(SIDE)


def test_state_files_private_and_secrets_not_in_argv(
    backend: LocalBackend, main: dict[str, Any]
) -> None:
    root = backend.home.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    files = [
        p
        for p in root.rglob("*.json")
        if "promptflow" not in p.parts
        and "flow" not in p.parts
        and not any(part.startswith("g") and part[1:].isdigit() for part in p.parts)
    ]
    assert files and backend.home.connections_file in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    keys = backend.get_keys(MAIN)
    status = backend.router_status(MAIN)
    pids = [status["pid"]] + [
        i["pid"] for d in status["deployments"].values() for i in d["instances"]
    ]
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert keys.primary_key not in argv and keys.secondary_key not in argv
    logs = "".join(p.read_text(errors="replace") for p in (root / "logs").rglob("*.log"))
    assert keys.primary_key not in logs and keys.secondary_key not in logs


def test_atomic_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json(path, {"good": 1})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})  # fails halfway through serialising
    assert read_json(path) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


# -- scoring ---------------------------------------------------------------------------
def test_score_json_and_sse_on_two_instances(backend: LocalBackend, main: dict[str, Any]) -> None:
    reply = _score(backend, MAIN, {"question": "hello there"})
    assert reply.status_code == 200
    assert reply.json() == {"answer": "Echo: hello there ", "turns": 0}
    assert reply.headers["azureml-model-deployment"] == "blue"
    stream = _score(backend, MAIN, {"question": "hello there"}, stream=True)
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")]
    assert (
        events[0] == {"turns": 0}
        and "".join(e.get("answer", "") for e in events) == "Echo: hello there "
    )
    chunks: list[dict[str, Any]] = []
    via_backend = backend.invoke(MAIN, {"question": "a b"}, stream=True, on_chunk=chunks.append)
    assert via_backend.deployment == "blue" and via_backend.streamed and chunks
    for _ in range(6):
        _score(backend, MAIN, {"question": "x"})
    served = [i["served"] for i in backend.router_status(MAIN)["deployments"]["blue"]["instances"]]
    assert len(served) == 2 and all(n > 0 for n in served)


def test_instances_share_the_zygotes_heap(backend: LocalBackend, main: dict[str, Any]) -> None:
    """Forked instances keep the preloaded promptflow heap shared (the zygote freezes it for
    gc): the first full gc pass over unfrozen objects, ~550 requests in, copied nearly every
    page of it into each instance (USS 41 -> 88 MB)."""
    from concurrent.futures import ThreadPoolExecutor

    import psutil

    cfg = read_json(backend.home.endpoint_file(MAIN))
    headers = {
        "Authorization": f"Bearer {cfg['keys']['primary']}",
        "azureml-model-deployment": "blue",
    }
    url = f"http://127.0.0.1:{cfg['port']}/score"
    with httpx.Client(headers=headers, timeout=60, trust_env=False) as client:

        def one(i: int) -> int:
            return client.post(url, json={"question": f"q{i}"}).status_code

        with ThreadPoolExecutor(4) as pool:  # ~700 requests per instance of blue
            assert set(pool.map(one, range(1400))) == {200}
    for inst in backend.router_status(MAIN)["deployments"]["blue"]["instances"]:
        mem = psutil.Process(inst["pid"]).memory_full_info()
        assert mem.uss < 0.45 * mem.rss, (inst, mem)  # unfrozen: 0.67 of its RSS, frozen: 0.31


def test_flow_error_is_424_with_error_json(backend: LocalBackend, main: dict[str, Any]) -> None:
    reply = _score(backend, MAIN, {"question": "explode"})
    assert reply.status_code == 424
    # the echo tool raises inside its generator: promptflow answers 500 SystemError in JSON mode
    assert reply.headers["ms-azureml-model-error-statuscode"] in ("400", "500")
    err = reply.json()["error"]
    assert err["code"] in ("UserError", "SystemError") and err["message"]
    with pytest.raises(BackendError) as info:
        backend.invoke(MAIN, {"question": "explode"})
    assert info.value.status == 424


def test_targeted_deployment_header(backend: LocalBackend, main: dict[str, Any]) -> None:
    reply = _score(backend, MAIN, {"question": "hi"}, deployment="green")
    assert reply.status_code == 200 and reply.headers["azureml-model-deployment"] == "green"
    assert _score(backend, MAIN, {"question": "hi"}, deployment="nope").status_code == 404


def test_invoke_is_one_post_and_follows_keys_changed_elsewhere(
    backend: LocalBackend, main: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert backend.invoke(MAIN, {"question": "warm"}).status == 200
    calls: list[str] = []
    admin, config = RouterControl.admin, RouterControl.config
    # this thread's calls only: an earlier test's operation may still poll in the background
    caller = threading.get_ident()

    def counted_admin(self: RouterControl, method: str, action: str, **kw: Any) -> Any:
        if threading.get_ident() == caller:
            calls.append(action)
        return admin(self, method, action, **kw)

    def counted_config(self: RouterControl) -> dict[str, Any]:
        if threading.get_ident() == caller:
            calls.append("state")
        return config(self)

    monkeypatch.setattr(RouterControl, "admin", counted_admin)
    monkeypatch.setattr(RouterControl, "config", counted_config)
    for i in range(5):
        assert backend.invoke(MAIN, {"question": f"q{i}"}).status == 200
    assert calls == []  # no status round trip, no state read: a single POST /score

    # another kernel regenerates the primary key: the 401 makes this one re-read it, once
    LocalBackend(home=str(backend.home.root), prewarm=False).regenerate_keys(MAIN, "primary")
    calls.clear()
    reply = backend.invoke(MAIN, {"question": "new key"})
    assert reply.status == 200 and calls == ["state"]
    calls.clear()
    assert backend.invoke(MAIN, {"question": "again"}).status == 200 and calls == []


def test_rerunning_an_unchanged_deployment_is_a_no_op(
    backend: LocalBackend, main: dict[str, Any]
) -> None:
    before = backend.router_status(MAIN)["deployments"]["blue"]
    op = backend.create_deployment(_deployment("blue", MAIN, backend.get_model("chat-echo"), 2))
    assert op.result(60).provisioning_state == "Succeeded"
    assert [e.message for e in op.events if e.stage == "deployment"] == ["unchanged"]
    after = backend.router_status(MAIN)["deployments"]["blue"]
    assert [i["pid"] for i in after["instances"]] == [i["pid"] for i in before["instances"]]


def _deployments_of(backend: LocalBackend, n: int, **kw: Any) -> Counter[str]:
    def one(_: int) -> str:
        reply = _score(backend, MAIN, {"question": "t"}, **kw)
        assert reply.status_code == 200, reply.text
        return reply.headers["azureml-model-deployment"]

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(n)))


def test_traffic_split(backend: LocalBackend, main: dict[str, Any]) -> None:
    with pytest.raises(BackendError, match="traffic adds up to 90%, not 100%"):
        backend.set_traffic(MAIN, {"blue": 60, "green": 30})
    with pytest.raises(BackendError, match="does not exist"):
        backend.set_traffic(MAIN, {"blue": 50, "ghost": 50})
    # 50/50 and 100/0 alone cannot tell weights from a uniform choice: 90/10 and 80/20 can
    # (a uniform router lands outside their bounds with p > 0.9999; a correct one, p < 1e-6)
    try:
        for blue, green, n in ((50, 50, 100), (90, 10, 200), (80, 20, 200)):
            ep = backend.set_traffic(MAIN, {"blue": blue, "green": green})
            assert ep.traffic == {"blue": blue, "green": green}
            counts = _deployments_of(backend, n)
            lo, hi = tail_bounds(n, green / 100)
            assert false_failure(n, green / 100, lo, hi) < FALSE_FAILURE
            assert lo <= counts["green"] <= hi, (blue, green, counts)
            assert counts["blue"] + counts["green"] == n
    finally:
        backend.set_traffic(MAIN, {"blue": 100, "green": 0})
    assert _deployments_of(backend, 20) == Counter({"blue": 20})


def test_mirror_traffic(backend: LocalBackend, main: dict[str, Any]) -> None:
    with pytest.raises(BackendError, match="above the 50% limit"):
        backend.set_traffic(MAIN, {"blue": 100}, mirror={"green": 60})
    before = backend.router_status(MAIN)["deployments"]["green"]["mirrored"]
    try:
        ep = backend.set_traffic(MAIN, {"blue": 100, "green": 0}, mirror={"green": 50})
        assert ep.mirror_traffic == {"green": 50}
        assert _deployments_of(backend, 40) == Counter({"blue": 40})  # mirror replies discarded
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mirrored = backend.router_status(MAIN)["deployments"]["green"]["mirrored"] - before
            if mirrored >= 5:
                break
            time.sleep(0.2)
        assert 5 <= mirrored <= 35  # binomial(40, 0.5): 4.7 sd either side
    finally:
        backend.set_traffic(MAIN, {"blue": 100}, mirror={})
    assert backend.get_endpoint(MAIN).mirror_traffic == {}


def test_rolling_update_without_failed_requests(
    backend: LocalBackend, main: dict[str, Any]
) -> None:
    failures: list[str] = []
    replies: list[dict[str, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                reply = _score(backend, MAIN, {"question": "during update"}, deployment="green")
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")
                else:
                    replies.append(reply.json())
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    echo = backend.get_model("chat-echo")
    try:
        try:
            op = backend.create_deployment(
                _deployment(
                    "green",
                    MAIN,
                    echo,
                    1,
                    environment_variables={"PROMPTFLOW_RESPONSE_INCLUDED_FIELDS": '["answer"]'},
                )
            )
            updated = op.result(240)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert updated.provisioning_state == "Succeeded"
        assert "Updating" in {e.provisioning_state for e in op.events}
        assert not failures, failures[:3]
        assert "turns" in replies[0] and "turns" not in replies[-1]  # new env var applied
        _remember_pids(backend, MAIN)
    finally:  # green as the fixture made it: its replies carry "turns" again
        backend.create_deployment(_deployment("green", MAIN, echo, 1)).result(240)
        _settle(backend)


def test_killed_instance_is_restarted_and_logged(
    backend: LocalBackend, main: dict[str, Any]
) -> None:
    """SIGKILL one of blue's two instances during a burst of concurrent requests: the
    requests it held are failed over to the other instance, so not one fails."""
    victim = backend.router_status(MAIN)["deployments"]["blue"]["instances"][0]
    cfg = read_json(backend.home.endpoint_file(MAIN))
    url = f"http://127.0.0.1:{cfg['port']}/score"
    headers = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
    answered: list[int] = []
    failures: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(trust_env=False, timeout=60) as http:
            for i in range(40):
                question = f"burst {n}-{i}"
                try:
                    reply = http.post(url, json={"question": question}, headers=headers)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if reply.status_code != 200 or question not in reply.json().get("answer", ""):
                    failures.append(f"{reply.status_code} {reply.text[:200]}")
                answered.append(n)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(answered) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)  # requests are flowing through both instances
    os.kill(victim["pid"], signal.SIGKILL)
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    assert len(answered) == 320
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        blue = _remember_pids(backend, MAIN)["deployments"]["blue"]
        if blue["ready"] == 2 and any(i["restarts"] == 1 for i in blue["instances"]):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"instance not restarted: {blue}")
    logs = backend.get_logs(MAIN, "blue", lines=20_000)  # the burst's access lines too
    assert f"instance {victim['name']} exited with code -9; restarting" in logs
    assert "restarted and ready" in logs


def test_request_body_limit(backend: LocalBackend, main: dict[str, Any]) -> None:
    cfg = read_json(backend.home.endpoint_file(MAIN))
    url = f"http://127.0.0.1:{cfg['port']}/score"
    headers = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
    router = backend.router_status(MAIN)
    assert router["max_request_bytes"] == 1_572_864  # Azure's 1.5 MB
    big = json.dumps({"question": "x" * (2 << 20)}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: caught while reading
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    with httpx.Client(trust_env=False, timeout=60) as http:
        for content in (big, chunks()):
            reply = http.post(url, content=content, headers=headers)
            assert reply.status_code == 413, reply.text
            assert reply.json()["error"]["code"] == "PayloadTooLarge"
            # the same connection still serves, from the same router
            ok = http.post(url, json={"question": "after 413"}, headers=headers)
            assert ok.status_code == 200 and "after 413" in ok.json()["answer"]
        near = http.post(url, json={"question": "y" * 1_500_000}, headers=headers)
        assert near.status_code == 200
    # per endpoint: max_request_bytes in endpoint.json
    write_json(backend.home.endpoint_file(MAIN), {**cfg, "max_request_bytes": 2000})
    try:
        assert RouterControl(backend.home, MAIN).reconcile()["max_request_bytes"] == 2000
        assert _score(backend, MAIN, {"question": "z" * 3000}).status_code == 413
        assert _score(backend, MAIN, {"question": "small"}).status_code == 200
    finally:
        write_json(backend.home.endpoint_file(MAIN), cfg)
        RouterControl(backend.home, MAIN).reconcile()
    assert backend.router_status(MAIN)["pid"] == router["pid"]


def test_logs_tail(backend: LocalBackend, main: dict[str, Any]) -> None:
    lines = backend.get_logs(MAIN, "blue", lines=5).splitlines()
    assert len(lines) == 5
    init = backend.get_logs(MAIN, "blue", container_type="storage-initializer")
    assert "model chat-echo:1" in init
    with pytest.raises(PfError):
        backend.get_logs(MAIN, "blue", container_type="sidecar")
    with pytest.raises(NotFound):
        backend.get_logs(MAIN, "nope")


def test_readiness_probe_settings_fail_the_deployment(
    backend: LocalBackend, ops: dict[str, Any]
) -> None:
    with pytest.raises(BackendError, match=r"readiness probe GET /nope failed 3 times"):
        ops["unready"].result(240)
    assert backend.get_deployment(SIDE, "unready").provisioning_state == "Failed"


def test_failing_liveness_probe_restarts_instance(
    backend: LocalBackend, ops: dict[str, Any]
) -> None:
    dep = _ready(backend, ops["probe"], SIDE)
    assert type(dep).__name__ == "KubernetesOnlineDeployment"
    # the failing liveness probe may already be restarting the one instance: then nothing
    # answers and the state says so (issue 12: never "Succeeded" while nothing answers)
    assert dep.provisioning_state in ("Succeeded", "Unavailable")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = _remember_pids(backend, SIDE)["deployments"]["probe"]
        if any(i["restarts"] >= 1 for i in probe["instances"]):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no restart: {probe}")
    logs = backend.get_logs(SIDE, "probe", lines=300)
    assert "failed its liveness probe GET /nope 2 times (last: HTTP 404); restarting" in logs


def test_request_settings_give_429_and_408(backend: LocalBackend, ops: dict[str, Any]) -> None:
    _ready(backend, ops["slow"], SIDE)
    _remember_pids(backend, SIDE)

    def call(question: str) -> int:
        token = backend.get_keys(SIDE).access_token
        return _score(
            backend, SIDE, {"question": question}, key=token, deployment="slow"
        ).status_code

    with ThreadPoolExecutor(3) as pool:  # 1 concurrent request per instance, 100 ms queue
        statuses = sorted(pool.map(call, ["a b c d e"] * 3))
    assert 200 in statuses and 429 in statuses, statuses
    assert call(" ".join(["w"] * 15)) == 408  # ~3 s flow, request_timeout_ms 2000


def test_kernel_side_never_imports_promptflow(backend: LocalBackend, main: dict[str, Any]) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pfmagic.backends.local.backend import LocalBackend\n"
        f"b = LocalBackend(home={str(backend.home.root)!r})\n"
        f"assert b.invoke({MAIN!r}, {{'question': 'q'}}).status == 200\n"
        f"b.get_logs({MAIN!r}, 'blue', 5); b.router_status({MAIN!r})\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'promptflow']\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


# -- failure, connections, LLM flow ---------------------------------------------------------
def test_bad_flow_fails_with_reason_and_log_tail(
    backend: LocalBackend, ops: dict[str, Any]
) -> None:
    op = ops["bad"]
    with pytest.raises(BackendError) as info:
        op.result(240)
    assert "exited with code 1 during startup" in str(info.value)
    failed = [e for e in op.events if e.state == "Failed"]
    assert failed and failed[-1].provisioning_state == "Failed" and failed[-1].log_tail
    assert any("no_such_tool" in line for line in failed[-1].log_tail)
    assert backend.get_deployment(SIDE, "bad").provisioning_state == "Failed"


def test_llm_flow_uses_stored_connection(
    backend: LocalBackend, ops: dict[str, Any], llm: StandInLLM
) -> None:
    _ready(backend, ops["chat"], SIDE)
    _remember_pids(backend, SIDE)
    assert backend.list_connections() == ["my_openai"]
    stored = read_json(backend.home.connections_file)
    assert stored["my_openai"]["api_key"] == LLM_KEY_REF  # resolved in instance
    reply = backend.invoke(SIDE, {"question": "What is 2+2?"}, deployment="chat")
    assert reply.outputs["answer"].startswith("You said: What is 2+2?")
    streamed = backend.invoke(
        SIDE,
        {
            "question": "hi",
            "chat_history": [{"inputs": {"question": "q0"}, "outputs": {"answer": "a0"}}],
        },
        deployment="chat",
        stream=True,
    )
    assert streamed.streamed and "(history msgs=4)" in streamed.outputs["answer"]
    assert llm.requests
    logs = "".join(
        p.read_text(errors="replace") for p in (backend.home.root / "logs").rglob("*.log*")
    )
    assert llm.api_key not in logs  # the secret reached the flow, never the logs
    with pytest.raises(PfError, match="base_url"):
        backend.create_connection(
            {"name": "x", "type": "open_ai", "api_key": "k", "api_base": "http://x"}
        )


def test_deployment_without_instance_type(backend: LocalBackend, ops: dict[str, Any]) -> None:
    dep = _ready(backend, ops["nosku"], SIDE)
    _remember_pids(backend, SIDE)
    assert isinstance(dep, ManagedOnlineDeployment) and dep.instance_type is None
    got = backend.get_deployment(SIDE, "nosku")
    assert got.instance_type is None and got.provisioning_state == "Succeeded"
    assert "nosku" in [d.name for d in backend.list_deployments(SIDE)]
    assert backend.invoke(SIDE, {"question": "no sku"}, deployment="nosku").status == 200


# -- restarts of the router, deletes --------------------------------------------------------
def test_killed_router_comes_back_on_next_use(backend: LocalBackend, main: dict[str, Any]) -> None:
    before = backend.router_status(MAIN)
    keys = backend.get_keys(MAIN)
    old_instances = [i["pid"] for d in before["deployments"].values() for i in d["instances"]]
    os.kill(before["pid"], signal.SIGKILL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            pid_alive(before["pid"]) or any(pid_alive(p) for p in old_instances)
        ):
            time.sleep(0.1)
        assert not any(pid_alive(p) for p in old_instances), "instances outlived their router"
        reply = backend.invoke(MAIN, {"question": "back?"})  # starts the router, waits for blue
        assert reply.status == 200 and reply.deployment == "blue"
        after = _remember_pids(backend, MAIN)
        assert after["pid"] != before["pid"] and after["port"] == before["port"]
        again = backend.get_keys(MAIN)
        assert (again.primary_key, again.secondary_key) == (keys.primary_key, keys.secondary_key)
        assert backend.get_endpoint(MAIN).scoring_uri.endswith(f":{before['port']}/score")
    finally:  # the next test finds all of blue's and green's instances ready, not starting
        backend.router_status(MAIN)  # starts the router if the test failed before invoke did
        _settle(backend)


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            found |= {kid} | _descendants(kid)
    return found


def test_delete_deployment_and_endpoint(backend: LocalBackend, ops: dict[str, Any]) -> None:
    """On DOOMED, the module's one endpoint that is deleted: a deployment with traffic cannot
    be deleted, one without can; a request in flight when its endpoint is deleted still gets
    its whole answer."""
    _ready(backend, ops["doomed_blue"], DOOMED)
    _ready(backend, ops["doomed_green"], DOOMED)
    status = _remember_pids(backend, DOOMED)
    SEEN_PIDS.update(_descendants(status["pid"]))
    with pytest.raises(BackendError, match="traffic"):
        backend.delete_deployment(DOOMED, "blue")
    green = status["deployments"]["green"]
    backend.delete_deployment(DOOMED, "green").result(120)
    assert not any(pid_alive(i["pid"]) for i in green["instances"])
    assert [d.name for d in backend.list_deployments(DOOMED)] == ["blue"]

    with ThreadPoolExecutor(1) as pool:  # blue's ECHO_DELAY: ~1 s for five words
        pending = pool.submit(_score, backend, DOOMED, {"question": "a b c d e"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            i["inflight"] for i in backend.router_status(DOOMED)["deployments"]["blue"]["instances"]
        ):
            time.sleep(0.02)
        start = time.monotonic()
        backend.delete_endpoint(DOOMED).result(60)
        took = time.monotonic() - start
        reply = pending.result(30)
    assert reply.status_code == 200 and reply.json()["answer"].strip() == "Echo: a b c d e", (
        reply.text
    )
    assert took < 5.0
    assert not pid_alive(status["pid"])
    assert not backend.home.endpoint_dir(DOOMED).exists()
    with pytest.raises(NotFound):
        backend.get_endpoint(DOOMED)
    assert DOOMED not in [e.name for e in backend.list_endpoints()]


def test_delete_endpoint_is_quick_while_its_zygote_starts(
    backend: LocalBackend, home: Path
) -> None:
    # prewarm (the notebook default): its zygote is still importing promptflow when deleted
    warm = LocalBackend(home=str(home), prewarm=True)
    warm.create_endpoint(ManagedOnlineEndpoint(name="ep-quick")).result(60)
    router = warm.router_status("ep-quick")["pid"]
    SEEN_PIDS.update({router} | _descendants(router))
    start = time.monotonic()
    warm.delete_endpoint("ep-quick").result(60)
    assert time.monotonic() - start < 3.0
    assert not any(pid_alive(p) for p in {router} | _descendants(router))

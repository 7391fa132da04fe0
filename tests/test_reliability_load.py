"""Reliability under load on a real local endpoint (router + instance processes, 127.0.0.1).

Counts, not timings, are asserted: requests lost (no reply), errors (a reply that is not our
own 200), instance restarts. Every load is bounded by a request count and a deadline; the
deadlines only stop a runaway test. Each test prints what it measured (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.helpers import Background, deploy, kill, run_load, stop_leftovers, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

EP = "rel-load"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pfmagic.backends.local.backend import LocalBackend

    home = tmp_path_factory.mktemp("reliability-home")
    be = LocalBackend(home=str(home))
    try:
        yield be
    finally:
        be.shutdown_all()
        be.close()
        left = stop_leftovers(home)
        assert not left, f"processes left after shutdown_all: {left}"


@pytest.fixture(scope="module")
def endpoint(backend: Any) -> dict[str, Any]:
    """rel-load with blue (2 instances, 100 % traffic)."""
    t0 = time.monotonic()
    uri, key = deploy(backend, EP, "blue", instances=2)
    print(f"\n[setup] endpoint {EP} with blue x2 ready in {time.monotonic() - t0:.1f} s")
    return {"uri": uri, "headers": {"Authorization": f"Bearer {key}"}}


def _report(what: str, res: Any) -> None:
    s = res.summary()
    print(
        f"\n[{what}] sent {s['sent']}, ok {s['ok']}, errors {s['errors']}, lost {s['lost']} "
        f"in {s['elapsed_s']} s ({s['rps']} req/s, p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms)"
        f"; statuses {s['statuses']}; by deployment {s['deployments']}"
        + (f"; first failures {s['samples']}" if s["samples"] else "")
    )


def _instances(backend: Any, deployment: str) -> list[dict[str, Any]]:
    return backend.router_status(EP)["deployments"][deployment]["instances"]


@pytest.mark.parametrize(
    "requests",
    [3_000, pytest.param(10_000, marks=pytest.mark.slow)],  # the 10k run: make test-slow
    ids=["3k", "10k"],
)
def test_requests_16_clients_lose_nothing(endpoint: dict[str, Any], requests: int) -> None:
    res = run_load(
        endpoint["uri"],
        clients=16,
        requests=requests,
        deadline_s=300,
        headers=endpoint["headers"],
        warmup=16,
    )
    _report(f"{requests // 1000}k x 16 clients", res)
    assert res.sent == requests, f"the deadline stopped the run before {requests:,} requests"
    assert res.lost == 0
    assert res.errors == 0
    assert res.ok == requests


def test_instance_killed_under_load(backend: Any, endpoint: dict[str, Any]) -> None:
    before = _instances(backend, "blue")
    assert len(before) == 2 and all(i["ready"] for i in before)
    victim = before[0]
    load = Background(
        endpoint["uri"],
        clients=8,
        requests=1_500,
        deadline_s=120,
        headers=endpoint["headers"],
        warmup=8,
    )
    load.start()
    time.sleep(1.5)  # requests are flowing through both instances
    kill(victim["pid"])
    killed_at = time.monotonic()

    def replaced() -> list[dict[str, Any]] | None:
        now = _instances(backend, "blue")
        ok = (
            len(now) == 2
            and all(i["ready"] and i["alive"] for i in now)
            and victim["pid"] not in [i["pid"] for i in now]
            and any(i["restarts"] >= 1 for i in now)
        )
        return now if ok else None

    # watched while the load still runs: the restart happens under load
    after = wait_for(replaced, 120, "the killed instance to be restarted and ready")
    restart_s = time.monotonic() - killed_at
    res = load.finish(timeout=180)
    _report("one of two instances SIGKILLed under 8 clients", res)
    new = [i for i in after if i["pid"] not in [b["pid"] for b in before]]
    during = (
        "while the load ran" if load.ended_after(killed_at + restart_s) else "after the load ended"
    )
    print(
        f"[restart] instance pid {victim['pid']} SIGKILLed; replacement pid "
        f"{[i['pid'] for i in new]} (restarts {[i['restarts'] for i in after]}) ready "
        f"{restart_s:.1f} s after the kill, {during}"
    )
    assert len(new) == 1
    assert res.lost == 0
    assert res.errors == 0
    assert res.ok == res.sent
    # and the restarted instance serves again
    again = run_load(
        endpoint["uri"], clients=4, requests=200, deadline_s=60, headers=endpoint["headers"]
    )
    assert again.ok == 200


def test_traffic_moved_blue_to_green_under_load(backend: Any, endpoint: dict[str, Any]) -> None:
    t0 = time.monotonic()
    deploy(backend, EP, "green", instances=1, all_traffic=False, create_endpoint=False)
    print(f"\n[setup] green ready in {time.monotonic() - t0:.1f} s")
    steps = [(90, 10), (70, 30), (50, 50), (30, 70), (10, 90), (0, 100)]
    stop = threading.Event()
    load = Background(
        endpoint["uri"],
        clients=8,
        requests=100_000,
        deadline_s=180,
        headers=endpoint["headers"],
        warmup=8,
        stop=stop,
    )
    load.start()
    try:
        time.sleep(1.0)
        for blue, green in steps:
            backend.set_traffic(EP, {"blue": blue, "green": green})
            time.sleep(1.0)
        stop.set()
        res = load.finish(timeout=300)
        _report("blue→green in 6 steps, 8 clients", res)
        res_tail = run_load(
            endpoint["uri"], clients=4, requests=200, deadline_s=60, headers=endpoint["headers"]
        )
        _report("after the move (100 % green)", res_tail)
        assert res.lost == 0
        assert res.errors == 0
        assert res.deployments.get("blue", 0) > 0 and res.deployments.get("green", 0) > 0
        assert res_tail.ok == 200 and res_tail.deployments == {"green": 200}
        assert backend.get_endpoint(EP).traffic == {"blue": 0, "green": 100}
    finally:  # blue's 100 % back: the other tests load blue, in whatever order they run
        stop.set()
        backend.set_traffic(EP, {"blue": 100, "green": 0})


def test_router_killed_comes_back_on_next_use(backend: Any, endpoint: dict[str, Any]) -> None:
    # whatever deployments the tests before left (blue, and green after the traffic move);
    # with two, a split of its own so that "traffic intact" is not a default value
    deps = sorted(d.name for d in backend.list_deployments(EP))
    traffic = backend.get_endpoint(EP).traffic
    if deps == ["blue", "green"]:
        backend.set_traffic(EP, {"blue": 30, "green": 70})
    try:
        _router_killed_comes_back(backend, endpoint, deps)
    finally:  # the split as it was, for the tests after this one
        backend.set_traffic(EP, traffic)


def _router_killed_comes_back(backend: Any, endpoint: dict[str, Any], deps: list[str]) -> None:
    import httpx

    ep_before = backend.get_endpoint(EP)
    keys_before = backend.get_keys(EP)
    status = backend.router_status(EP)
    router_pid = status["pid"]
    import psutil

    # every process under the router: instances, and any helper they are started from
    children = [p.pid for p in psutil.Process(router_pid).children(recursive=True)]
    instance_pids = [i["pid"] for d in status["deployments"].values() for i in d["instances"]]
    assert set(instance_pids) <= set(children)
    kill(router_pid)
    # the router is gone: its port refuses connections, everything under it follows it
    wait_for(lambda: _refused(endpoint["uri"]), 10, "the router's port to close")
    wait_for(
        lambda: not any(_alive(p) for p in children),
        20,
        "the router's children to exit with it (no orphans)",
    )
    t0 = time.monotonic()
    reply = backend.invoke(EP, {"question": "are you back?", "chat_history": []})
    back_s = time.monotonic() - t0
    assert reply.status == 200 and "are you back?" in reply.outputs["answer"]
    ep_after = backend.get_endpoint(EP)
    keys_after = backend.get_keys(EP)
    new_status = backend.router_status(EP)
    print(
        f"\n[router] pid {router_pid} SIGKILLed; next invoke answered in {back_s:.1f} s by "
        f"router pid {new_status['pid']}; scoring_uri {ep_after.scoring_uri} "
        f"(unchanged: {ep_after.scoring_uri == ep_before.scoring_uri})"
    )
    assert new_status["pid"] != router_pid
    assert ep_after.scoring_uri == ep_before.scoring_uri
    assert keys_after.primary_key == keys_before.primary_key
    assert keys_after.secondary_key == keys_before.secondary_key
    assert ep_after.traffic == ep_before.traffic
    assert sorted(new_status["deployments"]) == deps

    names = deps

    def all_running() -> bool:
        deps = backend.router_status(EP)["deployments"]
        return {n: d["provisioning_state"] for n, d in deps.items()} == {
            n: "Succeeded" for n in names
        }

    wait_for(all_running, 120, "both deployments to be running again")
    # the old key works on the same URL with a plain HTTP client
    with httpx.Client(trust_env=False, timeout=30) as client:
        resp = client.post(endpoint["uri"], json={"question": "plain"}, headers=endpoint["headers"])
    assert resp.status_code == 200, resp.text


def _refused(url: str) -> bool:
    import httpx

    try:
        httpx.get(url.replace("/score", "/health"), timeout=1, trust_env=False)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

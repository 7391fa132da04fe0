"""Helper process for the benchmarks: drives pfmagic's local backend like a warm kernel would.

    python bench/local_ep.py startup NAME        # time create (endpoint+deployment) → first 200
    python bench/local_ep.py up NAME INSTANCES   # create, print scoring URI, key, router pid
    python bench/local_ep.py down NAME           # delete the endpoint
    python bench/local_ep.py invoke NAME N       # %pf_invoke vs bare HTTP, same endpoint
    python bench/local_ep.py stop-all            # delete every endpoint in PFMAGIC_HOME

Prints one ``RESULT {json}`` line. ``azure.ai.ml`` is imported before any clock starts (in a
notebook the warm-up thread has done so by the time a deployment cell runs).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402
from loadgen import percentile  # noqa: E402

from pfmagic.spec.templates import deployment_yaml, endpoint_yaml  # noqa: E402


def entities(name: str, instances: int = 1, deployment: str = "blue") -> tuple[Any, Any]:
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    origin = str(common.ROOT / "bench" / "cell.yml")
    ep = load_online_endpoint(io.StringIO(endpoint_yaml(name)), relative_origin=origin)
    text = deployment_yaml(deployment, name, common.FLOW, instance_count=instances)
    dep = load_online_deployment(io.StringIO(text), relative_origin=origin)
    return ep, dep


def backend() -> Any:
    from pfmagic.backends.local.backend import LocalBackend

    return LocalBackend()


def deploy(be: Any, name: str, instances: int) -> None:
    ep, dep = entities(name, instances)
    be.create_endpoint(ep).result(timeout=300)
    be.create_deployment(dep, all_traffic=True).result(timeout=300)


def connection(be: Any, name: str) -> tuple[str, str]:
    uri = be.get_endpoint(name).scoring_uri
    key = be.get_keys(name).primary_key
    return uri, key


def router_pid(name: str) -> int:
    from pfmagic.backends.local.state import Home, read_json

    return int(read_json(Home().run_file(name))["pid"])


def cmd_startup(name: str) -> dict[str, Any]:
    import azure.ai.ml  # noqa: F401 - paid before the clock, as in a warmed-up kernel

    be = backend()
    ep, dep = entities(name, 1)
    t0 = time.perf_counter()
    be.create_endpoint(ep).result(timeout=300)
    t1 = time.perf_counter()
    be.create_deployment(dep, all_traffic=True).result(timeout=300)
    t2 = time.perf_counter()
    uri, key = connection(be, name)
    import local

    local.first_score(uri, {"Authorization": f"Bearer {key}"})
    t3 = time.perf_counter()
    be.delete_endpoint(name).result(timeout=120)
    return {
        "endpoint_s": t1 - t0,
        "deployment_s": t2 - t1,
        "first_score_s": t3 - t2,
        "create_to_first_score_s": t3 - t0,
    }


def cmd_up(name: str, instances: int) -> dict[str, Any]:
    be = backend()
    deploy(be, name, instances)
    uri, key = connection(be, name)
    status = be.router_status(name)
    pids = [i["pid"] for d in status["deployments"].values() for i in d["instances"]]
    return {"scoring_uri": uri, "key": key, "router_pid": router_pid(name), "instance_pids": pids}


def cmd_down(name: str) -> dict[str, Any]:
    backend().delete_endpoint(name).result(timeout=120)
    return {"deleted": name}


def cmd_stop_all() -> dict[str, Any]:
    be = backend()
    names = [e.name for e in be.list_endpoints()]
    for name in names:
        be.delete_endpoint(name).result(timeout=120)
    return {"deleted": names}


def cmd_invoke(name: str, n: int) -> dict[str, Any]:
    """``%pf_invoke`` in a real InteractiveShell vs ``httpx.post`` with the same body.

    History is off (``max_history = 0``) so every variant sends the same small body; the
    magic's figure includes parsing the line, building the body, the HTTP call through the
    same router, and the reply object. Measured in turn, round by round: the magic,
    ``backend.invoke`` (no IPython), a one-shot ``httpx.post`` (new connection, what a user
    types in a cell) and a keep-alive ``httpx.Client`` (the floor).
    """
    import httpx
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.PfMagics.widgets = False
    config.PfMagics.max_history = 0
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "pfmagic")
    from pfmagic.magics import session_of

    session = session_of(shell)
    be = session.backend
    deploy(be, name, 1)
    uri, key = connection(be, name)
    magic, direct, oneshot, keepalive = [], [], [], []
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    def check(ok: bool, what: Any) -> None:
        if not ok:
            raise RuntimeError(f"bad reply: {what!r}")

    with httpx.Client(timeout=30, trust_env=False) as client:
        for i in range(-10, n):  # first 10 rounds: warm-up, not counted
            q = f"q{i}"
            body = {"question": q, "chat_history": []}
            t0 = time.perf_counter()
            with capture_output():
                reply = shell.run_line_magic("pf_invoke", f"{name} {q}")
            t1 = time.perf_counter()
            r1 = be.invoke(name, body)
            t2 = time.perf_counter()
            r2 = httpx.post(uri, json=body, headers=headers, timeout=30, trust_env=False)
            t3 = time.perf_counter()
            r3 = client.post(uri, json=body, headers=headers)
            t4 = time.perf_counter()
            check(reply is not None and q in str(getattr(reply, "answer", reply)), reply)
            check(r1.status == 200 and q in r1.outputs["answer"], r1)
            for r in (r2, r3):
                check(r.status_code == 200 and q in r.json()["answer"], r.text)
            if i >= 0:
                magic.append((t1 - t0) * 1000)
                direct.append((t2 - t1) * 1000)
                oneshot.append((t3 - t2) * 1000)
                keepalive.append((t4 - t3) * 1000)
    be.delete_endpoint(name).result(timeout=120)
    out: dict[str, Any] = {"n": n}
    for label, values in (
        ("magic", magic),
        ("backend_invoke", direct),
        ("http", oneshot),
        ("http_keepalive", keepalive),
    ):
        out[f"{label}_p50_ms"] = percentile(values, 50)
        out[f"{label}_p95_ms"] = percentile(values, 95)
    return out


def main() -> None:
    cmd, *rest = sys.argv[1:]
    if cmd == "startup":
        result = cmd_startup(rest[0])
    elif cmd == "up":
        result = cmd_up(rest[0], int(rest[1]))
    elif cmd == "down":
        result = cmd_down(rest[0])
    elif cmd == "invoke":
        result = cmd_invoke(rest[0], int(rest[1]))
    elif cmd == "stop-all":
        result = cmd_stop_all()
    else:
        raise SystemExit(f"unknown command {cmd}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

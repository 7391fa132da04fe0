"""Kill an endpoint's zygote (fork server) under load; count failed requests and the gap.

    uv run --frozen --extra test python bench/zygote_kill.py [--instances 2] [--seconds 6]

Deploys tests/flows/chat-echo on a fresh local home, drives ``--workers`` closed-loop clients
at ``/score``, SIGKILLs the zygote after 1.5 s and reports: requests, failed requests, the
longest time without a successful reply around the kill, whether the instances kept their
pids, and how long until a new zygote runs. Run it with ``PYTHONPATH=<other checkout>`` to
measure another version (issue 12 item 5).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def zygote_pids(router: int) -> list[int]:
    """The router's children running the zygote module."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == router and ("pfmagic.backends.local.zygote" in cmd or "pfmagic zygote" in cmd):
            out.append(int(proc.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def instance_pids(status: dict) -> list[int]:
    return sorted(i["pid"] for d in status["deployments"].values() for i in d["instances"])


def kill_under_load(backend, endpoint: str, *, workers: int = 4, seconds: float = 6.0) -> dict:
    from pfmagic.backends.local.state import read_json

    cfg = read_json(backend.home.endpoint_file(endpoint))
    run = read_json(backend.home.run_file(endpoint))
    before = instance_pids(backend.router_status(endpoint))
    url = f"http://127.0.0.1:{cfg['port']}/score"
    headers = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
    results: list[tuple[float, float, bool]] = []  # (start, end, ok)
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(trust_env=False, timeout=30) as http:
            while time.monotonic() < stop:
                t0 = time.monotonic()
                try:
                    ok = http.post(url, json={"question": "hi"}, headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    results.append((t0, time.monotonic(), ok))

    threads = [threading.Thread(target=client) for _ in range(workers)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    zyg = zygote_pids(run["pid"])
    killed_at = time.monotonic()
    for pid in zyg:
        os.kill(pid, signal.SIGKILL)
    new_zygote_after = None
    while time.monotonic() < stop:
        fresh = [p for p in zygote_pids(run["pid"]) if p not in zyg]
        if fresh and new_zygote_after is None:
            new_zygote_after = round(time.monotonic() - killed_at, 2)
        time.sleep(0.05)
    for t in threads:
        t.join()
    ends = sorted([end for _, end, ok in results if ok] + [stop])
    gap = max((b - a for a, b in zip(ends, ends[1:], strict=False) if b > killed_at), default=0)
    after_kill = [start for start, _, ok in results if ok and start > killed_at]
    failed_after = [start for start, _, ok in results if not ok and start >= killed_at - 0.5]
    outage = (max(failed_after) - killed_at) if failed_after else 0.0
    after = instance_pids(backend.router_status(endpoint))
    return {
        "zygotes_killed": len(zyg),
        "requests": len(results),
        "failed": sum(1 for *_, ok in results if not ok),
        "longest_gap_s": round(gap, 3),  # between two successful replies
        # from the kill to the last failed request (0: none failed)
        "failure_window_s": round(max(outage, 0.0), 3),
        "first_success_after_kill_s": round(min(after_kill) - killed_at, 3) if after_kill else None,
        # the same instance processes, still running (none died with its zygote)
        "instances_kept_pids": before == after and all(_alive(p) for p in after),
        "new_zygote_after_s": new_zygote_after,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    import pfmagic
    from pfmagic.backends.local.backend import LocalBackend

    home = Path(tempfile.mkdtemp(prefix="pfzyg")) / "home"
    backend = LocalBackend(home=str(home), prewarm=False)
    try:
        backend.create_endpoint(ManagedOnlineEndpoint(name="ep-zyg", auth_mode="key")).result(60)
        model = backend.create_model(Model(name="echo", path=str(ROOT / "tests/flows/chat-echo")))
        backend.create_deployment(
            ManagedOnlineDeployment(
                name="blue",
                endpoint_name="ep-zyg",
                model=model,
                instance_type="Standard_DS3_v2",
                instance_count=args.instances,
            ),
            all_traffic=True,
        ).result(300)
        out = kill_under_load(backend, "ep-zyg", workers=args.workers, seconds=args.seconds)
        out["pfmagic"] = str(Path(pfmagic.__file__).parent)
        print(json.dumps(out))
    finally:
        backend.shutdown_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU per ``/score`` request of the router and of the instance, without a profiler.

    uv run --frozen --extra test python bench/cpu_per_request.py [--pure] [--requests 1500]
    /other/checkout/.venv/bin/python bench/cpu_per_request.py --bench /other/checkout/bench

Starts a real local endpoint (chat-echo flow, 1 instance), then reads each process's CPU time
(user + system, psutil) around a load: sequential requests from 1 keep-alive client, then 8
clients for a few seconds. CPU time counts only what the process ran, so it is the figure least
distorted by other work on a shared machine (latency is not: it includes waiting for a core).
py-spy's busy samples (``profile_request.py``) say where the time goes; this says how much.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# --bench DIR: another checkout's bench/ (its pfmagic, its flows), e.g. a before/after pair
_BENCH = sys.argv[sys.argv.index("--bench") + 1] if "--bench" in sys.argv else None
sys.path.insert(0, _BENCH or str(Path(__file__).parent))

import common  # noqa: E402
import local  # noqa: E402
from loadgen import run_load  # noqa: E402


def cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def measured(ep: local.Endpoint, **load: object) -> dict[str, object]:
    pids = {"router": ep.router_pid, "instance": ep.instance_pids[0]}
    before = {k: cpu_s(p) for k, p in pids.items()}
    res = run_load(ep.scoring_uri, headers=ep.headers, **load)  # type: ignore[arg-type]
    s = res.summary()
    n = max(1, s["ok"])
    out: dict[str, object] = {
        f"{k}_cpu_ms_per_request": round((cpu_s(p) - before[k]) * 1000 / n, 3)
        for k, p in pids.items()
    }
    out.update({k: s[k] for k in ("ok", "errors", "lost", "p50_ms", "p95_ms", "rps")})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=6.0, help="of the 8-client load")
    parser.add_argument(
        "--pure", action="store_true", help="serve with h11 + asyncio (PFMAGIC_PURE_PYTHON_HTTP=1)"
    )
    parser.add_argument("--bench", help="run another checkout's bench/ (before/after)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pfmagic-cpu-") as tmp:
        env = common.bench_env(Path(tmp))
        env["PFMAGIC_PURE_PYTHON_HTTP"] = "1" if args.pure else "0"
        try:
            with local.endpoint(env, "cpu", instances=1) as ep:
                run_load(ep.scoring_uri, clients=1, requests=50, deadline_s=30, headers=ep.headers)
                pids = {"router": ep.router_pid, "instance": ep.instance_pids[0]}
                before = {k: cpu_s(p) for k, p in pids.items()}
                time.sleep(3.0)  # background work (pollers, threads), to read the rest against
                idle = {
                    f"{k}_idle_cpu_ms_per_s": round((cpu_s(p) - before[k]) * 1000 / 3.0, 2)
                    for k, p in pids.items()
                }
                one = measured(ep, clients=1, requests=args.requests, deadline_s=120, warmup=0)
                eight = measured(
                    ep, clients=8, requests=1_000_000, deadline_s=args.seconds, warmup=8
                )
        finally:
            local.stop_all(env)
    print(
        json.dumps(
            {
                "root": str(common.ROOT),
                "pure": args.pure,
                "when": time.ctime(),
                "load": os.getloadavg(),
                "idle": idle,
                "1 client": one,
                "8 clients": eight,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

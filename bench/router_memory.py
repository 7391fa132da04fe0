"""USS of each process of a 1-instance local endpoint after N requests (issue 19's memory goal).

    python bench/router_memory.py [--requests 1000] [--rounds 2] [--base DIR]

Starts an endpoint (chat-echo flow, 1 instance), sends ``--requests`` sequential keep-alive
``/score`` requests, then reads ``memory_full_info().uss`` of the router, the zygote and the
instance, and their sum. With ``--base DIR`` (a checkout of another commit, e.g.
``git archive main | tar -x -C DIR``) each round measures that code first, then this one, in
the same run (PYTHONPATH puts DIR's pfmagic first, and the router inherits it). Also prints
how many modules a fresh interpreter holds after importing the router's module, as
``-m pfmagic.backends.local.server`` does. Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402
import local  # noqa: E402

MODULES = (
    "import sys, pfmagic.backends.local.server as s; "
    "print(len(sys.modules), s.__file__, "
    "' '.join(m for m in ('httpx', 'pygments', 'click', 'promptflow', 'azure') "
    "if m in sys.modules))"
)


def uss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_full_info().uss / 2**20, 1)


def measure(env: dict[str, str], name: str, requests: int) -> dict[str, Any]:
    import httpx
    import psutil

    done = subprocess.run(
        [common.PYTHON, "-c", MODULES],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(env["PFMAGIC_HOME"]).parent,  # not a checkout: -c puts cwd first on the path
    )
    count, where, *heavy = done.stdout.split()
    with local.endpoint(env, name, instances=1) as ep:
        body = {"question": "q", "chat_history": []}
        with httpx.Client(timeout=30, trust_env=False) as client:
            for _ in range(requests):
                reply = client.post(ep.scoring_uri, json=body, headers=ep.headers)
                reply.raise_for_status()
        router = psutil.Process(ep.router_pid)
        zygotes = [p.pid for p in router.children() if p.pid not in ep.instance_pids]
        result = {
            "router_module": where,
            "router_import_modules": int(count),
            "router_heavy_imports": heavy,
            "router_uss_mb": uss_mb(ep.router_pid),
            "zygote_uss_mb": sum(uss_mb(p) for p in zygotes),
            "instance_uss_mb": sum(uss_mb(p) for p in ep.instance_pids),
            "endpoint_uss_mb": common.rss_mb(ep.router_pid)["uss_mb"],
            "requests": requests,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--base", help="checkout of the code to compare against")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pfmagic-bench-") as tmp:
        env = common.bench_env(Path(tmp))
        sides = [("this", env)]
        if args.base:
            base_env = dict(env, PYTHONPATH=str(Path(args.base).resolve()))
            sides.insert(0, ("base", base_env))
        try:
            for round_ in range(args.rounds):
                for side, side_env in sides:
                    row = measure(side_env, f"mem{round_}{side}", args.requests)
                    row.update(side=side, round=round_, load=common.load())
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            local.stop_all(env)
    print("RESULT " + json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()

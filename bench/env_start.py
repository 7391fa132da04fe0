"""Time to a first score: a deployment with its own environment (new / cached) next to a
plain one, measured in the same run (issue 13).

    uv run --frozen --extra test python bench/env_start.py [--reps 2]

Each case is a fresh endpoint (so each pays one zygote start) on one home:
plain      tests/flows/chat-echo (nothing declared: pfmagic's environment)
new env    tests/flows/needs-pkg (requirements.txt: text-unidecode==1.3) with an empty envs
           dir *and* an empty uv cache: the package is downloaded from the registry
cached env the same flow again: the venv is reused
Clock: create_deployment() until the first 200 from /score.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.backends.local.backend import LocalBackend

ROOT = Path(__file__).resolve().parents[1] / "tests" / "flows"


def first_score(b: LocalBackend, endpoint: str, flow: str) -> float:
    b.create_endpoint(ManagedOnlineEndpoint(name=endpoint, auth_mode="key")).result(60)
    dep = ManagedOnlineDeployment(
        name="blue",
        endpoint_name=endpoint,
        model=Model(path=str(ROOT / flow)),
        instance_type="Standard_DS3_v2",
    )
    started = time.monotonic()
    op = b.create_deployment(dep, all_traffic=True)
    op.result(600)
    reply = b.invoke(endpoint, {"question": "Ça va?"})
    assert reply.status == 200, reply
    took = time.monotonic() - started
    env = [e.message for e in op.events if e.stage == "environment"][-1]
    print(f"{endpoint}: first score {took:.2f} s; environment stage: {env}", flush=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"plain": [], "new env": [], "cached env": []}
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["PFMAGIC_ENVS_DIR"] = str(Path(tmp) / "envs")
            os.environ["UV_CACHE_DIR"] = str(Path(tmp) / "uv-cache")  # nothing cached
            b = LocalBackend(home=str(Path(tmp) / "home"), prewarm=False)
            try:
                results["plain"].append(first_score(b, f"plain{rep}", "chat-echo"))
                results["new env"].append(first_score(b, f"new{rep}", "needs-pkg"))
                results["cached env"].append(first_score(b, f"cached{rep}", "needs-pkg"))
            finally:
                b.shutdown_all()
        print({k: [round(v, 2) for v in vals] for k, vals in results.items()}, flush=True)
    plain = statistics.median(results["plain"])
    for name, values in results.items():
        med = statistics.median(values)
        print(
            f"{name:>10}: median {med:.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"
            f"  = {med / plain:.2f}x plain, plain + {med - plain:.2f} s"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Start and per-request latency: a scoring-script deployment (azureml-inference-server-http)
beside a prompt flow deployment on one local endpoint, measured in the same run.

    uv run --frozen --extra test python bench/scoring_start.py [--requests 30]

Both answer the chat contract (tests/flows/chat-echo vs tests/scoring/maf-chat, an Agent
Framework workflow); the environment is built (or found) before the clock starts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from azure.ai.ml.entities import (
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
)

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.environments import scoring as environment

ROOT = Path(__file__).resolve().parents[1] / "tests"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        b = LocalBackend(home=str(Path(tmp) / "home"), prewarm=False)
        env = Environment(conda_file=str(ROOT / "scoring/maf-chat/conda.yml"), image="x")
        environment.ensure(environment.spec_of(env), b.home, print)  # not timed
        try:
            b.create_endpoint(ManagedOnlineEndpoint(name="bench", auth_mode="key")).result(60)
            common = {"endpoint_name": "bench", "instance_type": "Standard_DS3_v2"}
            flow = ManagedOnlineDeployment(
                name="blue", model=Model(path=str(ROOT / "flows/chat-echo")), **common
            )
            script = ManagedOnlineDeployment(
                name="green",
                code_configuration=CodeConfiguration(
                    code=str(ROOT / "scoring/maf-chat"), scoring_script="score.py"
                ),
                environment=env,
                **common,
            )
            for dep in (flow, script):  # one after the other: each start measured alone
                t = time.monotonic()
                b.create_deployment(dep).result(600)
                print(f"{dep.name}: deployment ready in {time.monotonic() - t:.2f} s")
            status = b.router_status("bench")["deployments"]
            cfg = b._config("bench")
            url = f"http://127.0.0.1:{cfg['port']}/score"
            auth = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
            body = {"question": "hello", "chat_history": []}
            with httpx.Client(trust_env=False, timeout=30) as http:
                for name in ("blue", "green"):
                    headers = {**auth, "azureml-model-deployment": name}
                    http.post(url, json=body, headers=headers)  # warm
                    times = []
                    for _ in range(args.requests):
                        t = time.perf_counter()
                        assert http.post(url, json=body, headers=headers).status_code == 200
                        times.append((time.perf_counter() - t) * 1000)
                    start = status[name]["instances"][0]["start_seconds"]
                    print(
                        f"{name}: instance start {start} s; request median "
                        f"{statistics.median(times):.1f} ms, p90 "
                        f"{sorted(times)[int(len(times) * 0.9)]:.1f} ms ({args.requests} requests)"
                    )
        finally:
            b.shutdown_all()


if __name__ == "__main__":
    main()

"""pfmagic's side of the benchmarks: real local endpoints, driven from helper processes.

The runner never imports pfmagic itself: each action runs ``bench/local_ep.py`` in a fresh
interpreter (like a kernel: azure.ai.ml imported before the clock starts), with the bench's
private ``PFMAGIC_HOME``. Endpoints outlive the helper (routers are their own processes), so
``stop_all`` deletes whatever is left at the end.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

HELPER = Path(__file__).with_name("local_ep.py")


def _helper(env: dict[str, str], *args: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(
        [common.PYTHON, str(HELPER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=common.ROOT,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"local_ep.py {' '.join(args)} failed (exit {done.returncode}): "
        f"{(done.stderr or done.stdout)[-1500:]}"
    )


def first_score(url: str, headers: dict[str, str], timeout: float = 60) -> float:
    """POST until the first 200 (a fresh server may still be warming up); seconds taken."""
    import httpx

    start = time.perf_counter()
    body = {"question": "first", "chat_history": []}
    with httpx.Client(timeout=30, trust_env=False) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if client.post(url, json=body, headers=headers).status_code == 200:
                    return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{url} gave no 200 within {timeout} s")
            time.sleep(0.02)


def create_to_first_score(env: dict[str, str], name: str) -> float:
    res = _helper(env, "startup", name)
    return res["create_to_first_score_s"]


@dataclass
class Endpoint:
    name: str
    scoring_uri: str
    key: str
    router_pid: int
    instance_pids: list[int]
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def memory(self) -> dict[str, Any]:
        """RSS/USS of the router, of each instance, and of any other helper process (e.g. a
        zygote the instances are forked from). USS = memory only that process holds: forked
        instances share pages with their parent, so USS is what one more instance costs."""
        import psutil

        router = psutil.Process(self.router_pid)
        helpers = [
            p.pid for p in router.children(recursive=True) if p.pid not in self.instance_pids
        ]
        per = [common.rss_mb(pid, tree=False) for pid in self.instance_pids]
        other = [common.rss_mb(pid, tree=False) for pid in helpers]
        total = common.rss_mb(self.router_pid)  # router + everything under it
        return {
            "router_rss_mb": common.rss_mb(self.router_pid, tree=False)["rss_mb"],
            "instances": per,
            "helpers": other,
            "per_instance_rss_mb": sum(p["rss_mb"] for p in per) / len(per) if per else None,
            "per_instance_uss_mb": sum(p["uss_mb"] for p in per) / len(per) if per else None,
            "endpoint_total_uss_mb": total["uss_mb"],
            "endpoint_total_rss_mb": total["rss_mb"],
        }


@contextlib.contextmanager
def endpoint(env: dict[str, str], name: str, *, instances: int = 1) -> Iterator[Endpoint]:
    info = _helper(env, "up", name, str(instances))
    ep = Endpoint(
        name=name,
        scoring_uri=info["scoring_uri"],
        key=info["key"],
        router_pid=info["router_pid"],
        instance_pids=info["instance_pids"],
        env=env,
    )
    try:
        yield ep
    finally:
        with contextlib.suppress(Exception):
            _helper(env, "down", name)


def invoke_vs_http(env: dict[str, str], name: str, n: int) -> dict[str, Any]:
    return _helper(env, "invoke", name, str(n))


def stop_all(env: dict[str, str]) -> None:
    with contextlib.suppress(Exception):
        _helper(env, "stop-all", timeout=120)

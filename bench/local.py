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
    done = subprocess.run([common.PYTHON, str(HELPER), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=common.ROOT)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"local_ep.py {' '.join(args)} failed (exit {done.returncode}): "
                       f"{(done.stderr or done.stdout)[-1500:]}")


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
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def memory(self) -> dict[str, Any]:
        """RSS of the router alone and of each instance process (its children)."""
        import psutil

        router = psutil.Process(self.router_pid)
        kids = router.children(recursive=True)
        per = [common.rss_mb(k.pid) for k in kids]
        return {
            "router_rss_mb": common.rss_mb(self.router_pid, tree=False)["rss_mb"],
            "instances": per,
            "per_instance_rss_mb": sum(p["rss_mb"] for p in per) / len(per) if per else None,
            "per_instance_uss_mb": sum(p["uss_mb"] for p in per) / len(per) if per else None,
        }


@contextlib.contextmanager
def endpoint(env: dict[str, str], name: str, *, instances: int = 1) -> Iterator[Endpoint]:
    info = _helper(env, "up", name, str(instances))
    ep = Endpoint(name=name, scoring_uri=info["scoring_uri"], key=info["key"],
                  router_pid=info["router_pid"], env=env)
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

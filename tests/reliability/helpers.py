"""Real local endpoints for the reliability tests, and the load generator from ``bench/``."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "tests" / "flows" / "chat-echo"
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import LoadResult, run_load  # noqa: E402

from pfmagic.spec.templates import deployment_yaml, endpoint_yaml  # noqa: E402

__all__ = ["LoadResult", "run_load", "deploy", "Background", "wait_for", "kill"]


def endpoint_entity(name: str) -> Any:
    from azure.ai.ml import load_online_endpoint

    return load_online_endpoint(io.StringIO(endpoint_yaml(name)))


def deployment_entity(name: str, deployment: str, instances: int = 1) -> Any:
    from azure.ai.ml import load_online_deployment

    text = deployment_yaml(deployment, name, FLOW, instance_count=instances)
    return load_online_deployment(io.StringIO(text), relative_origin=str(ROOT / "cell.yml"))


def deploy(
    backend: Any,
    name: str,
    deployment: str = "blue",
    *,
    instances: int = 1,
    all_traffic: bool = True,
    create_endpoint: bool = True,
) -> tuple[str, str]:
    """Create (endpoint and) deployment; return (scoring_uri, primary key)."""
    if create_endpoint:
        backend.create_endpoint(endpoint_entity(name)).result(timeout=120)
    backend.create_deployment(
        deployment_entity(name, deployment, instances), all_traffic=all_traffic
    ).result(timeout=240)
    return backend.get_endpoint(name).scoring_uri, backend.get_keys(name).primary_key


class Background(threading.Thread):
    """``run_load`` on a thread, so the test can break things while requests flow."""

    def __init__(self, url: str, **kwargs: Any):
        super().__init__(name="reliability-load", daemon=True)
        self.url, self.kwargs = url, kwargs
        self.result: LoadResult | None = None
        self.error: BaseException | None = None
        self.ended: float | None = None

    def run(self) -> None:
        try:
            self.result = run_load(self.url, **self.kwargs)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            self.ended = time.monotonic()

    def ended_after(self, moment: float) -> bool:
        """True when the load was still running at ``moment`` (``time.monotonic``)."""
        return self.ended is None or self.ended > moment

    def finish(self, timeout: float) -> LoadResult:
        self.join(timeout)
        assert not self.is_alive(), f"load still running after {timeout} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def processes_under(home: Path | str) -> list[Any]:
    """Live processes started for this pfmagic home (routers name it in their argv; children
    inherit ``PFMAGIC_HOME``)."""
    import psutil

    home = str(home)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if "pfmagic.backends.local" in cmd and (
                home in cmd or proc.environ().get("PFMAGIC_HOME") == home
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def stop_leftovers(home: Path | str) -> list[str]:
    """Stop (SIGKILL) whatever still runs for ``home``; return what it was, for the report."""
    left = processes_under(home)
    names = []
    for proc in left:
        try:
            names.append(f"{proc.pid} {' '.join(proc.cmdline())[-120:]}")
            proc.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
    return names

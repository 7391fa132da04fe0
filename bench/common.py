"""Helpers shared by the benchmarks: machine facts, ports, child processes, memory, statistics."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadgen import percentile  # noqa: F401 - re-exported

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "tests" / "flows" / "chat-echo"
PYTHON = sys.executable
PF = str(Path(PYTHON).with_name("pf"))


def machine() -> dict[str, Any]:
    """What the figures were taken on: CPU, cores, memory, Python, load at this moment."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gb = round(int(first.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": load(),
    }


def load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(
    url: str,
    timeout: float = 120.0,
    proc: subprocess.Popen | None = None,
    ok: tuple[int, ...] = (200,),
) -> float:
    """Poll ``url`` until it answers with a status in ``ok``; return the time it took."""
    import httpx

    start = time.perf_counter()
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code in ok:
                    return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{url} did not answer within {timeout} s")
            time.sleep(0.02)


def start_group(
    cmd: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (so every child it spawns can be stopped)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb")  # noqa: SIM115 - closed with the process by stop_group
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )
    proc._bench_log = out  # type: ignore[attr-defined]
    return proc


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group started by ``start_group``, SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    log = getattr(proc, "_bench_log", None)
    if log is not None:
        log.close()


def rss_mb(pid: int, *, tree: bool = True) -> dict[str, float]:
    """RSS and USS (MB) of a process and, with ``tree``, its children."""
    import psutil

    proc = psutil.Process(pid)
    procs = [proc] + (proc.children(recursive=True) if tree else [])
    rss = uss = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            rss += info.rss
            uss += info.uss
    return {
        "rss_mb": round(rss / 2**20, 1),
        "uss_mb": round(uss / 2**20, 1),
        "processes": len(procs),
    }


def bench_env(tmp: Path) -> dict[str, str]:
    """Environment for every child: private promptflow home with telemetry off, no proxies."""
    env = dict(os.environ)
    pf_home = tmp / "pf-home"
    pf_home.mkdir(parents=True, exist_ok=True)
    (pf_home / "pf.yaml").write_text("telemetry:\n  enabled: 'false'\n")
    env["PF_HOME_DIRECTORY"] = str(pf_home)
    env["PFMAGIC_HOME"] = str(tmp / "pfmagic-home")
    env["PF_DISABLE_TRACING"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(k, None)
    return env


def run_script(
    code: str, *, env: dict[str, str], timeout: float = 300.0, cwd: Path | None = None
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line prefixed ``RESULT ``."""
    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
    )
    wall = time.perf_counter() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result.setdefault("wall_s", wall)
            return result
    raise RuntimeError(
        f"script failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - start

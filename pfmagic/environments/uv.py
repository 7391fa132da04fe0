"""What every environment build shares: the cache folder, its per-key locks, running uv.

Both builders use it: ``build.py`` (a flow's environment, layered on pfmagic's) and
``scoring.py`` (a scoring script's, standalone). A venv is ``<root>/<key>`` with a metadata
file and a last-use stamp, so ``%pf_envs`` lists and prunes both kinds alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from pfmagic.backends.local.state import locked

BUILD_TIMEOUT = float(os.environ.get("PFMAGIC_BUILD_TIMEOUT", "600"))
META = "pfmagic-environment.json"
LAST_USED = ".last-used"


def envs_root(home_root: Path) -> Path:
    return Path(os.environ.get("PFMAGIC_ENVS_DIR") or home_root / "envs")


def lock_path(root: Path, key: str) -> Path:
    return root / f".{key}.lock"


def key_lock(root: Path, key: str) -> AbstractContextManager[None]:
    """Serialises builders (kernels, routers) of one key; others build in parallel."""
    return locked(lock_path(root, key))


def touch(venv: Path) -> None:
    (venv / LAST_USED).write_text(str(time.time()))


def uv_command() -> list[str]:
    """uv on PATH, else the one installed in this interpreter (``python -m uv``)."""
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def run(
    args: list[str],
    log: Callable[[str], None],
    env: dict[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> tuple[int, str]:
    """``uv ARGS``, every output line to ``log`` as it comes; (exit code, whole output).

    Without colour: a kernel may force it (FORCE_COLOR), and the lines end up in one-line
    errors and saved notebooks. Unwrapped: uv wraps its resolver report at ``$COLUMNS`` (set in
    a kernel started from a terminal, and in pytest-xdist's workers), which would cut a cause
    such as "not found in the package registry" over two lines."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [*uv_command(), *args, "--color", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        log(line.rstrip())
        if time.monotonic() > end:
            proc.kill()
            lines.append(f"timed out after {timeout:.0f} s")
            break
    return proc.wait(), "\n".join(lines)


def find_python(version: str | None, log: Callable[[str], None]) -> str:
    """An installed interpreter of ``version`` (uv never downloads one here), else this one."""
    if version:
        found = subprocess.run(
            [*uv_command(), "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
        log(f"python {version} is not installed here; using {sys.version.split()[0]}")
    return sys.executable

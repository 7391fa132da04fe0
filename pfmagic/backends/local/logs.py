"""Deployment log files: instances append their output, the supervisor appends events.

All writers open with ``O_APPEND`` so lines from several processes never overwrite each other.
Supervisor lines start with ``[pfmagic]`` so a reader can tell them from the flow's own output.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pfmagic.backends.local.state import PRIVATE_FILE, ensure_dir, read_json

_SECRETISH = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)")
_MIN_SECRET = 6  # shorter values would mask ordinary words in the log
_SHELL_PATHS = frozenset({"PWD", "OLDPWD"})
_cache: dict[Path, tuple[tuple[tuple[str, int], ...], frozenset[str]]] = {}


def redact(text: str, secrets: Collection[str] = ()) -> str:
    """Mask bearer tokens and api keys a flow might print, and every known secret value."""
    text = _SECRETISH.sub(lambda m: m.group(1) + "***", text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _home_of(path: Path) -> Path | None:
    """The pfmagic home a log file lies in (``<home>/logs/<endpoint>/...``)."""
    for parent in path.parents:
        if parent.name == "logs":
            return parent.parent
    return None


def known_secrets(path: Path) -> frozenset[str]:
    """The secrets a log under ``path``'s home could hold: every secret value of every stored
    connection (``${env:VAR}`` resolved), every secret-looking environment variable of every
    deployment and of this process. Cached until a state file changes."""
    from pfmagic.backends.local.connections import secret_values
    from pfmagic.render.mask import is_reference, is_secret_name, is_secret_value

    def secretish(name: str, value: Any) -> bool:
        return (
            isinstance(value, str)
            and len(value) >= _MIN_SECRET
            and not is_reference(value)
            and (is_secret_name(name) or is_secret_value(value))
        )

    # the process's own variables; PWD/OLDPWD are the shell's working directories, not passwords
    own = {v for k, v in os.environ.items() if k not in _SHELL_PATHS and secretish(k, v)}
    home = _home_of(Path(path))
    if home is None:
        return frozenset(own)
    files = [home / "connections.json", *home.glob("endpoints/*/deployments/*/deployment.json")]
    stamps = []
    for f in files:
        with contextlib.suppress(OSError):
            stamps.append((str(f), f.stat().st_mtime_ns))
    key = tuple(stamps)
    cached = _cache.get(home)
    if cached is None or cached[0] != key:
        found: set[str] = set()
        environ: dict[str, str] = dict(os.environ)
        for f in files[1:]:
            runtime = (read_json(f, {}) or {}).get("runtime") or {}
            environ.update(runtime.get("connection_env") or {})
            for name, value in (runtime.get("environment_variables") or {}).items():
                if secretish(str(name), value):
                    found.add(value)
        found |= secret_values(home / "connections.json", environ)
        cached = _cache[home] = (key, frozenset(found))
    return cached[1] | own


def open_append(path: Path) -> int:
    ensure_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)


def log_event(path: Path, message: str) -> None:
    """Append one supervisor line: ``<UTC time> [pfmagic] message``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    fd = open_append(path)
    try:
        line = redact(message, known_secrets(path))
        os.write(fd, f"{stamp} [pfmagic] {line}\n".encode())
    finally:
        os.close(fd)


MAX_LOG_BYTES = 20 << 20


def rotate(path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
    """Move a big log to ``<name>.1`` (one old file kept). Writers that still hold the old
    file keep appending there; instances started afterwards write to a fresh file."""
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def tail_rotated(path: Path, lines: int = 100) -> list[str]:
    """Like ``tail`` but continues into ``<name>.1`` when the current file is short."""
    current = tail(path, lines)
    if len(current) < lines:
        current = tail(path.with_name(path.name + ".1"), lines - len(current)) + current
    return current


def tail(path: Path, lines: int = 100, *, max_bytes: int = 4 << 20) -> list[str]:
    """The last ``lines`` lines of ``path`` (reads at most ``max_bytes`` from the end)."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block, data = 8192, b""
            while size > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
                step = min(block, size)
                size -= step
                f.seek(size)
                data = f.read(step) + data
                block *= 2
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace")
    secrets = known_secrets(path)
    return [redact(line, secrets) for line in text.splitlines()[-lines:]]

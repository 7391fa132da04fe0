"""Deployment log files: instances append their output, the supervisor appends events.

All writers open with ``O_APPEND`` so lines from several processes never overwrite each other.
Supervisor lines start with ``[pfmagic]`` so a reader can tell them from the flow's own output.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from pfmagic.backends.local.state import PRIVATE_FILE, ensure_dir

_SECRETISH = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)")


def redact(text: str) -> str:
    """Mask bearer tokens and api keys that a flow might print into its logs."""
    return _SECRETISH.sub(lambda m: m.group(1) + "***", text)


def open_append(path: Path) -> int:
    ensure_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)


def log_event(path: Path, message: str) -> None:
    """Append one supervisor line: ``<UTC time> [pfmagic] message``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    fd = open_append(path)
    try:
        os.write(fd, f"{stamp} [pfmagic] {redact(message)}\n".encode())
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
    return [redact(line) for line in text.splitlines()[-lines:]]

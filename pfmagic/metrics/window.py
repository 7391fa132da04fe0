"""``--window`` values: ``30s``, ``15m``, ``1h``, ``2d`` → seconds."""

from __future__ import annotations

import re

from pfmagic.errors import PfError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_SECONDS = 30 * 86400.0  # Azure Monitor keeps 93 days; a month is plenty for a notebook
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.I)


def parse_window(text: str) -> float:
    m = _RE.match(text or "")
    if not m:
        raise PfError(f"--window: '{text}' is not a duration", hint="like 30s, 15m, 1h or 2d")
    seconds = float(m[1]) * UNITS[m[2].lower()]
    if seconds <= 0:
        raise PfError(f"--window: '{text}' is empty", hint="give a positive duration")
    if seconds > MAX_SECONDS:
        raise PfError(f"--window: '{text}' is longer than 30 days")
    return seconds


def format_window(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{seconds:g}s"

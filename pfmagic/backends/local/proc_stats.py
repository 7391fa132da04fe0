"""CPU % and resident memory of a process, read from ``/proc`` as psutil reports them.

The router samples its instances every few seconds (``metrics.py``); psutil would be ~2 MB
of its memory for two numbers. On Linux they come from ``/proc/<pid>/stat`` (user + system
time) and ``/proc/<pid>/statm`` (resident pages); elsewhere psutil gives them.
``cpu_percent()`` is psutil's ``cpu_percent(None)``: % of one core since the previous call
(0.0 on the first), rounded to 0.1.
"""

from __future__ import annotations

import os
import time
from typing import Any

_PROC = os.path.exists("/proc/self/stat") and os.path.exists("/proc/self/statm")


class ProcessGone(Exception):
    """The process no longer exists (or cannot be read)."""


class Process:
    def __init__(self, pid: int):
        self.pid = pid
        self._last: tuple[float, float] | None = None  # (wall, cpu seconds) at the last call
        self._psutil: Any = None
        if not _PROC:
            import psutil

            try:
                self._psutil = psutil.Process(pid)
            except psutil.Error as exc:
                raise ProcessGone(pid) from exc

    def _read(self, name: str) -> str:
        try:
            with open(f"/proc/{self.pid}/{name}", "rb") as f:
                return f.read().decode("ascii", "replace")
        except OSError as exc:  # gone (ENOENT, ESRCH) or not ours to read
            raise ProcessGone(self.pid) from exc

    def cpu_seconds(self) -> float:
        # fields after the command name (which may hold spaces and parentheses): utime and
        # stime are the 12th and 13th, in clock ticks
        fields = self._read("stat").rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def cpu_percent(self) -> float:
        if self._psutil is not None:
            return self._psutil_call("cpu_percent", None)
        now, used = time.monotonic(), self.cpu_seconds()
        last, self._last = self._last, (now, used)
        if last is None or now <= last[0]:
            return 0.0
        return round((used - last[1]) / (now - last[0]) * 100, 1)

    def rss(self) -> int:
        """Resident set size, bytes."""
        if self._psutil is not None:
            return self._psutil_call("memory_info").rss
        return int(self._read("statm").split()[1]) * _PAGE

    def _psutil_call(self, method: str, *args: Any) -> Any:
        import psutil

        try:
            return getattr(self._psutil, method)(*args)
        except psutil.Error as exc:
            raise ProcessGone(self.pid) from exc


_TICKS = os.sysconf("SC_CLK_TCK") if _PROC else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROC else 4096

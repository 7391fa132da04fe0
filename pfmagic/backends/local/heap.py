"""Give the C heap's free pages back to the kernel (glibc ``malloc_trim``).

The router's memory is mostly what its start left behind: every module is compiled from
source when no ``.pyc`` can be written (``PYTHONDONTWRITEBYTECODE``), and a rollout reads
every installed distribution's metadata (``environments/build.py``). Python frees those
objects, but glibc keeps the freed pages for reuse -- ~5 MB of a router's USS after a start
and a rollout. ``trim()`` returns them; the router calls it now and then (``poll_state``), it
takes well under a millisecond. A no-op where the C library has no ``malloc_trim``.
"""

from __future__ import annotations

import ctypes
from typing import Any

_trim: Any = None  # libc's malloc_trim, False where there is none


def trim() -> bool:
    """``malloc_trim(0)``: True when the C library released some memory."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(None).malloc_trim  # the process's own libc
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):  # not glibc (musl, macOS)
            _trim = False
    return bool(_trim and _trim(0))

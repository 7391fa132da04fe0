"""Bounds on what the router spends on its clients and its logs.

* ``BoundedH11`` (``bounded_h11.py``, loaded on first use) -- uvicorn's h11 protocol with a
  header deadline: a connection must deliver a complete request head within
  ``header_timeout`` seconds of opening (or of its previous reply), else it is closed.
  uvicorn alone never times out a connection that sends nothing, and any byte received
  cancels its keep-alive timer (slowloris).
* ``BoundedHttpTools`` -- the same deadline on uvicorn's httptools (C parser) protocol, and a
  request head (URL + headers) over ``MAX_HEADER_BYTES`` refused with 400, as h11's
  ``max_incomplete_event_size`` does for ``BoundedH11``. The router serves with this one when
  httptools is installed (with uvloop: half the router CPU per request, ``bench/profile/``).
* ``UPSTREAM_*``, ``INSTANCE_KEEP_ALIVE`` -- the router's pool to each instance.
* ``raise_nofile()`` -- the soft open-file limit up to the hard one (each client and each
  instance connection is a file descriptor).
* ``rotate_in_place()`` -- size-based rotation of a log that other processes hold open with
  ``O_APPEND`` (instances, the zygote, the router's own stdout): copy to ``<name>.1``, then
  truncate; appending writers carry on at the new end (logrotate's ``copytruncate``).
* ``RateLimit`` -- the same error logged at most ``burst`` times a minute, then one summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

# uvicorn's package without its CLI, before any uvicorn submodule is imported
from pfmagic.backends.local import uvicorn_core  # noqa: F401

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: the router keeps h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 16 << 10
MAX_LOG_BYTES = int(os.environ.get("PFMAGIC_MAX_LOG_BYTES") or 20 << 20)
# Router -> instance connections (upstream.py): at most this many to one instance at once; an
# idle one is closed by the router after UPSTREAM_IDLE_SECONDS, well before the instance's
# uvicorn would (INSTANCE_KEEP_ALIVE), so the router never writes a request into a connection
# the instance is closing for idleness -- which it would take for a failed instance.
UPSTREAM_MAX_CONNECTIONS = 512
UPSTREAM_IDLE_SECONDS = 5.0
INSTANCE_KEEP_ALIVE = 30


class _HeadTooLarge(Exception):
    pass


class HeadDeadline:
    """The header deadline both bounded protocols keep: armed at connect and after each
    reply, dropped with the connection (each protocol says when a head is overdue)."""

    header_timeout = HEADER_TIMEOUT  # set per router from endpoint.json
    _header_deadline: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _header_expired(self) -> None:
        raise NotImplementedError

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_expired)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)  # type: ignore[misc]


if HttpToolsProtocol is not None:

    class BoundedHttpTools(HeadDeadline, HttpToolsProtocol):  # type: ignore[misc,valid-type]
        max_head_bytes = MAX_HEADER_BYTES

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_bytes = 0
            self._arm_header_deadline()

        def _header_expired(self) -> None:
            # no request in progress or queued: the head that should have come did not
            waiting = (self.cycle is None or self.cycle.response_complete) and not self.pipeline
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > self.max_head_bytes:
                # raised inside the parser: feed_data re-raises it as HttpParserError, which
                # uvicorn answers with 400 and closes the connection
                raise _HeadTooLarge

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

else:
    BoundedHttpTools = None  # type: ignore[assignment,misc]


# Default (unset or "0"): httptools + uvloop; "1": h11 + asyncio (A/B runs, or a platform
# without the wheels). The fast pair was opt-in while it lost requests under load (3 of 5,771
# with ReadError at load 13-20, router->instance over httpx, whose 5 s idle pool raced the
# instance's 5 s keep-alive); with aiohttp and the instance keeping connections longer than
# the router, tests/test_reliability_load.py -m '' (10k + 3k requests, an instance killed,
# traffic moved, the router killed) lost none at load 13.8 (4 Dec 2026, 12 CPU burners).
PURE_PYTHON_ENV = "PFMAGIC_PURE_PYTHON_HTTP"


def pure_python() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "0") not in ("", "0")


def fast_loop() -> str:
    """uvicorn's ``loop=``: uvloop when installed (not on Windows), else asyncio."""
    if pure_python():
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def fast_http() -> str:
    """uvicorn's ``http=`` for an instance: httptools when installed, else h11."""
    if pure_python() or HttpToolsProtocol is None:
        return "h11"
    return "httptools"


def router_protocol() -> type:
    """The router's bounded protocol class: ``BoundedHttpTools`` when available."""
    if pure_python() or BoundedHttpTools is None:
        from pfmagic.backends.local.bounded_h11 import BoundedH11

        return BoundedH11
    return BoundedHttpTools


def __getattr__(name: str) -> Any:
    # h11 and uvicorn's h11 protocol load only where they serve (PFMAGIC_PURE_PYTHON_HTTP=1)
    if name == "BoundedH11":
        from pfmagic.backends.local.bounded_h11 import BoundedH11

        return BoundedH11
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE := hard; returns the (soft, hard) now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rotate_in_place(path: Path, max_bytes: int = MAX_LOG_BYTES) -> bool:
    """Keep ``path`` under ``max_bytes``: its content moves to ``<name>.1`` (one old file)."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        old = path.with_name(path.name + ".1")
        with open(path, "rb") as src, open(old, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(old, 0o600)
        with open(path, "r+b") as f:
            f.truncate(0)
        return True
    except FileNotFoundError:
        return False


class RateLimit:
    """``allow(key)`` is True for the first ``burst`` times a key is seen in ``window``
    seconds; later ones are counted and reported once by the next allowed message."""

    def __init__(self, burst: int = 5, window: float = 60.0):
        self.burst, self.window = burst, window
        self._seen: dict[str, list[Any]] = {}  # key -> [window start, count, suppressed]

    def allow(self, key: str) -> tuple[bool, int]:
        """(log it?, how many were suppressed before it)."""
        now = time.monotonic()
        entry = self._seen.setdefault(key, [now, 0, 0])
        if now - entry[0] >= self.window:
            entry[0], entry[1] = now, 0
        entry[1] += 1
        if entry[1] > self.burst:
            entry[2] += 1
            return False, 0
        suppressed, entry[2] = entry[2], 0
        if len(self._seen) > 1000:  # bounded, whatever the keys
            self._seen = {key: entry}
        return True, suppressed

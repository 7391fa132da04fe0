"""Keep azure-ai-ml's console chatter out of the notebook.

The SDK prints a "." per poll from the LROPoller's own thread (``AzureMLPolling.update_status``)
and logs "Check: endpoint … exists" through a ``StreamHandler`` bound to the stderr of import
time. Both would land under whichever cell runs at that moment, so while an operation runs we
divert writes from our worker threads and from ``LROPoller(...)`` threads into a buffer, and
filter the SDK's log records emitted by those threads. Other threads write through untouched.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_SDK_LOGGER = "azure.ai.ml"
_lock = threading.Lock()
_workers: dict[int, io.StringIO] = {}  # thread ident → where its output goes
_active = 0
_saved: dict[str, TextIO] = {}


def _sink() -> io.StringIO | None:
    thread = threading.current_thread()
    sink = _workers.get(thread.ident or -1)
    if sink is None and thread.name.startswith("LROPoller("):
        return _poller_sink
    return sink


_poller_sink = io.StringIO()  # dots from poller threads: nobody reads them


class _Router:
    """Stands in for sys.stdout/sys.stderr: diverts captured threads, passes others through."""

    def __init__(self, inner: TextIO):
        self._inner = inner

    def write(self, text: str) -> int:
        sink = _sink()
        if sink is not None:
            if sink is _poller_sink:
                _poller_sink.seek(0)
                _poller_sink.truncate()
            return sink.write(text)
        return self._inner.write(text)

    def flush(self) -> None:
        if _sink() is None:
            self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ThreadFilter(logging.Filter):
    """Drop SDK log records from captured threads (they go to the worker's buffer instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = _workers.get(record.thread or -1)
        if sink is None and (record.threadName or "").startswith("LROPoller("):
            return False
        if sink is not None:
            sink.write(record.getMessage() + "\n")
            return False
        return True


_filter = _ThreadFilter()


def _install() -> None:
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, _Router):
            _saved[name] = current
            setattr(sys, name, _Router(current))
    for handler in logging.getLogger(_SDK_LOGGER).handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)


def _uninstall() -> None:
    for name, original in _saved.items():
        # Only undo our own wrapper: something else (e.g. %%capture) may have replaced it since.
        if isinstance(getattr(sys, name), _Router):
            setattr(sys, name, original)
    _saved.clear()
    for handler in logging.getLogger(_SDK_LOGGER).handlers:
        handler.removeFilter(_filter)


def _acquire() -> None:
    global _active
    _active += 1
    # every time, not only on the first: a poller we stopped waiting for may still hold the
    # routers while sys.stdout was replaced since (%%capture, a new cell's capture), and that
    # stream needs its own router or this operation's dots reach it
    _install()


def _release() -> None:
    global _active
    _active -= 1
    if _active == 0:
        _uninstall()


def quiet_until_done(thread: threading.Thread | None) -> None:
    """Keep diverting SDK output while ``thread`` (an LROPoller we stopped waiting for) runs."""
    if thread is None or not thread.is_alive():
        return
    with _lock:
        _acquire()

    def release() -> None:
        thread.join()
        with _lock:
            _release()

    threading.Thread(target=release, name="pfmagic:quiet-poller", daemon=True).start()


@contextmanager
def quiet_sdk() -> Iterator[io.StringIO]:
    """Divert this thread's (and SDK poller threads') console output for the block."""
    buffer = io.StringIO()
    ident = threading.get_ident()
    with _lock:
        _workers[ident] = buffer
        _acquire()
    try:
        yield buffer
    finally:
        with _lock:
            _workers.pop(ident, None)
            _release()

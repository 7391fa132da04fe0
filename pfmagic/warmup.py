"""The background import of azure.ai.ml started by ``%load_ext``, and the wait for it.

Importing azure.ai.ml takes seconds, so ``%load_ext`` starts it in a thread. Two threads
importing the azure packages at once can see each other's half-initialised modules
("cannot import name 'Pipeline' from 'azure.core.pipeline'"), so every magic waits for the
warm-up to end before it runs (``errors.usage_errors``): the first cell waits as long as the
import takes anyway, and no import ever runs twice at once.
"""

from __future__ import annotations

import importlib
import threading

_thread: threading.Thread | None = None


def _run() -> None:
    try:
        importlib.import_module("pfmagic.spec.load").warm_up()
    except Exception:  # warm-up is an optimisation; the cell will report real errors
        pass


def start() -> None:
    global _thread
    _thread = threading.Thread(target=_run, name="pfmagic-warmup", daemon=True)
    _thread.start()


def wait(timeout: float | None = None) -> None:
    """Block until the warm-up has finished (at once when there is none)."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread() and thread.is_alive():
        thread.join(timeout)

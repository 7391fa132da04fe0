"""Progress of long operations: events flow one way, from a backend to whatever shows them.

A backend starts an ``Operation`` (deploy, delete, key regeneration...) and emits
``ProgressEvent``s from a worker thread. Views (the progress widget, the text fallback, a test)
subscribe; they never call back into the backend except through ``Operation.cancel``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["model", "endpoint", "environment", "deployment", "traffic", "delete", "keys"]
State = Literal["Pending", "Running", "Succeeded", "Failed", "Canceled", "Skipped"]
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed", "Canceled"})
HEARTBEAT = 1.0  # s without an event before a backend says what it waits for (issue 18: ≤ 2 s)


def span(seconds: float) -> str:
    """A duration as people read it: ms below a second (never "0 s"), else tenths."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an operation: which stage, in what state, and why.

    ``provisioning_state`` is the resource's own state (Creating, Updating, Succeeded, ...) when
    the backend knows it; ``log_tail`` the last lines of the deployment's logs, if any.
    """

    stage: Stage
    state: State
    message: str = ""
    provisioning_state: str | None = None
    log_tail: tuple[str, ...] = ()
    progress: float | None = None  # 0..1 within the stage, when known
    # the stage's sub-steps so far, one line each with its own timings
    # ("instance blue-1-0: forked 96 ms, app created 2.3 s, ready 2.6 s"); views list them
    substeps: tuple[str, ...] = ()
    # a heartbeat: nothing happened, the message says what the stage still waits for (a text
    # printer need not give each one a line of its own)
    beat: bool = False
    time: float = field(default_factory=time.time)


Listener = Callable[[ProgressEvent], None]


class Canceled(Exception):
    """Raised inside an operation's worker when the user pressed cancel."""


class Operation:
    """A long-running backend operation run on a worker thread.

    Like azure-core's ``LROPoller`` (``done``, ``wait``, ``result``, ``status``) plus events and
    a cooperative ``cancel``. The worker function receives the operation and calls ``emit`` /
    ``check_canceled``; its return value is the result.
    """

    def __init__(
        self,
        title: str,
        stages: tuple[Stage, ...],
        work: Callable[[Operation], Any],
        *,
        start: bool = True,
    ):
        self.title = title
        self.stages = stages
        self._work = work
        self._events: list[ProgressEvent] = []
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        # held while an event is appended and dispatched: events from the worker and a
        # heartbeat thread reach every listener in the order they were recorded
        self._dispatch = threading.RLock()
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self.started = time.time()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"pfmagic:{title}", daemon=True)
        if start:
            self._thread.start()

    # -- worker side -------------------------------------------------------------------
    def start(self) -> Operation:
        if not self._thread.is_alive() and not self._done.is_set():
            self._thread.start()
        return self

    def emit(self, stage: Stage, state: State, message: str = "", **kw: Any) -> ProgressEvent:
        event = ProgressEvent(stage=stage, state=state, message=message, **kw)
        with self._dispatch:
            with self._lock:
                self._events.append(event)
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # a broken view must not break the deployment
                    pass
        return event

    def beat(
        self, stage: Stage | None, describe: Callable[[], str | None], every: float
    ) -> ProgressEvent | None:
        """A heartbeat (from any thread): when ``stage`` (None: whichever) is the running one
        and nothing was emitted for ``every`` s, emit what it waits for (``describe()``),
        keeping the last event's progress and sub-steps. Never after the stage ended."""
        with self._dispatch:
            with self._lock:
                last = self._events[-1] if self._events else None
            if (
                self._done.is_set()
                or last is None
                or last.state != "Running"
                or (stage is not None and last.stage != stage)
                or time.time() - last.time < every
            ):
                return None
            message = describe()
            if not message:
                return None
            return self.emit(
                last.stage,
                "Running",
                message,
                provisioning_state=last.provisioning_state,
                progress=last.progress,
                substeps=last.substeps,
                beat=True,
            )

    @contextlib.contextmanager
    def heartbeat(
        self,
        describe: Callable[[float], str | None],
        every: float = 1.0,
        stage: Stage | None = None,
    ) -> Iterator[None]:
        """While the block runs, ``beat`` on ``stage`` (None: the running one): what it waits
        for, ``describe(seconds since the block began)``."""
        stop, began = threading.Event(), time.time()

        def run() -> None:
            while not stop.wait(every / 4):
                self.beat(stage, lambda: describe(time.time() - began), every)

        ticker = threading.Thread(target=run, daemon=True, name=f"pfmagic-heartbeat:{self.title}")
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join(1.0)

    def check_canceled(self) -> None:
        if self._cancel.is_set():
            raise Canceled(f"{self.title} canceled")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _run(self) -> None:
        try:
            self._result = self._work(self)
        except Canceled as exc:
            self._error = exc
            self.emit(self._current_stage(), "Canceled", str(exc))
        except BaseException as exc:  # reported through result()
            self._error = exc
            if not any(e.state == "Failed" for e in self.events):
                self.emit(self._current_stage(), "Failed", str(exc))
        finally:
            self.finished = time.time()
            self._done.set()

    def _current_stage(self) -> Stage:
        with self._lock:
            return self._events[-1].stage if self._events else self.stages[0]

    # -- caller side -------------------------------------------------------------------
    @property
    def events(self) -> list[ProgressEvent]:
        with self._lock:
            return list(self._events)

    def subscribe(self, listener: Listener, *, replay: bool = True) -> None:
        """Call ``listener`` for every future event (and, with ``replay``, past ones)."""
        # under the dispatch lock: an event emitted meanwhile reaches the listener after the
        # replayed ones (a replayed "Running" drew over a live "Succeeded" in a progress view)
        with self._dispatch:
            with self._lock:
                past = list(self._events) if replay else []
                self._listeners.append(listener)
            for event in past:
                listener(event)

    def cancel(self) -> None:
        self._cancel.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def status(self) -> str:
        """Like ``LROPoller.status()``: InProgress, Succeeded, Failed or Canceled."""
        if not self._done.is_set():
            return "InProgress"
        if self._error is None:
            return "Succeeded"
        return "Canceled" if isinstance(self._error, Canceled) else "Failed"

    def result(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            events = self.events
            last = f" (last: {events[-1].stage} {events[-1].message})" if events else ""
            raise TimeoutError(f"{self.title} still running after {timeout} s{last}")
        if self._error is not None:
            raise self._error
        return self._result

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stage_states(self) -> dict[str, ProgressEvent]:
        """Latest event per stage, in stage order (what a progress view draws)."""
        latest: dict[str, ProgressEvent] = {}
        for event in self.events:
            latest[event.stage] = event
        return {s: latest[s] for s in self.stages if s in latest}

    def __repr__(self) -> str:
        return f"<Operation {self.title!r} {self.status()}>"

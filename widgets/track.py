"""Fold an ``Operation``'s events into per-stage rows, and the outcome shown at the end.

Pure Python (no ipywidgets): the progress widget and the text printer share it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pfmagic.backends.events import TERMINAL, Operation, ProgressEvent

from .text import event_line, mask, summary_text

LOG_LINES = 15
DONE_STATES = frozenset({"Succeeded", "Skipped"})


@dataclass
class StageRow:
    stage: str
    state: str = "Pending"
    message: str = ""
    provisioning_state: str | None = None
    progress: float | None = None
    started: float | None = None
    ended: float | None = None
    substeps: tuple[str, ...] = ()  # the latest sub-step lines, each with its own timings

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        return (self.ended or now or time.time()) - self.started


class Tracker:
    """Latest state of each stage, elapsed times, overall fraction and the log tail."""

    def __init__(self, op: Operation):
        self.op = op
        self.rows: dict[str, StageRow] = {s: StageRow(s) for s in op.stages}
        self.log_tail: list[str] = []
        self._lock = threading.Lock()

    def apply(self, event: ProgressEvent) -> StageRow:
        with self._lock:
            row = self.rows.setdefault(event.stage, StageRow(event.stage))
            if row.started is None and event.state != "Pending":
                row.started = event.time
            row.state = event.state
            row.message = event.message or row.message
            row.provisioning_state = event.provisioning_state or row.provisioning_state
            row.progress = event.progress
            row.substeps = event.substeps or row.substeps
            if event.state in TERMINAL or event.state == "Skipped":
                row.ended = event.time
            if event.log_tail:
                self.log_tail = list(event.log_tail)[-LOG_LINES:]
            return row

    def set_logs(self, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            with self._lock:
                self.log_tail = lines[-LOG_LINES:]

    def fraction(self) -> float:
        """0..1: finished stages plus the running stage's own progress."""
        with self._lock:
            rows = list(self.rows.values())
        if not rows:
            return 0.0
        total = 0.0
        for row in rows:
            if row.state in DONE_STATES:
                total += 1
            elif row.state == "Running" and row.progress is not None:
                total += max(0.0, min(1.0, row.progress))
        return total / len(rows)

    def current(self) -> StageRow | None:
        """The stage in progress (last one started and not finished)."""
        with self._lock:
            running = [r for r in self.rows.values() if r.started and r.ended is None]
        return running[-1] if running else None

    def substeps(self) -> dict[str, tuple[str, ...]]:
        """Sub-step lines per stage (only stages that have some)."""
        with self._lock:
            return {r.stage: r.substeps for r in self.rows.values() if r.substeps}

    def stage_lines(self, now: float | None = None) -> list[tuple[str, str, str]]:
        with self._lock:
            rows = list(self.rows.values())
        out = []
        for row in rows:
            spent = row.elapsed(now)
            took = f"{spent:.1f}s" if spent is not None else ""
            out.append((row.stage, row.state, f"{took} {row.message}".strip()))
        return out


# -- outcome --------------------------------------------------------------------------------
def target_of(op: Operation, result: Any = None) -> tuple[str | None, str | None]:
    """(endpoint, deployment) an operation works on: ``op.target`` if the backend set it,
    else read from the result entity."""
    target = getattr(op, "target", None)
    if isinstance(target, tuple) and len(target) == 2:
        return target[0], target[1]
    if result is not None:
        kind = type(result).__name__
        if kind.endswith("Endpoint"):
            return getattr(result, "name", None), None
        if kind.endswith("Deployment"):
            return getattr(result, "endpoint_name", None), getattr(result, "name", None)
    return None, None


def outcome_details(op: Operation, backend: Any = None) -> list[tuple[str, str]]:
    """Scoring URI, traffic and a masked key after success (each read best-effort)."""
    result = op.result(timeout=0)
    details: list[tuple[str, str]] = []
    endpoint, deployment = target_of(op, result)
    if deployment:
        state = getattr(result, "provisioning_state", None)
        details.append(
            ("deployment", f"{endpoint}/{deployment}" + (f" ({state})" if state else ""))
        )
    ep = result if type(result).__name__.endswith("Endpoint") else None
    if endpoint and backend is not None and ep is None:
        try:
            ep = backend.get_endpoint(endpoint)
        except Exception as exc:
            details.append(("endpoint", f"not readable: {exc}"))
    if ep is not None:
        details.append(("scoring URI", str(getattr(ep, "scoring_uri", None) or "-")))
        traffic = getattr(ep, "traffic", None) or {}
        details.append(
            (
                "traffic",
                ", ".join(f"{k} {v}%" for k, v in traffic.items())
                or "none (0% to every deployment)",
            )
        )
        mirror = getattr(ep, "mirror_traffic", None) or {}
        if mirror:
            details.append(("mirror", ", ".join(f"{k} {v}%" for k, v in mirror.items())))
    if endpoint and backend is not None:
        try:
            keys = backend.get_keys(endpoint)
            # key auth answers EndpointAuthKeys (primary_key may be empty), aml_token a token
            is_token = hasattr(keys, "access_token") and not hasattr(keys, "primary_key")
            secret = getattr(keys, "access_token" if is_token else "primary_key", None)
            kind = "token" if is_token else "primary key"
            details.append((kind, mask(secret) if secret else "none returned yet (%pf_keys)"))
        except Exception as exc:
            details.append(("key", f"not readable: {type(exc).__name__}"))
    return details


def failure_details(op: Operation, tracker: Tracker, backend: Any = None) -> tuple[str, list[str]]:
    """(reason, log tail) of a failed or canceled operation; logs fetched if events had none.

    The reason is the error's first line (+ hint); further lines of a multi-line message
    (backends often append log lines) count as log tail, so nothing is shown twice.
    """
    error = op.error
    message = str(getattr(error, "message", None) or error or op.status())
    first, *rest = message.splitlines() or [op.status()]
    hint = getattr(error, "hint", None)
    reason = f"{first} ({hint})" if hint else first
    tail = list(tracker.log_tail)
    for extra in (getattr(error, "log_tail", None), rest):
        if not tail and extra:
            tail = [line for line in extra if line.strip()][-LOG_LINES:]
    endpoint, deployment = target_of(op)
    if not tail and backend is not None and endpoint and deployment:
        try:
            tracker.set_logs(backend.get_logs(endpoint, deployment, lines=LOG_LINES))
            tail = list(tracker.log_tail)
        except Exception:  # logs are a bonus on an already failed path
            pass
    return reason, tail


def summary(op: Operation, tracker: Tracker, backend: Any = None) -> str:
    """The final text block for a finished operation."""
    status = op.status()
    duration = (op.finished or time.time()) - op.started
    if status == "Succeeded":
        return summary_text(
            op.title,
            status,
            duration=duration,
            stages=tracker.stage_lines(),
            details=outcome_details(op, backend),
            substeps=tracker.substeps(),
        )
    reason, tail = failure_details(op, tracker, backend)
    return summary_text(
        op.title,
        status,
        duration=duration,
        stages=tracker.stage_lines(),
        details=[("reason", reason)],
        log_tail=tail,
        substeps=tracker.substeps(),
    )


# -- text printer ---------------------------------------------------------------------------
Writer = Callable[[str], None]


def _stdout(line: str) -> None:
    print(line, flush=True)


BEAT_LINE_EVERY = 10.0  # s: a printed heartbeat line at most this often (prints can't be undone)


class TextProgress:
    """Prints each event as one line as it arrives, then a summary block.

    Heartbeats (nothing new, the stage still waits) would be a line a second: printed, one
    at most every ``BEAT_LINE_EVERY`` s; on a live display (``rewrite_beats``) each replaces
    the heartbeat line before it.

    Lines are written by whoever calls ``pump``: the cell's own thread when waiting (output
    lands under the cell), or a background thread (``start_background``), whose ``write`` may
    be a display-handle update instead of a print (see ``TextBlock``).
    """

    def __init__(self, op: Operation, *, backend: Any = None, write: Writer = _stdout):
        self.op = op
        self.backend = backend
        self.write = write
        self.tracker = Tracker(op)
        self.lines: list[str] = []
        self.summary: str | None = None
        self.finished = threading.Event()
        self.rewrite_beats = False
        self._queue: queue.Queue[ProgressEvent] = queue.Queue()
        self._begun = False
        self._last_beat: float | None = None  # when the last line was a heartbeat's
        self._last_line = time.time()
        op.subscribe(self._queue.put)

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self._last_beat, self._last_line = None, time.time()
        self.write(line)

    def _event(self, event: ProgressEvent) -> None:
        line = event_line(event, self.op.started)
        if not event.beat:
            self._emit(line)
        elif self.rewrite_beats and self._last_beat is not None and self.lines:
            self.lines[-1] = line  # the display shows the newest heartbeat only
            self._last_beat = event.time
            self.write(line)
        elif self.rewrite_beats or event.time - self._last_line >= BEAT_LINE_EVERY:
            self._emit(line)
            self._last_beat = event.time

    def begin(self) -> None:
        """Write the first line (title and start time) once."""
        if not self._begun:
            self._begun = True
            self._emit(f"{self.op.title}: started {time.strftime('%H:%M:%S')}")

    def pump(self, timeout: float | None = None, slice_s: float = 0.2) -> bool:
        """Write events until the operation ends (then the summary) or ``timeout`` passes.

        Returns True when finished. Waits in short slices so Ctrl-C reaches the caller.
        """
        self.begin()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=slice_s)
            except queue.Empty:
                if self.op.done() and self._queue.empty():
                    break
            else:
                self.tracker.apply(event)
                self._event(event)
            if deadline is not None and time.monotonic() >= deadline and not self.op.done():
                return False
        self.summary = summary(self.op, self.tracker, self.backend)
        self._emit(self.summary)
        self.finished.set()
        return True

    def start_background(self) -> threading.Thread:
        parent = _cell_parent()

        def run() -> None:
            _bind_thread(parent)
            self.pump()

        thread = threading.Thread(target=run, daemon=True, name=f"pfmagic-print:{self.op.title}")
        thread.start()
        return thread

    def __repr__(self) -> str:
        return self.summary or (self.lines[-1] if self.lines else self.op.title)


class TextBlock:
    """A text/plain display of a printer's lines from ``start`` on, re-sent on every line.

    In a kernel, output printed by a thread after its cell ended is dropped (ipykernel 7 and
    frontends route it by the finished request); a display updated by ``display_id`` is not.
    """

    def __init__(self, printer: TextProgress, start: int = 0):
        self.printer = printer
        self.start = start

    def __repr__(self) -> str:
        return "\n".join(self.printer.lines[self.start :])


def _cell_parent() -> Any:
    """The running cell's message header (ipykernel) so a thread's output lands under it."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell.get_parent() if shell is not None and hasattr(shell, "get_parent") else None
    except Exception:
        return None


def _bind_thread(parent: Any) -> None:
    # ipykernel 7 stopped routing thread output to the cell that started the thread.
    if parent is None:
        return
    for stream in (sys.stdout, sys.stderr):
        setter = getattr(stream, "set_thread_parent", None)
        if setter is not None:
            try:
                setter(parent)
            except Exception:
                pass

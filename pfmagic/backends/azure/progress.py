"""Turn an azure-core ``LROPoller`` into ``ProgressEvent``s without blocking on ``.result()``.

Each slice we look at the poller (operation status), the resource's own provisioning state and,
for deployments still Creating/Updating, the log tail, and emit an event when one of them
changed, its sub-steps listing each change with its own time (issue 18); between polls (5 s
by default) a heartbeat says what the stage waits for. The operation's cancel stops our
waiting only: Azure keeps provisioning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pfmagic.backends.azure.capture import quiet_until_done
from pfmagic.backends.events import HEARTBEAT, Canceled, Operation, Stage, span

BUSY = frozenset({"Creating", "Updating", "Scaling", "Deleting"})
_FINAL = frozenset({"succeeded", "failed", "canceled", "cancelled"})


def state_name(value: Any) -> str | None:
    """'Succeeded' from an SDK enum, a plain string or None."""
    if value is None:
        return None
    value = getattr(value, "value", value)
    text = str(value)
    return text[:1].upper() + text[1:] if text else None


def log_lines(text: str | None, lines: int = 20) -> tuple[str, ...]:
    """The last ``lines`` lines, without the blank lines a real getLogs content ends with
    (they would take a place in the tail shown under a failed deployment)."""
    found = (text or "").splitlines()
    while found and not found[-1].strip():
        found.pop()
    return tuple(found[-lines:])


def quietly(fn: Callable[[], Any] | None, default: Any = None) -> Any:
    """Best-effort reads for progress: a failed peek must not fail the deployment."""
    if fn is None:
        return default
    try:
        return fn()
    except Exception:
        return default


def new_lines(before: tuple[str, ...], now: tuple[str, ...]) -> tuple[str, ...]:
    """The lines of tail ``now`` that tail ``before`` did not show (tails overlap: a later
    tail is the earlier one shifted by what the deployment wrote in between)."""
    if not before:
        return now
    for shift in range(len(before)):
        kept = before[shift:]
        if now[: len(kept)] == kept:
            return now[len(kept) :]
    return now


class AzureSteps:
    """A stage's sub-steps as the polls saw them, each with its own time since the stage
    began: the operation's status, the resource's provisioning state, the newest log line."""

    LIMIT = 12  # lines kept: a long deployment logs far more than a view should list

    def __init__(self, began: float):
        self.began = began
        self.lines: list[str] = []
        self.status: str | None = None
        self.state: str | None = None
        self.tail: tuple[str, ...] = ()
        self.polled = began

    def saw(self, status: str, state: str | None, tail: tuple[str, ...], now: float) -> bool:
        """Record one poll; True when it showed something new."""
        self.polled = now
        at = span(now - self.began)
        seen: list[str] = []
        if status != self.status:
            seen.append(f"operation {status} at {at}")
            self.status = status
        if state and state != self.state:
            seen.append(f"provisioning state {state} at {at}")
            self.state = state
        fresh = new_lines(self.tail, tail) if tail else ()
        self.tail = tail or self.tail
        if fresh:
            more = f" (+{len(fresh) - 1} lines)" if len(fresh) > 1 else ""
            seen.append(f"log at {at}: {fresh[-1].strip()[:160]}{more}")
        # counted before trimming: with a full list the length stays, yet a change is news
        self.lines = (self.lines + seen)[-self.LIMIT :]
        return bool(seen)

    def waiting(self, what: str, every: float, now: float) -> str:
        """For ``Operation.heartbeat``: what the stage waits for, and how long already."""
        status = f" ({self.status})" if self.status else ""
        return (
            f"waiting for Azure: {what}{status}, {span(now - self.began)}; "
            f"last poll {span(now - self.polled)} ago, every {every:g} s"
        )


def watch(
    op: Operation,
    stage: Stage,
    poller: Any,
    *,
    every: float,
    what: str,
    read_state: Callable[[], Any] | None = None,
    read_logs: Callable[[], str] | None = None,
) -> Any:
    """Wait for ``poller`` in slices of ``every`` seconds, emitting Running events with the
    sub-steps the polls saw, and a heartbeat at least every ``HEARTBEAT`` s between polls.

    Returns ``poller.result()`` (which raises the SDK's error on failure).
    """
    steps = AzureSteps(time.time())
    with op.heartbeat(lambda _s: steps.waiting(what, every, time.time()), HEARTBEAT, stage=stage):
        while not poller.done():
            poller.wait(every)
            if poller.done() or str(poller.status()).lower() in _FINAL:
                break
            if op.cancel_requested:
                # the SDK's poller thread keeps polling (and printing dots) until Azure is done
                quiet_until_done(getattr(poller, "_thread", None))
                raise Canceled(
                    f"stopped waiting for {what}; Azure keeps going "
                    "(%pf_status shows it, %pf_delete removes it)"
                )
            state = state_name(quietly(read_state))
            tail = log_lines(quietly(read_logs, "")) if read_logs and state in BUSY else ()
            if poller.done() or str(poller.status()).lower() in _FINAL:
                break  # finished while we looked: the caller reports the end
            if steps.saw(str(poller.status()), state, tail, time.time()):
                op.emit(
                    stage,
                    "Running",
                    f"{what}: {poller.status()}",
                    provisioning_state=state,
                    log_tail=tail,
                    substeps=tuple(steps.lines),
                )
    return poller.result()

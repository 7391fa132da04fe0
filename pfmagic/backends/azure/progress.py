"""Turn an azure-core ``LROPoller`` into ``ProgressEvent``s without blocking on ``.result()``.

Each slice we look at the poller (operation status), the resource's own provisioning state and,
for deployments still Creating/Updating, the log tail, and emit an event when one of them
changed. The operation's cancel stops our waiting only: Azure keeps provisioning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pfmagic.backends.azure.capture import quiet_until_done
from pfmagic.backends.events import Canceled, Operation, Stage

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
    """Wait for ``poller`` in slices of ``every`` seconds, emitting Running events.

    Returns ``poller.result()`` (which raises the SDK's error on failure).
    """
    last: tuple[Any, ...] | None = None
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
        now = (poller.status(), state, tail)
        if now != last:
            op.emit(
                stage,
                "Running",
                f"{what}: {poller.status()}",
                provisioning_state=state,
                log_tail=tail,
            )
            last = now
    return poller.result()

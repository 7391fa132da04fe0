"""What ``SessionMagics.run_operation`` / ``show_deployment_panel`` do, widget or text.

ipywidgets is imported only on the widget path, so the text fallback works without it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pfmagic.backends.events import Canceled, Operation
from pfmagic.errors import PfError
from pfmagic.skus import check_quota, deployment_choice

from .text import quota_text

SLICE = 0.2  # seconds per wait: short so Ctrl-C reaches the cell at once


def _display(obj: Any) -> Any:
    """Display ``obj``; returns a handle to re-send its bundle later (or None)."""
    from IPython.display import display

    return display(obj, display_id=True)


def run_operation(
    op: Operation, *, wait: bool, widgets: bool, backend: Any = None, timeout: float | None = None
) -> Any:
    """Show progress (widget or printed lines); if ``wait``, block in short slices.

    Returns the result when waited for and finished; the ``Operation`` itself with
    ``wait=False`` or when ``timeout`` passes first (it keeps reporting in the background).
    """
    if widgets:
        from .progress import ProgressView

        view = ProgressView(op, backend=backend)
        handle = _display(view)
        if not wait:
            return op
        try:
            finished = _wait_slices(op, timeout)
        except KeyboardInterrupt:
            _stopped_waiting(op)
            raise
        if finished:
            view.wait(10)  # the outcome (URI, traffic, key) is drawn before the cell ends
            if handle is not None:
                # the work is over: its faces replace the widget, so a saved notebook shows
                # them (HTML, text) instead of a "Loading widget..." placeholder
                handle.update(view.static_bundle(), raw=True)
    else:
        from .track import TextProgress

        printer = TextProgress(op, backend=backend)
        if not wait:
            _keep_reporting(printer, shown=0)
            return op
        try:
            finished = printer.pump(timeout=timeout, slice_s=SLICE)
        except KeyboardInterrupt:
            _keep_reporting(printer, shown=len(printer.lines))
            _stopped_waiting(op)
            raise
        if not finished:
            _keep_reporting(printer, shown=len(printer.lines))
    if not finished:
        print(
            f"{op.title}: still running after {timeout:.0f} s; it keeps reporting here "
            "(op.cancel() stops it)",
            file=sys.stderr,
        )
        return op
    return result_of(op)


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _keep_reporting(printer: Any, *, shown: int) -> None:
    """Go on writing the printer's lines after the cell returns: a live text display in a
    kernel (lines from ``shown`` on), plain prints from a thread in a terminal."""
    from .track import TextBlock

    if _in_kernel():
        block = TextBlock(printer, start=shown)
        printer.write = lambda _line: None  # the display below shows the first line
        printer.begin()
        handle = _display(block)
        if handle is not None:
            printer.write = lambda _line: handle.update(block)
            printer.rewrite_beats = True
    printer.begin()
    printer.start_background()


def _wait_slices(op: Operation, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not op.wait(SLICE):
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


def _stopped_waiting(op: Operation) -> None:
    print(
        f"stopped waiting: {op.title} keeps running in the background "
        "(see %pf_status; the Cancel button or op.cancel() stops it)",
        file=sys.stderr,
    )


def result_of(op: Operation) -> Any:
    """``op.result()``, with a cancel turned into a one-line ``PfError``."""
    try:
        return op.result()
    except Canceled as exc:
        raise PfError(str(exc), hint="canceled on request", code="Canceled") from None


def read_usage(session: Any) -> dict[str, tuple[int, int]] | None:
    """The active backend's quota usage; None on the local backend or when unreadable."""
    if session.backend_name == "local":
        return None
    return session.backend.quota_usage()


def show_deployment_panel(deployment: Any, session: Any, *, widgets: bool) -> Any:
    """Quota calculator + Deploy button (widgets) or the quota text block; returns it."""
    backend_name = session.backend_name
    if widgets:
        from .deploy import DeploymentPanel

        usage = None if backend_name == "local" else (lambda: read_usage(session))
        panel = DeploymentPanel(deployment, session, usage=usage, backend_name=backend_name)
        _display(panel)
        return panel
    sku, count, kubernetes = deployment_choice(deployment)
    # A validation-only cell makes no request (no credential prompt): %pf_quota reads the
    # workspace's usage when asked.
    check = check_quota(sku, count, None, backend_name=backend_name, kubernetes=kubernetes)
    if backend_name != "local":
        check.message = f"workspace usage not read (%pf_quota reads it); {check.message}"
    name = getattr(deployment, "name", None)
    # Under every deployment cell: keep it short (the skip-20 % list is in %pf_quota).
    text = quota_text(check, title=f"Quota for {name}" if name else None, skips=False)
    print(
        text + "\n  (deploy with --create; %pf_quota "
        f"{getattr(deployment, 'endpoint_name', '')}/{name} --sku S --instances N to try "
        "others)"
    )
    return check

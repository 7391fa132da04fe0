"""Deployment progress widget: stages with state / elapsed / message, a bar, the log tail,
a cancel button, and the outcome (scoring URI, traffic, masked key, or reason + logs).

Updated from threads only through widget traits (never ``with out:``; magics-conventions §8):
events arrive on the operation's worker thread, and a ticker thread refreshes elapsed times,
polls logs and draws the outcome, so the kernel stays free with ``--no-wait``.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as w

from pfmagic.backends.events import Operation, ProgressEvent
from pfmagic.render.style import badge, state_bg

from .text import elapsed, provisioning_note, shown_once, substep_lines, summary_text
from .track import LOG_LINES, Tracker, failure_details, outcome_details, target_of
from .twin import TextTwinBox

ICONS = {
    "Pending": "○",
    "Running": "◐",
    "Succeeded": "✓",
    "Failed": "✗",
    "Canceled": "⊘",
    "Skipped": "–",
}
BAR = {"Succeeded": "success", "Failed": "danger", "Canceled": "warning"}


class ProgressView(TextTwinBox):
    """``ProgressView(op, backend=None, tick=1.0, log_every=5.0)``: live view of an operation.

    ``finished`` is set once the outcome is drawn; ``text()`` is the plain-text twin.
    """

    def __init__(
        self,
        op: Operation,
        *,
        backend: Any = None,
        tick: float = 1.0,
        log_every: float = 5.0,
        **kwargs: Any,
    ):
        self.op = op
        self.backend = backend
        self.tracker = Tracker(op)
        self.finished = threading.Event()
        self.outcome: str | None = None
        self._tick = tick
        self._log_every = log_every
        self._draw_lock = threading.RLock()
        self.title = w.HTML()
        self.bar = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, bar_style="info", layout=w.Layout(width="420px")
        )
        self.bar_label = w.HTML()
        self.stages_box = w.HTML()
        self.logs_box = w.HTML()
        self.result_box = w.HTML()
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            button_style="warning",
            tooltip="Ask the backend to stop this operation",
        )
        self.cancel_button.on_click(lambda _b: self.cancel())
        super().__init__(
            children=[
                self.title,
                w.HBox([self.bar, self.bar_label]),
                self.stages_box,
                self.logs_box,
                self.result_box,
                self.cancel_button,
            ],
            **kwargs,
        )
        self._redraw()
        op.subscribe(self._on_event)
        self._ticker = threading.Thread(
            target=self._run, daemon=True, name=f"pfmagic-progress:{op.title}"
        )
        self._ticker.start()

    # -- public state ------------------------------------------------------------------
    def stage_state(self, stage: str) -> str:
        return self.tracker.rows[stage].state

    @property
    def state(self) -> str:
        return self.op.status()

    def cancel(self) -> None:
        if self.op.done():
            return
        self.op.cancel()
        self.cancel_button.disabled = True
        self.cancel_button.description = "Canceling…"

    def wait(self, timeout: float | None = None) -> bool:
        """Until the outcome is drawn (the operation finished and details were read)."""
        return self.finished.wait(timeout)

    # -- threads -----------------------------------------------------------------------
    def _on_event(self, event: ProgressEvent) -> None:
        self.tracker.apply(event)
        self._redraw()

    def _run(self) -> None:
        last_logs = 0.0
        while not self.op.wait(self._tick):
            now = time.monotonic()
            if self.backend is not None and now - last_logs >= self._log_every:
                last_logs = now
                self._poll_logs()
            self._redraw()
        self._finish()

    def _poll_logs(self) -> None:
        endpoint, deployment = target_of(self.op)
        row = self.tracker.rows.get("deployment")
        if not (endpoint and deployment and row and row.started):
            return
        try:
            self.tracker.set_logs(self.backend.get_logs(endpoint, deployment, lines=LOG_LINES))
        except Exception:  # the container may not exist yet; events still flow
            pass

    def _finish(self) -> None:
        status = self.op.status()
        duration = (self.op.finished or time.time()) - self.op.started
        try:
            if status == "Succeeded":
                # the deployment's log tail was progress; after success it only distracts
                self.tracker.log_tail = []
                rows = shown_once(
                    self.tracker.stage_lines(), outcome_details(self.op, self.backend)
                )
                self.result_box.value = _table(rows) if rows else badge(status)
                self.outcome = summary_text(
                    self.op.title,
                    status,
                    duration=duration,
                    stages=self.tracker.stage_lines(),
                    details=rows,
                    substeps=self.tracker.substeps(),
                )
            else:
                reason, tail = failure_details(self.op, self.tracker, self.backend)
                self.tracker.log_tail = tail
                self.result_box.value = f"<div>{badge(status)} {html.escape(reason)}</div>"
                self.outcome = summary_text(
                    self.op.title,
                    status,
                    duration=duration,
                    stages=self.tracker.stage_lines(),
                    details=[("reason", reason)],
                    log_tail=tail,
                    substeps=self.tracker.substeps(),
                )
        except Exception as exc:  # the view must end even if a detail call fails
            self.result_box.value = f"<div>{status} ({html.escape(str(exc))})</div>"
            self.outcome = f"{self.op.title}: {status} ({exc})"
        self.cancel_button.layout.display = "none"
        self._redraw()
        self.finished.set()

    # -- drawing -------------------------------------------------------------------------
    def _redraw(self) -> None:
        with self._draw_lock:
            status = self.op.status() if self.op.done() else "InProgress"
            spent = (self.op.finished or time.time()) - self.op.started
            self.title.value = (
                f"<b>{html.escape(self.op.title)}</b> · {status} · {elapsed(spent)}"
                + html.escape(self._waiting())
            )
            fraction = 1.0 if status == "Succeeded" else self.tracker.fraction()
            self.bar.value = fraction
            self.bar.bar_style = BAR.get(status, "info")
            self.bar_label.value = f"{fraction:.0%}"
            self.stages_box.value = self._stages_html()
            tail = self.tracker.log_tail
            self.logs_box.value = (
                "<details open><summary>last log lines</summary><pre style='max-height:14em;"
                "overflow:auto;font-size:85%'>" + html.escape("\n".join(tail)) + "</pre></details>"
                if tail
                else ""
            )

    def _stages_html(self) -> str:
        rows = []
        now = time.time()
        for row in self.tracker.rows.values():
            spent = row.elapsed(now)
            prov = html.escape(provisioning_note(row.state, row.provisioning_state))
            rows.append(
                f"<tr><td style='{_TD}'>{ICONS.get(row.state, '·')}</td>"
                f"<td style='{_TD}'><b>{html.escape(row.stage)}</b></td>"
                f"<td style='{_TD}'>{badge(row.state)}{prov}</td>"
                f"<td style='text-align:right'>{f'{spent:.1f}s' if spent is not None else ''}"
                f"</td><td style='{_TD}'>{html.escape(row.message)}</td></tr>"
            )
            if row.substeps:  # sub-steps with their own timings, under their stage
                items = "".join(f"<li>{html.escape(line)}</li>" for line in row.substeps)
                rows.append(
                    f"<tr><td></td><td></td><td colspan='3' style='{_TD}'><ul style='margin:0;"
                    f"padding-left:1.2em;font-size:90%'>{items}</ul></td></tr>"
                )
        return "<table style='border-spacing:8px 0'>" + "".join(rows) + "</table>"

    def _waiting(self) -> str:
        """`` · waiting for deployment: 0/1 instances ready`` while a stage runs."""
        if self.op.done():
            return ""
        row = self.tracker.current()
        if row is None:
            return " · waiting for the backend to start"
        if row.message.startswith("waiting for "):  # a heartbeat says it already
            return f" · {row.stage}: {row.message}"
        return f" · waiting for {row.stage}" + (f": {row.message}" if row.message else "")

    # -- text and HTML twins ---------------------------------------------------------------
    def html(self) -> str:
        """The view as inline-styled HTML (no JavaScript, theme colours): title, bar, stages,
        log tail, outcome."""
        with self._draw_lock:
            pct = round(self.bar.value * 100)
            status = self.op.status() if self.op.done() else "InProgress"
            bar = (
                "<div style='display:flex;align-items:center;gap:.5em;margin:2px 0'>"
                "<div style='width:420px;max-width:70%;height:.8em;border:1px solid #8a8a8a'>"
                f"<div style='width:{pct}%;height:100%;background:{state_bg(status)}'></div>"
                f"</div><span>{pct}%</span></div>"
            )
            return (
                f"<div>{self.title.value}</div>{bar}{self.stages_box.value}"
                f"{self.logs_box.value}{self.result_box.value}"
            )

    def text(self) -> str:
        if self.outcome is not None:
            return self.outcome
        lines = [
            f"{self.op.title}: {self.op.status()} {elapsed(time.time() - self.op.started)}"
            + self._waiting()
        ]
        substeps = self.tracker.substeps()
        for stage, state, msg in self.tracker.stage_lines():
            lines.append(f"  {stage:<10} {state:<9} {msg}".rstrip())
            lines.extend(substep_lines(substeps.get(stage, ())))
        return "\n".join(lines)


# JupyterLab right-aligns the cells of HTML outputs (the finished view's face is one)
_TD = "text-align:left;vertical-align:top"


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td style='{_TD}'><b>{html.escape(k)}</b></td>"
        f"<td style='{_TD}'><code>{html.escape(v)}</code></td></tr>"
        for k, v in rows
    )
    return f"<table style='border-spacing:8px 2px'>{cells}</table>"

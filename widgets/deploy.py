"""The panel under a ``%%pf_deployment`` cell: quota calculator + Deploy button.

Deploy runs the same call as ``--create``: ``session.backend.create_deployment(dep,
all_traffic=…)``, and shows a ``ProgressView`` of the returned ``Operation`` below the button.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from pfmagic.errors import PfError
from pfmagic.render.style import badge

from .progress import ProgressView
from .quota import QuotaCalculator
from .twin import TextTwinBox


class DeployPanel(TextTwinBox):
    """``DeployPanel(deployment, session)``: Deploy button, all-traffic checkbox, progress."""

    def __init__(
        self,
        deployment: Any,
        session: Any,
        *,
        on_busy: Callable[[bool], None] | None = None,
        **kwargs: Any,
    ):
        self.deployment = deployment
        self.session = session
        self.on_busy = on_busy  # told True while an operation runs, False after a failure
        self.view: ProgressView | None = None
        endpoint = getattr(deployment, "endpoint_name", None)
        others = [d for (ep, d) in session.deployments if ep == endpoint and d != deployment.name]
        self.all_traffic = w.Checkbox(
            value=not others,
            indent=False,
            description=f"send all traffic of {endpoint} to {deployment.name} (--all-traffic)",
            layout=w.Layout(width="auto"),
        )  # the default width cuts the label
        self.button = w.Button(
            description="Deploy",
            icon="rocket",
            button_style="primary",
            tooltip="Same as %%pf_deployment --create",
        )
        self.status = w.HTML()
        self.progress_box = w.VBox()
        self.button.on_click(lambda _b: self.deploy())
        super().__init__(
            children=[w.HBox([self.button, self.all_traffic]), self.status, self.progress_box],
            **kwargs,
        )
        # a --create in the same cell ran (or runs) before this panel was drawn
        op = self._earlier_operation()
        if op is not None:
            self.button.disabled = True
            self._busy(True)
            self.status.value = "<small>deploying from the cell's --create…</small>"
            threading.Thread(
                target=self._follow, args=(op,), daemon=True, name="pfmagic-deploy-panel"
            ).start()

    def _earlier_operation(self) -> Any:
        # the very entity this cell parsed (an older run of the cell parsed another one)
        ops = [
            op
            for op in getattr(self.session, "operations", [])
            if getattr(op, "entity", None) is self.deployment
        ]
        return ops[-1] if ops else None

    def _busy(self, busy: bool) -> None:
        if self.on_busy is not None:
            self.on_busy(busy)

    def _follow(self, op: Any) -> None:
        op.wait()
        self._ended(op.status())

    def _ended(self, status: str) -> None:
        """After success only a changed cell makes sense (a new panel); after a failure, retry."""
        if status == "Succeeded":
            self.button.disabled = True
            self.button.description = "Deployed"
            self.button.icon = "check"
            self.button.tooltip = "Edit the cell and run it again to update this deployment"
            self.status.value = (
                "<small>deployed; to change it, edit the cell and run it again</small>"
            )
            return
        self.button.disabled = False
        self.button.description = "Retry deploy"
        self.status.value = ""
        self._busy(False)

    def deploy(self) -> ProgressView | None:
        """Start the deployment (on the session's backend) and show its progress view."""
        if self.view is not None and not self.view.op.done():
            return self.view
        self.button.disabled = True
        self._busy(True)
        self.status.value = ""
        try:
            backend = self.session.backend
            op = backend.create_deployment(self.deployment, all_traffic=self.all_traffic.value)
        except Exception as exc:  # a button callback has no cell to raise into
            msg = str(exc) if isinstance(exc, PfError) else f"{type(exc).__name__}: {exc}"
            self.status.value = f"{badge('Failed')} {html.escape(msg)}"
            self.button.disabled = False
            self._busy(False)
            return None
        op.entity = self.deployment
        self.session.operations.append(op)
        self.session.last_endpoint = (
            getattr(self.deployment, "endpoint_name", None) or self.session.last_endpoint
        )
        self.view = ProgressView(op, backend=backend)
        self.progress_box.children = [self.view]
        view = self.view

        def ended() -> None:
            view.finished.wait()
            self._ended(view.op.status())

        threading.Thread(target=ended, daemon=True, name="pfmagic-deploy-panel").start()
        return self.view

    def text(self) -> str:
        if self.view is not None:
            return self.view.text()
        return f"Deploy {self.deployment.endpoint_name}/{self.deployment.name}: not started"


class DeploymentPanel(TextTwinBox):
    """Quota calculator above the Deploy panel; ``text/plain`` is the quota text block."""

    def __init__(
        self,
        deployment: Any,
        session: Any,
        *,
        usage: Any = None,
        backend_name: str = "local",
        **kwargs: Any,
    ):
        # a validation-only cell makes no workspace request until the user asks
        self.quota = QuotaCalculator(
            deployment, usage=usage, backend_name=backend_name, read_now=False
        )
        self.deploy_panel = DeployPanel(deployment, session, on_busy=self.quota.set_locked)
        super().__init__(children=[self.quota, self.deploy_panel], **kwargs)

    def text(self) -> str:
        return self.quota.text()

    def html(self) -> str:
        return self.quota.html()

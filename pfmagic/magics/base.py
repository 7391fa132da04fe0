"""What every magic family shares: the session, the settings, display and widget choice."""

from __future__ import annotations

import os
from typing import Any

from IPython.core.magic import Magics

from pfmagic.session import Session


class SessionMagics(Magics):
    """A family of magics bound to one ``Session`` (shared by all families of a shell)."""

    def __init__(self, shell: Any, session: Session):
        super().__init__(shell=shell)
        self.session = session

    @property
    def settings(self):  # noqa: ANN201 - PfMagics
        return self.session.settings

    def push(self, var: str | None, value: Any) -> None:
        """Store ``value`` in the user namespace as ``var`` (when a name was given)."""
        if var:
            if not var.isidentifier():
                from pfmagic.errors import PfError

                raise PfError(f"'{var}' is not a valid Python variable name")
            self.shell.push({var: value})

    def use_widgets(self) -> bool:
        """Widgets only where a frontend can draw them (tqdm.autonotebook's test)."""
        if not self.settings.widgets:
            return False
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        if os.environ.get("PFMAGIC_FORCE_WIDGETS") == "1":
            return True
        config = getattr(self.shell, "config", None) or {}
        return "IPKernelApp" in config

    # -- hooks shared by families (the widgets issue replaces the text-only versions) -------
    def run_operation(self, op: Any, *, wait: bool = True) -> Any:
        """Show an ``Operation``'s progress under the cell; block until done if ``wait``.

        Text fallback: one line per event. Returns the operation's result when waited for.
        """
        def show(event: Any) -> None:
            print(f"[{event.stage}] {event.state}" + (f": {event.message}" if event.message else ""))

        op.subscribe(show)
        self.session.operations.append(op)
        if not wait:
            return op
        op.wait()
        return op.result()

    def show_deployment_panel(self, deployment: Any) -> None:
        """Under a %%pf_deployment cell: quota calculator + Deploy button (widgets issue)."""

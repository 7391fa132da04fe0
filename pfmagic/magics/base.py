"""What every magic family shares: the session, the settings, display and widget choice."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics

from pfmagic.session import Session


def parse_line(func: Any, line: str) -> Any:
    """``parse_argstring`` with shell quoting: ``--set 'k=v w'`` gives ``k=v w``, as in bash
    (IPython's own splitter keeps the quotes in the value)."""
    from pfmagic.errors import PfError

    try:
        argv = shlex.split(line, comments=False, posix=True)
    except ValueError as exc:  # an unclosed quote
        raise PfError(f"cannot read the line: {exc}") from None
    return func.parser.parse_args(argv)


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

    def notebook_dir(self) -> Path:
        """The notebook's folder (VS Code / JupyterLab tell the kernel), else the cwd."""
        ns = self.shell.user_ns
        for key in ("__vsc_ipynb_file__", "__session__"):
            value = ns.get(key)
            # A relative __session__ is relative to the server root, not to us: skip it.
            if isinstance(value, str) and value and Path(value).is_absolute():
                folder = Path(value).parent
                if folder.is_dir():
                    return folder
        return Path.cwd()

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

    # -- hooks shared by families: progress and the deployment panel (pfmagic.widgets) -------
    def run_operation(self, op: Any, *, wait: bool = True) -> Any:
        """Show an ``Operation``'s progress under the cell; block until done if ``wait``.

        Widgets: a ``ProgressView`` (stages, bar, log tail, cancel, outcome) updated from
        background threads. Text: one printed line per event, then a summary block.
        ``wait=True`` waits in short slices (Ctrl-C works; ``PfMagics.deploy_timeout`` caps it)
        and returns ``op.result()``; ``wait=False`` returns ``op`` while the view keeps updating.
        """
        from pfmagic.widgets.run import run_operation

        self.session.operations.append(op)
        # The backend that started ``op`` (for logs, URI and keys); never created just for this.
        backend = self.session.active_backend
        return run_operation(
            op,
            wait=wait,
            widgets=self.use_widgets(),
            backend=backend,
            timeout=self.settings.deploy_timeout or None,
        )

    def show_deployment_panel(self, deployment: Any) -> Any:
        """Under a %%pf_deployment cell: quota calculator + Deploy button, or the quota text."""
        from pfmagic.widgets.run import show_deployment_panel

        return show_deployment_panel(deployment, self.session, widgets=self.use_widgets())

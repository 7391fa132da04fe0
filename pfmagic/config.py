"""Settings of the extension, shown and changed with ``%config PfMagics``.

One traitlets ``Configurable`` shared by every magic family, so ``%config PfMagics`` lists all
options in one place, as jupysql does with ``SqlMagic``.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import Configurable


class PfMagics(Configurable):
    """pfmagic settings (``%config PfMagics.<name> = <value>``)."""

    backend = Unicode(
        "local",
        help="Active backend at load: 'local' (default, no Azure account) or 'azure'.",
    ).tag(config=True)
    widgets = Bool(
        True,
        help="Draw ipywidgets (quota calculator, progress). False prints plain text instead.",
    ).tag(config=True)
    home = Unicode(
        help="Where the local backend keeps its state (default $PFMAGIC_HOME or ~/.pfmagic).",
    ).tag(config=True)
    interpolate = Bool(
        True,
        help="Replace {{name}} in cells with values from the user namespace before parsing.",
    ).tag(config=True)
    warmup = Bool(
        True,
        help="Import azure.ai.ml in a background thread at %load_ext so the first cell is fast.",
    ).tag(config=True)
    max_history = Int(
        20,
        help="How many past chat turns %pf_invoke sends with each question (0 = none).",
    ).tag(config=True)
    invoke_timeout = Float(120.0, help="Seconds %pf_invoke waits for an endpoint's reply.").tag(
        config=True
    )
    deploy_timeout = Float(
        900.0, help="Seconds a blocking create waits before it returns and keeps reporting."
    ).tag(config=True)
    short_errors = Bool(
        True,
        help="Show expected failures as one line. False shows the full traceback (for debugging).",
    ).tag(config=True)
    azure_telemetry = Bool(
        False, help="Let azure-ai-ml send its telemetry on the Azure backend (off by default)."
    ).tag(config=True)
    errors_are_fatal = Bool(
        False,
        help="Raise real exceptions instead of one-line usage errors (for papermill / CI).",
    ).tag(config=True)

    allowed_hosts = List(
        Unicode(),
        help="Extra Host names local endpoints answer (e.g. behind a proxy); loopback names "
        "(127.0.0.1, localhost, [::1]) always work. Applies when the endpoint cell runs again.",
    ).tag(config=True)
    allowed_origins = List(
        Unicode(),
        help="Browser origins (https://host:port) allowed to call local endpoints, with CORS "
        "headers; none by default. Applies when the endpoint cell runs again.",
    ).tag(config=True)

    @default("home")
    def _default_home(self) -> str:
        return os.environ.get("PFMAGIC_HOME") or str(Path.home() / ".pfmagic")


def load_file_settings(settings: PfMagics, start: Path | None = None) -> tuple[Path, int] | None:
    """Apply ``[tool.pfmagic]`` from the nearest ``pyproject.toml`` (cwd and its parents).

    Unknown names raise ``PfError`` with the closest valid one (jupysql does the same).
    Returns the file and how many settings it set, or None when there is no such table.
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10: file settings need tomli
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            break
    else:
        return None
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("pfmagic")
    except (OSError, ValueError):
        return None
    if not isinstance(table, dict):
        return None
    table = table.get("PfMagics", table)  # [tool.pfmagic] or [tool.pfmagic.PfMagics]
    names = settings.class_trait_names(config=True)
    for key, value in table.items():
        if key not in names:
            import difflib

            from pfmagic.errors import PfError

            close = difflib.get_close_matches(key, names, n=1)
            raise PfError(
                f"{path}: [tool.pfmagic] has no setting '{key}'",
                hint=f"did you mean '{close[0]}'?" if close else None,
            )
        setattr(settings, key, value)
    return path, len(table)

"""Paths as a saved notebook should show them: ``$PFMAGIC_HOME/…`` or ``~/…``, not the
temporary or per-user absolute folder of whoever ran it last."""

from __future__ import annotations

import os
from pathlib import Path


def shown(path: str | Path) -> str:
    """``path`` under ``$PFMAGIC_HOME`` (when set) or the user's home, abbreviated."""
    text = str(path)
    for var, base in (("$PFMAGIC_HOME", os.environ.get("PFMAGIC_HOME")), ("~", "~")):
        if not base:
            continue
        root = str(Path(base).expanduser())
        if text == root:
            return var
        if text.startswith(root.rstrip(os.sep) + os.sep):
            return var + text[len(root.rstrip(os.sep)) :]
    return text

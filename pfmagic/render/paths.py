"""Paths as a saved notebook should show them: ``$PFMAGIC_HOME/…`` or ``~/…``, not the
temporary or per-user absolute folder of whoever ran it last."""

from __future__ import annotations

import os
import re
from pathlib import Path


def _roots() -> list[tuple[str, str]]:
    out = []
    for var, base in (("$PFMAGIC_HOME", os.environ.get("PFMAGIC_HOME")), ("~", "~")):
        if base:
            out.append((var, str(Path(base).expanduser()).rstrip(os.sep)))
    return out


def shown(path: str | Path) -> str:
    """``path`` under ``$PFMAGIC_HOME`` (when set) or the user's home, abbreviated."""
    text = str(path)
    for var, root in _roots():
        if text == root:
            return var
        if text.startswith(root + os.sep):
            return var + text[len(root) :]
    return text


def shown_in(line: str) -> str:
    """Every path under ``$PFMAGIC_HOME`` or home inside a line of text (a log line such as
    promptflow's "Project path: /tmp/…/blue/g1/model"), abbreviated as ``shown`` does."""
    for var, root in _roots():
        if root and root != os.sep and root in line:
            line = re.sub(re.escape(root) + r"(?=[/\\]|$|[\s'\",;:)\]])", var, line)
    return line

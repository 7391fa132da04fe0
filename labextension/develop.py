"""Make this checkout's prebuilt extension visible to the venv's JupyterLab (``make setup``).

A wheel install puts ``prebuilt/`` into ``<prefix>/share/jupyter/labextensions/`` (pyproject's
data-files), but setuptools' editable wheel (``uv sync``) leaves data files out. This links the
folder there instead, as ``jupyter labextension develop`` does (that command needs the
separate ``jupyter-builder`` CLI in JupyterLab 4.6, which the venv lacks). Idempotent; a real
folder from a wheel install is left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREBUILT = HERE / "prebuilt"


def link(prefix: Path = Path(sys.prefix)) -> Path | None:
    """The link made, or None when JupyterLab finds the extension there already."""
    name = json.loads((PREBUILT / "package.json").read_text())["name"]
    dest = prefix / "share" / "jupyter" / "labextensions" / name
    if dest.is_symlink() and dest.resolve() == PREBUILT:
        return None
    if dest.is_symlink():
        dest.unlink()  # another checkout's link
    elif dest.exists():
        return None  # installed from a wheel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(PREBUILT, target_is_directory=True)
    return dest


if __name__ == "__main__":
    if made := link():
        print(f"labextension: {made} -> {PREBUILT}")

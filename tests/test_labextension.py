"""The prebuilt JupyterLab extension (labextension/): built from the committed source, naming
the YAML cell magics pfmagic has, and found by the venv's JupyterLab (``make setup``).
Its effect in a browser: tests/browser/test_yaml_highlighting.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from pfmagic.magics.cells import CellsMagics

ROOT = Path(__file__).resolve().parents[1]
LABEXT = ROOT / "labextension"
PREBUILT = LABEXT / "prebuilt"


def _source_hash_module():  # noqa: ANN202 - a module loaded from labextension/
    spec = importlib.util.spec_from_file_location("source_hash", LABEXT / "source_hash.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prebuilt_is_built_from_the_committed_source() -> None:
    source_hash = _source_hash_module()
    recorded = source_hash.RECORD.read_text().strip()
    assert recorded == source_hash.source_hash(), (
        "labextension/ changed since labextension/prebuilt/ was built: run `make labext` "
        "and commit labextension/prebuilt/"
    )


def test_prebuilt_package_is_complete() -> None:
    source = json.loads((LABEXT / "package.json").read_text())
    built = json.loads((PREBUILT / "package.json").read_text())
    assert (built["name"], built["version"]) == (source["name"], source["version"])
    build = built["jupyterlab"]["_build"]
    assert (PREBUILT / build["load"]).is_file(), build  # the remoteEntry JupyterLab loads
    assert build["extension"] == "./extension", build  # the module it exposes: a plugin
    # nothing left over from an earlier build (make labext starts from an empty folder)
    assert {p.name for p in (PREBUILT / "static").glob("remoteEntry.*")} == {
        Path(build["load"]).name
    }


def test_extension_names_every_yaml_cell_magic() -> None:
    # The extension's list (src/pfcells.ts) must follow CellsMagics' cell magics (YAML cells).
    text = (LABEXT / "src" / "pfcells.ts").read_text()
    match = re.search(r"YAML_CELL_MAGICS = \[([^\]]*)\]", text)
    assert match, "YAML_CELL_MAGICS not found in labextension/src/pfcells.ts"
    in_extension = set(re.findall(r"'(\w+)'", match.group(1)))
    assert in_extension == set(CellsMagics.magics["cell"])


def test_venv_jupyterlab_finds_the_extension() -> None:
    # what JupyterLab's server (and `jupyter labextension list`) reads: the labextensions
    # folders of the Jupyter data path, <sys.prefix>/share/jupyter/labextensions among them
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions

    found = get_federated_extensions(jupyter_path("labextensions"))
    assert "pfmagic-labextension" in found, f"not found (run `make setup`): {sorted(found)}"
    ext = found["pfmagic-labextension"]
    built = json.loads((PREBUILT / "package.json").read_text())["jupyterlab"]["_build"]
    assert ext["jupyterlab"]["_build"]["load"] == built["load"], (
        f"{ext['ext_path']} is another build than prebuilt/"
    )

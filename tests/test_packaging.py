"""The wheel ships widgets/ inside pfmagic's namespace and nothing as a bare ``widgets``, and the
prebuilt JupyterLab extension where JupyterLab looks for it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    uv = shutil.which("uv")
    cmd = (
        [uv, "build", "--wheel", "--out-dir", str(out)]
        if uv
        else [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), "."]
    )
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("pfmagic-*.whl")
    return zipfile.ZipFile(whl)


def test_widgets_ship_inside_pfmagic(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "pfmagic/widgets/__init__.py" in names
    assert not [n for n in names if n.startswith("widgets/")]


def test_every_source_module_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    # A subpackage missing from [tool.setuptools] packages would silently vanish from installs.
    names = set(wheel.namelist())
    expected = {
        f"pfmagic/{p.relative_to(ROOT / 'pfmagic').as_posix()}"
        for p in (ROOT / "pfmagic").rglob("*.py")
    }
    expected |= {
        f"pfmagic/widgets/{p.relative_to(ROOT / 'widgets').as_posix()}"
        for p in (ROOT / "widgets").rglob("*.py")
    }
    assert expected - names == set()


def test_bare_widgets_is_not_importable() -> None:
    code = "import importlib.util as u; print(u.find_spec('widgets') is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert out.stdout.strip() == "True"


def test_wheel_ships_the_prebuilt_labextension(wheel: zipfile.ZipFile) -> None:
    # installed as <prefix>/share/jupyter/labextensions/pfmagic-labextension/ (data-files)
    prefix = "pfmagic-0.1.0.data/data/share/jupyter/labextensions/pfmagic-labextension/"
    shipped = {n[len(prefix) :] for n in wheel.namelist() if n.startswith(prefix)}
    prebuilt = ROOT / "labextension" / "prebuilt"
    built = {
        p.relative_to(prebuilt).as_posix()
        for p in prebuilt.rglob("*")
        if p.is_file() and p.name != "source.sha256"
    }
    assert "package.json" in built and any(b.startswith("static/remoteEntry.") for b in built)
    assert shipped == built | {"install.json"}

"""Per-deployment Python environments for scoring scripts, built with uv.

A small private builder until the environments module (issue 13) lands: the environment's
``conda_file`` -- its pip list, and its conda packages as pip pins (``numpy=2.3.1`` ->
``numpy==2.3.1``) -- plus azureml-inference-server-http, installed into a venv keyed by the
hash of what goes in, under ``$PFMAGIC_ENVS_DIR`` or ``<home>/envs``. Built once, reused by
every deployment asking for the same packages. The requested python version is used when uv
has that interpreter here, else the kernel's own (said in the progress message).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfmagic.backends.local.state import Home, ensure_dir, locked
from pfmagic.errors import BackendError

SERVER = "azureml-inference-server-http"
SKIP_CONDA = {"python", "pip", "setuptools", "wheel"}
BUILD_TIMEOUT = 900.0


def _conda_dict(environment: Any) -> dict[str, Any]:
    conda = getattr(environment, "conda_file", None) if environment is not None else None
    if isinstance(conda, (str, os.PathLike)) and Path(conda).is_file():
        import yaml

        conda = yaml.safe_load(Path(conda).read_text(encoding="utf-8"))
    return conda if isinstance(conda, dict) else {}


def _pin(conda_dep: str) -> str:
    name, _, version = conda_dep.partition("=")
    version = version.lstrip("=")
    if not version:
        return name
    return f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*"


def spec_of(environment: Any) -> dict[str, Any]:
    """What to install for an azure-ai-ml ``Environment`` (or None / a name: server only)."""
    conda = _conda_dict(environment)
    pip: list[str] = []
    python = None
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            pip += [str(p) for p in dep.get("pip") or [] if not str(p).startswith("-")]
        elif isinstance(dep, str):
            name = re.split(r"[=<>! ]", dep.split("::")[-1], maxsplit=1)[0]
            if name == "python":
                python = dep.split("=", 1)[1].lstrip("=") if "=" in dep else None
            elif name not in SKIP_CONDA:
                pip.append(_pin(dep.split("::")[-1].replace(" ", "")))
    if not any(re.match(rf"{SERVER}\b", p) for p in pip):
        pip.append(SERVER)
    return {"python": python, "pip": sorted(set(pip))}


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _interpreter(version: str | None, log: Callable[[str], None]) -> str:
    if version:
        found = subprocess.run(
            [*_uv(), "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
        log(f"python {version} is not installed here; using {sys.version.split()[0]}")
    return sys.executable


def ensure(spec: dict[str, Any], home: Home, log: Callable[[str], None]) -> str:
    """The python executable of the environment for ``spec`` (built when missing)."""
    root = ensure_dir(Path(os.environ.get("PFMAGIC_ENVS_DIR") or home.root / "envs"))
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    final = root / key
    python = final / "bin" / "python"
    with locked(root / f".{key}.lock"):
        if python.is_file():
            return str(python)
        log(f"building environment {key} (uv)")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            interp = _interpreter(spec.get("python"), log)
            steps = [
                [*_uv(), "venv", "-q", "--python", interp, str(tmp)],
                [*_uv(), "pip", "install", "-q", "--python", str(tmp / "bin/python"), *spec["pip"]],
            ]
            for cmd in steps:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
                )
                if done.returncode != 0:
                    lines = (done.stderr or done.stdout).strip().splitlines()
                    raise BackendError(
                        "building the deployment's environment failed: "
                        + (lines[-1] if lines else f"exit code {done.returncode}"),
                        hint="check the conda_file's pip list",
                    )
            (tmp / "pfmagic-environment.json").write_text(json.dumps(spec, indent=1))
            # a venv's scripts hold its path: build in place under the final name's sibling,
            # then move; the interpreter resolves sys.prefix from its own location
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return str(python)

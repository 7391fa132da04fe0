"""A scoring script's environment: its ``conda_file`` -> a standalone uv venv with the server.

The environment's ``conda_file`` -- its pip list, and its conda packages as pip pins
(``numpy=2.3.1`` -> ``numpy==2.3.1``) -- plus azureml-inference-server-http, installed into a
venv keyed by the hash of what goes in, in the same cache as a flow's environments
(``uv.envs_root``). Unlike those (``build.py``) it is not layered on pfmagic's environment: the
script runs under the inference server, not promptflow, and may ask for another python. Built
once, reused by every deployment asking for the same packages. The requested python version is
used when uv has that interpreter here, else the kernel's own (said in the progress message).
Built in the kernel, before the rollout (the router only starts its interpreter).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfmagic.backends.local.state import Home, ensure_dir
from pfmagic.environments import uv
from pfmagic.errors import BackendError

SERVER = "azureml-inference-server-http"
SKIP_CONDA = {"python", "pip", "setuptools", "wheel"}
BUILD_TIMEOUT = 900.0  # the server and an agent framework: a first install takes minutes


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


def key_of(spec: dict[str, Any]) -> str:
    """Same spec -> same key -> same venv."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def ensure(spec: dict[str, Any], home: Home, log: Callable[[str], None]) -> str:
    """The python executable of the environment for ``spec`` (built when missing)."""
    root = ensure_dir(uv.envs_root(home.root))
    key = key_of(spec)
    final = root / key
    python = final / "bin" / "python"
    with uv.key_lock(root, key):
        if python.is_file():
            uv.touch(final)
            return str(python)
        log(f"building environment {key} (uv)")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            interp = uv.find_python(spec.get("python"), log)
            steps = [
                ["venv", "-q", "--python", interp, str(tmp)],
                ["pip", "install", "-q", "--python", str(tmp / "bin/python"), *spec["pip"]],
            ]
            for args in steps:
                # uv's lines are kept for the error, not shown: the progress says what runs
                code, out = uv.run(args, lambda _line: None, timeout=BUILD_TIMEOUT)
                if code != 0:
                    lines = out.strip().splitlines()
                    raise BackendError(
                        "building the deployment's environment failed: "
                        + (lines[-1] if lines else f"exit code {code}"),
                        hint="check the conda_file's pip list",
                    )
            (tmp / uv.META).write_text(json.dumps(spec, indent=1))
            uv.touch(tmp)
            # a venv's scripts hold its path: build in place under the final name's sibling,
            # then move; the interpreter resolves sys.prefix from its own location
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return str(python)

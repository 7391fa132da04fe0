"""Registered models: a flow folder copied to ``models/<name>/<version>/flow``.

A copy, so later edits to the notebook's folder never change a deployed version. A flow with
``additional_includes`` is staged by promptflow's build in a subprocess (``stage.py``) so the
copy is self-contained and servable. ``model.json`` holds name, version, description, tags,
properties, the source path and a content hash; registering the same content and metadata again
without a version returns the latest version instead of piling up identical ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from pfmagic.backends.local.logs import open_append, tail
from pfmagic.backends.local.procs import child_env
from pfmagic.backends.local.state import (
    Home,
    ensure_dir,
    ensure_pf_home,
    locked,
    read_json,
    write_json,
)
from pfmagic.errors import BackendError, NotFound

IGNORED = ("__pycache__", ".git", ".runs", ".promptflow", "*.pyc", ".ipynb_checkpoints")
FLOW_FILES = ("flow.dag.yaml", "flow.dag.yml", "flow.flex.yaml", "flow.flex.yml")
STAGE_TIMEOUT = 300.0


def flow_folder(path: str | os.PathLike[str]) -> Path:
    """The flow folder of a model path (a folder, or a flow file inside one)."""
    p = Path(path).expanduser().resolve()
    if p.is_file():
        p = p.parent
    if not p.is_dir():
        raise NotFound(f"model path '{path}' does not exist")
    if not any((p / f).is_file() for f in FLOW_FILES) and not list(p.glob("*.prompty")):
        raise BackendError(
            f"'{p}' is not a prompt flow folder",
            hint="it needs a flow.dag.yaml, flow.flex.yaml or a .prompty file",
        )
    return p


def model_source(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """The model's source and whether it is a flow (else plain files, for a scoring script)."""
    try:
        return flow_folder(path), True
    except BackendError:  # not a flow (a missing path is NotFound, raised as is)
        return Path(path).expanduser().resolve(), False


def source_hash(src: Path) -> str:
    return content_hash(src) if src.is_dir() else hashlib.sha256(src.read_bytes()).hexdigest()


def content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            any(
                part in ("__pycache__", ".git", ".runs", ".promptflow", ".ipynb_checkpoints")
                for part in rel.parts
            )
            or path.suffix == ".pyc"
            or not path.is_file()
        ):
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def additional_includes(folder: Path) -> list[str]:
    for name in FLOW_FILES:
        if (folder / name).is_file():
            data = yaml.safe_load((folder / name).read_text(encoding="utf-8")) or {}
            return list(data.get("additional_includes") or [])
    return []


def _versions(home: Home, name: str) -> list[str]:
    base = home.models / name
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if (p / "model.json").is_file()]
    return sorted(found, key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))


def get(home: Home, name: str, version: str | None = None) -> dict[str, Any]:
    versions = _versions(home, name)
    if not versions:
        raise NotFound(f"model '{name}' not found")
    version = str(version) if version is not None else versions[-1]
    meta = read_json(home.model_dir(name, version) / "model.json")
    if meta is None:
        raise NotFound(
            f"model '{name}' version '{version}' not found", hint=f"versions: {', '.join(versions)}"
        )
    return meta


def list_all(home: Home, *, anonymous: bool = False) -> list[dict[str, Any]]:
    out = []
    if home.models.is_dir():
        for base in sorted(home.models.iterdir()):
            for version in _versions(home, base.name):
                meta = read_json(home.model_dir(base.name, version) / "model.json")
                if meta and (anonymous or not meta.get("anonymous")):
                    out.append(meta)
    return out


def register(
    home: Home,
    name: str,
    version: str | None,
    path: str | os.PathLike[str],
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    properties: dict[str, Any] | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    src, is_flow = model_source(path)
    digest = source_hash(src)
    # what the user said about the model (chat_input/chat_output properties drive %pf_invoke)
    info = {
        "description": description,
        "tags": {str(k): str(v) for k, v in (tags or {}).items()},
        "properties": {str(k): str(v) for k, v in (properties or {}).items()},
    }
    ensure_dir(home.models / name)
    with locked(home.models / name / ".lock"):
        versions = _versions(home, name)
        if version is None and versions:
            latest = get(home, name, versions[-1])
            # same flow *and* same description/tags/properties: nothing new to register
            if latest.get("hash") == digest and _info(latest) == info:
                return latest
        if version is None:
            numeric = [int(v) for v in versions if v.isdigit()]
            version = str(max(numeric, default=0) + 1)
        version = str(version)
        if version in versions:
            existing = get(home, name, version)
            if existing.get("hash") == digest:
                if _info(existing) != info:  # same content: the metadata is updated in place
                    existing.update(info)
                    write_json(home.model_dir(name, version) / "model.json", existing)
                return existing
            raise BackendError(
                f"model '{name}' version {version} already exists with other content",
                hint="register a new version (or omit version)",
            )
        final = home.model_dir(name, version)
        tmp = Path(tempfile.mkdtemp(dir=home.models / name, prefix=f".{version}."))
        try:
            includes = additional_includes(src) if is_flow else []
            if not is_flow:  # AZUREML_MODEL_DIR/<name of the path>, as Azure lays it out
                (tmp / "files").mkdir()
                if src.is_dir():
                    shutil.copytree(
                        src, tmp / "files" / src.name, ignore=shutil.ignore_patterns(*IGNORED)
                    )
                else:
                    shutil.copy2(src, tmp / "files" / src.name)
            elif includes:
                _stage(home, src, tmp / "flow", name)
            else:
                shutil.copytree(src, tmp / "flow", ignore=shutil.ignore_patterns(*IGNORED))
            meta = {
                "name": name,
                "version": version,
                **info,
                "source": str(src),
                "hash": digest,
                **(
                    {"flow_dir": str(final / "flow")}
                    if is_flow
                    else {"model_dir": str(final / "files"), "kind": "files"}
                ),
                "additional_includes": includes,
                "anonymous": anonymous,
                "created": time.time(),
            }
            write_json(tmp / "model.json", meta)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return meta


def _info(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": meta.get("description"),
        "tags": dict(meta.get("tags") or {}),
        "properties": dict(meta.get("properties") or {}),
    }


def _stage(home: Home, src: Path, out: Path, name: str) -> None:
    ensure_pf_home(home)
    log = home.root / "logs" / "models" / f"{name}.log"
    log_fd = open_append(log)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pfmagic.backends.local.stage", str(src), str(out)],
            env=child_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            timeout=STAGE_TIMEOUT,
            check=False,
        )
    finally:
        os.close(log_fd)
    if proc.returncode != 0 or not out.is_dir():
        lines = tail(log, 15)
        raise BackendError(
            f"staging model '{name}' (additional_includes) failed",
            hint="; ".join(lines[-3:]) or f"see {log}",
        )

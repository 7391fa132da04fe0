"""Lay out an export folder: YAML files, copied flows, deploy.sh, a CI workflow, a README."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfmagic.errors import PfError
from pfmagic.export import scripts
from pfmagic.export.plan import Plan
from pfmagic.export.yamlfile import (
    DEPLOYMENT_PATHS,
    MODEL_PATHS,
    SCHEMAS,
    Assets,
    EnvSecret,
    apply_overrides,
    connection_schema,
    dump_roundtrip,
    ensure_schema,
    lift_secrets,
    load_roundtrip,
    relocate,
    schema_for,
)

MANIFEST = "pfmagic-export.json"


@dataclass
class Export:
    """What ``%pf_export`` wrote; displays as the list of files and what to fill in."""

    root: Path
    files: list[str] = field(default_factory=list)
    copied: dict[str, str] = field(default_factory=dict)  # export path → original folder
    secrets: list[EnvSecret] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        lines = [f"exported to {self.root}: {len(self.files)} file(s)"]
        lines += [f"  {name}" for name in self.files]
        if self.copied:
            lines.append("copied into the export:")
            lines += [f"  {dst}  (from {src})" for dst, src in self.copied.items()]
        if self.secrets:
            names = sorted({s.var for s in self.secrets})
            lines.append("secrets to provide as environment variables / CI secrets:")
            lines.append("  " + ", ".join(names))
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def check_target(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise PfError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise PfError(
            f"{root} is not empty; nothing was written",
            hint="pass --force to overwrite the files pfmagic writes there",
        )


def write_export(plan: Plan, root: Path, *, force: bool = False) -> Export:
    if plan.is_empty():
        raise PfError(
            "nothing to export: no %%pf_model, %%pf_endpoint, %%pf_deployment or "
            "%%pf_connection cell has run in this session"
        )
    check_target(root, force)
    root.mkdir(parents=True, exist_ok=True)
    out = Export(root=root)
    assets = Assets(root)
    manifest: dict[str, Any] = {"version": 1, "connections": [], "models": [], "endpoints": []}

    def emit(name: str, text: str, mode: int = 0o644) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        os.chmod(path, mode)
        out.files.append(name)

    for conn in plan.connections:
        name = f"connection-{conn.name}.yml"
        doc = load_roundtrip(json.dumps(conn.to_dict()))  # plain data: no comments to keep
        ensure_schema(doc, connection_schema(conn.type))
        out.secrets += _lift_connection(doc, conn, name)
        emit(name, dump_roundtrip(doc))
        manifest["connections"].append({"name": conn.name, "file": name})

    for model_name, source, _entity in plan.models:
        name = f"model-{model_name}.yml"
        doc = _document(source)
        ensure_schema(doc, f"{SCHEMAS}/latest/model.schema.json")
        relocate(doc, MODEL_PATHS, source.base_dir, assets)
        emit(name, dump_roundtrip(doc))
        manifest["models"].append({"name": model_name, "file": name})

    for ep in plan.endpoints:
        name = f"endpoint-{ep.name}.yml"
        doc = _document(ep.source)
        ensure_schema(doc, schema_for(ep.entity))
        for key in ("traffic", "mirror_traffic"):  # deploy.sh sets them once deployments exist
            doc.pop(key, None)
        emit(name, dump_roundtrip(doc))
        entry: dict[str, Any] = {
            "name": ep.name,
            "file": name,
            "traffic": ep.traffic,
            "mirror_traffic": ep.mirror,
            "traffic_from": ep.traffic_from,
            "deployments": [],
        }
        for dep_name, source, entity in ep.deployments:
            dname = f"deployment-{ep.name}-{dep_name}.yml"
            doc = _document(source)
            ensure_schema(doc, schema_for(entity))
            relocate(doc, DEPLOYMENT_PATHS, source.base_dir, assets)
            lifted = lift_secrets(
                doc.get("environment_variables"), "", dname, "environment_variables"
            )
            out.secrets += lifted
            emit(dname, dump_roundtrip(doc))
            entry["deployments"].append(
                {"name": dep_name, "file": dname, "secrets": [vars(s) for s in lifted]}
            )
        manifest["endpoints"].append(entry)

    manifest["secrets"] = sorted({s.var for s in out.secrets})
    manifest["copied"] = {dst: str(src) for src, dst in assets.copied.items()}
    out.copied = {dst: str(src) for src, dst in assets.copied.items()}
    out.manifest = manifest
    emit("deploy.sh", scripts.deploy_sh(manifest), 0o755)
    for ep in manifest["endpoints"]:
        emit(f".github/workflows/deploy-{ep['name']}.yml", scripts.workflow(ep, manifest))
    emit("README.md", scripts.readme(manifest))
    emit(MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return out


def _document(source: Any) -> Any:
    doc = load_roundtrip(source.text)
    apply_overrides(doc, source.overrides)
    return doc


def _lift_connection(doc: Any, conn: Any, file: str) -> list[EnvSecret]:
    """A connection's secret fields become ``${env:CONN_FIELD}`` (promptflow resolves them)."""
    lifted: list[EnvSecret] = []
    for key in sorted(conn.secret_keys):
        parent, leaf = doc, key
        if key.startswith("secrets."):
            parent, leaf = doc.get("secrets") or {}, key.split(".", 1)[1]
        value = parent.get(leaf)
        if value in (None, "") or not isinstance(value, str) or value.startswith("${env:"):
            continue
        var = f"{conn.name}_{leaf}".upper().replace("-", "_")
        parent[leaf] = f"${{env:{var}}}"
        lifted.append(EnvSecret(file, key, var))
    lifted += lift_secrets(doc.get("configs"), conn.name, file, "configs")
    return lifted

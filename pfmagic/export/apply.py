"""``%pf_apply DIR``: an export recreated on the active backend, in deploy.sh's order.

Each YAML goes through the same parser as a cell (azure-ai-ml's loaders + pfmagic's checks),
with paths relative to the export folder; ``${env:NAME}`` secrets are filled from the
environment, as ``deploy.sh`` fills them with ``--set``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfmagic.errors import PfError
from pfmagic.export.source import CellSource, source_key
from pfmagic.export.write import MANIFEST


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PfError(
            f"{root} is not a pfmagic export (no {MANIFEST})", hint="write one with %pf_export DIR"
        ) from None
    except (OSError, ValueError) as exc:
        raise PfError(f"cannot read {path}: {exc}") from None


def missing_secrets(manifest: dict[str, Any]) -> list[str]:
    return [name for name in manifest.get("secrets", []) if not os.environ.get(name)]


def apply_export(
    session: Any, root: Path, run: Callable[[Any], Any], say: Callable[[str], None] = print
) -> None:
    """Create connections, models, endpoints, deployments, then set traffic; ``run`` waits
    for each long operation (the magic passes its progress view)."""
    from pfmagic.spec.connection import parse_connection
    from pfmagic.spec.load import parse

    manifest = read_manifest(root)
    missing = missing_secrets(manifest)
    if missing:
        raise PfError(
            f"the export needs these secrets in the environment: {', '.join(missing)}",
            hint="set them (os.environ[...] = ...) and run %pf_apply again; nothing was created",
        )
    backend = session.backend

    def load(kind: str, file: str, secrets: list[dict[str, str]] = ()) -> Any:
        text = (root / file).read_text(encoding="utf-8")
        overrides = [(s["field"], os.environ[s["var"]]) for s in secrets]
        try:
            parsed = parse(
                kind,  # type: ignore[arg-type]
                text,
                base_dir=root,
                overrides=overrides,
                backend_name=session.backend_name,
                models=session.models,
                endpoints=session.endpoints,
            )
        except PfError as exc:
            raise PfError(f"{file}: {exc}") from None
        session.remember(parsed.entity)
        # Sources keep the file's text without secret values, so a re-export stays clean.
        session.sources[source_key(kind, parsed.entity)] = CellSource(kind, text, root, ())
        return parsed.entity

    for conn in manifest["connections"]:
        text = (root / conn["file"]).read_text(encoding="utf-8")
        connection = parse_connection(text)
        session.connections[connection.name] = connection
        backend.create_connection(connection.to_dict())
        say(f"connection {connection.name} stored")
    for model in manifest["models"]:
        registered = backend.create_model(load("model", model["file"]))
        session.remember(registered)
        say(f"model {registered.name}:{registered.version} registered")
    for ep in manifest["endpoints"]:
        run(backend.create_endpoint(load("endpoint", ep["file"])))
        say(f"endpoint {ep['name']} created")
        for dep in ep["deployments"]:
            entity = load("deployment", dep["file"], dep.get("secrets", []))
            run(backend.create_deployment(entity))
            say(f"deployment {dep['name']} created")
        if ep["traffic"] or ep["mirror_traffic"]:
            backend.set_traffic(ep["name"], ep["traffic"], ep["mirror_traffic"] or None)
            split = " ".join(f"{k}={v}" for k, v in ep["traffic"].items())
            say(f"traffic of {ep['name']}: {split}")
        session.last_endpoint = ep["name"]

"""One exported YAML: the cell's own text, made to work from the export folder.

ruamel.yaml's round-trip mode keeps the user's comments, key order and quoting; only what must
change is changed: ``--set`` values applied, ``$schema`` added where missing, local paths copied
into the export (``Assets``) and rewritten relative to it, secret-looking literal values turned
into ``${env:NAME}`` references that ``deploy.sh`` / ``%pf_apply`` fill from the environment.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfmagic.render.mask import is_reference, is_secret_name, is_secret_value

SCHEMAS = "https://azuremlschemas.azureedge.net"
_ENTITY_SCHEMAS = {
    "Model": "latest/model.schema.json",
    "ManagedOnlineEndpoint": "latest/managedOnlineEndpoint.schema.json",
    "KubernetesOnlineEndpoint": "latest/kubernetesOnlineEndpoint.schema.json",
    "ManagedOnlineDeployment": "latest/managedOnlineDeployment.schema.json",
    "KubernetesOnlineDeployment": "latest/kubernetesOnlineDeployment.schema.json",
}
# promptflow's connection schemas, by the connection YAML's ``type``.
_CONNECTION_SCHEMAS = {
    "open_ai": "OpenAIConnection",
    "azure_open_ai": "AzureOpenAIConnection",
    "serverless": "ServerlessConnection",
    "qdrant": "QdrantConnection",
    "weaviate": "WeaviateConnection",
    "cognitive_search": "CognitiveSearchConnection",
    "serp": "SerpConnection",
    "azure_ai_services": "AzureAIServicesConnection",
    "azure_content_safety": "AzureContentSafetyConnection",
    "form_recognizer": "FormRecognizerConnection",
    "custom": "CustomConnection",
}
# Folders that are run output or caches, never part of what a deployment needs.
_IGNORED = shutil.ignore_patterns(".promptflow", "__pycache__", ".git", ".venv", ".runs", "*.pyc")
_NON_LOCAL = re.compile(r"^(azureml:|azureml://|https?://|wasbs?://|abfss?://)", re.I)


def schema_for(entity: Any) -> str | None:
    tail = _ENTITY_SCHEMAS.get(type(entity).__name__)
    return f"{SCHEMAS}/{tail}" if tail else None


def connection_schema(conn_type: str) -> str | None:
    name = _CONNECTION_SCHEMAS.get(conn_type)
    return f"{SCHEMAS}/promptflow/latest/{name}.schema.json" if name else None


@dataclass
class Assets:
    """Local folders and files copied into the export, so it works from a clean checkout."""

    root: Path
    copied: dict[Path, str] = field(default_factory=dict)  # source → path relative to root

    def copy(self, source: Path, folder: str) -> str:
        """Copy ``source`` under ``root/folder/`` once; returns ``./folder/name`` for YAML."""
        source = source.resolve()
        if source in self.copied:
            return self.copied[source]
        name, n = source.name, 1
        taken = set(self.copied.values())
        while f"./{folder}/{name}" in taken:
            n += 1
            name = f"{source.name}-{n}"
        target = self.root / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():  # --force over an earlier export: replace, never merge, old files
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_IGNORED)
        else:
            shutil.copy2(source, target)
        self.copied[source] = f"./{folder}/{name}"
        return self.copied[source]


@dataclass
class EnvSecret:
    """A literal secret taken out of a YAML: ``field`` now reads ``${env:var}``."""

    file: str
    field: str
    var: str


def load_roundtrip(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="rt").load(text)


def dump_roundtrip(doc: Any) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long value (a URL, a JSON string) onto two lines
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def apply_overrides(doc: Any, overrides: Sequence[tuple[str, Any]]) -> None:
    """``--set a.b=1`` written into the document, as ``az ml … --set`` applies it."""
    from ruamel.yaml.comments import CommentedMap

    for dotted, value in overrides:
        node = doc
        parts = dotted.split(".")
        for part in parts[:-1]:
            key: Any = int(part) if isinstance(node, list) else part
            if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                node[key] = CommentedMap()
            node = node[key]
        last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
        node[last] = value


def ensure_schema(doc: Any, url: str | None) -> None:
    if url and "$schema" not in doc:
        doc.insert(0, "$schema", url)


def _local(value: Any, base: Path) -> Path | None:
    if not isinstance(value, str) or not value.strip() or _NON_LOCAL.match(value.strip()):
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def relocate(doc: Any, paths: Iterable[tuple[tuple[str, ...], str]], base: Path, assets: Assets):
    """Copy each local path found at a field path into ``assets`` and point the field at it."""
    for field_path, folder in paths:
        parent = doc
        for part in field_path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        local = _local(parent.get(field_path[-1]), base)
        if local is not None and local.exists():
            parent[field_path[-1]] = assets.copy(local, folder)


# Where a deployment or model YAML names local files, and the export folder each goes to.
MODEL_PATHS = ((("path",), "flows"),)
DEPLOYMENT_PATHS = (
    (("model", "path"), "flows"),
    (("code_configuration", "code"), "code"),
    (("environment", "build", "path"), "environments"),
    (("environment", "conda_file"), "environments"),
)


def lift_secrets(mapping: Any, prefix: str, file: str, field_path: str) -> list[EnvSecret]:
    """Replace secret literals in a mapping (env vars, connection keys) with ``${env:VAR}``."""
    out: list[EnvSecret] = []
    if not isinstance(mapping, dict):
        return out
    for key in list(mapping):
        value = mapping[key]
        if isinstance(value, dict):
            out += lift_secrets(value, prefix, file, f"{field_path}.{key}")
            continue
        if value is None or is_reference(value):
            continue
        if is_secret_name(str(key)) or is_secret_value(value):
            var = _env_name(prefix, str(key))
            mapping[key] = f"${{env:{var}}}"
            out.append(EnvSecret(file, f"{field_path}.{key}", var))
    return out


def _env_name(prefix: str, key: str) -> str:
    raw = key if not prefix else f"{prefix}_{key}"
    return re.sub(r"[^A-Za-z0-9]+", "_", raw).strip("_").upper()

"""Connections for local runs, stored without an OS keyring.

The kernel stores each ``%%pf_connection`` (promptflow's connection YAML as a dict) in
``connections.json`` (0600, atomic). Each instance process converts them to promptflow's
execution format and hands them to the serving app through ``PROMPTFLOW_ENCODED_CONNECTIONS``
with ``extension_type="azureml"`` (promptflow.md §5, option 3): no sqlite store, no keyring, and
the deployment's ``<connection_name>: <other name>`` override works as on Azure.
``${env:VAR}`` values are resolved in the instance, from its environment: the router's, plus
the referenced variables as the kernel had them at deployment time (``referenced_env``), plus
the deployment's ``environment_variables``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pfmagic.backends.local.state import locked, read_json, write_json

# connection YAML ``type`` -> promptflow's ConnectionType value (class name minus "Connection")
TYPES = {
    "open_ai": "OpenAI",
    "azure_open_ai": "AzureOpenAI",
    "serverless": "Serverless",
    "serp": "Serp",
    "cognitive_search": "CognitiveSearch",
    "azure_ai_services": "AzureAIServices",
    "azure_content_safety": "AzureContentSafety",
    "form_recognizer": "FormRecognizer",
    "qdrant": "Qdrant",
    "weaviate": "Weaviate",
    "custom": "Custom",
}
_META = {"name", "type", "module", "$schema"}
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
_AZUREML_REF = re.compile(r"^\$\{\{azureml://connections/([^}/]+)\}\}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def override_target(value: str) -> str | None:
    """The connection a deployment variable points to, if it is a name override."""
    value = value.strip()
    match = _AZUREML_REF.match(value)
    if match:
        return match.group(1)
    return value if _NAME.match(value) else None


def validate(connection: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check a connection dict; returns (name, cleaned dict). Raises ``ValueError``."""
    name = connection.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a connection needs a 'name'")
    kind = str(connection.get("type", "")).lower()
    if kind not in TYPES:
        raise ValueError(
            f"connection '{name}': unknown type '{connection.get('type')}' "
            f"(one of {', '.join(TYPES)})"
        )
    if kind == "open_ai" and "api_base" in connection and "base_url" not in connection:
        # promptflow silently drops api_base for OpenAI connections (promptflow.md bug f)
        raise ValueError(
            f"connection '{name}': open_ai connections take 'base_url', not 'api_base'"
        )
    if kind == "custom" and not isinstance(connection.get("secrets", {}), dict):
        raise ValueError(f"connection '{name}': 'secrets' must be a mapping")
    return name, {k: v for k, v in connection.items() if k != "$schema"} | {"type": kind}


def store(path: Path, connection: dict[str, Any]) -> str:
    name, clean = validate(connection)
    with locked(path.with_name(".connections.lock")):
        data = read_json(path, {}) or {}
        data[name] = clean
        write_json(path, data)
    return name


def fingerprint(path: Path) -> str:
    """A hash of the stored connections (no secret can be read back from it)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return ""


def referenced_env(
    path: Path, environ: dict[str, str] | os._Environ[str], only: list[str] | None = None
) -> dict[str, str]:
    """Values of the ``${env:VAR}`` variables the stored connections use, as set in
    ``environ`` now (the kernel's): a deployment carries them to its instances, so a key set
    with ``%env`` after the endpoint's router started still reaches the flow."""
    wanted: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, str) and (match := _ENV_REF.match(value.strip())):
            wanted.add(match.group(1))

    stored = read_json(path, {}) or {}
    walk({k: v for k, v in stored.items() if only is None or k in only})
    return {name: environ[name] for name in sorted(wanted) if name in environ}


def flow_references(flow_dir: Path, stored: list[str] | set[str]) -> set[str]:
    """The stored connections a flow folder refers to: a node's ``connection:`` and any
    string in the flow file equal to a stored name (a tool input typed as a connection, a
    flex flow's ``init`` default). Each deployment's instances get only these."""
    import yaml  # here: the router imports this module (log redaction) and never needs it

    from pfmagic.spec.flowinfo import flow_file

    path = flow_file(Path(flow_dir))
    if path is None:
        return set()
    try:
        if path.suffix == ".prompty":  # front matter: model.configuration.connection
            text = path.read_text(encoding="utf-8")
            data: Any = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else {}
        else:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, IndexError):
        return set()
    wanted, found = set(stored), set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.strip() in wanted:
            found.add(value.strip())

    walk(data)
    return found


def used_by(flow_dir: Path, path: Path, environment_variables: dict[str, Any] | None) -> list[str]:
    """Names of the stored connections a deployment needs: the flow's references, plus the
    targets of its ``<flow connection>: <stored name>`` overrides."""
    stored = set(names(path))
    refs = flow_references(flow_dir, stored | set((environment_variables or {}).keys()))
    out = {r for r in refs if r in stored}
    for key, value in (environment_variables or {}).items():
        target = override_target(str(value)) if key in refs else None
        if target and target in stored:
            out.add(target)
    return sorted(out)


def secret_values(path: Path, environ: dict[str, str] | os._Environ[str]) -> set[str]:
    """Every secret a stored connection holds, for log masking: each value of a secret
    field (api_key, a custom connection's ``secrets``, any secret-looking name or value) and
    what its ``${env:VAR}`` resolves to in ``environ``. Non-secret fields (base_url,
    api_version) are kept readable in the logs."""
    from pfmagic.render.mask import is_secret_name, is_secret_value

    found: set[str] = set()
    for spec in (read_json(path, {}) or {}).values():
        if not isinstance(spec, dict):
            continue
        items = [(k, v) for k, v in spec.items() if k not in _META and k != "secrets"]
        items += [("secret", v) for v in (spec.get("secrets") or {}).values()]
        for key, value in items:
            if not isinstance(value, str):
                continue
            ref = _ENV_REF.match(value.strip())
            if ref and ref.group(1) not in environ:
                continue  # unset here: no process of this home was given it, no log holds it
            resolved = _resolve_env(value, environ) if ref else value
            if isinstance(resolved, str) and (is_secret_name(key) or is_secret_value(resolved)):
                found.add(resolved)
    return {s for s in found if len(s) >= 6}


def names(path: Path) -> list[str]:
    return sorted((read_json(path, {}) or {}).keys())


def delete(path: Path, name: str) -> bool:
    with locked(path.with_name(".connections.lock")):
        data = read_json(path, {}) or {}
        found = data.pop(name, None) is not None
        write_json(path, data)
    return found


def _resolve_env(value: Any, environ: dict[str, str] | os._Environ[str]) -> Any:
    if isinstance(value, str):
        match = _ENV_REF.match(value.strip())
        if match:
            if match.group(1) not in environ:
                raise KeyError(f"Environment variable {match.group(1)} is not found.")
            return environ[match.group(1)]
    return value


def execution_connections(
    path: Path,
    environ: dict[str, str] | os._Environ[str],
    only: set[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Stored connections in promptflow's execution format (instance side only); ``only``:
    the names this deployment may see (None: all, for runtimes written before scoping)."""
    from promptflow.core._connection import _Connection

    result: dict[str, dict[str, Any]] = {}
    for name, spec in (read_json(path, {}) or {}).items():
        if only is not None and name not in only:
            continue
        fields = {k: _resolve_env(v, environ) for k, v in spec.items() if k not in _META}
        cls = _Connection.SUPPORTED_TYPES[TYPES[spec["type"]]]
        if spec["type"] == "custom":
            configs = {
                k: _resolve_env(v, environ) for k, v in (fields.get("configs") or {}).items()
            }
            secrets = {
                k: _resolve_env(v, environ) for k, v in (fields.get("secrets") or {}).items()
            }
            conn = cls(name=name, configs=configs, secrets=secrets)
        else:
            conn = cls(name=name, **fields)
        result[name] = conn._to_execution_connection_dict()
    return result


def flow_connections(flow_dir: str | Path) -> list[str]:
    """Connection names a flow's nodes use (LLM nodes' ``connection:``, tools' inputs)."""
    import yaml

    from pfmagic.spec.flowinfo import flow_file

    path = flow_file(Path(flow_dir))
    if path is None or path.suffix not in (".yaml", ".yml"):
        return []
    try:
        flow = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # the executor reports a broken flow itself
    found: list[str] = []
    for node in flow.get("nodes") or []:
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        for value in (node.get("connection"), inputs.get("connection")):
            if isinstance(value, str) and value and not value.startswith("${"):
                found.append(value)
    return sorted(set(found))


def missing(flow_dir: str | Path, path: Path, env: dict[str, Any]) -> list[str]:
    """The flow's connections neither stored nor mapped by a deployment variable (a name
    override ``open_ai_connection: other`` to a stored one, or ``OPEN_AI_CONNECTION_*`` fields)."""
    stored = set(names(path))
    out = []
    for name in flow_connections(flow_dir):
        if name in stored:
            continue
        target = override_target(str(env[name])) if env.get(name) else None
        prefix = name.upper().replace(" ", "_") + "_"
        if (target and target in stored) or any(str(k).startswith(prefix) for k in env):
            continue
        out.append(name)
    return out

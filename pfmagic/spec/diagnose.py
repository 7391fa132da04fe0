"""azure-ai-ml schema errors → short ``Problem``s naming the field path (and, later, the line).

azure-ai-ml raises ``marshmallow.ValidationError`` whose ``__cause__.messages`` is a nested dict
(azure-ai-ml notes §1). UnionFields (``model``, ``environment``, ``code_configuration``) report
every alternative they tried; we keep the one that matches what the user wrote, and turn the
``FileNotFoundError`` noise of a missing local path into "path does not exist: …".
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

NAME_RULE = "3-32 characters: a letter first, then letters, digits or hyphens (not at the end)"
_NO_FILE = re.compile(
    r"(?:No such file or directory: |Can't find directory or file in resolved absolute path: )"
    r"(?:'([^']+)'|(\S+))"
)
# Fields older azure-ai-ml YAML had, and what replaced them.
_RENAMED = {"target": "compute"}
_SCHEMA_NAME = re.compile(r"Validation for (\w+) failed")
_REWORDS = {
    "Unknown field.": "unknown field",
    "Missing data for required field.": "required field is missing",
    "Field may not be null.": "must not be empty",
    "Not a valid integer.": "not a valid integer",
    "Not a valid string.": "not a valid string",
    "Not a valid boolean.": "not a valid boolean (true / false)",
    "Not a valid number.": "not a valid number",
    "Not a valid mapping type.": "expected a mapping (key: value lines)",
    "Invalid input type.": "wrong type",
}


@dataclass
class Problem:
    """One thing wrong with a cell, at a field path (line filled in by the caller).

    ``level`` is ``"error"`` (the cell is rejected) or ``"warning"`` (shown in the summary).
    """

    path: Path
    message: str
    line: int | None = None
    level: str = "error"

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.path)


# Deployment fields azure-ai-ml reads as "a reference string or a mapping": given anything else
# its loader calls ``.get`` on it before any validation and fails with "'int' object has no
# attribute 'get'", naming no field. Checked only when a loader crashes (``shape_problems``).
_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str, dict), "a model (azureml:NAME:VERSION, a local path or a mapping)"),
    "environment": ((str, dict), "an environment (azureml:NAME:VERSION or a mapping)"),
    "code_configuration": ((dict,), "a mapping (code: and scoring_script:)"),
}


def shape_problems(raw: Any) -> list[Problem]:
    """The reference fields of ``raw`` (top level) whose value has a shape no loader takes."""
    if not isinstance(raw, dict):
        return []
    out = []
    for field, (types, expected) in _SHAPES.items():
        value = raw.get(field)
        if field in raw and value is not None and not isinstance(value, types):
            if isinstance(value, bool):
                shown = str(value).lower()  # as the YAML said it
            else:
                shown = "a list" if isinstance(value, list) else repr(value)
            out.append(Problem((field,), f"expected {expected}, got {shown}"))
    return out


def schema_problems(exc: Exception, raw: dict[str, Any]) -> list[Problem]:
    """Problems from a ``marshmallow.ValidationError`` raised by an azure-ai-ml loader."""
    cause = exc.__cause__ if getattr(exc.__cause__, "messages", None) else exc
    messages = getattr(cause, "messages", None)
    schema = _schema_for(str(exc))
    problems: list[Problem] = []
    _walk(messages, (), raw, problems)
    for p in problems:
        if p.message == "unknown field" and str(p.path[-1]) in _RENAMED and len(p.path) == 1:
            p.message += f" (its successor is '{_RENAMED[str(p.path[-1])]}:')"
        elif p.message == "unknown field" and schema is not None:
            hint = suggest(str(p.path[-1]), field_names(schema, p.path[:-1]))
            if hint:
                p.message += f" (did you mean '{hint}'?)"
        elif p.message == "String does not match expected pattern." and p.path[-1:] == ("name",):
            p.message = f"invalid name '{raw.get('name')}': {NAME_RULE}"
    return problems


def _walk(node: Any, path: Path, raw: Any, out: list[Problem]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_schema":
                _walk(value, path, raw, out)
            elif key in ("key", "value") and _dict_entry(raw, path, key):
                # a Dict field nests an entry's errors under "key" / "value": not fields
                start = len(out)
                _walk(value, path, raw, out)
                for p in out[start:] if key == "key" else ():
                    p.message = f"invalid key: {p.message}"
            else:
                _walk(value, (*path, _key(key)), raw, out)
    elif isinstance(node, list):
        if all(isinstance(item, str) for item in node):
            for item in node:
                out.append(Problem(path, _reword(item)))
        else:
            _union(node, path, raw, out)
    elif node is not None:
        out.append(Problem(path, _reword(str(node))))


def _union(alternatives: list[Any], path: Path, raw: Any, out: list[Problem]) -> None:
    """A UnionField tried several schemas; report the alternative that fits what was written."""
    missing = _NO_FILE.search("\n".join(_strings(alternatives)))
    if missing:
        where = (missing.group(1) or missing.group(2)).rstrip(".")
        out.append(Problem(path, f"path does not exist: {where}"))
        return
    written = _value_at(raw, path)
    if isinstance(written, str):
        out.append(
            Problem(
                path,
                f"'{written}' is not a valid reference "
                "(use azureml:<name>:<version>, or a mapping)",
            )
        )
        return
    nested = [a for a in alternatives if isinstance(a, dict) and "_schema" not in a]
    if nested:
        best = min(nested, key=_count)
        _walk(best, path, raw, out)
        return
    first = alternatives[0]
    if isinstance(first, list) and first and isinstance(first[0], str):
        out.append(Problem(path, _reword(first[0].splitlines()[0])))
    else:
        _walk(first, path, raw, out)


def _dict_entry(raw: Any, path: Path, key: str) -> bool:
    """Whether ``path`` is an entry of a mapping the user wrote that has no field ``key``."""
    entry = _value_at(raw, path)
    return isinstance(entry, dict) and key not in entry


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [str(node)]


def _count(node: Any) -> int:
    if isinstance(node, dict):
        return sum(_count(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count(v) for v in node) if node else 1
    return 1


def _key(key: Any) -> str | int:
    return key if isinstance(key, int) else str(key)


def _reword(message: str) -> str:
    message = message.strip()
    if message in _REWORDS:
        return _REWORDS[message]
    first = message.splitlines()[0] if message else message
    return first[:200]


def _value_at(raw: Any, path: Path) -> Any:
    node = raw
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def suggest(word: str, candidates: list[str]) -> str | None:
    """The closest candidate to a misspelt word, if one is close enough."""
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


# -- schema introspection (for "did you mean" on unknown fields) ------------------------------
_SCHEMAS = {
    "ManagedOnlineDeploymentSchema": "azure.ai.ml._schema._deployment.online.online_deployment",
    "KubernetesOnlineDeploymentSchema": "azure.ai.ml._schema._deployment.online.online_deployment",
    "ManagedOnlineEndpointSchema": "azure.ai.ml._schema._endpoint.online.online_endpoint",
    "KubernetesOnlineEndpointSchema": "azure.ai.ml._schema._endpoint.online.online_endpoint",
    "ModelSchema": "azure.ai.ml._schema.assets.model",
}
_HIDDEN = {"schema_ignored", "creation_context", "provisioning_state", "id", "latest_version"}


def _schema_for(message: str) -> Any:
    match = _SCHEMA_NAME.search(message)
    if not match or match.group(1) not in _SCHEMAS:
        return None
    try:
        import importlib

        from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

        module = importlib.import_module(_SCHEMAS[match.group(1)])
        return getattr(module, match.group(1))(context={BASE_PATH_CONTEXT_KEY: "."})
    except Exception:  # private modules of a pinned SDK: suggestions are a nicety
        return None


def field_names(schema: Any, path: Path) -> list[str]:
    """Field names a marshmallow schema accepts at ``path`` (through Nested / Union fields)."""
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(schema, "fields", {}).get(str(part))
        schema = _nested_schema(field)
        if schema is None:
            return []
    return sorted(set(getattr(schema, "fields", {})) - _HIDDEN)


def _nested_schema(field: Any) -> Any:
    if field is None:
        return None
    if hasattr(field, "schema") and hasattr(field.schema, "fields"):
        return field.schema
    for alt in getattr(field, "_union_fields", []) or []:
        nested = _nested_schema(alt)
        if nested is not None:
            return nested
    return None

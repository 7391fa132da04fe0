"""``%%pf_connection`` YAML → a small ``Connection`` whose repr never shows a secret.

Parsed with plain yaml against a table mirroring promptflow 1.18.5's connection schemas
(``promptflow/_sdk/schemas/_connection.py``): promptflow itself is not imported in the kernel.
``${env:VAR}`` values are kept as written (promptflow resolves them when serving).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import yaml

from pfmagic.errors import SpecError
from pfmagic.render.mask import is_reference, mask_mapping, mask_secret
from pfmagic.spec.diagnose import suggest
from pfmagic.spec.positions import Positions

COMMON = ("$schema", "name", "type", "module")


@dataclass(frozen=True)
class ConnectionType:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ("api_key",)


_AAD = ("auth_mode",)
TYPES: dict[str, ConnectionType] = {
    "open_ai": ConnectionType(("api_key", "base_url"), ("organization",)),
    "azure_open_ai": ConnectionType(
        ("api_base",), ("api_key", "api_type", "api_version", "resource_id", *_AAD)
    ),
    "serverless": ConnectionType(("api_key", "api_base")),
    "qdrant": ConnectionType(("api_key", "api_base")),
    "weaviate": ConnectionType(("api_key", "api_base")),
    "cognitive_search": ConnectionType(("api_base",), ("api_key", "api_version", *_AAD)),
    "serp": ConnectionType(("api_key",)),
    "azure_ai_services": ConnectionType(("endpoint",), ("api_key", *_AAD)),
    "azure_content_safety": ConnectionType(("api_key", "endpoint"), ("api_version", "api_type")),
    "form_recognizer": ConnectionType(("api_key", "endpoint"), ("api_version", "api_type")),
    "custom": ConnectionType(("secrets",), ("configs",), secrets=()),
}
# Fields that exist on another type and are silently dropped on this one.
_MISPLACED = {
    ("open_ai", "api_base"): "open_ai connections take base_url; promptflow 1.18.5 "
    "silently drops api_base"
}


@dataclass
class Connection:
    """A promptflow connection as written in the cell. ``repr`` masks every secret."""

    name: str
    type: str
    data: dict[str, Any] = field(repr=False)

    @property
    def secret_keys(self) -> set[str]:
        spec = TYPES.get(self.type)
        keys = set(spec.secrets if spec else ("api_key",))
        if self.type == "custom":
            keys |= {f"secrets.{k}" for k in self.data.get("secrets") or {}}
        return keys

    def to_dict(self) -> dict[str, Any]:
        """The YAML as a dict (with secrets): what ``Backend.create_connection`` receives."""
        return dict(self.data)

    def masked(self) -> dict[str, Any]:
        """The fields with secret values masked (``${env:VAR}`` references are kept)."""
        out = mask_mapping(
            {k: v for k, v in self.data.items() if k not in ("secrets",)},
            set(TYPES[self.type].secrets) if self.type in TYPES else set(),
        )
        if isinstance(self.data.get("secrets"), dict):
            out["secrets"] = {
                k: v if is_reference(v) else mask_secret(v) for k, v in self.data["secrets"].items()
            }
        return out

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in self.masked().items() if k not in ("name", "type", "$schema")
        )
        return f"Connection(name={self.name!r}, type={self.type!r}, {fields})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'><code>{html.escape(str(v))}</code></td></tr>"
            for k, v in self.masked().items()
            if k != "$schema"
        )
        return (
            f"<div class='pfmagic-connection'><b>Connection {html.escape(self.name)}</b>"
            f"<table>{rows}</table></div>"
        )


def parse_connection(text: str, *, line_offset: int = 0) -> Connection:
    """Parse and check a connection YAML; ``SpecError`` names the field and line."""
    positions = Positions(text)

    def fail(message: str, path: tuple[str, ...] = (), hint: str | None = None) -> SpecError:
        line = positions.line(path) if path else None
        return SpecError(
            message,
            field=".".join(path) or None,
            line=line + line_offset if line else None,
            hint=hint,
        )

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            f"YAML syntax: {problem}", line=mark.line + 1 + line_offset if mark else None
        ) from None
    if not isinstance(data, dict):
        raise fail("expected connection fields (name, type, api_key, ...)")
    for key in ("name", "type"):
        if not data.get(key):
            raise fail("required field is missing", (key,))
    kind = str(data["type"])
    spec = TYPES.get(kind)
    if spec is None:
        close = suggest(kind, list(TYPES))
        raise fail(
            f"unknown connection type '{kind}'",
            ("type",),
            hint=f"did you mean '{close}'?" if close else "one of " + ", ".join(TYPES),
        )
    allowed = {*COMMON, *spec.required, *spec.optional}
    for key in data:
        if key in allowed:
            continue
        why = _MISPLACED.get((kind, key))
        if why:
            raise fail(why, (key,), hint="rename api_base to base_url")
        close = suggest(str(key), sorted(allowed - {"$schema"}))
        raise fail(
            f"unknown field for {kind} connections"
            + (f" (did you mean '{close}'?)" if close else ""),
            (key,),
        )
    for key in spec.required:
        if data.get(key) in (None, "", {}):
            raise fail(f"{kind} connections need {key}", (key,))
    for key, value in data.items():
        if key in ("configs", "secrets"):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise fail(f"{key} must be a mapping of strings", (key,))
        elif not isinstance(value, str):
            raise fail(f"must be a string, got {type(value).__name__}", (key,))
    return Connection(name=str(data["name"]), type=kind, data=data)

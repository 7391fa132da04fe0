"""Summary of a parsed model / endpoint / deployment: HTML in notebooks, text elsewhere.

Like jupysql's display objects: ``_repr_html_`` for frontends and a plain ``__repr__``.
Secret-looking environment variables are masked (``pfmagic.render.mask``).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from typing import Any

from pfmagic.render.mask import mask_mapping

Row = tuple[str, str]


def entity_kind(entity: Any) -> str:
    """``managed`` / ``kubernetes`` for endpoints and deployments, ``model`` for models."""
    name = type(entity).__name__
    if name.startswith("Kubernetes"):
        return "kubernetes"
    if name.startswith("Managed"):
        return "managed"
    return name.lower()


def sku_cores(instance_type: str | None) -> int | None:
    """vCPUs of a managed SKU from ``pfmagic.skus`` (another module; optional here)."""
    if not instance_type:
        return None
    try:
        from pfmagic.skus import sku_info
    except ImportError:
        return None
    try:
        info = sku_info(instance_type)
    except Exception:  # unknown SKU: no cores shown
        return None
    if info is None:
        return None
    for attr in ("vcpus", "cores", "v_cpus", "vcpu"):
        value = info.get(attr) if isinstance(info, Mapping) else getattr(info, attr, None)
        if isinstance(value, int):
            return value
    return None


def shown_path(path: Any) -> str:
    """A local path as the user wrote it: relative to the notebook's folder (the kernel's cwd)
    when it lies below it, so saved notebooks don't carry the author's absolute paths."""
    text = str(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive on Windows
        return text
    return rel if not rel.startswith("..") and "://" not in text else text


def model_ref(model: Any) -> str:
    """How a deployment's model reads: ``azureml:name:version`` or the inline folder."""
    if model is None:
        return "-"
    if isinstance(model, str):
        return model if model.startswith("azureml:") else f"azureml:{model}"
    path = getattr(model, "path", None)
    return f"inline {shown_path(path)}" if path else f"{model.name}:{model.version}"


def routes(environment: Any) -> str:
    config = getattr(environment, "inference_config", None) or {}
    parts = []
    for key, label in (
        ("livenessRoute", "liveness"),
        ("readinessRoute", "readiness"),
        ("scoringRoute", "scoring"),
    ):
        route = config.get(key) or config.get(key.replace("Route", "_route").lower())
        if isinstance(route, Mapping):
            parts.append(f"{label} {route.get('path')}:{route.get('port')}")
    return ", ".join(parts)


def _environment(environment: Any) -> str:
    if environment is None:
        return "-"
    if isinstance(environment, str):
        return environment
    build = getattr(environment, "build", None)
    if build is not None:
        return f"build {shown_path(build.path)} ({build.dockerfile_path or 'Dockerfile'})"
    return getattr(environment, "image", None) or environment.name


def summary_rows(entity: Any, *, endpoint: Any = None) -> list[Row]:
    """The fields worth seeing at a glance, in reading order."""
    kind = entity_kind(entity)
    rows: list[Row] = [("kind", kind), ("name", str(entity.name))]
    if kind == "model":
        rows += [
            ("version", str(entity.version or "(next)")),
            ("path", shown_path(entity.path)),
            ("type", str(entity.type)),
        ]
        props = {
            k.removeprefix("azureml.promptflow."): v
            for k, v in (entity.properties or {}).items()
            if k.startswith("azureml.promptflow.")
        }
        if props:
            rows.append(("prompt flow", ", ".join(f"{k}={v}" for k, v in props.items())))
    elif type(entity).__name__.endswith("Endpoint"):
        rows.append(("auth mode", str(entity.auth_mode)))
        if kind == "kubernetes":
            rows.append(("compute", str(entity.compute)))
        identity = getattr(entity, "identity", None)
        if identity is not None:
            rows.append(("identity", str(identity.type)))
        if entity.traffic:
            rows.append(("traffic", ", ".join(f"{k}={v}%" for k, v in entity.traffic.items())))
        if entity.properties:
            rows.append(("properties", ", ".join(f"{k}={v}" for k, v in entity.properties.items())))
    else:
        rows.append(("endpoint", str(entity.endpoint_name)))
        if endpoint is not None:
            rows.append(("auth mode", str(endpoint.auth_mode)))
        rows.append(("model", model_ref(entity.model)))
        cores = sku_cores(entity.instance_type)
        suffix = f" ({cores} cores)" if cores else ""
        rows.append(("instance type", f"{entity.instance_type}{suffix}"))
        rows.append(("instance count", str(entity.instance_count)))
        rows.append(("environment", _environment(entity.environment)))
        route_text = routes(entity.environment)
        if route_text:
            rows.append(("routes", route_text))
        env = mask_mapping(entity.environment_variables)
        for key, value in env.items():
            rows.append((f"env {key}", str(value)))
    if getattr(entity, "description", None):
        rows.append(("description", str(entity.description)))
    return rows


class EntitySummary:
    """What a ``%%pf_model`` / ``%%pf_endpoint`` / ``%%pf_deployment`` cell shows.

    ``entity`` is the azure-ai-ml object; ``warnings`` are ``Problem``s (field, line, message);
    ``note`` an extra line such as "registered basic-chat-model:1".
    """

    def __init__(
        self,
        entity: Any,
        warnings: list[Any] | None = None,
        *,
        endpoint: Any = None,
        note: str | None = None,
    ):
        self.entity = entity
        self.warnings = list(warnings or [])
        self.note = note
        self.rows = summary_rows(entity, endpoint=endpoint)

    @property
    def title(self) -> str:
        # ManagedOnlineDeployment → "Managed online deployment"
        noun = re.sub(r"(?<!^)([A-Z])", r" \1", type(self.entity).__name__).lower()
        return f"{noun[0].upper()}{noun[1:]} {self.entity.name}"

    def warning_lines(self) -> list[str]:
        out = []
        for w in self.warnings:
            where = ", ".join(
                x
                for x in (
                    f"field '{w.field}'" if w.field else "",
                    f"line {w.line}" if w.line else "",
                )
                if x
            )
            out.append(f"{where}: {w.message}" if where else w.message)
        return out

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.rows)
        lines = [self.title] + [f"  {k.ljust(width)}  {v}" for k, v in self.rows]
        if self.note:
            lines.append(f"  {self.note}")
        warnings = self.warning_lines()
        if warnings:
            lines.append(f"  warnings ({len(warnings)}):")
            lines += [f"    ! {w}" for w in warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{esc(k)}</th>"
            f"<td style='text-align:left'><code>{esc(v)}</code></td></tr>"
            for k, v in self.rows
        )
        parts = [f"<div class='pfmagic-entity'><b>{esc(self.title)}</b>", f"<table>{body}</table>"]
        if self.note:
            parts.append(f"<p>{esc(self.note)}</p>")
        warnings = self.warning_lines()
        if warnings:
            items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
            parts.append(
                f"<p style='margin-bottom:0'>&#9888; warnings ({len(warnings)})</p><ul>{items}</ul>"
            )
        parts.append("</div>")
        return "".join(parts)

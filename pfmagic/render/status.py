"""Endpoint and deployment status (``%pf_status``, ``%pf_traffic``, ``%pf_endpoints``).

``with_status(entity, …)`` returns the very azure-ai-ml object (``ep.traffic``, ``ep.scoring_uri``
work; it can be sent back to ``MLClient``) whose class is swapped for a subclass that displays a
short status (HTML + text) instead of the full YAML dump, and masks secret-looking environment
variables. No azure.ai.ml import here: the subclass derives from whatever class it is given.
"""

from __future__ import annotations

import html
import re
from typing import Any

from pfmagic.render.mask import mask_mapping
from pfmagic.render.style import badge

_classes: dict[type, type] = {}
# JupyterLab right-aligns table cells by default; text reads better left-aligned
_TH = "text-align:left;padding-right:1em;vertical-align:top"
# split-bar segments and their plain-text fills, one per deployment in order
_SEGMENTS = ("#0f6cbd", "#c239b3", "#ca5010", "#107c10", "#5c2e91")
_FILLS = "█▓▒░#"
_BAR_CELLS = 20


def _traffic_text(traffic: dict[str, Any] | None) -> str:
    return ", ".join(f"{d}={p}%" for d, p in (traffic or {}).items()) or "-"


def _split(
    after: dict[str, Any] | None, before: dict[str, Any] | None = None
) -> list[tuple[str, int | None, int]]:
    """(deployment, percent before or None, percent after) for every deployment named."""
    names = list(after or {}) + [d for d in (before or {}) if d not in (after or {})]
    return [
        (d, None if before is None else int((before or {}).get(d, 0)), int((after or {}).get(d, 0)))
        for d in names
    ]


def split_text(after: dict[str, Any] | None, before: dict[str, Any] | None = None) -> str:
    """``blue=90% → 100%, green=10% → 0%`` (only the after values when nothing changed)."""
    split = _split(after, before)
    if not split:
        return "-"
    changed = before is not None and any(b != a for _, b, a in split)
    return ", ".join(f"{d}={b}% → {a}%" if changed else f"{d}={a}%" for d, b, a in split)


def split_bar_text(after: dict[str, Any] | None) -> str:
    """The after split as a 20-cell text bar, one fill character per deployment."""
    cells = ""
    for i, (_d, _b, a) in enumerate(_split(after)):
        cells += _FILLS[i % len(_FILLS)] * round(a * _BAR_CELLS / 100)
    return "[" + cells[:_BAR_CELLS].ljust(_BAR_CELLS, " ") + "]"


def split_bar_html(after: dict[str, Any] | None) -> str:
    """The after split as a CSS bar (no JavaScript), each segment titled and labelled."""
    segs, labels = [], []
    for i, (d, _b, a) in enumerate(_split(after)):
        color = _SEGMENTS[i % len(_SEGMENTS)]
        if a:
            segs.append(
                f"<div title='{html.escape(d)} {a}%' style='width:{a}%;background:{color}'></div>"
            )
        labels.append(
            f"<span style='white-space:nowrap;margin-right:1em'><span style='display:inline-block;"
            f"width:.8em;height:.8em;background:{color};margin-right:.3em'></span>"
            f"{html.escape(d)} {a}%</span>"
        )
    return (
        "<div style='display:flex;width:16em;height:.8em;margin-top:.3em;"
        "border:1px solid #8a8a8a;background:transparent'>" + "".join(segs) + "</div>"
        f"<div style='font-size:90%'>{''.join(labels)}</div>"
    )


def _model_text(model: Any) -> str:
    if model is None or isinstance(model, str):
        # Azure answers an ARM / registry id: show name:version as the cell wrote it
        m = re.search(r"/models/([^/]+)/versions/([^/]+)/?$", model or "")
        return f"{m[1]}:{m[2]}" if m else (model or "-")
    name, version = getattr(model, "name", None), getattr(model, "version", None)
    return f"{name}:{version}" if version else str(name or "-")


def endpoint_rows(
    ep: Any, deployments: list[Any] | None = None, before: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    rows = [
        ("name", ep.name),
        ("state", str(ep.provisioning_state or "?")),
        ("auth", str(getattr(ep, "auth_mode", "") or "-")),
        ("scoring uri", ep.scoring_uri or "-"),
        ("traffic", split_text(ep.traffic, before)),
    ]
    if before is not None and ep.traffic:  # a traffic change: the new split as a bar
        rows.append(("split", split_bar_text(ep.traffic)))
    if getattr(ep, "mirror_traffic", None):
        rows.append(("mirror", _traffic_text(ep.mirror_traffic)))
    if deployments is not None:
        rows.append(
            (
                "deployments",
                ", ".join(f"{d.name} ({d.provisioning_state or '?'})" for d in deployments) or "-",
            )
        )
    return rows


def deployment_rows(dep: Any, traffic: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    rows = [
        ("name", f"{dep.endpoint_name}/{dep.name}"),
        ("state", str(dep.provisioning_state or "?")),
        ("model", _model_text(dep.model)),
        ("instances", f"{dep.instance_count or '?'} × {dep.instance_type or '?'}"),
    ]
    if traffic is not None:
        rows.append(("traffic", f"{traffic.get(dep.name, 0)}%"))
    env = mask_mapping(getattr(dep, "environment_variables", None))
    if env:
        rows.append(("environment", ", ".join(f"{k}={v}" for k, v in env.items())))
    return rows


def rows_text(title: str, rows: list[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join([title] + [f"  {k.ljust(width)}  {v}" for k, v in rows])


def rows_html(
    title: str, rows: list[tuple[str, str]], traffic: dict[str, Any] | None = None
) -> str:
    """The rows as a left-aligned table: states as badges, the split row as a bar."""
    cells = []
    for k, v in rows:
        if k == "state":
            value = badge(v)
        elif k == "traffic" and traffic:
            value = html.escape(v) + split_bar_html(traffic)
        elif k == "split":
            continue  # the HTML face draws the bar under the traffic row
        else:
            value = html.escape(v)
        cells.append(
            f"<tr><th style='{_TH}'>{html.escape(k)}</th><td style='{_TH}'>{value}</td></tr>"
        )
    return f"<b>{html.escape(title)}</b><table>{''.join(cells)}</table>"


class _StatusMixin:
    """Display of an entity whose class was swapped by ``with_status``.

    Its methods are copied into a direct subclass of the entity's class: a mixin base would
    change the memory layout and forbid the ``__class__`` swap.
    """

    _pf_title: str = ""
    _pf_rows: list[tuple[str, str]] = []
    _pf_traffic: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return rows_text(self._pf_title, self._pf_rows)

    def __str__(self) -> str:  # azure-ai-ml's str() dumps YAML, env vars included
        return rows_text(self._pf_title, self._pf_rows)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return rows_html(self._pf_title, self._pf_rows, self._pf_traffic)


def with_status(
    entity: Any, title: str, rows: list[tuple[str, str]], traffic: dict[str, Any] | None = None
) -> Any:
    """``entity`` itself, displayed as ``title`` + ``rows`` (its class becomes a subclass)."""
    base = type(entity)
    if getattr(base, "_pf_status", False):
        base = base.__mro__[1]
    cls = _classes.get(base)
    if cls is None:
        methods = {
            k: v
            for k, v in vars(_StatusMixin).items()
            if k.startswith(("_pf", "__repr__", "__str__", "_repr"))
        }
        cls = type(
            f"{base.__name__}Status",
            (base,),
            {**methods, "_pf_status": True, "__module__": __name__},
        )
        _classes[base] = cls
    entity.__class__ = cls
    # class-level defaults keep these out of the entity's own fields until set here
    entity._pf_title = title
    entity._pf_rows = rows
    entity._pf_traffic = traffic
    return entity


def endpoint_status(
    ep: Any, deployments: list[Any] | None = None, before: dict[str, Any] | None = None
) -> Any:
    """``ep`` as a status table; ``before`` (the split before a change) adds before → after."""
    rows = endpoint_rows(ep, deployments, before)
    return with_status(ep, f"endpoint {ep.name}", rows, dict(ep.traffic or {}))


def deployment_status(dep: Any, traffic: dict[str, Any] | None = None) -> Any:
    return with_status(
        dep, f"deployment {dep.endpoint_name}/{dep.name}", deployment_rows(dep, traffic)
    )


class EndpointTable(list):
    """``%pf_endpoints``: a list of endpoints shown as a table."""

    COLUMNS = ("name", "state", "scoring uri", "traffic", "deployments")

    def __init__(self, endpoints: list[Any], deployments: dict[str, list[Any]]):
        super().__init__(endpoints)
        self.deployments = deployments

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                ep.name,
                str(ep.provisioning_state or "?"),
                ep.scoring_uri or "-",
                _traffic_text(ep.traffic),
                ", ".join(
                    f"{d.name} ({d.provisioning_state or '?'})"
                    for d in self.deployments.get(ep.name, [])
                )
                or "-",
            )
            for ep in self
        ]

    def _cells_html(self, ep: Any, row: tuple[str, ...]) -> list[str]:
        deps = self.deployments.get(ep.name, [])
        return [
            html.escape(row[0]),
            badge(row[1]),
            html.escape(row[2]),
            html.escape(row[3]),
            " ".join(f"{html.escape(d.name)} {badge(d.provisioning_state)}" for d in deps) or "-",
        ]

    def __repr__(self) -> str:
        if not self:
            return "no endpoints"
        table = [self.COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.COLUMNS))]
        lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table)
        return "\n".join(line.rstrip() for line in lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        if not self:
            return "<i>no endpoints</i>"
        head = "".join(f"<th style='{_TH}'>{c}</th>" for c in self.COLUMNS)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='{_TH}'>{c}</td>" for c in self._cells_html(ep, r))
            + "</tr>"
            for ep, r in zip(self, self.rows(), strict=True)
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

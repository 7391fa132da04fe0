"""``EndpointMetrics``: one endpoint's metrics over a window, on either backend.

Built from a *snapshot* dict (the local router's ``/_pfmagic/metrics?format=json`` reply; the
Azure backend builds the same shape from Azure Monitor): ``deployments`` (totals per
deployment), ``series`` (one row per interval and deployment), ``unauthorized``, and
``notes``: one-line remarks on what the backend could not read (shown under the title).
"""

from __future__ import annotations

import base64
import html
from typing import Any

from pfmagic.metrics.window import format_window

COLUMNS = (
    "requests",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "flow_p50_ms",  # promptflow's own flow duration (local backend)
    "flow_p95_ms",
    "tokens",  # prompt + completion; <NA> where unknown (Azure without Application Insights)
    "prompt_tokens",  # the split, where the backend has it (Azure: Application Insights)
    "completion_tokens",
    "cpu_percent",
    "memory_mb",
    "memory_percent",
    "mirrored",
)
SERIES_COLUMNS = ("time", "deployment", *COLUMNS)


class EndpointMetrics:
    """``.frame``: DataFrame indexed by deployment (``COLUMNS``); ``.series``: per-interval
    rows (``time`` UTC, ``deployment``, the same columns); ``.unauthorized``: 401s of the
    endpoint in the window. Displays as a small figure with the table beside it."""

    def __init__(
        self,
        snapshot: dict[str, Any],
        *,
        backend: str = "local",
        deployment: str | None = None,
    ):
        import pandas as pd

        self.endpoint: str = snapshot.get("endpoint", "?")
        self.backend = backend
        self.deployment = deployment
        self.window = float(snapshot.get("window") or 0)
        self.interval = float(snapshot.get("interval") or 60)
        self.unauthorized = int(snapshot.get("unauthorized") or 0)
        self.unrouted = int(snapshot.get("unrouted") or 0)
        self.notes: list[str] = list(snapshot.get("notes") or [])
        self.as_of = pd.Timestamp(snapshot.get("now") or 0, unit="s", tz="UTC")
        deps = snapshot.get("deployments") or {}
        if deployment is not None:
            deps = {k: v for k, v in deps.items() if k == deployment}
        frame = pd.DataFrame.from_dict(deps, orient="index")
        frame = frame.reindex(columns=list(COLUMNS))
        frame = frame.sort_index()  # the router lists deployments in start order
        frame.index.name = "deployment"
        for col in ("requests", "errors", "mirrored"):
            frame[col] = frame[col].fillna(0).astype("int64")
        for col in ("tokens", "prompt_tokens", "completion_tokens"):  # unknown stays <NA>, not 0
            frame[col] = frame[col].astype("Int64")
        self.frame = frame
        rows = [r for r in snapshot.get("series") or [] if deployment in (None, r["deployment"])]
        series = pd.DataFrame(rows).reindex(columns=list(SERIES_COLUMNS))
        series["time"] = pd.to_datetime(series["time"], unit="s", utc=True)
        self.series = series

    # -- figures -----------------------------------------------------------------------------
    @property
    def has_traffic(self) -> bool:
        return bool(int(self.frame["requests"].sum()) or self.unauthorized)

    def title(self) -> str:
        what = self.endpoint + (f"/{self.deployment}" if self.deployment else "")
        step = format_window(self.interval)
        return f"{what} ({self.backend}): last {format_window(self.window)}, {step} intervals"

    def figure(self) -> Any:
        from pfmagic.metrics.plot import draw

        return draw(self)

    def _repr_png_(self) -> bytes:
        from pfmagic.metrics.plot import png

        return png(self.figure())

    def _shown(self) -> Any:
        """The frame as displayed: empty columns dropped, except ``tokens``, which says
        ``unknown`` where the backend could not count them."""
        shown = self.frame.dropna(axis=1, how="all")
        if len(self.frame) and self.frame["tokens"].isna().any():
            keep = [c for c in self.frame.columns if c in shown.columns or c == "tokens"]
            shown = self.frame[keep].astype({"tokens": object})
            shown["tokens"] = shown["tokens"].where(shown["tokens"].notna(), "unknown")
        return shown

    def _table_text(self) -> str:
        shown = self._shown()
        return shown.to_string() if len(shown) else "(no deployments)"

    def __repr__(self) -> str:
        lines = [
            f"metrics of {self.title()}",
            f"401 unauthorized: {self.unauthorized}",
            *self.notes,
            self._table_text(),
        ]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _table_html(self) -> str:
        shown = self._shown()
        return shown.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.1f}")

    def _page(self, picture: bytes) -> str:
        img = base64.b64encode(picture).decode()
        return (
            f"<div><b>{html.escape(self.title())}</b> · 401 unauthorized: {self.unauthorized}"
            + "".join(f"<br/>{html.escape(n)}" for n in self.notes)
            + '<div style="display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap">'
            f'<img alt="metrics of {html.escape(self.endpoint)}" '
            f'src="data:image/png;base64,{img}"/>{self._table_html()}</div></div>'
        )

    def _repr_html_(self) -> str:
        return self._page(self._repr_png_())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The picture as ``image/png`` too: kept by nbconvert, GitHub and frontends that do
        not render HTML; ``text/plain`` is the table (what nbval compares)."""
        picture = self._repr_png_()
        return {"text/plain": repr(self), "text/html": self._page(picture), "image/png": picture}

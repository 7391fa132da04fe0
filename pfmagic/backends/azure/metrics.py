"""Azure Monitor metrics of an online endpoint, as the same snapshot the local router serves.

Through azure-monitor-query's ``MetricsQueryClient`` (ARM ``Microsoft.Insights/metrics``;
the MLClient's transport and credential, so tests and sovereign clouds work alike), at
one-minute grain:

* endpoint resource: ``RequestsPerMinute`` (Total) split by ``deployment`` and
  ``statusCode`` -- requests, errors (non-2xx) and 401s; ``RequestLatency_P50/P95/P99``
  (Average) split by ``deployment``;
* each deployment resource: ``CpuUtilizationPercentage`` and
  ``CpuMemoryUtilizationPercentage`` (Average; Azure reports memory as a percentage).

Window totals of latency percentiles are the request-weighted mean of the per-minute values
(Azure Monitor gives no percentile over a window). Tokens (prompt + completion) come from the
workspace's Application Insights, where promptflow sends them (``app_insights.py``).
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from pfmagic.errors import NotFound, PfError

ARM = "https://management.azure.com"
LATENCY = {
    "RequestLatency_P50": "p50_ms",
    "RequestLatency_P95": "p95_ms",
    "RequestLatency_P99": "p99_ms",
}
RESOURCES = {
    "CpuUtilizationPercentage": "cpu_percent",
    "CpuMemoryUtilizationPercentage": "memory_percent",
}


def metrics_client(backend: Any) -> Any:
    from azure.monitor.query import MetricsQueryClient

    ml = backend.ml_client
    kwargs = {k: v for k, v in backend.client_kwargs.items() if k in ("transport", "retry_total")}
    return MetricsQueryClient(ml._credential, endpoint=ARM, **kwargs)


def _rows(result: Any, value: str) -> list[tuple[str, dict[str, str], float, float]]:
    """(metric, dimensions, unix time, value) for every point that has a value."""
    out = []
    for metric in result.metrics:
        for series in metric.timeseries:
            dims = {k.lower(): v for k, v in (series.metadata_values or {}).items()}
            for point in series.data:
                v = getattr(point, value)
                if v is not None:
                    out.append((metric.name, dims, point.timestamp.timestamp(), float(v)))
    return out


def query(backend: Any, endpoint: str, deployment: str | None, window: float) -> dict[str, Any]:
    backend.get_endpoint(endpoint)  # NotFound for an unknown endpoint
    deployments = list(backend.list_deployments(endpoint))
    names = sorted(d.name for d in deployments)
    if deployment is not None and deployment not in names:
        raise NotFound(
            f"deployment '{deployment}' not found in endpoint '{endpoint}'",
            hint=f"its deployments: {', '.join(names)}" if names else "it has none",
        )
    ml = backend.ml_client
    ep_id = (
        f"/subscriptions/{ml.subscription_id}/resourceGroups/{ml.resource_group_name}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ml.workspace_name}"
        f"/onlineEndpoints/{endpoint}"
    )
    client = metrics_client(backend)
    span = timedelta(seconds=window)
    grain = timedelta(minutes=1)
    try:
        requests = client.query_resource(
            ep_id,
            ["RequestsPerMinute"],
            timespan=span,
            granularity=grain,
            aggregations=["Total"],
            filter="deployment eq '*' and statusCode eq '*'",
        )
        latency = client.query_resource(
            ep_id,
            list(LATENCY),
            timespan=span,
            granularity=grain,
            aggregations=["Average"],
            filter="deployment eq '*'",
        )
        usage = {
            name: client.query_resource(
                f"{ep_id}/deployments/{name}",
                list(RESOURCES),
                timespan=span,
                granularity=grain,
                aggregations=["Average"],
            )
            for name in names
        }
    except Exception as exc:
        from pfmagic.backends.azure.errors import map_error

        raise map_error(exc, what=f"metrics of {endpoint}") from None

    series: dict[tuple[float, str], dict[str, Any]] = {}

    def row(t: float, name: str) -> dict[str, Any]:
        return series.setdefault(
            (t, name),
            {"time": t, "deployment": name, "requests": 0, "errors": 0, "mirrored": 0},
        )

    unauthorized = 0
    points = 0
    for _metric, dims, t, v in _rows(requests, "total"):
        points += 1
        code = dims.get("statuscode", "")
        name = dims.get("deployment") or ""
        if code == "401":
            unauthorized += int(v)
        if name not in names:
            continue
        r = row(t, name)
        r["requests"] += int(v)
        if not code.startswith("2"):
            r["errors"] += int(v)
    for metric, dims, t, v in _rows(latency, "average"):
        points += 1
        name = dims.get("deployment") or ""
        if name in names:
            row(t, name)[LATENCY[metric]] = v
    for name, result in usage.items():
        for metric, _dims, t, v in _rows(result, "average"):
            points += 1
            row(t, name)[RESOURCES[metric]] = v
    from pfmagic.backends.azure.app_insights import TOKEN_TYPES, query_tokens

    tokens = query_tokens(backend, endpoint, deployments, window)
    for t, name in tokens.by_minute:  # minutes with tokens but no Azure Monitor point
        row(t, name)
    for (t, name), r in series.items():
        cell = tokens.by_minute.get((t, name), {})
        for col in TOKEN_TYPES:
            r[col] = cell.get(col, 0) if name in tokens.known else None
        r["tokens"] = r["prompt_tokens"] + r["completion_tokens"] if name in tokens.known else None
    if not points and not tokens.by_minute:
        raise PfError(
            f"endpoint '{endpoint}': Azure Monitor has no metrics for it yet",
            hint="they appear a few minutes after its first requests",
        )
    totals: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = [r for (_t, n), r in sorted(series.items()) if n == name]
        served = sum(r["requests"] for r in rows)
        total: dict[str, Any] = {
            "requests": served,
            "errors": sum(r["errors"] for r in rows),
            "mirrored": 0,
        }
        for col in ("tokens", *TOKEN_TYPES):
            total[col] = sum(r[col] for r in rows) if name in tokens.known else None
        for col in LATENCY.values():
            pairs = [(r[col], r["requests"]) for r in rows if r.get(col) is not None]
            weight = sum(w for _v, w in pairs)
            total[col] = (
                round(sum(v * w for v, w in pairs) / weight, 2)
                if weight
                else (round(sum(v for v, _w in pairs) / len(pairs), 2) if pairs else None)
            )
        for col in RESOURCES.values():
            latest = [r[col] for r in rows if r.get(col) is not None and not math.isnan(r[col])]
            total[col] = round(latest[-1], 1) if latest else None
        totals[name] = total
    return {
        "endpoint": endpoint,
        "interval": 60.0,
        "now": time.time(),
        "window": window,
        "deployments": totals,
        "unauthorized": unauthorized,
        "series": [r for _k, r in sorted(series.items())],
        "notes": [tokens.note] if tokens.note else [],
    }

"""LLM tokens of an online endpoint from Application Insights (``app_insights_enabled: true``).

promptflow 1.18.5 counts them itself while serving (``promptflow/core/_serving/monitor/
metrics.py``): the OpenTelemetry counter ``Token_Consumption`` per LLM node, attribute
``token_type`` = ``prompt_tokens`` / ``completion_tokens``, plus the common dimensions
``endpoint`` and ``deployment`` (``extension/azureml_extension.py``). A deployment with
``app_insights_enabled: true`` exports them with ``AzureMonitorMetricExporter`` to the
workspace's Application Insights, where each export is one ``customMetrics`` row (counters are
exported with delta temporality, so ``valueSum`` is the count since the previous export).

Read with azure-monitor-query's ``LogsQueryClient.query_resource`` on the component the
workspace names (a resource-centric query sees the component's classic tables), summed per
minute -- the grain of the Azure Monitor metrics beside them. The result's columns are
``timestamp``, ``name`` (``<deployment>/<token_type>``; deployment names hold no ``/``) and
``count_``.

Tokens stay *unknown* (``None``, not 0) for a deployment without ``app_insights_enabled``,
and for all when the workspace has no Application Insights, the query fails, or promptflow
has sent nothing for the endpoint yet; ``note`` says which, in one line. Once some rows came,
an enabled deployment without rows counted 0 (promptflow adds only counts > 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

LOGS = "https://api.loganalytics.io/v1"
METRIC = "Token_Consumption"
TOKEN_TYPES = ("prompt_tokens", "completion_tokens")  # promptflow's LLMTokenType values


@dataclass
class Tokens:
    """Per (unix minute, deployment): {"prompt_tokens": n, "completion_tokens": n}."""

    by_minute: dict[tuple[float, str], dict[str, int]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # deployments whose counts are known
    note: str | None = None


def kql(endpoint: str) -> str:
    # json.dumps gives a double-quoted literal with backslash escapes, which KQL reads alike
    return (
        f"customMetrics | where name == {json.dumps(METRIC)}"
        f" and tostring(customDimensions.endpoint) == {json.dumps(endpoint)}"
        " | summarize count_ = tolong(sum(valueSum)) by timestamp = bin(timestamp, 1m),"
        ' name = strcat(tostring(customDimensions.deployment), "/",'
        " tostring(customDimensions.token_type))"
    )


def logs_client(backend: Any) -> Any:
    from azure.monitor.query import LogsQueryClient

    kwargs = {k: v for k, v in backend.client_kwargs.items() if k in ("transport", "retry_total")}
    return LogsQueryClient(backend.ml_client._credential, endpoint=LOGS, **kwargs)


def query_tokens(backend: Any, endpoint: str, deployments: list[Any], window: float) -> Tokens:
    enabled = sorted(d.name for d in deployments if getattr(d, "app_insights_enabled", False))
    if not enabled:
        return Tokens(
            note=f"tokens unknown: no deployment of '{endpoint}' has app_insights_enabled: true"
        )
    ml = backend.ml_client
    try:
        component = getattr(ml.workspaces.get(ml.workspace_name), "application_insights", None)
    except Exception as exc:  # Azure Monitor's figures are still worth showing
        return Tokens(note=f"tokens unknown: the workspace could not be read ({_why(exc)})")
    if not component:
        return Tokens(
            note=f"tokens unknown: workspace '{ml.workspace_name}' has no Application Insights"
        )
    from azure.monitor.query import LogsQueryStatus

    try:
        result = logs_client(backend).query_resource(
            component, kql(endpoint), timespan=timedelta(seconds=window)
        )
    except Exception as exc:
        return Tokens(note=f"tokens unknown: the Application Insights query failed ({_why(exc)})")
    partial = result.status != LogsQueryStatus.SUCCESS
    tables = result.partial_data if partial else result.tables
    out = Tokens()
    for table in tables or []:
        cols = list(table.columns)
        if not {"timestamp", "name", "count_"} <= set(cols):
            continue
        at, key, count = cols.index("timestamp"), cols.index("name"), cols.index("count_")
        for row in table.rows:
            name, _, token_type = str(row[key]).rpartition("/")
            if name not in enabled or token_type not in TOKEN_TYPES:
                continue
            if row[count] is None or not hasattr(row[at], "timestamp"):
                continue
            cell = out.by_minute.setdefault((row[at].timestamp(), name), {})
            cell[token_type] = cell.get(token_type, 0) + int(row[count])
    if not out.by_minute:
        out.note = (
            f"tokens unknown: Application Insights has no promptflow token metrics for "
            f"'{endpoint}' in this window yet"
            if not partial
            else "tokens unknown: the Application Insights query returned only part of its data"
        )
        return out
    out.known = set(enabled)
    if partial:
        out.note = "tokens may be incomplete: Application Insights returned part of its data"
    return out


def _why(exc: Exception) -> str:
    """The service's error code (``BadArgumentError``), else the status, else the kind."""
    code = getattr(getattr(exc, "error", None), "code", None)
    return str(code or getattr(exc, "status_code", None) or type(exc).__name__)

"""promptflow's own per-request figures (LLM tokens, flow duration), instance -> router.

promptflow's serving app hands every request's run info to its ``FlowMonitor``'s metrics
recorder (``record_tracing_metrics(flow_run, node_runs)``, promptflow 1.18.5
``core/_serving/monitor/flow_monitor.py``): each node run's ``system_metrics`` holds
``prompt_tokens`` / ``completion_tokens`` when the node called an LLM, the flow run's holds
``duration`` (seconds, the executor's time). Without Application Insights that recorder is
None and the figures are dropped; promptflow only exports them through OpenTelemetry.

``install(app)`` (in the instance, after ``create_app``) reads the same run info where the
monitor finishes a request, leaving promptflow's recorder as it is (App Insights export and
error handling unchanged), and returns the app wrapped in ``Carrier``, an ASGI layer that adds
the figures to the reply's head as ``x-pfmagic-flow-figures``. The router reads
that header (``parse``) and never passes instance headers on, so the ``/score`` contract is
unchanged. An event stream's head carries what promptflow knew when it went out; the tokens
promptflow-tracing counts once the stream is used up follow by ``stream_figures.py``.

promptflow only collects token counts while tracing is on (``PF_DISABLE_TRACING``, default
"true": its tracer then records no LLM calls), so ``enable_tracing()`` turns it on unless the
deployment set it. Nothing here starts a thread or imports OpenTelemetry's metrics SDK.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass
from typing import Any

HEADER = "x-pfmagic-flow-figures"
_HEADER_BYTES = HEADER.encode()
TOKEN_KEYS = ("prompt_tokens", "completion_tokens")

# One dict per request, set by ``Carrier``; promptflow's middleware runs the app in child
# tasks, which see the same dict (contextvars are copied, the dict is shared).
_slot: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pfmagic_flow_figures", default=None
)


@dataclass(frozen=True)
class FlowFigures:
    """What promptflow reported for one request; None where it reported nothing."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    flow_ms: float | None = None
    # a node streams an LLM call: its tokens follow when the stream ends (stream_figures.py)
    streamed_later: bool = False

    @property
    def tokens(self) -> int | None:
        """prompt + completion, or None when no node reported any token count."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def encode(self) -> bytes:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("prompt", self.prompt_tokens),
                ("completion", self.completion_tokens),
                ("flow_ms", None if self.flow_ms is None else round(self.flow_ms, 3)),
                ("later", 1 if self.streamed_later else None),
            )
            if value is not None
        ]
        return ";".join(parts).encode("ascii")


def parse(value: str | None) -> FlowFigures | None:
    """The header's figures (router side); None for no header. Unknown or bad parts are
    ignored: an instance never makes the router fail a reply."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        name, _, text = part.partition("=")
        fields[name.strip()] = text.strip()

    def count(name: str) -> int | None:
        text = fields.get(name, "")
        return int(text) if text.isdigit() else None

    try:
        flow_ms: float | None = float(fields["flow_ms"])
        if not flow_ms >= 0:  # NaN too
            flow_ms = None
    except (KeyError, ValueError):
        flow_ms = None
    return FlowFigures(count("prompt"), count("completion"), flow_ms, fields.get("later") == "1")


def figures_of(flow_run: Any, node_runs: dict[str, Any] | None) -> FlowFigures:
    """Tokens summed over the node runs (as promptflow's ``Token_Consumption`` metric counts
    them) and the flow run's duration."""
    sums: dict[str, int | None] = dict.fromkeys(TOKEN_KEYS)
    later = False
    for run in (node_runs or {}).values():
        if _streamed(getattr(run, "api_calls", None)):
            later = True
            # a streamed LLM call, its stream not read yet: promptflow counted the prompt and
            # 0 completion tokens (over the chunks seen so far: none); the whole call is
            # counted when the stream ends (stream_figures.py), so the node is left out here
            continue
        metrics = getattr(run, "system_metrics", None) or {}
        for key in TOKEN_KEYS:
            value = metrics.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                sums[key] = (sums[key] or 0) + value
    duration = (getattr(flow_run, "system_metrics", None) or {}).get("duration")
    flow_ms = duration * 1000 if isinstance(duration, (int, float)) and duration >= 0 else None
    return FlowFigures(sums["prompt_tokens"], sums["completion_tokens"], flow_ms, later)


def _streamed(calls: Any, depth: int = 0) -> bool:
    """Whether a node's traced calls include a streamed one (``stream: true`` in its inputs)."""
    for call in calls or []:
        if not isinstance(call, dict) or depth > 8:
            continue
        if (call.get("inputs") or {}).get("stream") is True:
            return True
        if _streamed(call.get("children"), depth + 1):
            return True
    return False


class Carrier:
    """ASGI layer around promptflow's app: the request's figures ride on the reply's head."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != "/score":
            await self.app(scope, receive, send)
            return
        slot: dict[str, Any] = {}
        token = _slot.set(slot)

        async def send_with_figures(message: Any) -> None:
            if message.get("type") == "http.response.start":
                figures = slot.get("figures")
                if figures is not None:
                    encoded = figures.encode()
                    if encoded:
                        headers = list(message.get("headers") or [])
                        headers.append((_HEADER_BYTES, encoded))
                        message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_figures)
        finally:
            _slot.reset(token)


# promptflow 1.18.5 adds up every field of an OpenAI reply's ``usage``; openai 1.x puts the
# ``*_tokens_details`` (None or objects) after the three counts, so the counts are summed and
# then the addition fails with this warning, once per LLM call (tracing/_openai_utils.py).
_USAGE_DETAILS_WARNING = "Failed to calculate metrics due to exception: unsupported operand"


def _not_usage_details_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_USAGE_DETAILS_WARNING)


def enable_tracing(environ: Any) -> None:
    """promptflow counts LLM tokens only with tracing on; a deployment may still turn it off
    (``PF_DISABLE_TRACING: "true"``, then no token figures). The two complaints tracing brings
    for every OpenAI reply (OpenTelemetry about None attributes, promptflow about adding up
    the usage details) would otherwise fill the deployment's log."""
    environ.setdefault("PF_DISABLE_TRACING", "false")
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    # promptflow's flow_logger is a logging.Logger of its own, not logging.getLogger's
    from promptflow._utils.logger_utils import flow_logger

    flow_logger.addFilter(_not_usage_details_warning)


def install(app: Any) -> Carrier:
    """Capture promptflow's figures in ``app`` (a promptflow serving app, or an ASGI layer
    around one with its ``flow_monitor``); serve the result.

    ``FlowMonitor.finish_monitoring`` runs once per request after the flow, before the reply's
    head goes out; the flow result is read there. promptflow's own recorder (None without
    Application Insights) is left as it is, so none of promptflow's paths change."""
    from pfmagic.backends.local import stream_figures

    stream_figures.watch_streamed_tokens()
    monitor = getattr(app, "flow_monitor", None)
    app = stream_figures.StreamFigures(app)  # inside Carrier: runs in the request's slot
    if monitor is None:
        return Carrier(app)
    original = monitor.finish_monitoring

    def finish_monitoring(resp_status_code: int) -> Any:
        slot = _slot.get()
        if slot is not None:
            try:
                result = monitor.context_data_provider.get_flow_result()
                if result is not None:
                    slot["figures"] = figures_of(result.run_info, result.node_run_infos)
            except Exception:  # a figure is never worth a failed reply
                logging.getLogger(__name__).debug("flow figures failed", exc_info=True)
        return original(resp_status_code)

    monitor.finish_monitoring = finish_monitoring
    return Carrier(app)

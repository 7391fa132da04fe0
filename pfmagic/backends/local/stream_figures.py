"""promptflow's token counts of a *streamed* reply, instance -> router after the stream ends.

A streamed LLM call's tokens are not in promptflow's run info (``flow_figures.py`` reads that
before the reply's head goes out). promptflow-tracing counts them when the stream is used up:
``TracedIterator`` (``promptflow/tracing/_trace.py``, 1.18.5) hands the chunks to
``token_collector.collect_openai_tokens_for_streaming``, which estimates them with
``OpenAIMetricsCalculator`` -- prompt tokens by tiktoken over the request's messages,
completion tokens one per content chunk -- and puts them on the LLM span
(``llm.usage.*``). Without tiktoken's encoding file (downloaded on first use) or for a model it
does not know, promptflow has no figure, and none is reported.

Instance side (``StreamFigures``, inside ``flow_figures.Carrier``): the collector is wrapped so
each count is added to the request's slot; when an event stream's last body message goes out,
the counts are kept under the request's stream id, which the router chose (``HEADER``: 128
random bits, known only to the router and this instance: the capability to read them).
``GET /_pfmagic/figures/<id>`` answers them once (then they are gone); at most ``KEPT`` wait,
the oldest dropped first, so a router that never asks costs nothing lasting.

Router side (``fetch``): when the reply's head said a node streams an LLM call
(``FlowFigures.streamed_later``), one GET with a short timeout after the instance's stream
ended; what it answers is added to the head's figures (``merge``). Other streams (a flow
that yields its own pieces) cost no extra request.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from typing import Any

from pfmagic.backends.local.flow_figures import TOKEN_KEYS, FlowFigures, _slot, parse

HEADER = "x-pfmagic-stream-id"
_HEADER_BYTES = HEADER.encode()
PATH = "/_pfmagic/figures/"
KEPT = 256
FETCH_SECONDS = 2.0
_STREAMED = "streamed"  # the slot's key: {"prompt_tokens": n, "completion_tokens": n}


def new_id() -> str:
    return secrets.token_urlsafe(16)


def watch_streamed_tokens() -> bool:
    """Wrap promptflow-tracing's streaming token count (once per process) so each count also
    goes to the current request's slot. False when promptflow has no such hook."""
    try:
        from promptflow.tracing import _trace
    except ImportError:
        return False
    collector = getattr(_trace, "token_collector", None)
    original = getattr(collector, "collect_openai_tokens_for_streaming", None)
    if original is None:
        return False
    if getattr(original, "_pfmagic", False):
        return True

    def collect(span: Any, inputs: Any, output: Any, is_chat: Any) -> Any:
        result = original(span, inputs, output, is_chat)
        slot = _slot.get()
        if slot is not None:
            try:
                tokens = collector.try_get_openai_tokens(span.get_span_context().span_id) or {}
                counted = slot.setdefault(_STREAMED, {})
                for key in TOKEN_KEYS:
                    value = tokens.get(key)
                    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                        counted[key] = counted.get(key, 0) + value
            except Exception:  # a figure is never worth a broken stream
                logging.getLogger(__name__).debug("streamed tokens failed", exc_info=True)
        return result

    collect._pfmagic = True  # type: ignore[attr-defined]
    collector.collect_openai_tokens_for_streaming = collect
    return True


class StreamFigures:
    """ASGI layer (inside ``Carrier``, which sets the request's slot): keeps an event stream's
    streamed token counts for the router and answers ``GET /_pfmagic/figures/<id>``."""

    def __init__(self, app: Any):
        self.app = app
        self.kept: OrderedDict[str, FlowFigures] = OrderedDict()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path") or ""
        if scope.get("type") == "http" and path.startswith(PATH):
            figures = self.kept.pop(path[len(PATH) :], None)
            body = figures.encode() if figures is not None else b""
            await send(
                {
                    "type": "http.response.start",
                    "status": 200 if body else 204,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        stream_id = dict(scope.get("headers") or []).get(_HEADER_BYTES, b"").decode()
        if scope.get("type") != "http" or not stream_id:
            await self.app(scope, receive, send)
            return
        event_stream = False

        async def send_keeping(message: Any) -> None:
            nonlocal event_stream
            kind = message.get("type")
            if kind == "http.response.start":
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                event_stream = ctype.startswith(b"text/event-stream")
            elif kind == "http.response.body" and not message.get("more_body") and event_stream:
                self.keep(stream_id)
            await send(message)

        await self.app(scope, receive, send_keeping)

    def keep(self, stream_id: str) -> None:
        slot = _slot.get() or {}
        counted = slot.get(_STREAMED)
        if not counted:
            return
        self.kept[stream_id] = FlowFigures(
            counted.get("prompt_tokens"), counted.get("completion_tokens")
        )
        while len(self.kept) > KEPT:
            self.kept.popitem(last=False)


async def fetch(client: Any, url: str) -> FlowFigures | None:
    """The instance's streamed figures for one stream (router side); None if it has none."""
    try:
        resp = await client.get(url, timeout=FETCH_SECONDS)
    except Exception:  # the stream was answered; a lost figure never fails it
        return None
    return parse(resp.text) if resp.status_code == 200 else None


def merge(head: FlowFigures | None, streamed: FlowFigures | None) -> FlowFigures | None:
    """The head's figures plus the streamed tokens (no call is in both: the head leaves out
    nodes with a streamed call, ``flow_figures.figures_of``)."""
    if streamed is None:
        return head
    if head is None:
        return streamed

    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return FlowFigures(
        add(head.prompt_tokens, streamed.prompt_tokens),
        add(head.completion_tokens, streamed.completion_tokens),
        head.flow_ms,
    )

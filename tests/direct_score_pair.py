"""Send the same requests to promptflow's serving app and to ``DirectScore`` around it; print
what each answered as JSON (run in a subprocess by tests/test_direct_score.py: promptflow reads
the flow from process-wide environment variables).

usage: python direct_score_pair.py FLOW_DIR OUT_JSON (promptflow logs to stdout)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

# headers that differ between any two replies (a clock), not between the two paths
VOLATILE_HEADERS = {"date"}

CHAT = {"question": "hello there", "chat_history": []}
HISTORY = {
    "question": "and now?",
    "chat_history": [{"inputs": {"question": "first"}, "outputs": {"answer": "Echo: first"}}],
}
JSON_HEADERS = {"content-type": "application/json"}
STREAM_HEADERS = {**JSON_HEADERS, "accept": "text/event-stream"}

# (name, method, path, headers, body)
REQUESTS: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
    ("json", "POST", "/score", JSON_HEADERS, json.dumps(CHAT).encode()),
    ("history", "POST", "/score", JSON_HEADERS, json.dumps(HISTORY).encode()),
    ("stream", "POST", "/score", STREAM_HEADERS, json.dumps(CHAT).encode()),
    (
        "stream+json accept",
        "POST",
        "/score",
        {**JSON_HEADERS, "accept": "application/json, text/event-stream"},
        json.dumps(CHAT).encode(),
    ),
    (
        "accept json",
        "POST",
        "/score",
        {**JSON_HEADERS, "accept": "application/json"},
        json.dumps(CHAT).encode(),
    ),
    (
        "not acceptable",
        "POST",
        "/score",
        {**JSON_HEADERS, "accept": "application/xml"},
        json.dumps(CHAT).encode(),
    ),
    ("flow error", "POST", "/score", JSON_HEADERS, json.dumps({"question": "explode"}).encode()),
    (
        "flow error streamed",
        "POST",
        "/score",
        STREAM_HEADERS,
        json.dumps({"question": "explode"}).encode(),
    ),
    ("missing input", "POST", "/score", JSON_HEADERS, json.dumps({"chat_history": []}).encode()),
    (
        "wrong type",
        "POST",
        "/score",
        JSON_HEADERS,
        json.dumps({"question": "x", "chat_history": "not a list"}).encode(),
    ),
    ("not json", "POST", "/score", JSON_HEADERS, b"question=hello"),
    ("empty body", "POST", "/score", JSON_HEADERS, b""),
    ("json list", "POST", "/score", JSON_HEADERS, b"[1, 2]"),
    (
        "request ids",
        "POST",
        "/score",
        {**JSON_HEADERS, "x-request-id": "req-1", "x-ms-client-request-id": "client-1"},
        json.dumps(CHAT).encode(),
    ),
    (
        "client id only",
        "POST",
        "/score",
        {**JSON_HEADERS, "x-ms-client-request-id": "client-2"},
        json.dumps(CHAT).encode(),
    ),
    (
        "request id only",
        "POST",
        "/score",
        {**JSON_HEADERS, "x-request-id": "req-3"},
        json.dumps(CHAT).encode(),
    ),
    (
        "with origin",
        "POST",
        "/score",
        {**JSON_HEADERS, "origin": "http://example.test"},
        json.dumps(CHAT).encode(),
    ),
    ("health", "GET", "/health", {}, None),
    ("get score", "GET", "/score", {}, None),
    ("trailing slash", "POST", "/score/", JSON_HEADERS, json.dumps(CHAT).encode()),
    ("unknown path", "POST", "/nowhere", JSON_HEADERS, b"{}"),
]


def _monitor_calls(monitor: Any, ctx_var: Any) -> list[Any]:
    """Record the flow monitor's calls (what pfmagic's figures and promptflow's metrics see)."""
    calls: list[Any] = []
    start, finish, error = monitor.start_monitoring, monitor.finish_monitoring, monitor.handle_error

    def start_monitoring() -> Any:
        calls.append(["start", sorted(ctx_var.get())])
        return start()

    def finish_monitoring(code: int) -> Any:
        data = ctx_var.get()
        calls.append(["finish", code, sorted(data), data.get("req_id"), data.get("streaming")])
        return finish(code)

    def handle_error(exc: Exception, code: int) -> Any:
        calls.append(["error", type(exc).__name__, code])
        return error(exc, code)

    monitor.start_monitoring = start_monitoring
    monitor.finish_monitoring = finish_monitoring
    monitor.handle_error = handle_error

    class Lines(logging.Handler):  # the serving app's log lines (the deployment's log)
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if text.startswith("Promptflow serving error traceback"):
                text = text.split(":", 1)[0]  # the frames differ: the two paths' own
            calls.append(["log", record.levelname, text])

    for logger in {id(monitor.logger): monitor.logger}.values():
        logger.addHandler(Lines())
    return calls


async def _send(app: Any, calls: list[Any]) -> list[dict[str, Any]]:
    import httpx

    answers = []
    messages: list[Any] = []  # the ASGI messages each reply went out as; the app's exception

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        async def watched_send(message: Any) -> None:
            ended = message["type"] == "http.response.body" and not message.get("more_body")
            messages.append([message["type"], message.get("status"), ended])
            await send(message)

        try:
            await app(scope, receive, watched_send)
        except Exception as exc:  # a server logs it; what was sent before it is the reply
            messages.append(["raised", type(exc).__name__])
            if messages[0][0] == "http.response.start" and not messages[-2][2]:
                # a server cuts the connection mid-reply (the client reads a broken stream);
                # ended here only so httpx hands the reply over
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport = httpx.ASGITransport(app=watched, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for name, method, path, headers, body in REQUESTS:
            del calls[:], messages[:]
            reply = await client.request(method, path, headers=headers, content=body)
            answers.append(
                {
                    "name": name,
                    "status": reply.status_code,
                    "headers": sorted(
                        [k, v] for k, v in reply.headers.multi_items() if k not in VOLATILE_HEADERS
                    ),
                    "body": reply.text,
                    "monitor": list(calls),
                    # body messages differ in number (chunks), not in how the reply ends
                    "ends": [m for m in messages if m[0] != "http.response.body" or m[2]],
                }
            )
    return answers


def main(flow_dir: str, out: str) -> None:
    os.environ["PROMPTFLOW_PROJECT_PATH"] = flow_dir
    os.environ.setdefault("PROMPTFLOW_CONNECTION_PROVIDER", "local")
    os.chdir(flow_dir)
    from pfmagic.backends.local import quiet

    quiet.install()
    from promptflow.core._serving.app import create_app
    from promptflow.core._serving.v2.fastapi_context_data_provider import _request_ctx_var

    from pfmagic.backends.local.direct_score import DirectScore

    app = create_app(engine="fastapi", extension_type="azureml")
    direct = DirectScore(app)
    calls = _monitor_calls(app.flow_monitor, _request_ctx_var)
    whole = asyncio.run(_send(app, calls))
    # DirectScore's own path must be the one it takes: count requests through promptflow's
    # monitor middleware (the stack the whole app built on its first request)
    from promptflow.core._serving.v2.middleware.middleware import MonitorMiddleware

    dispatched: list[str] = []
    layer = app.middleware_stack
    while not isinstance(layer, MonitorMiddleware):
        layer = layer.app
    original = layer.dispatch_func

    async def dispatch(request: Any, call_next: Any) -> Any:
        dispatched.append(request.url.path)
        return await original(request, call_next)

    layer.dispatch_func = dispatch
    ours = asyncio.run(_send(direct, calls))
    result = {"direct": direct.direct, "whole": whole, "ours": ours, "middleware_paths": dispatched}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

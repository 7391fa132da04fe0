"""``POST /score`` straight into promptflow's own score handler, past FastAPI's machinery.

A profile of one request (bench/profile/profile.md) put 87 % of an instance's busy time in
starlette and FastAPI and 21 % in promptflow's executor: promptflow's serving app wraps
``/score`` in two ``BaseHTTPMiddleware`` layers (each runs the rest of the app in a task group
of its own and pipes the reply through a memory stream), CORS and FastAPI's request handler.

``DirectScore`` is an ASGI layer around promptflow's app (``create_app``, built as before):
a plain ``POST /score`` runs the same steps in the same order with promptflow's own code,
called directly: the monitor middleware's request context (``_request_ctx_var``, request ids,
streaming) and ``flow_monitor.start/finish_monitoring``, the route's ``score`` function
(input loading, the flow invoker, error replies, response creator and event streams) and, for
an exception, the exception middleware's ``error_to_response`` + ``flow_monitor.handle_error``.
It runs inside copies of the layers above promptflow's middleware (OpenTelemetry's FastAPI
instrumentation, which ``create_app`` turns on: the request's server span, which promptflow's
flow span hangs under, and its HTTP metrics; starlette's error middleware), at ~0.3 ms of
CPU a request. So replies, errors, streams, spans and log lines are promptflow's own.
Everything else (``/health``, swagger, feedback, 404s, CORS preflights, a request with an
``Origin`` whose reply would carry CORS headers) goes to promptflow's whole app. Where
promptflow's app is not the shape this expects (another promptflow version), every request
goes to the whole app.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

Scope = dict[str, Any]


def _score_handler(routes: Any, depth: int = 0) -> Any:
    """promptflow's ``score(request)`` route function, or None. FastAPI 0.141 keeps an
    included router as one entry (``_IncludedRouter.original_router`` holds its routes)."""
    for route in routes or ():
        if getattr(route, "path", None) == "/score" and "POST" in (route.methods or ()):
            return route.endpoint
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and depth < 3:
            found = _score_handler(getattr(inner, "routes", None), depth + 1)
            if found is not None:
                return found
    return None


def _outer_layers(app: Any) -> list[Any]:
    """The layers of ``app``'s middleware stack above promptflow's own middleware, outermost
    first: starlette's ServerErrorMiddleware and what OpenTelemetry's FastAPI instrumentation
    (``create_app`` turns it on) wraps around the app -- the request's server span, its HTTP
    metrics, exceptions recorded on it. Empty when the stack is not the expected shape."""
    from starlette.middleware.cors import CORSMiddleware

    if getattr(app, "middleware_stack", None) is None:
        app.middleware_stack = app.build_middleware_stack()  # what starlette's first call does
    layers, layer = [], app.middleware_stack
    while not isinstance(layer, CORSMiddleware):  # promptflow's outermost middleware
        layers.append(layer)
        layer = getattr(layer, "app", None)
        if layer is None or len(layers) > 8:
            return []
    return layers


def _rewrap(layers: list[Any], inner: Any) -> Any:
    """Copies of ``layers`` (their settings, tracer and meters shared) around ``inner``."""
    for layer in reversed(layers):
        twin = copy.copy(layer)
        twin.app = inner
        inner = twin
    return inner


class DirectScore:
    """ASGI app: ``POST /score`` through promptflow's handler directly, the rest to ``app``."""

    def __init__(self, app: Any):
        self.app = app
        self.flow_monitor = getattr(app, "flow_monitor", None)  # flow_figures.install reads it
        self._score = None
        self._ctx: Any = None
        self._error_to_response: Any = None
        self._entry: Any = None
        try:
            from promptflow.core._serving.v2.fastapi_context_data_provider import _request_ctx_var
            from promptflow.core._serving.v2.middleware.middleware import (
                error_to_response,
                routes_with_middleware,
            )
        except ImportError:  # another promptflow: its whole app serves everything
            return
        handler = _score_handler(getattr(app, "routes", None))
        monitored = "/score" in routes_with_middleware
        outer = _outer_layers(app)
        if handler is not None and self.flow_monitor is not None and monitored and outer:
            self._score = handler
            self._ctx = _request_ctx_var
            self._error_to_response = error_to_response
            self._entry = _rewrap(outer, self._direct)

    @property
    def direct(self) -> bool:
        """Whether plain ``POST /score`` requests take the direct path."""
        return self._entry is not None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            self._entry is None
            or scope.get("type") != "http"
            or scope.get("path") != "/score"
            or scope.get("method") != "POST"
        ):
            await self.app(scope, receive, send)
            return
        if any(name == b"origin" for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)  # promptflow's CORS middleware adds headers
            return
        scope["app"] = self.app  # as Starlette.__call__ does: the layers and the route read it
        await self._entry(scope, receive, send)

    async def _direct(self, scope: Scope, receive: Any, send: Any) -> None:
        """What promptflow's own middleware and the score route do, inside the layers above
        them (``_outer_layers``)."""
        request = Request(scope, receive)
        headers = request.headers
        # promptflow's MonitorMiddleware.dispatch, step by step
        req_id = headers.get("x-request-id")
        client_req_id = headers.get("x-ms-client-request-id", req_id)
        req_id = req_id if req_id else client_req_id
        streaming = any("text/event-stream" in a for a in headers.getlist("accept"))
        ctx_data = {
            "start_time": time.time(),
            "req_id": req_id,
            "client_req_id": client_req_id,
            "streaming": streaming,
        }
        monitor = self.flow_monitor
        logger: logging.Logger = monitor.logger
        token = self._ctx.set(ctx_data)
        try:
            try:
                monitor.start_monitoring()
                logger.info(
                    f"Start monitoring new request, request_id: {req_id}, "
                    f"client_request_id: {client_req_id}"
                )
                response = await self._score(request)
                monitor.finish_monitoring(response.status_code)
                logger.info(
                    f"Finish monitoring request, request_id: {req_id}, "
                    f"client_request_id: {client_req_id}."
                )
            except Exception as exc:  # promptflow's ExceptionHandlingMiddleware
                data, code = self._error_to_response(exc, self.app.logger)
                monitor.handle_error(exc, code)
                response = JSONResponse(data, code)
            # an event stream's body is read in this request's context, as promptflow's
            # middleware task runs it
            await _send_whole(response, scope, receive, send)
        finally:
            self._ctx.reset(token)


async def _send_whole(response: Any, scope: Scope, receive: Any, send: Any) -> None:
    """Send ``response``; a stream that fails midway still ends its reply, then raises.

    That is what promptflow's ``BaseHTTPMiddleware`` layers make of it (they pipe the body and
    re-raise the app's exception once the reply is sent): the client reads a complete,
    shorter stream (pfmagic says it "ended before any 'answer'") rather than a cut connection.
    """
    started = ended = False

    async def watched(message: dict[str, Any]) -> None:
        nonlocal started, ended
        if message["type"] == "http.response.start":
            started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            ended = True
        await send(message)

    try:
        await response(scope, receive, watched)
    except Exception:
        if started and not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        raise

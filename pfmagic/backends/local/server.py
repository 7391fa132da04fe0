"""The router: one process per endpoint, ``python -m pfmagic.backends.local.server``.

It listens on 127.0.0.1 at the endpoint's stored port (so ``scoring_uri`` survives restarts),
supervises the deployments' instance processes (``supervisor.py``) and serves, as an Azure
managed online endpoint does:

* ``POST /score`` -- ``Authorization: Bearer <key or token>`` (401 JSON otherwise); a body
  over the endpoint's size limit is refused with 413 (see ``MAX_REQUEST_BYTES``); the
  deployment is chosen by the ``traffic`` weights, or by the ``azureml-model-deployment``
  request header; a ``mirror_traffic`` share of un-targeted requests is copied to the mirror
  deployment (reply discarded); the reply (JSON or ``text/event-stream``) streams through and
  names its deployment in the ``azureml-model-deployment`` response header. A flow error comes
  back as 424 with the flow's own error JSON and ``ms-azureml-model-error-statuscode``.
  An instance that fails at the transport level before the router has passed a byte of its
  reply on is taken out of routing and the request is retried on another instance of the
  same deployment (``forward``). Every error the router itself makes is Azure-like JSON
  ``{"error": {"code", "message"}}``, including unexpected ones (500, logged).
* ``GET /swagger.json`` -- the flow's OpenAPI document (same auth and routing).
* ``GET /health`` -- liveness of the router itself, no secrets.
* ``GET /_pfmagic/identity?nonce=N`` -- proof that this is the endpoint's router
  (``identity.py``); any path not listed here is 404, and ``guard.py`` checks Host/Origin first.
* ``/_pfmagic/status`` (GET), ``/_pfmagic/reconcile`` (POST), ``/_pfmagic/shutdown`` (POST),
  ``/_pfmagic/metrics`` (GET: Prometheus text, or JSON with ``?format=json``; ``metrics.py``) --
  the admin API for the kernel, guarded by the ``X-Pfmagic-Admin`` token from the 0600 state
  file. Keys and tokens are never in argv: the router reads them from ``endpoint.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import shutil
import socket
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pfmagic import traffic as traffic_rules
from pfmagic.backends.local import auth, flow_figures, heap, stream_figures, upstream
from pfmagic.backends.local.flow_figures import FlowFigures
from pfmagic.backends.local.guard import Guard
from pfmagic.backends.local.identity_proof import IDENTITY_PATH, proof
from pfmagic.backends.local.limits import (
    HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    RateLimit,
    fast_loop,
    raise_nofile,
    rotate_in_place,
    router_protocol,
)
from pfmagic.backends.local.metrics import Recorder, usage_tokens
from pfmagic.backends.local.procs import set_title
from pfmagic.backends.local.state import Home, ensure_pf_home, read_json, write_json
from pfmagic.backends.local.supervisor import Deployment, Instance, Supervisor
from pfmagic.backends.local.uvicorn_core import Config, Server

ADMIN_HEADER = "x-pfmagic-admin"
DEPLOYMENT_HEADER = "azureml-model-deployment"
FORWARD = (
    "content-type",
    "accept",
    "x-request-id",
    "x-ms-client-request-id",
    "traceparent",
    "baggage",
)
EXIT_PORT_BUSY = 3
EXIT_LOCKED = 4  # another router of this endpoint holds its lock
_lock_fd: int | None = None  # held for the router's whole life
STARTUP_WAIT = 120.0  # how long a request waits for a starting deployment
# Request body limit. Azure's managed online endpoints answer 413 "Payload too large" to a
# request payload over 1.5 MB ("Troubleshooting managed online endpoints deployment and
# scoring", HTTP status codes table, learn.microsoft.com/azure/machine-learning/
# how-to-troubleshoot-managed-online-endpoints, 2021 edition; later editions dropped the row
# but not the limit). Read as MiB, the generous reading. Per endpoint: ``max_request_bytes``
# in endpoint.json (kept across endpoint updates); default for the router: the
# ``PFMAGIC_MAX_REQUEST_BYTES`` environment variable.
MAX_REQUEST_BYTES = 1_572_864
MAX_REQUEST_ENV = "PFMAGIC_MAX_REQUEST_BYTES"
# A reply that is not an event stream is read whole (up to this much) before the router
# answers, so an instance that dies mid-reply can still be failed over; beyond it, streamed.
READ_AHEAD_BYTES = 4 << 20
TRIM_SECONDS = 10.0  # how often freed C-heap pages go back to the kernel (heap.py)
# The instance produced no reply we passed on: safe to send the request to another instance.
RETRYABLE = (upstream.Unreachable,)


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class InstanceFailed(Exception):
    """Every instance tried failed at the transport level (no reply passed on)."""


@dataclass(eq=False)
class Upstream:
    """An instance's reply, read ahead until the router commits to its client: ``head`` is the
    whole body when ``rest`` is None, else its start and ``rest`` streams the remainder."""

    inst: Instance
    resp: upstream.Reply
    head: bytes
    rest: AsyncIterator[bytes] | None
    released: bool = False

    async def release(self) -> None:
        if not self.released:  # once, whether the reply ended, failed or was never started
            self.released = True
            self.inst.inflight -= 1
            with contextlib.suppress(Exception):
                await self.resp.aclose()


class _Answer(Response):
    """A reply read whole, with what promptflow reported for it (``flow_figures.py``)."""

    figures: FlowFigures | None = None


class _Passthrough(StreamingResponse):
    """A streamed reply that always releases its instance, even if the client went away
    before the first byte (starlette then never starts the body iterator)."""

    def __init__(self, content: AsyncIterator[bytes], release: Any, **kw: Any):
        super().__init__(content, **kw)
        self._release = release
        self.on_done: Any = None  # metrics: a streamed reply counts when its last byte went
        self.figures: FlowFigures | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()
            if self.on_done is not None:
                self.on_done()


class Router:
    def __init__(self, home: Home, endpoint: str):
        self.home = home
        self.name = endpoint
        self.supervisor = Supervisor(home, endpoint)
        self.config: dict[str, Any] = {}
        self.config_mtime = 0.0
        self.started = time.time()
        self.server: Server | None = None
        self.port = 0  # the TCP port it listens on (set once bound)
        self._background: set[asyncio.Task[Any]] = set()
        self._log_limit = RateLimit()  # a repeated error fills the log at most ~5 times/min
        self.metrics = Recorder(endpoint)  # every answered /score request (metrics.py)

    # -- state -----------------------------------------------------------------------------
    def load_config(self) -> None:
        path = self.home.endpoint_file(self.name)
        with contextlib.suppress(FileNotFoundError):
            mtime = path.stat().st_mtime
            if mtime != self.config_mtime:
                self.config = read_json(path, {}) or {}
                self.config_mtime = mtime

    async def reconcile(self) -> None:
        self.load_config()
        await self.supervisor.reconcile()

    async def poll_state(self) -> None:
        """Pick up state written while no admin call came (cheap: a few stat calls). A router
        whose endpoint vanished (home deleted, e.g. a test's temp folder) stops itself."""
        missing = 0
        trimmed = 0.0
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - trimmed >= TRIM_SECONDS:  # what a start or rollout freed
                trimmed = time.monotonic()
                heap.trim()
            if time.time() - self.metrics._last_sample >= 5.0:
                with contextlib.suppress(Exception):
                    self.sample_instances()
            if not self.home.endpoint_file(self.name).exists():
                missing += 1
                if missing >= 3 and self.server is not None:
                    print(
                        f"[pfmagic] router {self.name}: endpoint state is gone; stopping",
                        flush=True,
                    )
                    self.server.should_exit = True
                continue
            missing = 0
            with contextlib.suppress(Exception):
                await self.reconcile()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.rotate_logs)

    def rotate_logs(self) -> None:
        """Size-bounded logs: the router's own and each deployment's (held open by others)."""
        logs = [self.home.router_log(self.name)]
        logs += [
            self.home.deployment_log(self.name, d) for d in self.home.deployment_names(self.name)
        ]
        for log in logs:
            rotate_in_place(log)

    def sample_instances(self) -> None:
        self.metrics.sample(
            {
                name: [i.proc.pid for i in dep.instances if i.alive()]
                for name, dep in self.supervisor.deployments.items()
            }
        )

    # -- auth ------------------------------------------------------------------------------
    def unauthorized(self, request: Request) -> JSONResponse | None:
        presented = auth.bearer(request.headers.get("authorization"))
        headers = {"WWW-Authenticate": "Bearer"}
        if presented is None:
            return error(
                401,
                "Unauthorized",
                "Authorization header with a Bearer key or token is required.",
                headers,
            )
        if self.config.get("auth_mode") == "aml_token":
            problem = auth.check_token(self.config.get("token_key", ""), self.name, presented)
            if problem:
                return error(401, "Unauthorized", f"Invalid authentication: {problem}.", headers)
            return None
        keys = self.config.get("keys") or {}
        if not auth.check_key([keys.get("primary", ""), keys.get("secondary", "")], presented):
            return error(401, "Unauthorized", "Invalid authentication: key not accepted.", headers)
        return None

    def guard_settings(self) -> tuple[list[str], list[str]]:
        return list(self.config.get("allowed_hosts") or []), list(
            self.config.get("allowed_origins") or []
        )

    def admin_ok(self, request: Request) -> bool:
        presented = request.headers.get(ADMIN_HEADER, "")
        return auth.check_key([self.config.get("admin_token", "")], presented)

    # -- routing ---------------------------------------------------------------------------
    def choose(self, request: Request) -> tuple[Deployment | None, JSONResponse | None, bool]:
        """(deployment, error, targeted)."""
        deps = self.supervisor.deployments
        target = request.headers.get(DEPLOYMENT_HEADER)
        if target:
            dep = deps.get(target)
            if dep is None or dep.state == "Deleting":
                return (
                    None,
                    error(
                        404,
                        "DeploymentNotFound",
                        f"Deployment '{target}' not found in endpoint '{self.name}'.",
                    ),
                    True,
                )
            return dep, None, True
        traffic = {
            k: int(v)
            for k, v in (self.config.get("traffic") or {}).items()
            if int(v) > 0 and k in deps
        }
        if not traffic:
            return (
                None,
                error(
                    404,
                    "NoValidDeployments",
                    "No valid deployments to route to. Please check that the "
                    "endpoint has at least one deployment with positive weight "
                    "values or use a deployment specific header to route.",
                ),
                False,
            )
        name = traffic_rules.pick(traffic, random.random())
        return deps[name], None, False

    def max_request_bytes(self) -> int:
        value = self.config.get("max_request_bytes") or os.environ.get(MAX_REQUEST_ENV)
        try:
            return int(value) if value else MAX_REQUEST_BYTES
        except ValueError:
            return MAX_REQUEST_BYTES

    def too_large(self, limit: int) -> JSONResponse:
        # no Connection: close -- uvicorn reads and drops the rest of the body, so the
        # client reads this reply and can reuse the connection
        return error(
            413,
            "PayloadTooLarge",
            f"The request body is larger than this endpoint accepts ({limit} bytes).",
        )

    async def read_body(self, request: Request, limit: int) -> bytes | None:
        """The body, or None once it grows past ``limit`` (never buffers more than that)."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def acquire(
        self, dep: Deployment, exclude: Collection[Instance] = (), until: float | None = None
    ) -> Instance | None:
        """A ready instance not in ``exclude``, honouring
        ``max_concurrent_requests_per_instance`` when set; None when there is none (after
        waiting for starting instances until ``until``, at most ``STARTUP_WAIT``)."""
        settings = dep.spec.get("request_settings") or {}
        limit = settings.get("max_concurrent_requests_per_instance")
        wait_ms = settings.get("max_queue_wait_ms") or 500
        end = time.monotonic() + wait_ms / 1000
        startup_end = time.monotonic() + STARTUP_WAIT
        if until is not None:
            startup_end = min(startup_end, until)
        while True:
            inst = dep.pick(exclude)
            if inst is None:
                # e.g. just after a router restart or while a dead instance is replaced:
                # hold the request while instances start
                if dep.starting() and time.monotonic() < startup_end:
                    await asyncio.sleep(0.05)
                    continue
                return None
            if not limit or inst.inflight < int(limit):
                inst.inflight += 1
                return inst
            if time.monotonic() >= end:
                raise OverflowError
            await asyncio.sleep(0.01)

    async def forward(
        self, dep: Deployment, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> Upstream:
        """Send to a ready instance and read its reply ahead (``read_ahead``).

        Fail-over: when the instance fails at the transport level (refused, reset, closed,
        read error) before the router has passed any byte of its reply on, it is taken out
        of routing at once (``Supervisor.suspect``) and the request goes to another instance
        of the same deployment -- at most ``instance_count - 1`` others, within the request
        timeout, waiting for one to become ready if none is. The flow may already have run on
        the failed instance, but that instance produced no reply, so the client never saw
        one: to the client the request ran once. HTTP error replies are answers, never
        retried; nothing is retried once the client has been sent a byte.
        """
        settings = dep.spec.get("request_settings") or {}
        timeout_ms = settings.get("request_timeout_ms")
        timeout = timeout_ms / 1000 if timeout_ms else 300.0
        attempts = max(1, int(dep.spec.get("instance_count") or 1))
        tried: list[Instance] = []
        last: Exception | None = None
        deadline: float | None = None  # from the first send: waiting for startup is not in it
        while len(tried) < attempts:
            inst = await self.acquire(dep, exclude=tried, until=deadline)
            if inst is None:
                break
            tried.append(inst)
            deadline = deadline or time.monotonic() + timeout
            try:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                # the whole exchange up to the read-ahead within the deadline; once streaming,
                # each read of the rest within the time that was left at the start
                resp, head, rest = await upstream.within(
                    remaining, self._exchange(inst, method, path, body, headers, remaining)
                )
            except RETRYABLE as exc:
                inst.inflight -= 1
                self.supervisor.suspect(dep, inst, str(exc))  # names aiohttp's error
                last = exc
                continue
            except BaseException:
                inst.inflight -= 1
                raise
            inst.served += 1
            return Upstream(inst, resp, head, rest)
        if last is not None:
            raise InstanceFailed(str(last))
        raise ConnectionError("no ready instance")

    async def _exchange(
        self,
        inst: Instance,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        read_timeout: float,
    ) -> tuple[upstream.Reply, bytes, AsyncIterator[bytes] | None]:
        """Send, then read ahead; a reply not handed on (failed, cut off by the deadline) is
        closed here, and its connection with it."""
        resp = await inst.client.send(method, inst.url(path), body, headers, read_timeout)
        try:
            head, rest = await self.read_ahead(resp)
        except BaseException:
            await resp.aclose()
            raise
        return resp, head, rest

    @staticmethod
    async def read_ahead(resp: upstream.Reply) -> tuple[bytes, AsyncIterator[bytes] | None]:
        """Read before committing to the client: an error reply or a JSON reply whole (up to
        ``READ_AHEAD_BYTES``), an event stream up to its first chunk -- so an instance that
        dies after its status line but before its reply is complete can be failed over."""
        stream = resp.status_code < 400 and resp.headers.get("content-type", "").startswith(
            "text/event-stream"
        )
        chunks = resp.chunks()
        head = bytearray()
        async for chunk in chunks:
            head += chunk
            if stream or (resp.status_code < 400 and len(head) >= READ_AHEAD_BYTES):
                return bytes(head), chunks
        return bytes(head), None

    async def score(self, request: Request) -> Response:
        started = time.perf_counter()
        resp = await self._score(request)
        deployment = resp.headers.get(DEPLOYMENT_HEADER)
        if resp.status_code == 401:
            self.metrics.record_unauthorized()
        elif deployment is None:  # refused before a deployment was chosen
            self.metrics.record_unrouted()
        elif isinstance(resp, _Passthrough):

            def done(status: int = resp.status_code) -> None:
                figures = resp.figures  # the head's, plus the stream's (set at its end)
                latency = (time.perf_counter() - started) * 1000
                tokens = figures.tokens if figures is not None else None
                flow_ms = figures.flow_ms if figures is not None else None
                self.metrics.record(deployment, status, latency, tokens or 0, flow_ms=flow_ms)

            resp.on_done = done
        else:
            figures = getattr(resp, "figures", None)
            tokens = figures.tokens if figures is not None else None
            if tokens is None:  # promptflow counted none: OpenAI-style usage in the reply
                tokens = usage_tokens(resp.body) if 200 <= resp.status_code < 300 else 0
            flow_ms = figures.flow_ms if figures is not None else None
            latency = (time.perf_counter() - started) * 1000
            self.metrics.record(deployment, resp.status_code, latency, tokens, flow_ms=flow_ms)
        return resp

    async def _score(self, request: Request) -> Response:
        denied = self.unauthorized(request)
        if denied is not None:
            return denied
        limit = self.max_request_bytes()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return self.too_large(limit)  # refused before reading a byte of it
        dep, problem, targeted = self.choose(request)
        if dep is None:
            assert problem is not None
            return problem
        try:
            body = await self.read_body(request, limit)
        except ClientDisconnect:
            return error(
                400,
                "ClientDisconnected",
                "The client closed the connection before sending the whole request body.",
            )
        if body is None:  # chunked, or a Content-Length that understated the body
            return self.too_large(limit)
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD}
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        headers["x-request-id"] = request_id
        headers[stream_figures.HEADER] = stream_figures.new_id()  # never the client's
        mirror = self.config.get("mirror_traffic") or {}
        if not targeted and mirror:
            name, pct = next(iter(mirror.items()))
            mirror_dep = self.supervisor.deployments.get(name)
            if mirror_dep is not None and traffic_rules.mirrors(int(pct), random.random()):
                self._spawn_task(self.mirror(mirror_dep, body, dict(headers)))
        path = dep.routes().get("scoring", "/score")
        return await self.proxy(dep, "POST", path, body, headers, request_id)

    async def proxy(
        self,
        dep: Deployment,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
    ) -> Response:
        reply_headers = {DEPLOYMENT_HEADER: dep.name, "x-request-id": request_id}
        try:
            up = await self.forward(dep, method, path, body, headers)
        except OverflowError:
            return error(
                429,
                "TooManyRequests",
                "Too many requests for deployment "
                f"'{dep.name}' (max_concurrent_requests_per_instance).",
                reply_headers,
            )
        except asyncio.TimeoutError:  # the deadline, or a read of the reply (UpstreamTimeout)
            return error(
                408, "RequestTimeout", "Request timed out (request_timeout_ms).", reply_headers
            )
        except InstanceFailed as exc:
            return error(
                502,
                "BadGateway",
                f"Deployment '{dep.name}': no instance could "
                f"answer; the last one tried failed ({exc}).",
                reply_headers,
            )
        except ConnectionError:
            return error(
                503,
                "ServiceUnavailable",
                f"Deployment '{dep.name}' has no ready instance (state {dep.state}).",
                reply_headers,
            )
        except Exception as exc:  # a router bug must still be an Azure-like reply
            self.log_unexpected(f"{method} {path} on deployment {dep.name}", exc)
            return error(
                502,
                "BadGateway",
                f"Deployment '{dep.name}': the request could not "
                f"be forwarded ({type(exc).__name__}).",
                reply_headers,
            )
        dep.requests += 1
        resp = up.resp
        content_type = resp.headers.get("content-type", "application/json")
        # promptflow's own figures; like every instance header, never passed to the client
        figures = flow_figures.parse(resp.headers.get(flow_figures.HEADER))
        if up.rest is None:  # read whole: a plain reply, the instance is free again
            await up.release()
            status = resp.status_code
            if status >= 400 and path != "/swagger.json":
                # Azure wraps a model's error reply as 424 and keeps its body
                reply_headers["ms-azureml-model-error-statuscode"] = str(status)
                status = 424
            answer = _Answer(
                up.head, status_code=status, media_type=content_type, headers=reply_headers
            )
            answer.figures = figures
            return answer
        rest = up.rest

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                yield up.head
                async for chunk in rest:
                    yield chunk
                stream_id = headers.get(stream_figures.HEADER)
                if stream_id and figures is not None and figures.streamed_later:
                    # used up: promptflow has counted the streamed call's tokens now
                    url = up.inst.url(stream_figures.PATH + stream_id)
                    got = await stream_figures.fetch(up.inst.client, url)
                    streamed.figures = stream_figures.merge(streamed.figures, got)
            except upstream.UpstreamError as exc:  # too late to fail over: the client has bytes
                allowed, suppressed = self._log_limit.allow(f"broke|{up.inst.name}")
                if allowed:
                    more = f"; {suppressed} more not logged" if suppressed else ""
                    print(
                        f"[pfmagic] router {self.name}: reply from {up.inst.name} broke off "
                        f"mid-stream ({type(exc).__name__}{more})",
                        flush=True,
                    )
                raise
            finally:
                await up.release()

        streamed = _Passthrough(
            passthrough(),
            up.release,
            status_code=resp.status_code,
            media_type=content_type,
            headers=reply_headers,
        )
        streamed.figures = figures
        return streamed

    def log_unexpected(self, what: str, exc: BaseException) -> None:
        allowed, suppressed = self._log_limit.allow(f"{what}|{type(exc).__name__}")
        if not allowed:
            return
        more = f" ({suppressed} more like it not logged)" if suppressed else ""
        print(
            f"[pfmagic] router {self.name}: unexpected {type(exc).__name__} in {what}{more}",
            flush=True,
        )
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)
        sys.stdout.flush()

    async def crashed(self, request: Request, exc: Exception) -> Response:
        """Last resort (starlette's ServerErrorMiddleware): JSON, never a bare 500 page."""
        self.log_unexpected(f"{request.method} {request.url.path}", exc)
        return error(
            500,
            "InternalServerError",
            f"The endpoint's router failed to handle the request "
            f"({type(exc).__name__}); see the endpoint's router log.",
        )

    async def mirror(self, dep: Deployment, body: bytes, headers: dict[str, str]) -> None:
        with contextlib.suppress(Exception):
            path = dep.routes().get("scoring", "/score")
            up = await self.forward(dep, "POST", path, body, headers)
            try:
                if up.rest is not None:
                    async for _chunk in up.rest:  # the mirror's reply is discarded
                        pass
                dep.mirrored += 1
                self.metrics.record_mirrored(dep.name)
            finally:
                await up.release()

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def swagger(self, request: Request) -> Response:
        denied = self.unauthorized(request)
        if denied is not None:
            return denied
        dep, problem, _ = self.choose(request)
        if dep is None:
            # no traffic yet: any deployment describes the flow's contract
            ready = [d for d in self.supervisor.deployments.values() if d.ready_instances()]
            if not ready:
                assert problem is not None
                return problem
            dep = ready[0]
        return await self.proxy(dep, "GET", "/swagger.json", b"", {}, str(uuid.uuid4()))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "Healthy"})

    # -- admin -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "pid": os.getpid(),
            "port": self.config.get("port"),
            "started": self.started,
            "max_request_bytes": self.max_request_bytes(),
            "deployments": self.supervisor.status(),
        }

    async def identity(self, request: Request) -> Response:
        """Proof for a client that this is the endpoint's router (``identity.py``); no secret
        in the reply, nothing done."""
        nonce = request.query_params.get("nonce", "")
        if not 16 <= len(nonce) <= 128:
            return error(400, "BadRequest", "nonce required")
        self.load_config()
        mac = proof(self.config.get("admin_token", ""), self.name, self.port, nonce)
        return JSONResponse({"endpoint": self.name, "proof": mac})

    async def admin(self, request: Request) -> Response:
        self.load_config()
        if not self.admin_ok(request):
            return error(401, "Unauthorized", "admin token required")
        action = request.path_params["action"]
        if action == "status" and request.method == "GET":
            return JSONResponse(self.status())
        if action == "metrics" and request.method == "GET":
            return self.metrics_reply(request)
        if action == "reconcile" and request.method == "POST":
            await self.reconcile()
            return JSONResponse(self.status())
        if action == "shutdown" and request.method == "POST":
            if self.server is not None:
                self.server.should_exit = True
            return JSONResponse({"status": "stopping"})
        return error(404, "NotFound", f"no admin action '{action}'")

    def metrics_reply(self, request: Request) -> Response:
        """Prometheus text (cumulative), or ``?format=json&window=S`` for the kernel."""
        if time.time() - self.metrics._last_sample >= 2.0:
            self.sample_instances()
        if request.query_params.get("format") == "json":
            try:
                window = float(request.query_params.get("window") or 900)
            except ValueError:
                return error(400, "BadRequest", "window must be a number of seconds")
            names = [n for n, d in self.supervisor.deployments.items() if d.state != "Deleting"]
            return JSONResponse(self.metrics.snapshot(window, names))
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.prometheus(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def not_found(self, request: Request) -> Response:
        return error(
            404,
            "NotFound",
            f"The requested api '{request.url.path}' with "
            f"{request.method} is not supported by this endpoint.",
        )

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            if self.config.get("prewarm"):
                self.supervisor.prewarm()
            await self.reconcile()
            poller = asyncio.get_running_loop().create_task(self.poll_state())
            try:
                yield
            finally:
                poller.cancel()
                await self.supervisor.close()

        return Starlette(
            routes=[
                Route("/score", self.score, methods=["POST"]),
                Route("/swagger.json", self.swagger, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route(IDENTITY_PATH, self.identity, methods=["GET"]),
                Route("/_pfmagic/{action}", self.admin, methods=["GET", "POST"]),
                # everything else (promptflow's /feedback, /version, ...) is not ours to serve
                Route(
                    "/{path:path}",
                    self.not_found,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
            ],
            middleware=[Middleware(Guard, settings=self.guard_settings)],
            lifespan=lifespan,
            exception_handlers={Exception: self.crashed},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pfmagic.backends.local.server")
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    home = Home(args.home)
    if not home.endpoint_file(args.endpoint).is_file():
        print(f"[pfmagic] router {args.endpoint}: no such endpoint under {home.root}", flush=True)
        return 2
    # One router per endpoint, ever: the lock is held until this process is gone (killed,
    # crashed or stopped); a stopped (SIGSTOP) router keeps it, so it never gets a twin.
    global _lock_fd
    _lock_fd = os.open(home.router_lock(args.endpoint), os.O_RDWR | os.O_CREAT, 0o600)
    for attempt in range(20):  # a kernel's liveness check holds it for microseconds
        try:
            fcntl.flock(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 19:
                print(
                    f"[pfmagic] router {args.endpoint}: another router holds the lock", flush=True
                )
                return EXIT_LOCKED
            time.sleep(0.025)
    # the module and endpoint stay in the title: procs.is_router() looks for them
    set_title(
        f"pfmagic router {args.endpoint} "
        f"pfmagic.backends.local.server --endpoint {args.endpoint} --home {home.root}"
    )
    router = Router(home, args.endpoint)
    router.load_config()
    raise_nofile()  # every client and instance connection is a file descriptor
    port = int(router.config.get("port") or 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        print(
            f"[pfmagic] router {args.endpoint}: cannot listen on 127.0.0.1:{port}: {exc}",
            flush=True,
        )
        return EXIT_PORT_BUSY
    sock.listen(512)
    router.port = int(sock.getsockname()[1])
    # instance sockets of an earlier router of this endpoint (killed: never unlinked)
    shutil.rmtree(home.socket_dir(args.endpoint), ignore_errors=True)
    ensure_pf_home(home)
    write_json(
        home.run_file(args.endpoint),
        {"pid": os.getpid(), "port": sock.getsockname()[1], "started": time.time()},
    )
    print(
        f"[pfmagic] router {args.endpoint} listening on 127.0.0.1:{sock.getsockname()[1]} "
        f"(pid {os.getpid()})",
        flush=True,
    )
    # Not uvicorn's fd= (it wraps the socket as AF_UNIX): asyncio sets TCP_NODELAY only on
    # connections accepted from an AF_INET/IPPROTO_TCP socket; without it every keep-alive
    # reply waits ~40 ms for a delayed ACK. socket(fileno=...) auto-detects family and proto.
    # Bounded: a complete request head within header_timeout, idle keep-alive 5 s, head size
    # capped by h11, at most max_connections connections (uvicorn answers 503 beyond).
    # httptools (C parser) + uvloop when installed: most of the router's CPU per request was
    # h11 and the asyncio loop (bench/profile/profile.md); both protocols carry the same bounds.
    # PFMAGIC_PURE_PYTHON_HTTP=1 keeps the old h11 + asyncio pair (A/B runs).
    http = router_protocol()
    http.header_timeout = float(router.config.get("header_timeout") or HEADER_TIMEOUT)
    config = Config(
        router.app(),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=15,
        http=http,
        loop=fast_loop(),
        timeout_keep_alive=5,
        limit_concurrency=int(router.config.get("max_connections") or MAX_CONNECTIONS),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    router.server = Server(config)
    router.server.run(sockets=[socket.socket(fileno=sock.detach())])
    print(f"[pfmagic] router {args.endpoint} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

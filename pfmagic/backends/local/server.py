"""The router: one process per endpoint, ``python -m pfmagic.backends.local.server``.

It listens on 127.0.0.1 at the endpoint's stored port (so ``scoring_uri`` survives restarts),
supervises the deployments' instance processes (``supervisor.py``) and serves, as an Azure
managed online endpoint does:

* ``POST /score`` -- ``Authorization: Bearer <key or token>`` (401 JSON otherwise); the
  deployment is chosen by the ``traffic`` weights, or by the ``azureml-model-deployment``
  request header; a ``mirror_traffic`` share of un-targeted requests is copied to the mirror
  deployment (reply discarded); the reply (JSON or ``text/event-stream``) streams through and
  names its deployment in the ``azureml-model-deployment`` response header. A flow error comes
  back as 424 with the flow's own error JSON and ``ms-azureml-model-error-statuscode``.
* ``GET /swagger.json`` -- the flow's OpenAPI document (same auth and routing).
* ``GET /health`` -- liveness of the router itself, no secrets.
* ``/_pfmagic/status`` (GET), ``/_pfmagic/reconcile`` (POST), ``/_pfmagic/shutdown`` (POST) --
  the admin API for the kernel, guarded by the ``X-Pfmagic-Admin`` token from the 0600 state
  file. Keys and tokens are never in argv: the router reads them from ``endpoint.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pfmagic.backends.local import auth
from pfmagic.backends.local.state import Home, ensure_pf_home, read_json, write_json
from pfmagic.backends.local.supervisor import Deployment, Instance, Supervisor

ADMIN_HEADER = "x-pfmagic-admin"
DEPLOYMENT_HEADER = "azureml-model-deployment"
FORWARD = ("content-type", "accept", "x-request-id", "x-ms-client-request-id", "traceparent",
           "baggage")
EXIT_PORT_BUSY = 3
STARTUP_WAIT = 120.0  # how long a request waits for a starting deployment


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


class _Passthrough(StreamingResponse):
    """A streamed reply that always releases its instance, even if the client went away
    before the first byte (starlette then never starts the body iterator)."""

    def __init__(self, content: AsyncIterator[bytes], release: Any, **kw: Any):
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


class Router:
    def __init__(self, home: Home, endpoint: str):
        self.home = home
        self.name = endpoint
        self.supervisor = Supervisor(home, endpoint)
        self.config: dict[str, Any] = {}
        self.config_mtime = 0.0
        self.started = time.time()
        self.server: uvicorn.Server | None = None
        self.client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(
            max_connections=512, max_keepalive_connections=64))
        self._background: set[asyncio.Task[Any]] = set()

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
        while True:
            await asyncio.sleep(1.0)
            if not self.home.endpoint_file(self.name).exists():
                missing += 1
                if missing >= 3 and self.server is not None:
                    print(f"[pfmagic] router {self.name}: endpoint state is gone; stopping",
                          flush=True)
                    self.server.should_exit = True
                continue
            missing = 0
            with contextlib.suppress(Exception):
                await self.reconcile()

    # -- auth ------------------------------------------------------------------------------
    def unauthorized(self, request: Request) -> JSONResponse | None:
        presented = auth.bearer(request.headers.get("authorization"))
        headers = {"WWW-Authenticate": "Bearer"}
        if presented is None:
            return error(401, "Unauthorized", "Authorization header with a Bearer key or token "
                                              "is required.", headers)
        if self.config.get("auth_mode") == "aml_token":
            problem = auth.check_token(self.config.get("token_key", ""), self.name, presented)
            if problem:
                return error(401, "Unauthorized", f"Invalid authentication: {problem}.",
                             headers)
            return None
        keys = self.config.get("keys") or {}
        if not auth.check_key([keys.get("primary", ""), keys.get("secondary", "")], presented):
            return error(401, "Unauthorized", "Invalid authentication: key not accepted.",
                         headers)
        return None

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
                return None, error(404, "DeploymentNotFound",
                                   f"Deployment '{target}' not found in endpoint "
                                   f"'{self.name}'."), True
            return dep, None, True
        traffic = {k: int(v) for k, v in (self.config.get("traffic") or {}).items()
                   if int(v) > 0 and k in deps}
        if not traffic:
            return None, error(404, "NoValidDeployments",
                               "No valid deployments to route to. Please check that the "
                               "endpoint has at least one deployment with positive weight "
                               "values or use a deployment specific header to route."), False
        name = random.choices(list(traffic), weights=list(traffic.values()))[0]
        return deps[name], None, False

    async def acquire(self, dep: Deployment) -> Instance | None:
        """A ready instance, honouring ``max_concurrent_requests_per_instance`` when set."""
        settings = dep.spec.get("request_settings") or {}
        limit = settings.get("max_concurrent_requests_per_instance")
        wait_ms = settings.get("max_queue_wait_ms") or 500
        end = time.monotonic() + wait_ms / 1000
        startup_end = time.monotonic() + STARTUP_WAIT
        while True:
            inst = dep.pick()
            if inst is None:
                # e.g. just after a router restart: hold the request while instances start
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

    async def forward(self, dep: Deployment, method: str, path: str, body: bytes,
                      headers: dict[str, str]) -> tuple[Instance, httpx.Response]:
        """Send to one instance; on a refused connection (it just died) try another once."""
        settings = dep.spec.get("request_settings") or {}
        timeout_ms = settings.get("request_timeout_ms")
        timeout = timeout_ms / 1000 if timeout_ms else 300.0
        last: Exception | None = None
        for _attempt in range(2):
            inst = await self.acquire(dep)
            if inst is None:
                break
            try:
                req = self.client.build_request(method, inst.url(path), content=body,
                                                headers=headers,
                                                timeout=httpx.Timeout(timeout, connect=5.0))
                resp = await asyncio.wait_for(self.client.send(req, stream=True), timeout)
                inst.served += 1
                return inst, resp
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                inst.inflight -= 1
                inst.ready = False  # the watcher restarts or re-admits it
                last = exc
            except BaseException:
                inst.inflight -= 1
                raise
        raise ConnectionError(str(last) if last else "no ready instance")

    async def score(self, request: Request) -> Response:
        denied = self.unauthorized(request)
        if denied is not None:
            return denied
        dep, problem, targeted = self.choose(request)
        if dep is None:
            assert problem is not None
            return problem
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD}
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        headers["x-request-id"] = request_id
        mirror = self.config.get("mirror_traffic") or {}
        if not targeted and mirror:
            name, pct = next(iter(mirror.items()))
            mirror_dep = self.supervisor.deployments.get(name)
            if mirror_dep is not None and random.random() * 100 < int(pct):
                self._spawn_task(self.mirror(mirror_dep, body, dict(headers)))
        path = dep.routes().get("scoring", "/score")
        return await self.proxy(dep, "POST", path, body, headers, request_id)

    async def proxy(self, dep: Deployment, method: str, path: str, body: bytes,
                    headers: dict[str, str], request_id: str) -> Response:
        reply_headers = {DEPLOYMENT_HEADER: dep.name, "x-request-id": request_id}
        try:
            inst, resp = await self.forward(dep, method, path, body, headers)
        except OverflowError:
            return error(429, "TooManyRequests", "Too many requests for deployment "
                         f"'{dep.name}' (max_concurrent_requests_per_instance).", reply_headers)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return error(408, "RequestTimeout", "Request timed out (request_timeout_ms).",
                         reply_headers)
        except ConnectionError:
            return error(503, "ServiceUnavailable", f"Deployment '{dep.name}' has no ready "
                         f"instance (state {dep.state}).", reply_headers)
        dep.requests += 1
        content_type = resp.headers.get("content-type", "application/json")
        if resp.status_code >= 400:
            try:
                data = await resp.aread()
            finally:
                await resp.aclose()
                inst.inflight -= 1
            # Azure wraps a model's error reply as 424 and keeps its body
            reply_headers["ms-azureml-model-error-statuscode"] = str(resp.status_code)
            status = 424 if resp.status_code >= 400 and path != "/swagger.json" \
                else resp.status_code
            return Response(data, status_code=status, media_type=content_type,
                            headers=reply_headers)

        released = False

        async def release() -> None:
            nonlocal released
            if not released:  # once, whether the stream ended, failed or was never started
                released = True
                inst.inflight -= 1
                await resp.aclose()

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                await release()

        return _Passthrough(passthrough(), release, status_code=resp.status_code,
                            media_type=content_type, headers=reply_headers)

    async def mirror(self, dep: Deployment, body: bytes, headers: dict[str, str]) -> None:
        with contextlib.suppress(Exception):
            path = dep.routes().get("scoring", "/score")
            inst, resp = await self.forward(dep, "POST", path, body, headers)
            try:
                await resp.aread()  # the mirror's reply is discarded
                dep.mirrored += 1
            finally:
                await resp.aclose()
                inst.inflight -= 1

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
        return {"endpoint": self.name, "pid": os.getpid(), "port": self.config.get("port"),
                "started": self.started, "deployments": self.supervisor.status()}

    async def admin(self, request: Request) -> Response:
        self.load_config()
        if not self.admin_ok(request):
            return error(401, "Unauthorized", "admin token required")
        action = request.path_params["action"]
        if action == "status" and request.method == "GET":
            return JSONResponse(self.status())
        if action == "reconcile" and request.method == "POST":
            await self.reconcile()
            return JSONResponse(self.status())
        if action == "shutdown" and request.method == "POST":
            if self.server is not None:
                self.server.should_exit = True
            return JSONResponse({"status": "stopping"})
        return error(404, "NotFound", f"no admin action '{action}'")

    async def not_found(self, request: Request) -> Response:
        return error(404, "NotFound", f"The requested api '{request.url.path}' with "
                     f"{request.method} is not supported by this endpoint.")

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
                await self.client.aclose()

        return Starlette(routes=[
            Route("/score", self.score, methods=["POST"]),
            Route("/swagger.json", self.swagger, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/_pfmagic/{action}", self.admin, methods=["GET", "POST"]),
            Route("/{path:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ], lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pfmagic.backends.local.server")
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    home = Home(args.home)
    if not home.endpoint_file(args.endpoint).is_file():
        print(f"[pfmagic] router {args.endpoint}: no such endpoint under {home.root}", flush=True)
        return 2
    router = Router(home, args.endpoint)
    router.load_config()
    port = int(router.config.get("port") or 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        print(f"[pfmagic] router {args.endpoint}: cannot listen on 127.0.0.1:{port}: {exc}",
              flush=True)
        return EXIT_PORT_BUSY
    sock.listen(512)
    ensure_pf_home(home)
    write_json(home.run_file(args.endpoint), {"pid": os.getpid(), "port": sock.getsockname()[1],
                                              "started": time.time()})
    print(f"[pfmagic] router {args.endpoint} listening on 127.0.0.1:{sock.getsockname()[1]} "
          f"(pid {os.getpid()})", flush=True)
    # Not uvicorn's fd= (it wraps the socket as AF_UNIX): asyncio sets TCP_NODELAY only on
    # connections accepted from an AF_INET/IPPROTO_TCP socket; without it every keep-alive
    # reply waits ~40 ms for a delayed ACK. socket(fileno=...) auto-detects family and proto.
    config = uvicorn.Config(router.app(), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=15)
    router.server = uvicorn.Server(config)
    router.server.run(sockets=[socket.socket(fileno=sock.detach())])
    print(f"[pfmagic] router {args.endpoint} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

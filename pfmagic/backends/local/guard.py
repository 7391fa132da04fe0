"""The router's front door: Host and Origin checks, CORS only when asked for, security headers.

As Jupyter Server and MLflow (>= 3.5, ``security middleware``) do against DNS rebinding and
cross-site requests: a request whose ``Host`` is not a loopback name (``127.0.0.1``,
``localhost``, ``[::1]``, any port) or one of the endpoint's ``allowed_hosts`` gets 403; a
browser request whose ``Origin`` is neither the same origin nor one of ``allowed_origins``
gets 403; CORS headers are sent only to an allowed origin (none by default). Every reply
carries ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: SAMEORIGIN`` (MLflow's
defaults). The lists come from ``%config PfMagics.allowed_hosts`` / ``allowed_origins``, written
into ``endpoint.json`` by the kernel and re-read by the router when the file changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN")]
CORS_METHODS = b"GET, POST, OPTIONS"
CORS_HEADERS = b"authorization, content-type, accept, azureml-model-deployment, x-request-id"


def host_name(host: str) -> str:
    """``host[:port]`` -> host, lower case (``[::1]:80`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: list[str]) -> bool:
    if not host:
        return False
    name = host_name(host)
    if name in LOOPBACK_HOSTS:
        return True
    extra = [a.strip().lower() for a in allowed]
    return "*" in extra or host.strip().lower() in extra or name in extra


def origin_allowed(origin: str, host: str, allowed: list[str]) -> bool:
    origin = origin.strip().lower().rstrip("/")
    if origin in (f"http://{host.strip().lower()}", f"https://{host.strip().lower()}"):
        return True  # same origin (a page served by this router: none today, but harmless)
    extra = [a.strip().lower().rstrip("/") for a in allowed]
    return "*" in extra or origin in extra


class Guard:
    """ASGI middleware; ``settings()`` returns the current ``(allowed_hosts, allowed_origins)``."""

    def __init__(self, app: Any, settings: Callable[[], tuple[list[str], list[str]]]):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        hosts, origins = self.settings()
        host = headers.get("host", "")
        origin = headers.get("origin")
        if not host_allowed(host, hosts):
            await _deny(send, f"Host '{host}' is not allowed (see PfMagics.allowed_hosts).")
            return
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if not origin_allowed(origin, host, origins):
                await _deny(send, f"Origin '{origin}' is not allowed (PfMagics.allowed_origins).")
                return
            if origins:
                cors = [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin"),
                ]
                if scope["method"] == "OPTIONS":  # preflight of an allowed origin
                    await _reply(
                        send,
                        204,
                        b"",
                        cors
                        + [
                            (b"access-control-allow-methods", CORS_METHODS),
                            (b"access-control-allow-headers", CORS_HEADERS),
                            (b"access-control-max-age", b"600"),
                        ],
                    )
                    return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS + cors
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _deny(send: Any, message: str) -> None:
    body = json.dumps({"error": {"code": "Forbidden", "message": message}}).encode()
    await _reply(send, 403, body, [(b"content-type", b"application/json")])


async def _reply(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})

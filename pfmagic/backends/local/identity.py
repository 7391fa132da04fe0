"""Know the router before sending it a key: a challenge on every new connection.

Anyone on the machine can bind a loopback port once the router has died. So the kernel's
clients (``%pf_invoke`` through ``pfmagic.http``, and the admin channel in ``control.py``)
open each TCP connection with ``GET /_pfmagic/identity?nonce=N`` and go on only when the
reply proves knowledge of the endpoint's admin secret (kept 0600 in ``endpoint.json``):
``HMAC-SHA256(admin_token, "<endpoint>|<port>|<nonce>")``. The proof names the port the
router listens on, so a squatter cannot relay the challenge to the real router on another
port; the secret itself never travels. The check runs inside the connection (an httpcore
network backend), so the request that follows goes over the very connection that passed it:
no window between check and use. A stranger gets nothing but the nonce.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

import h11
import httpcore
import httpx

from pfmagic.backends.local.identity_proof import IDENTITY_PATH, proof
from pfmagic.errors import BackendError

__all__ = ["IDENTITY_PATH", "NotRouter", "proof", "router_client", "stranger_message"]
MAX_REPLY = 16 << 10


class NotRouter(BackendError):
    """Whatever listens on the endpoint's port is not its router; nothing was sent to it."""


def stranger_message(endpoint: str, port: int) -> str:
    from pfmagic.backends.local.procs import port_holder

    pid, user = port_holder(port)
    return (
        f"port {port} is held by another process (pid {pid or '?'}, user {user or '?'}); "
        f"the endpoint's router is not running — `%pf_status {endpoint}` restarts it on a "
        "new port"
    )


def _exchange(
    stream: httpcore.NetworkStream, host: str, port: int, nonce: str, timeout: Any
) -> Any:
    """One HTTP/1.1 GET over the raw stream (h11, as httpcore itself); the JSON reply or None."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_REPLY)
    request = h11.Request(
        method="GET",
        target=f"{IDENTITY_PATH}?nonce={nonce}",
        headers=[("Host", f"{host}:{port}"), ("Accept", "application/json")],
    )
    stream.write(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""), timeout)
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(stream.read(65536, timeout))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REPLY:
                return None
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    if status != 200 or conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class _VerifyingBackend(httpcore.SyncBackend):
    def __init__(self, endpoint: str, secret: str):
        self.endpoint = endpoint
        self.secret = secret

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kw: Any) -> Any:
        stream = super().connect_tcp(host, port, timeout=timeout, **kw)
        nonce = secrets.token_hex(16)
        try:
            reply = _exchange(stream, host, port, nonce, timeout)
        except (OSError, h11.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException):
            reply = None
        expected = proof(self.secret, self.endpoint, port, nonce)
        got = str(reply.get("proof", "")) if isinstance(reply, dict) else ""
        if not hmac.compare_digest(expected, got):
            stream.close()
            raise NotRouter(stranger_message(self.endpoint, port), code="NotRouter")
        return stream


def router_client(endpoint: str, secret: str, **kw: Any) -> httpx.Client:
    """An httpx client whose every new connection first proves it reaches ``endpoint``'s router.
    (httpx has no public hook for a network backend: its pool is replaced, same settings.)"""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=_VerifyingBackend(endpoint, secret),
    )
    return httpx.Client(transport=transport, trust_env=False, **kw)

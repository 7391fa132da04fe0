"""The router's HTTP client to one instance: aiohttp over the instance's UNIX socket.

Why aiohttp: with httpx the client side (httpx + httpcore + anyio streams + the pure-Python h11
parser + a CancelScope per timeout) was ~70 % of the router's busy CPU per request
(``bench/profile/profile.md``); aiohttp parses replies in C and reads them straight from an
asyncio protocol. What the router relies on, and this module keeps:

* a kept-alive pool per instance, at most ``UPSTREAM_MAX_CONNECTIONS`` connections at once
  (more requests wait for one, within their deadline); an idle connection is closed by the
  router after ``UPSTREAM_IDLE_SECONDS``, well before the instance would close it
  (``INSTANCE_KEEP_ALIVE``; all three in ``limits.py``);
* errors in three kinds, so the router can decide without knowing aiohttp: ``Unreachable``
  (refused, reset, closed, a broken or incomplete reply, a connect timeout: nothing usable
  came back, so the request may go to another instance), ``UpstreamTimeout`` (a read waited
  longer than allowed: 408) and their base ``UpstreamError``;
* the body passed on as the instance sent it (no decompression: the router asks for none,
  and no ``Accept-Encoding``/``User-Agent``/``Content-Type`` of the client library's own),
  no cookies kept between requests, no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from pfmagic.backends.local.limits import UPSTREAM_IDLE_SECONDS, UPSTREAM_MAX_CONNECTIONS

CONNECT_SECONDS = 5.0  # a UNIX-socket connect that takes longer: the instance is not accepting
# headers aiohttp would add by itself; the router forwards only what it chose (server.FORWARD)
_SKIP = ("Accept-Encoding", "User-Agent", "Content-Type")

T = TypeVar("T")


class UpstreamError(Exception):
    """The exchange with the instance failed at the transport level; ``cause`` names the
    client library's error (e.g. ``ServerDisconnectedError``) for logs."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = cause or type(self).__name__


class Unreachable(UpstreamError):
    """No usable reply: refused, reset, closed, malformed or cut short, or no connection in
    time. Before a byte of it reached the client, another instance may be tried."""


class UpstreamTimeout(UpstreamError, asyncio.TimeoutError):
    """The instance took longer than allowed to send the next part of its reply."""


def _translated(exc: BaseException) -> UpstreamError | None:
    cause = type(exc).__name__
    what = f"{cause}: {exc}".rstrip(": ")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connect, not read: not accepting
        return Unreachable(what, cause)
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's sock_read timeout
        return UpstreamTimeout(what, cause)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return Unreachable(what, cause)
    return None


@contextlib.contextmanager
def _translating() -> Iterator[None]:
    """aiohttp's and asyncio's errors as this module's kinds; any other passes unchanged."""
    try:
        yield
    except Exception as exc:
        failed = _translated(exc)
        if failed is None:
            raise
        raise failed from exc


if sys.version_info >= (3, 11):

    async def within(seconds: float, work: Awaitable[T]) -> T:
        """``work``, or ``asyncio.TimeoutError`` after ``seconds`` (asyncio.timeout: no extra
        task per call, as wait_for makes on 3.11)."""
        async with asyncio.timeout(seconds):
            return await work

else:  # pragma: no cover - Python 3.10

    async def within(seconds: float, work: Awaitable[T]) -> T:
        return await asyncio.wait_for(work, seconds)


@dataclass(frozen=True)
class Answer:
    """A small reply read whole (readiness probes, stream figures)."""

    status_code: int
    text: str


class Reply:
    """An instance's reply whose head has arrived; ``chunks()`` reads the body as sent (at most
    once), ``aclose()`` gives the connection back (or drops it if the body was not read to its
    end)."""

    def __init__(self, resp: aiohttp.ClientResponse):
        self._resp = resp
        self.status_code: int = resp.status
        self.headers: Mapping[str, str] = resp.headers  # case-insensitive

    async def chunks(self) -> AsyncIterator[bytes]:
        with _translating():
            async for chunk in self._resp.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._resp.close()  # a reply read to its end has already returned its connection


class InstanceClient:
    """The router's connection pool to one instance (created on first use, inside the loop)."""

    def __init__(self, socket_path: str, max_connections: int = UPSTREAM_MAX_CONNECTIONS):
        self.socket_path = socket_path
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(
                self.socket_path,
                limit=self.max_connections,
                keepalive_timeout=UPSTREAM_IDLE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=_SKIP,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def send(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], read_timeout: float
    ) -> Reply:
        """Send one request; returns once the reply's head is in. ``read_timeout`` bounds each
        wait for more of the reply; waiting for a free pooled connection is bounded only by
        the caller's deadline (``within``)."""
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(CONNECT_SECONDS, read_timeout),
            sock_read=read_timeout,
        )
        with _translating():
            resp = await self._pool().request(
                method,
                url,
                data=body,
                headers=dict(headers),
                timeout=timeout,
                allow_redirects=False,
            )
        return Reply(resp)

    async def get(self, url: str, timeout: float) -> Answer:
        """``GET url`` read whole within ``timeout`` seconds (``UpstreamError`` otherwise)."""
        with _translating():
            async with self._pool().get(
                url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as resp:
                return Answer(resp.status, await resp.text(errors="replace"))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

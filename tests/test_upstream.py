"""The router's client to an instance (``pfmagic.backends.local.upstream``), against a small
HTTP/1.1 server on a UNIX socket: the pool's connection bound and reuse, the three kinds of
failure the router's fail-over and 408 rest on, and the body passed on as sent."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pfmagic.backends.local import limits, upstream

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # False: close the connection


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Server:
    """Counts connections (open now, most at once, ever) and answers each request head with
    ``handler`` (requests here carry a Content-Length body, read whole)."""

    def __init__(self, path: str, handler: Handler):
        self.path, self.handler = path, handler
        self.open = self.most = self.total = 0
        self.heads: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.total += 1
        self.most = max(self.most, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.heads.append(head)
                if not await self.handler(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def _sock(tmp_path: Path) -> str:
    return str(tmp_path / "i.sock")


async def _body(reply: upstream.Reply) -> bytes:
    return b"".join([chunk async for chunk in reply.chunks()])


def test_pool_bounds_connections_and_reuses_them(tmp_path: Path) -> None:
    """40 requests at once through a pool of 4: never more than 4 connections, every request
    answered with its own reply, and later requests reuse the kept-alive connections."""

    async def slow_echo(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)
        name = head.split(b"x-name: ", 1)[1].split(b"\r\n", 1)[0]
        writer.write(_ok(b'{"name": "' + name + b'"}'))
        await writer.drain()
        return True

    async def run() -> None:
        async with Server(_sock(tmp_path), slow_echo) as server:
            client = upstream.InstanceClient(server.path, max_connections=4)

            async def one(i: int) -> bytes:
                reply = await client.send(
                    "POST", "http://localhost/score", b"{}", {"x-name": f"r{i}"}, 10
                )
                assert reply.status_code == 200
                assert reply.headers["Content-Type"] == "application/json"  # any case
                return await _body(reply)

            got = await asyncio.gather(*(one(i) for i in range(40)))
            assert got == [b'{"name": "r%d"}' % i for i in range(40)]
            assert server.most <= 4 and server.total <= 4
            for i in range(5):  # sequential: one kept-alive connection, no new ones
                assert await one(i) == b'{"name": "r%d"}' % i
            assert server.total <= 4
            await client.aclose()

    asyncio.run(run())
    assert limits.UPSTREAM_IDLE_SECONDS < limits.INSTANCE_KEEP_ALIVE  # router closes idle first


def test_request_carries_only_what_the_router_chose(tmp_path: Path) -> None:
    """No Accept-Encoding, User-Agent or Content-Type of aiohttp's own; a compressed body comes
    back as the instance sent it (the router passes bytes on, never decodes them)."""
    packed = gzip.compress(b'{"answer": "hi"}')

    async def gzipped(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_ok(packed, b"content-encoding: gzip\r\n"))
        await writer.drain()
        return True

    async def run() -> None:
        async with Server(_sock(tmp_path), gzipped) as server:
            client = upstream.InstanceClient(server.path)
            reply = await client.send("POST", "http://localhost/score", b"{}", {}, 10)
            assert await _body(reply) == packed
            await client.aclose()
            head = server.heads[0].lower()
            for name in (b"accept-encoding", b"user-agent", b"content-type", b"cookie"):
                assert name + b":" not in head

    asyncio.run(run())


def test_failures_come_in_the_kinds_the_router_acts_on(tmp_path: Path) -> None:
    """Refused and cut-short replies are ``Unreachable`` (fail-over), a reply that stops
    coming is ``UpstreamTimeout`` (an asyncio.TimeoutError: 408); probes get the same kinds."""
    mode = {"now": "cut"}

    async def misbehave(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if mode["now"] == "cut":  # promises 100 bytes, sends 5, closes
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
            await writer.drain()
            return False
        if mode["now"] == "garbage":
            writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()
            return False
        await asyncio.sleep(2)  # "stall": nothing within the read timeout
        return False

    async def run() -> None:
        missing = upstream.InstanceClient(str(tmp_path / "none.sock"))
        with pytest.raises(upstream.Unreachable):
            await missing.send("POST", "http://localhost/score", b"{}", {}, 5)
        with pytest.raises(upstream.Unreachable):
            await missing.get("http://localhost/health", timeout=1)
        await missing.aclose()
        async with Server(_sock(tmp_path), misbehave) as server:
            client = upstream.InstanceClient(server.path)
            reply = await client.send("POST", "http://localhost/score", b"{}", {}, 5)
            with pytest.raises(upstream.Unreachable):
                await _body(reply)
            mode["now"] = "garbage"
            with pytest.raises(upstream.Unreachable):
                await client.send("POST", "http://localhost/score", b"{}", {}, 5)
            mode["now"] = "stall"
            with pytest.raises(upstream.UpstreamTimeout) as caught:
                await client.send("POST", "http://localhost/score", b"{}", {}, 0.3)
            assert isinstance(caught.value, asyncio.TimeoutError)
            with pytest.raises(upstream.UpstreamTimeout):
                await client.get("http://localhost/health", timeout=0.3)
            await client.aclose()

    asyncio.run(run())


def test_instances_do_not_pay_for_the_routers_aiohttp() -> None:
    """openai would import its optional aiohttp client (~15 MB, ~0.6 s) in every instance now
    that aiohttp is installed; after ``quiet.install()`` it does not, and a flow that imports
    aiohttp itself still can."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pfmagic.backends.local import quiet\n"
        "quiet.install()\n"
        "import openai\n"
        "print('aiohttp' in sys.modules)\n"
        "import aiohttp\n"
        "print(aiohttp.ClientSession.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "ClientSession"]

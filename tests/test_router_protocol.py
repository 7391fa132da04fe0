"""The router's fast protocol (httptools + uvloop) keeps the bounds of the h11 one.

A real uvicorn server on 127.0.0.1 with ``limits.router_protocol()``, a trivial ASGI app and
raw sockets: a normal keep-alive request is answered, a request head over
``MAX_HEADER_BYTES`` gets 400 and a closed connection, and a head that never completes is
closed after ``header_timeout``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from pfmagic.backends.local import limits


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    # a length, not chunked: _reply reads one head, and h11 would chunk a body without one
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module", params=["0", "1"], ids=["httptools-uvloop", "h11-asyncio"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A router protocol under uvicorn: the default fast pair, and the pure-Python one."""
    mp = pytest.MonkeyPatch()
    mp.setenv(limits.PURE_PYTHON_ENV, request.param)
    proto = limits.router_protocol()
    if request.param == "0":
        assert proto is limits.BoundedHttpTools, "httptools is a dependency: the fast path"
        assert limits.fast_loop() == "uvloop"
    else:
        assert proto is limits.BoundedH11 and limits.fast_loop() == "asyncio"
    old = proto.header_timeout
    proto.header_timeout = 1.0
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(  # the router's bounds (server.py main)
        _app,
        http=proto,
        loop=limits.fast_loop(),
        log_level="warning",
        lifespan="off",
        h11_max_incomplete_event_size=limits.MAX_HEADER_BYTES,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    proto.header_timeout = old
    mp.undo()


def _reply(conn: socket.socket) -> bytes:
    """One reply: its head and its Content-Length body (h11 writes them separately)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _closed(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        while conn.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def test_default_is_the_fast_pair_and_1_the_pure_python_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(limits.PURE_PYTHON_ENV, raising=False)
    assert limits.router_protocol() is limits.BoundedHttpTools
    assert (limits.fast_http(), limits.fast_loop()) == ("httptools", "uvloop")
    monkeypatch.setenv(limits.PURE_PYTHON_ENV, "1")
    assert limits.router_protocol() is limits.BoundedH11
    assert (limits.fast_http(), limits.fast_loop()) == ("h11", "asyncio")


def test_keep_alive_requests_are_answered(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for _ in range(3):
            conn.sendall(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert _reply(conn).startswith(b"HTTP/1.1 200")


def test_oversized_head_gets_400_and_close(port: int) -> None:
    big = b"X-Big: " + b"a" * (limits.MAX_HEADER_BYTES + 1) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port)) as conn:
        # in two writes: h11 bounds only a head still incomplete (one that arrives whole in a
        # single read, up to 64 KB, it parses); httptools (the default) counts either way
        conn.sendall(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big)
        time.sleep(0.05)
        conn.sendall(b"\r\n")
        assert _reply(conn).startswith(b"HTTP/1.1 400")
        assert _closed(conn, 2.0)


def test_slow_head_is_closed_after_the_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET /x HTTP/1.1\r\n")
        for _ in range(6):  # a header byte every 0.3 s never completes the head
            time.sleep(0.3)
            try:
                conn.sendall(b"X")
            except OSError:
                break
        assert _closed(conn, 2.0), "a slow request head kept its connection"

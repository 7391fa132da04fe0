"""pfmagic.http against real HTTP servers.

- promptflow's own serving app running the chat-echo flow (the instance process behind the
  shared local endpoint of test_invoke): JSON and SSE replies, 400 / 406 / 500 / 404 errors
  exactly as promptflow produces them;
- a small scripted server for the statuses only a gateway produces (401, 403, 424, 429, 503),
  header checks and a slow reply (timeouts).
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_invoke import EP, shared_endpoint

from pfmagic.errors import BackendError
from pfmagic.http import merge_events, score

# one worker holds the process-wide endpoint of shared_endpoint (xdist group, tests/conftest.py)
pytestmark = pytest.mark.xdist_group("shared-echo-invoke-endpoint")

KEY = "sekrit-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    yield from shared_endpoint(tmp_path_factory)


class _Relay(socketserver.BaseRequestHandler):
    """Loopback TCP -> the instance's UNIX socket, byte for byte (instances listen only there)."""

    def handle(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
            up.connect(self.server.uds)  # type: ignore[attr-defined]

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(up, self.request), daemon=True)
            back.start()
            pump(self.request, up)
            back.join(30)


@pytest.fixture(scope="module")
def pf_url(live: tuple[Path, Any]) -> Iterator[str]:
    """``/score`` of promptflow's own serving app: the blue instance behind the shared local
    endpoint, addressed directly (no router, no key; through a test relay to its UNIX
    socket), so its raw replies are what we parse."""
    status = live[1].router_status(EP)
    deployments = status.get("deployments", status)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Relay)
    server.daemon_threads = True
    server.uds = deployments["blue"]["instances"][0]["socket"]  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"
    finally:
        server.shutdown()
        server.server_close()


class _Scripted(BaseHTTPRequestHandler):
    """Replies chosen by path: /status/<n>, /headers, /slow, /sse-empty, /text."""

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        kind: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        sent = self.rfile.read(length)
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
            # echo the Authorization header back, as a careless gateway might
            message = f"scripted failure (auth was {self.headers.get('Authorization')})"
            body = {"error": {"code": f"E{status}", "message": message}}
            self._send(status, json.dumps(body).encode())
        elif self.path == "/headers":
            got = {k.lower(): v for k, v in self.headers.items()}
            self._send(
                200,
                json.dumps({"headers": got, "body": sent.decode()}).encode(),
                extra={
                    "azureml-model-deployment": got.get("azureml-model-deployment", "blue"),
                    "x-request-id": "req-123",
                },
            )
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"{}")
        elif self.path == "/sse-empty":
            self._send(200, b"", kind="text/event-stream")
        elif self.path == "/text":
            self._send(502, b"upstream connect error", kind="text/plain")


@pytest.fixture(scope="module")
def scripted() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- promptflow's serving app ---------------------------------------------------------------


def test_json_reply(pf_url: str) -> None:
    history = [{"inputs": {"question": "hi"}, "outputs": {"answer": "hello"}}]
    reply = score(pf_url, {"question": "how are you", "chat_history": history})
    assert reply.status == 200
    assert reply.outputs == {"answer": "Echo: how are you (earlier: hi) ", "turns": 1}
    assert not reply.streamed and reply.chunks == []
    assert reply.latency_ms > 0
    assert reply.request_id  # ours, echoed or not


def test_stream_reply_merges_chunks(pf_url: str) -> None:
    seen: list[dict] = []
    reply = score(pf_url, {"question": "hello there"}, stream=True, on_chunk=seen.append)
    assert reply.streamed
    assert reply.chunks == seen
    assert seen[0] == {"turns": 0}  # non-stream outputs come first
    assert [c["answer"] for c in seen[1:]] == ["Echo: ", "hello ", "there "]
    assert reply.outputs == {"turns": 0, "answer": "Echo: hello there "}


def test_request_file_text_is_sent_as_is(pf_url: str) -> None:
    reply = score(pf_url, '{"question": "from a file", "chat_history": []}')
    assert reply.outputs["answer"] == "Echo: from a file "


def test_missing_input_is_400_with_flow_message(pf_url: str) -> None:
    with pytest.raises(BackendError) as err:
        score(pf_url, {"chat_history": []})
    assert err.value.status == 400
    assert str(err.value).startswith("400 flow error: Required input fields ['question']")
    assert "\n" not in str(err.value)


def test_flow_exception_json_mode_is_500(pf_url: str) -> None:
    with pytest.raises(BackendError) as err:
        score(pf_url, {"question": "explode"})
    assert err.value.status == 500
    assert str(err.value).startswith("500 server error:")


def test_406_when_json_not_acceptable(pf_url: str) -> None:
    with pytest.raises(BackendError) as err:
        score(pf_url, {"question": "x"}, headers={"Accept": "text/html"})
    assert err.value.status == 406
    assert "Media type text/html" in str(err.value)


def test_unknown_route_404(pf_url: str) -> None:
    url = pf_url.replace("/score", "/nope")
    with pytest.raises(BackendError) as err:
        score(url, {"question": "x"})
    assert err.value.status == 404
    assert str(err.value) == (
        f"404 not found: no such endpoint, or no deployment with traffic ({url})"
    )


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/score"
    with pytest.raises(BackendError) as err:
        score(url, {"question": "x"}, key=KEY)
    assert err.value.code == "ConnectionRefused"
    assert "connection refused" in str(err.value) and KEY not in str(err.value)


# -- gateway statuses (scripted server) -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "start"),
    [
        (401, "401 unauthorized: the key or token was rejected: scripted failure"),
        (403, "403 forbidden:"),
        (424, "424 flow error: scripted failure"),
        (429, "429 too many requests"),
        (503, "503 service unavailable: scripted failure"),
    ],
)
def test_gateway_statuses_one_line_no_key(scripted: str, status: int, start: str) -> None:
    with pytest.raises(BackendError) as err:
        score(f"{scripted}/status/{status}", {"q": 1}, key=KEY)
    text = str(err.value)
    assert err.value.status == status and err.value.code == f"E{status}"
    assert text.startswith(start)
    assert KEY not in text and "Bearer ***" in text and "\n" not in text
    assert KEY not in repr(err.value)


def test_plain_text_error_body(scripted: str) -> None:
    with pytest.raises(BackendError, match="^502 bad gateway: upstream connect error$"):
        score(f"{scripted}/text", {})


def test_headers_key_and_deployment(scripted: str) -> None:
    reply = score(
        f"{scripted}/headers", {"question": "q"}, key=KEY, deployment="green", stream=True
    )
    sent = reply.outputs["headers"]
    assert sent["authorization"] == f"Bearer {KEY}"
    assert sent["azureml-model-deployment"] == "green"
    assert sent["accept"] == "text/event-stream, application/json"
    assert json.loads(reply.outputs["body"]) == {"question": "q"}
    # a JSON reply to a streaming request is read as JSON
    assert reply.deployment == "green" and not reply.streamed
    assert reply.request_id == "req-123"
    assert KEY not in repr(reply.headers)  # the body echoes it; our own fields never do


def test_timeout(scripted: str) -> None:
    start = time.perf_counter()
    with pytest.raises(BackendError, match=r"^timeout: no reply from .* within 0.5 s$"):
        score(f"{scripted}/slow", {}, timeout=0.5)
    assert time.perf_counter() - start < 1.8


def test_empty_event_stream_is_an_error(scripted: str) -> None:
    with pytest.raises(BackendError, match="closed before any data"):
        score(f"{scripted}/sse-empty", {}, stream=True)


def test_merge_events_keeps_first_non_stream_values() -> None:
    merged = merge_events(
        [{"turns": 2, "context": "c"}, {"answer": "a"}, {"answer": "b"}, {"turns": 9}]
    )
    assert merged == {"turns": 2, "context": "c", "answer": "ab"}

"""A tiny OpenAI-compatible chat server on 127.0.0.1 (stdlib only), for LLM flows in tests.

``POST /v1/chat/completions`` answers ``"You said: <last user message> (history msgs=N)"``,
as JSON or, with ``"stream": true``, as OpenAI-style SSE chunks ending with ``data: [DONE]``.
Requests without ``Authorization: Bearer <api_key>`` get 401, so a test proves the
connection's secret reached the flow. Received bodies are kept in ``server.requests``.
A JSON reply reports ``usage`` = ``FakeOpenAI(usage=(prompt, completion))`` tokens (1, 1 by
default); a stream reports none, as OpenAI's does unless asked (``stream_options``).

    with FakeOpenAI(api_key="sk-test") as llm:
        llm.base_url  # http://127.0.0.1:<port>/v1
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, api_key: str = "sk-test-fake", usage: tuple[int, int] = (1, 1)):
        self.api_key = api_key
        self.usage = usage
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _json(self, status: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(length) or b"{}")
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._json(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                if not self.path.endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                fake.requests.append(data)
                messages = data.get("messages", [])
                user = [m for m in messages if m.get("role") == "user"]
                text = (
                    f"You said: {user[-1]['content'] if user else ''} "
                    f"(history msgs={len(messages)})"
                )
                base = {
                    "id": "chatcmpl-fake",
                    "created": int(time.time()),
                    "model": data.get("model", "gpt-fake"),
                }
                if not data.get("stream"):
                    self._json(
                        200,
                        base
                        | {
                            "object": "chat.completion",
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": fake.usage[0],
                                "completion_tokens": fake.usage[1],
                                "total_tokens": sum(fake.usage),
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                for i, word in enumerate(words):
                    piece = word + (" " if i < len(words) - 1 else "")
                    chunk = base | {
                        "object": "chat.completion.chunk",
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                end = base | {
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

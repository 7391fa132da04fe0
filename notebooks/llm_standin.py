"""A stand-in for an OpenAI-compatible LLM on 127.0.0.1, so the notebooks run without an account.

It speaks the part of the OpenAI API that promptflow's LLM tool uses (``POST
/v1/chat/completions``, with or without ``stream``) and checks the API key, so a deployment only
gets answers when the connection's secret really reached it. Answers come from the same small
knowledge base as the offline flow (``flows/seed-chat``), prefixed with ``[stand-in LLM]``.

    llm = start()          # llm.base_url, llm.api_key, llm.requests (what it received)
    llm.stop()

With a real OpenAI or Azure OpenAI account, skip this and put your own key in the connection.

The tests use it too (one stand-in, not two), with a fixed key and ``answer=echo`` so that a
reply shows what the flow sent:

    with StandInLLM(api_key="sk-test", answer=echo) as llm: ...
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_KB_DIR = Path(__file__).parent / "flows" / "seed-chat"


Answer = Callable[[list[dict[str, Any]]], str]  # the chat messages → the reply's text


def _last_question(messages: list[dict[str, Any]]) -> str:
    question = next(
        (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    if isinstance(question, list):  # content parts
        question = " ".join(p.get("text", "") for p in question if isinstance(p, dict))
    return str(question)


def article_answer(messages: list[dict[str, Any]]) -> str:
    """The notebooks' answer: the best passage of the deployment article."""
    if str(_KB_DIR) not in sys.path:
        sys.path.insert(0, str(_KB_DIR))
    import kb  # the offline flow's knowledge base

    question = _last_question(messages)
    hits = kb.search(question, k=1)
    if not hits or hits[0][0] <= 0:
        return "[stand-in LLM] I only know the deployment article."
    return "[stand-in LLM] " + kb.best_sentences(hits[0][1].text, question, 240)


def echo(messages: list[dict[str, Any]]) -> str:
    """The tests' answer: the last question and how many messages came with it."""
    return f"You said: {_last_question(messages)} (history msgs={len(messages)})"


class StandInLLM:
    """Serves on ``host:port`` (a free port by default) from construction until ``stop()``
    (or the end of a ``with`` block). ``api_key`` defaults to a random one."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        answer: Answer = article_answer,
    ):
        self.api_key = api_key or secrets.token_hex(16)
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization", "")
                key = self.headers.get("api-key", "")
                if auth != f"Bearer {owner.api_key}" and key != owner.api_key:
                    self._json(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided.",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                owner.requests.append(body)
                text = answer(body.get("messages", []))
                model = body.get("model", "gpt-3.5-turbo")
                rid = "chatcmpl-standin"
                created = int(time.time())
                if not body.get("stream"):
                    self._json(
                        200,
                        {
                            "id": rid,
                            "object": "chat.completion",
                            "created": created,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 0,
                                "completion_tokens": len(text.split()),
                                "total_tokens": len(text.split()),
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                pieces = [{"role": "assistant", "content": ""}]
                pieces += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
                for i, delta in enumerate(pieces + [{}]):
                    chunk = {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": delta,
                                "finish_reason": "stop" if i == len(pieces) else None,
                            }
                        ],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="llm-standin", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:  # never shows the key
        return f"StandInLLM(base_url=<127.0.0.1>, requests={len(self.requests)})"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandInLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(port: int = 0) -> StandInLLM:
    """Start the stand-in on 127.0.0.1 (a free port unless ``port`` is given)."""
    return StandInLLM(port=port)


if __name__ == "__main__":  # python notebooks/llm_standin.py 8765
    llm = StandInLLM(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"base_url={llm.base_url} api_key={llm.api_key}", flush=True)
    threading.Event().wait()

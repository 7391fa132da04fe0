"""Scoring client: POST a body to an endpoint's ``/score``, parse JSON or SSE, map errors.

Used by both backends' ``invoke`` (local endpoints on 127.0.0.1 and Azure ML online endpoints
speak the same protocol). Every failure is a ``BackendError`` whose message is one line with the
HTTP status and the endpoint's own ``error.message``; the key never appears in it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from pfmagic.backends.base import ScoreReply
from pfmagic.errors import BackendError

ChunkCallback = Callable[[dict[str, Any]], None]

# What each status means for someone invoking an endpoint (Azure ML + promptflow serving).
_STATUS_HINTS: dict[int, str] = {
    400: "flow error",
    401: "unauthorized: the key or token was rejected",
    403: "forbidden: the key or token has no access to this endpoint",
    404: "not found: no such endpoint, or no deployment with traffic",
    406: "not acceptable",
    408: "request timed out at the endpoint",
    413: "request too large",
    424: "flow error",
    429: "too many requests: the endpoint is throttling, retry later",
}
_MAX_MESSAGE = 300


def score(
    url: str,
    body: Any,
    *,
    key: str | None = None,
    deployment: str | None = None,
    stream: bool = False,
    timeout: float = 120.0,
    on_chunk: ChunkCallback | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.Client | None = None,
) -> ScoreReply:
    """POST ``body`` to ``url`` and return the decoded reply.

    ``body`` is JSON-able (sent as JSON) or raw JSON text/bytes (a request file, sent as is).
    With ``stream`` the request accepts ``text/event-stream`` *and* JSON (promptflow answers
    406 to SSE-only on a non-streaming flow); the reply's Content-Type decides how it is read.
    ``on_chunk(event)`` is called with each SSE event as it arrives.
    """
    request_id = str(uuid.uuid4())
    send_headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream, application/json" if stream else "application/json",
        "x-request-id": request_id,
    }
    if key:
        send_headers["Authorization"] = f"Bearer {key}"
    if deployment:
        send_headers["azureml-model-deployment"] = deployment
    if headers:
        send_headers.update(headers)
    # dicts/lists go out as JSON; text or bytes (a request file) as is
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    if isinstance(content, str):
        content = content.encode()

    http = client or shared_client(url)
    start = time.perf_counter()
    try:
        with http.stream(
            "POST", url, content=content, headers=send_headers, timeout=_timeout(timeout)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _status_error(response, url, key)
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/event-stream"):
                chunks = _read_events(response.iter_lines(), on_chunk, key)
                if not chunks:
                    raise BackendError(
                        f"{response.status_code}: the event stream from {url} closed before any "
                        "data (the flow probably failed; see the deployment logs)",
                        status=response.status_code,
                        code="StreamClosed",
                    )
                outputs: Any = merge_events(chunks)
                streamed = True
            else:
                response.read()
                chunks, streamed = [], False
                outputs = _decode(response)
            latency = (time.perf_counter() - start) * 1000
            resp_headers = {k.lower(): v for k, v in response.headers.items()}
            return ScoreReply(
                status=response.status_code,
                outputs=outputs,
                deployment=resp_headers.get("azureml-model-deployment"),
                latency_ms=latency,
                request_id=resp_headers.get("x-request-id") or request_id,
                streamed=streamed,
                chunks=chunks,
                headers=resp_headers,
            )
    except httpx.TimeoutException:
        raise BackendError(
            f"timeout: no reply from {url} within {timeout:g} s", code="Timeout"
        ) from None
    except httpx.ConnectError:
        raise BackendError(
            f"connection refused: nothing is listening at {url} (endpoint stopped or deleted?)",
            code="ConnectionRefused",
        ) from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise BackendError(
            f"the connection to {url} closed early: {_clean(str(exc), key)}", code="StreamClosed"
        ) from None
    except httpx.HTTPError as exc:  # anything else httpx raises (invalid URL, ...)
        raise BackendError(
            f"request to {url} failed: {_clean(str(exc), key)}", code=type(exc).__name__
        ) from None


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def shared_client(url: str) -> httpx.Client:
    """One pooled client per process (a new one costs ~20 ms: SSL context, no keep-alive).

    Loopback endpoints bypass proxy settings; remote ones (Azure) honour HTTPS_PROXY etc.
    """
    loopback = httpx.URL(url).host in ("127.0.0.1", "localhost", "::1")
    with _clients_lock:
        client = _clients.get(loopback)
        if client is None or client.is_closed:
            client = _clients[loopback] = httpx.Client(trust_env=not loopback)
        return client


def _timeout(seconds: float) -> httpx.Timeout:
    # connect fails fast (endpoint stopped), read waits for slow flows / gaps between chunks
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


def _read_events(
    lines: Iterable[str], on_chunk: ChunkCallback | None, key: str | None
) -> list[dict[str, Any]]:
    """Parse SSE: ``data:`` lines up to a blank line form one event (JSON object)."""
    events: list[dict[str, Any]] = []
    data: list[str] = []

    def flush() -> None:
        if not data:
            return
        text = "\n".join(data)
        data.clear()
        try:
            event = json.loads(text)
        except ValueError:
            event = {"data": text}
        if not isinstance(event, dict):
            event = {"data": event}
        events.append(event)
        if on_chunk is not None:
            on_chunk(event)

    for line in lines:
        if not line:
            flush()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # comments (":...") and other fields (event:, id:, retry:) carry nothing we use
    flush()  # promptflow ends the stream by closing the connection, without a blank line
    return events


def merge_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the pieces of the streamed field; other fields keep their first value.

    promptflow sends the non-stream outputs in the first event, then one event per chunk
    keyed by the stream output's name.
    """
    merged: dict[str, Any] = {}
    for event in events:
        for name, value in event.items():
            if name not in merged:
                merged[name] = value
            elif isinstance(merged[name], str) and isinstance(value, str):
                merged[name] += value
    return merged


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _status_error(response: httpx.Response, url: str, key: str | None) -> BackendError:
    status = response.status_code
    message, code = _endpoint_message(response)
    if status >= 500:
        what = {502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}.get(
            status, "server error"
        )
    else:
        what = _STATUS_HINTS.get(status, response.reason_phrase.lower() or "error")
    text = f"{status} {what}"
    inner = response.headers.get("ms-azureml-model-error-statuscode")
    if inner:  # Azure ML (and the local router) wrap the model's own status in a 424
        text += f" (flow replied {inner})"
    if message:
        text += f": {_clean(message, key)}"
    elif status == 404:
        text += f" ({url})"
    return BackendError(text, status=status, code=code)


def _endpoint_message(response: httpx.Response) -> tuple[str, str | None]:
    """The endpoint's own message: ``{"error": {"code", "message"}}`` (promptflow, Azure ML)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        kind = response.headers.get("content-type", "")
        if not text or "html" in kind:  # 404 pages are HTML; their text adds nothing
            return "", None
        return text, None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or data.get("message") or ""
            return str(message), error.get("code")
        if isinstance(error, str):
            return error, None
    return json.dumps(data), None


def _clean(text: str, key: str | None) -> str:
    """One line, bounded, and never the key (an endpoint could echo the header back)."""
    if key:
        text = text.replace(key, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"

"""Time to the first byte (and to the end) of a streamed reply, sequential, keep-alive.

The chat-echo flow yields its answer word by word; with ``Accept: text/event-stream`` both
``pf flow serve`` and a pfmagic endpoint send it as server-sent events. The first byte is the
first body chunk read after the request went out (headers alone do not count).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

from loadgen import percentile


def stream_times(url: str, headers: dict[str, str], n: int, warmup: int = 5) -> dict[str, Any]:
    """Median/p95 time to first body byte and to the last one over ``n`` streamed requests."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    first: list[float] = []
    whole: list[float] = []
    errors = 0
    try:
        for i in range(warmup + n):
            body = json.dumps({"question": f"stream {i} of the bench", "chat_history": []})
            sent = time.perf_counter()
            conn.request(
                "POST",
                parts.path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "Accept": "text/event-stream",
                },
            )
            resp = conn.getresponse()
            chunk = resp.read1(65536)
            got_first = time.perf_counter()
            rest = resp.read()
            done = time.perf_counter()
            text = (chunk + rest).decode("utf-8", "replace")
            if resp.status != 200 or f"{i}" not in text or "data:" not in text:
                errors += 1
                continue
            if i >= warmup:
                first.append((got_first - sent) * 1000)
                whole.append((done - sent) * 1000)
    finally:
        conn.close()
    return {
        "n": len(first),
        "errors": errors,
        "ttfb_p50_ms": round(percentile(first, 50), 2),
        "ttfb_p95_ms": round(percentile(first, 95), 2),
        "end_p50_ms": round(percentile(whole, 50), 2),
    }

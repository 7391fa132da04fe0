"""Closed-loop HTTP load: N clients, each sends its next request when the previous one returns.

Bounded by a request count and a deadline (whichever comes first). Every request carries a
unique question and the reply must echo it back (the chat-echo flow answers ``Echo: <q>``), so a
reply that belongs to another request counts as an error, not a success. Used by the benchmarks
and by the reliability tests (``tests/test_reliability_*.py`` import it from here).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    clients: int
    sent: int = 0
    ok: int = 0
    errors: int = 0  # a reply came back, but not a 200 with our own answer
    lost: int = 0  # no reply at all (connection error, timeout)
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter = field(default_factory=Counter)
    deployments: Counter = field(default_factory=Counter)  # azureml-model-deployment header
    samples: list[str] = field(default_factory=list)  # first few failures, for the report

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "lost": self.lost,
            "elapsed_s": round(self.elapsed_s, 2),
            "rps": round(self.throughput, 1),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p95_ms": round(percentile(self.latencies_ms, 95), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "statuses": dict(self.statuses),
            "deployments": dict(self.deployments),
            "samples": self.samples[:5],
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _failure(result: LoadResult, text: str) -> None:
    if len(result.samples) < 20:
        result.samples.append(text[:300])


async def run_load_async(
    url: str,
    *,
    clients: int,
    requests: int,
    deadline_s: float,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    body: Callable[[int], dict[str, Any]] | None = None,
    check_echo: bool = True,
    warmup: int = 0,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Closed-loop load; ``stop`` (set from another thread) ends it early, like the deadline."""
    import httpx

    result = LoadResult(clients=clients)
    counter = itertools.count()
    make_body = body or (lambda i: {"question": f"q{i}", "chat_history": []})
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        for i in range(warmup):  # opens connections and wakes the server; not counted
            await client.post(url, json=make_body(-1 - i), headers=hdrs)
        start = time.perf_counter()
        stop_at = start + deadline_s

        async def worker() -> None:
            while time.perf_counter() < stop_at and not (stop is not None and stop.is_set()):
                i = next(counter)
                if i >= requests:
                    return
                result.sent += 1
                t0 = time.perf_counter()
                try:
                    reply = await client.post(url, json=make_body(i), headers=hdrs)
                except httpx.HTTPError as exc:
                    result.lost += 1
                    _failure(result, f"#{i}: {type(exc).__name__}: {exc}")
                    continue
                ms = (time.perf_counter() - t0) * 1000
                result.statuses[reply.status_code] += 1
                dep = reply.headers.get("azureml-model-deployment")
                if dep:
                    result.deployments[dep] += 1
                good = reply.status_code == 200
                if good and check_echo:
                    try:
                        good = f"q{i} " in reply.json().get("answer", "")
                    except ValueError:
                        good = False
                if good:
                    result.ok += 1
                    result.latencies_ms.append(ms)
                else:
                    result.errors += 1
                    _failure(result, f"#{i}: {reply.status_code} {reply.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
        result.elapsed_s = time.perf_counter() - start
    return result


def run_load(url: str, **kwargs: Any) -> LoadResult:
    """Synchronous wrapper (runs its own event loop)."""
    return asyncio.run(run_load_async(url, **kwargs))

"""What the router saw: requests, errors, latency, tokens per deployment (``%pf_metrics``).

The router records every scoring request it answered, once, in the deployment that served
it (no extra process): 10-s buckets kept for ``KEEP`` seconds, each with request / error /
token / mirrored counts and a latency histogram (log bins ~5 % wide, so percentiles are
within ~5 %). 401s are counted per endpoint (``unauthorized``), replies made before any
deployment was chosen (404 no traffic, 413 too large) as ``unrouted``. CPU % and resident
memory of each deployment's instance processes are sampled from /proc (``proc_stats.py``).

Served by the router at the admin-authenticated ``/_pfmagic/metrics``: Prometheus text
(cumulative counters since the router started; ``prometheus_export.py``) or, with
``?format=json&window=SECONDS``, the windowed snapshot the kernel turns into
``pfmagic.metrics.EndpointMetrics``.

Tokens and flow latency: promptflow 1.18.5 reports them only to OpenTelemetry exporters
(``promptflow/core/_serving/monitor/metrics.py``), never in the reply; each instance hands
them to the router on the reply's head (``flow_figures.py``: prompt + completion tokens
summed over the flow's nodes, the flow run's duration). When promptflow counted no tokens
for a request, the router counts the OpenAI-style ``usage`` objects (``total_tokens``, or
``prompt_tokens`` + ``completion_tokens``) found in a flow's JSON reply instead -- one source
per request, never both.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pfmagic.backends.local.prometheus_export import Family, render

INTERVAL = 10.0  # seconds per bucket
KEEP = 6 * 3600.0  # seconds of buckets kept
_LOG_STEP = math.log(1.1)  # latency bins: each 10 % wider than the one before
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _bin(ms: float) -> int:
    return int(math.floor(math.log(max(ms, 0.01)) / _LOG_STEP))


def _bin_value(index: int) -> float:
    """The geometric middle of a latency bin, in ms."""
    return math.exp((index + 0.5) * _LOG_STEP)


def percentiles(hist: dict[int, int], qs: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles (``q`` in 0..100) of a latency histogram, in ms."""
    total = sum(hist.values())
    if not total:
        return [None for _ in qs]
    ordered = sorted(hist.items())
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q / 100 * total))
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                out.append(round(_bin_value(index), 2))
                break
    return out


def usage_tokens(body: bytes) -> int:
    """Tokens in the OpenAI-style ``usage`` objects of a JSON reply (0 when none)."""
    if b'_tokens"' not in body:  # cheap: most replies are not parsed at all
        return 0
    try:
        data = json.loads(body)
    except ValueError:
        return 0
    return _walk_tokens(data, 0)


def _walk_tokens(node: Any, depth: int) -> int:
    if depth > 8:
        return 0
    if isinstance(node, dict):
        total = node.get("total_tokens")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
        parts = [node.get("prompt_tokens"), node.get("completion_tokens")]
        if any(isinstance(p, int) and not isinstance(p, bool) for p in parts):
            return sum(p for p in parts if isinstance(p, int) and not isinstance(p, bool))
        return sum(_walk_tokens(v, depth + 1) for v in node.values())
    if isinstance(node, list):
        return sum(_walk_tokens(v, depth + 1) for v in node)
    return 0


@dataclass
class Bucket:
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    mirrored: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # bin -> count
    flow_latency: dict[int, int] = field(default_factory=dict)  # promptflow's flow duration
    cpu_percent: float | None = None
    memory_mb: float | None = None

    def add_latency(self, ms: float) -> None:
        _add(self.latency, ms)

    def add_flow_latency(self, ms: float) -> None:
        _add(self.flow_latency, ms)


def _add(hist: dict[int, int], ms: float) -> None:
    index = _bin(ms)
    hist[index] = hist.get(index, 0) + 1


class Recorder:
    """One endpoint's metrics, in the router's event loop (no locks: one thread)."""

    def __init__(self, endpoint: str, *, clock: Any = time.time):
        self.endpoint = endpoint
        self.clock = clock
        self.started = clock()
        # (bucket start, deployment) -> Bucket; 401s and unrouted replies per endpoint
        self.buckets: dict[tuple[float, str], Bucket] = {}
        self.unauthorized: dict[float, int] = {}
        self.unrouted: dict[float, int] = {}
        self.resources: dict[str, tuple[float, float]] = {}  # deployment -> (cpu %, MB)
        self._procs: dict[int, Any] = {}  # pid -> proc_stats.Process (cpu % needs history)
        self._last_sample = 0.0
        # cumulative since the router started, for /_pfmagic/metrics (prometheus_export.py)
        labels = ("endpoint", "deployment")
        self._p_requests = Family(
            "pfmagic_requests",
            "Scoring requests answered, by the deployment that served them and status code",
            "counter",
            (*labels, "code"),
        )
        self._p_errors = Family(
            "pfmagic_request_errors",
            "Scoring requests answered with a non-2xx status",
            "counter",
            labels,
        )
        self._p_tokens = Family(
            "pfmagic_tokens", "LLM tokens reported in replies", "counter", labels
        )
        self._p_mirrored = Family(
            "pfmagic_mirrored_requests",
            "Mirrored copies sent (replies discarded)",
            "counter",
            labels,
        )
        self._p_unauthorized = Family(
            "pfmagic_unauthorized_requests", "Requests refused with 401", "counter", ("endpoint",)
        )
        self._p_latency = Family(
            "pfmagic_request_latency_seconds",
            "Scoring latency seen by the router (to the last byte)",
            "histogram",
            labels,
            buckets=LATENCY_BUCKETS_S,
        )
        self._p_flow_latency = Family(
            "pfmagic_flow_latency_seconds",
            "promptflow's own duration of the flow run (executor time, reported by the instance)",
            "histogram",
            labels,
            buckets=LATENCY_BUCKETS_S,
        )
        self._p_cpu = Family(
            "pfmagic_instance_cpu_percent",
            "CPU of the deployment's instances (sum, % of one core)",
            "gauge",
            labels,
        )
        self._p_memory = Family(
            "pfmagic_instance_memory_bytes",
            "Resident memory of the deployment's instances (sum)",
            "gauge",
            labels,
        )
        self._families = [
            self._p_requests,
            self._p_errors,
            self._p_tokens,
            self._p_mirrored,
            self._p_unauthorized,
            self._p_latency,
            self._p_flow_latency,
            self._p_cpu,
            self._p_memory,
        ]

    # -- recording ---------------------------------------------------------------------------
    def _bucket(self, deployment: str, now: float | None) -> Bucket:
        now = self.clock() if now is None else now
        start = math.floor(now / INTERVAL) * INTERVAL
        key = (start, deployment)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
            self._prune(start)
        return bucket

    def _prune(self, newest: float) -> None:
        oldest = newest - KEEP
        for key in [k for k in self.buckets if k[0] < oldest]:
            del self.buckets[key]
        for series in (self.unauthorized, self.unrouted):
            for start in [s for s in series if s < oldest]:
                del series[start]

    def record(
        self,
        deployment: str,
        status: int,
        latency_ms: float,
        tokens: int = 0,
        now: float | None = None,
        flow_ms: float | None = None,
    ) -> None:
        """One answered request; ``flow_ms``: promptflow's flow duration when it sent one."""
        bucket = self._bucket(deployment, now)
        bucket.requests += 1
        error = not 200 <= status < 300
        bucket.errors += error
        bucket.tokens += tokens
        bucket.add_latency(latency_ms)
        labels = (self.endpoint, deployment)
        self._p_requests.inc((*labels, str(status)))
        if error:
            self._p_errors.inc(labels)
        if tokens:
            self._p_tokens.inc(labels, tokens)
        self._p_latency.observe(labels, latency_ms / 1000)
        if flow_ms is not None:
            bucket.add_flow_latency(flow_ms)
            self._p_flow_latency.observe(labels, flow_ms / 1000)

    def record_mirrored(self, deployment: str, now: float | None = None) -> None:
        self._bucket(deployment, now).mirrored += 1
        self._p_mirrored.inc((self.endpoint, deployment))

    def _count(self, series: dict[float, int], now: float | None) -> None:
        now = self.clock() if now is None else now
        start = math.floor(now / INTERVAL) * INTERVAL
        if start not in series:
            self._prune(start)
        series[start] = series.get(start, 0) + 1

    def record_unauthorized(self, now: float | None = None) -> None:
        self._count(self.unauthorized, now)
        self._p_unauthorized.inc((self.endpoint,))

    def record_unrouted(self, now: float | None = None) -> None:
        self._count(self.unrouted, now)

    def sample(self, pids: dict[str, list[int]], now: float | None = None) -> None:
        """CPU % and resident MB of each deployment's instance processes (summed)."""
        from pfmagic.backends.local.proc_stats import Process, ProcessGone

        now = self.clock() if now is None else now
        self._last_sample = now
        alive: set[int] = set()
        for deployment, plist in pids.items():
            cpu = memory = 0.0
            for pid in plist:
                proc = self._procs.get(pid)
                try:
                    if proc is None:
                        proc = self._procs[pid] = Process(pid)
                        proc.cpu_percent()  # the first reading is always 0: prime it
                    cpu += proc.cpu_percent()
                    memory += proc.rss()
                    alive.add(pid)
                except ProcessGone:
                    continue
            self.resources[deployment] = (round(cpu, 1), round(memory / 2**20, 1))
            self._p_cpu.set((self.endpoint, deployment), cpu)
            self._p_memory.set((self.endpoint, deployment), memory)
            if plist:
                bucket = self._bucket(deployment, now)
                bucket.cpu_percent, bucket.memory_mb = self.resources[deployment]
        for deployment in [d for d in self.resources if d not in pids]:
            del self.resources[deployment]
            self._p_cpu.remove((self.endpoint, deployment))
            self._p_memory.remove((self.endpoint, deployment))
        for pid in [p for p in self._procs if p not in alive]:
            del self._procs[pid]

    # -- reading -----------------------------------------------------------------------------
    def prometheus(self) -> bytes:
        return render(self._families)

    def snapshot(
        self, window: float, deployments: Iterable[str], now: float | None = None
    ) -> dict[str, Any]:
        """Totals over the last ``window`` seconds per deployment, and the 10-s series."""
        now = self.clock() if now is None else now
        since = now - window
        names = list(dict.fromkeys([*deployments, *(d for _s, d in self.buckets)]))
        totals = {name: Bucket() for name in names}
        series = []
        for (start, name), b in sorted(self.buckets.items()):
            if start + INTERVAL <= since:
                continue
            t = totals.setdefault(name, Bucket())
            t.requests += b.requests
            t.errors += b.errors
            t.tokens += b.tokens
            t.mirrored += b.mirrored
            for mine, theirs in ((t.latency, b.latency), (t.flow_latency, b.flow_latency)):
                for index, count in theirs.items():
                    mine[index] = mine.get(index, 0) + count
            p50, p95, p99 = percentiles(b.latency, (50, 95, 99))
            flow_p50, flow_p95 = percentiles(b.flow_latency, (50, 95))
            series.append(
                {
                    "time": start,
                    "deployment": name,
                    "requests": b.requests,
                    "errors": b.errors,
                    "tokens": b.tokens,
                    "mirrored": b.mirrored,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "p99_ms": p99,
                    "flow_p50_ms": flow_p50,
                    "flow_p95_ms": flow_p95,
                    "cpu_percent": b.cpu_percent,
                    "memory_mb": b.memory_mb,
                }
            )
        summary = {}
        for name, t in totals.items():
            p50, p95, p99 = percentiles(t.latency, (50, 95, 99))
            flow_p50, flow_p95 = percentiles(t.flow_latency, (50, 95))
            cpu, memory = self.resources.get(name, (None, None))
            summary[name] = {
                "requests": t.requests,
                "errors": t.errors,
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "flow_p50_ms": flow_p50,
                "flow_p95_ms": flow_p95,
                "tokens": t.tokens,
                "cpu_percent": cpu,
                "memory_mb": memory,
                "mirrored": t.mirrored,
            }

        def windowed(counts: dict[float, int]) -> int:
            return sum(c for s, c in counts.items() if s + INTERVAL > since)

        return {
            "endpoint": self.endpoint,
            "interval": INTERVAL,
            "now": now,
            "window": window,
            "started": self.started,
            "deployments": summary,
            "unauthorized": windowed(self.unauthorized),
            "unrouted": windowed(self.unrouted),
            "series": series,
            "unauthorized_series": [
                {"time": s, "count": c} for s, c in sorted(self.unauthorized.items()) if s > since
            ],
        }

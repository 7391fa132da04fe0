"""The router's cumulative Prometheus series, kept without ``prometheus_client``.

``prometheus_client`` (with the http.server, wsgiref and friends it imports) is ~2 MB of a
router's memory, and only a Prometheus scrape of ``/_pfmagic/metrics`` needs it. So the
recorder (``metrics.py``) counts into these plain tallies, and ``render()`` imports
prometheus_client only then, to print them as its own Counter / Histogram / Gauge objects
would: the same families, samples, label order, ``_created`` timestamps (the time a series
was first seen) and text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    """One label set of a counter, gauge or histogram."""

    value: float = 0.0  # counter / gauge value; a histogram's sum
    created: float = field(default_factory=time.time)
    buckets: list[float] | None = None  # a histogram's count per bucket (not cumulative)


class Family:
    """What prometheus_client's ``Counter``/``Gauge``/``Histogram`` with labels would hold."""

    def __init__(
        self,
        name: str,
        documentation: str,
        kind: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...] = (),
    ):
        self.name, self.documentation, self.kind = name, documentation, kind
        self.labelnames = labelnames
        self.bounds = [float(b) for b in buckets] + [float("inf")] if buckets else []
        self.series: dict[tuple[str, ...], Series] = {}

    def _get(self, labels: tuple[str, ...]) -> Series:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Series(
                buckets=[0.0] * len(self.bounds) if self.kind == "histogram" else None
            )
        return series

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self._get(labels).value += amount

    def set(self, labels: tuple[str, ...], value: float) -> None:
        self._get(labels).value = float(value)

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        series = self._get(labels)
        series.value += amount
        assert series.buckets is not None
        for i, bound in enumerate(self.bounds):
            if amount <= bound:
                series.buckets[i] += 1.0
                break

    def remove(self, labels: tuple[str, ...]) -> None:
        self.series.pop(labels, None)

    def metric(self, use_created: bool) -> Any:
        """This family as prometheus_client's collectors yield it."""
        from prometheus_client.metrics_core import Metric
        from prometheus_client.utils import floatToGoString

        out = Metric(self.name, self.documentation, self.kind)
        for labels, series in list(self.series.items()):
            base = dict(zip(self.labelnames, labels, strict=True))
            if self.kind == "counter":
                out.add_sample(self.name + "_total", base, series.value)
                if use_created:
                    out.add_sample(self.name + "_created", base, series.created)
            elif self.kind == "gauge":
                out.add_sample(self.name, base, series.value)
            else:
                acc = 0.0
                for bound, count in zip(self.bounds, series.buckets or (), strict=True):
                    acc += count
                    out.add_sample(
                        self.name + "_bucket", {**base, "le": floatToGoString(bound)}, acc
                    )
                out.add_sample(self.name + "_count", base, acc)
                out.add_sample(self.name + "_sum", base, series.value)
                if use_created:
                    out.add_sample(self.name + "_created", base, series.created)
        return out


def render(families: list[Family]) -> bytes:
    """Prometheus text exposition of ``families``, as ``generate_latest`` prints it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client import metrics as client_metrics

    # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_...)
    use_created = bool(getattr(client_metrics, "_use_created", True))

    class _Collector:
        def collect(self) -> list[Any]:
            return [f.metric(use_created) for f in families]

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Collector())  # type: ignore[arg-type]
    return generate_latest(registry)

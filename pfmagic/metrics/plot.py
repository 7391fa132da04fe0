"""The metrics picture: requests per interval, latency percentiles, error rate.

matplotlib's object API on an Agg canvas (no pyplot: no global backend or figure state in
the user's kernel); a small figure so a saved notebook stays light.
"""

from __future__ import annotations

import io
from typing import Any

SIZE = (9.0, 2.6)  # inches
DPI = 80


def draw(metrics: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_req, ax_lat, ax_err = fig.subplots(1, 3)
    series = metrics.series
    step = metrics.interval
    for i, (name, rows) in enumerate(series.groupby("deployment", sort=True)):
        color = f"C{i}"
        ax_req.step(rows["time"], rows["requests"], where="post", color=color, label=name)
        for q, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
            ax_lat.plot(rows["time"], rows[q], style, color=color, label=f"{name} {q[:3]}")
        served = rows["requests"].where(rows["requests"] > 0)
        ax_err.plot(rows["time"], 100 * rows["errors"] / served, "o-", ms=3, color=color)
    ax_req.set_title(f"requests per {step:g} s", fontsize=9)
    ax_lat.set_title("latency p50 / p95 / p99 (ms)", fontsize=9)
    ax_err.set_title("error rate (%)", fontsize=9)
    ax_err.set_ylim(bottom=0)
    ax_req.set_ylim(bottom=0)
    for ax in (ax_req, ax_lat, ax_err):
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    if len(series):
        ax_req.legend(fontsize=7, loc="upper left")
    else:
        ax_req.text(0.5, 0.5, "no traffic yet", ha="center", transform=ax_req.transAxes)
    import matplotlib.dates as mdates

    for ax in (ax_req, ax_lat, ax_err):
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    return fig


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()

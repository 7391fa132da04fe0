"""Plain-text twins of the widgets (terminal IPython, nbval, no ipywidgets, widgets=False).

Pure functions of data: no ipywidgets import, so the fallback works where widgets can't.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pfmagic.skus import SKIP_RESERVATION

if TYPE_CHECKING:
    from pfmagic.backends.events import ProgressEvent
    from pfmagic.skus import QuotaCheck

MARKS = {"fits": "✓", "short": "✗", "unchecked": "·", "kubernetes": "·", "unknown": "?"}


def skip_list() -> str:
    """SKUs without the 20 % reservation, short names joined."""
    return ", ".join(s.short for s in SKIP_RESERVATION)


def quota_text(check: QuotaCheck, *, title: str | None = None, skips: bool = True) -> str:
    """One readable block: choice, formula, cores needed, usage and verdict, warnings
    (and, with ``skips``, the SKUs without the 20 % reservation)."""
    head = title or "Quota"
    lines = [f"{head}: {check.instances} × {check.sku_name or '(no instance type)'}"]
    if check.sku is not None:
        sku = check.sku
        gpu = f", {sku.gpus_text} GPU" if sku.gpus else ""
        lines.append(
            f"  SKU       {sku.vcpus} vCPU{gpu}, {sku.memory_gib:g} GiB, "
            f"family {sku.family}" + (f" ({sku.note})" if sku.note else "")
        )
        lines.append(f"  rule      {check.formula}")
        lines.append(f"  needed    {check.needed} vCPUs")
        if check.available is not None:
            lines.append(f"  workspace {check.current}/{check.limit} used, {check.available} free")
    lines.append(_wrap(f"{MARKS.get(check.verdict, '·')} {check.message}"))
    for warning in check.warnings:
        lines.append(_wrap(f"! {warning}"))
    if skips and not check.kubernetes:
        lines.append(_wrap(f"no 20 % reservation (instances × vCPUs): {skip_list()}"))
    return "\n".join(lines)


def _wrap(text: str, width: int = 100) -> str:
    # URLs stay whole (break_long_words=False) so they remain clickable in a terminal.
    return textwrap.fill(
        text,
        width=width,
        initial_indent="  ",
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def elapsed(seconds: float) -> str:
    # One token nbval sanitizers can match ("0.4s", "125s", not "2m05s"); tenths below 10 s
    # so a sub-second stage does not read "0s".
    seconds = max(0.0, seconds)
    return f"{seconds:.1f}s" if seconds < 10 else f"{int(seconds)}s"


def provisioning_note(state: str, provisioning_state: str | None) -> str:
    """`` [Updating]`` while a stage runs; nothing once it ended (no "Succeeded [Deleting]")."""
    if not provisioning_state or provisioning_state == state or state in ENDED:
        return ""
    return f" [{provisioning_state}]"


ENDED = frozenset({"Succeeded", "Failed", "Canceled", "Skipped"})


def shown_once(
    stages: Iterable[tuple[str, str, str]], details: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``details`` without values a stage line already shows (the scoring URI, say)."""
    said = " ".join(message for _s, _st, message in stages)
    return [(k, v) for k, v in details if not (k == "scoring URI" and v != "-" and v in said)]


def event_line(event: ProgressEvent, started: float) -> str:
    """One printed line per event: time, offset, stage, state, message."""
    pct = f" {event.progress:.0%}" if event.progress is not None else ""
    prov = provisioning_note(event.state, event.provisioning_state)
    msg = f" {event.message}" if event.message else ""
    offset = "+" + elapsed(event.time - started)
    return f"{clock(event.time)} {offset:>7} {event.stage:<10} {event.state:<9}{pct}{prov}{msg}"


def substep_lines(substeps: Iterable[str]) -> list[str]:
    """A stage's sub-steps, indented under its line (the text face of the widget's list)."""
    return [f"    · {line}" for line in substeps]


def summary_text(
    title: str,
    status: str,
    *,
    duration: float,
    stages: Iterable[tuple[str, str, str]] = (),
    details: Iterable[tuple[str, str]] = (),
    log_tail: Iterable[str] = (),
    substeps: dict[str, tuple[str, ...]] | None = None,
) -> str:
    """The final block: overall status, each stage (and its sub-steps), then details (URI,
    traffic, key) or logs."""
    lines = [f"{title}: {status} after {elapsed(duration)}"]
    stages = list(stages)
    for stage, state, message in stages:
        lines.append(f"  {stage:<10} {state:<9} {message}".rstrip())
        lines.extend(substep_lines((substeps or {}).get(stage, ())))
    for key, value in shown_once(stages, details):
        lines.append(f"  {key:<11} {value}")
    tail = list(log_tail)
    if tail:
        lines.append("  last log lines:")
        lines.extend(f"    | {line}" for line in tail)
    return "\n".join(lines)


def mask(secret: Any) -> str:
    """A key shown as its first/last characters (pfmagic.render.mask when available)."""
    if secret is None:
        return "-"
    try:
        from pfmagic.render.mask import mask_secret  # written by the render engineer
    except ImportError:
        return _mask(str(secret))
    try:
        return str(mask_secret(str(secret)))
    except Exception:  # an unexpected signature must not leak the key
        return _mask(str(secret))


def _mask(secret: str) -> str:
    if len(secret) <= 8:
        return "•" * len(secret)
    return f"••••{secret[-4:]} ({len(secret)} chars)"

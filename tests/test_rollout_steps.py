"""Sub-steps of a real local rollout (rollout_steps.py): per instance forked → app created →
ready with their own timings, in the events and in the three faces of the progress view, and a
heartbeat so the view never sits still for more than ~2 s without saying what it waits for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.entities import (
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    ProbeSettings,
)

from pfmagic.backends.events import ProgressEvent
from pfmagic.backends.local.rollout_steps import span
from pfmagic.config import PfMagics
from pfmagic.widgets.progress import ProgressView
from pfmagic.widgets.track import BEAT_LINE_EVERY, TextProgress

FLOW = Path(__file__).parent / "flows" / "chat-echo"
EP = "steps-ep"
# issue 18 asks for an event at least every 2 s; the kernel beats after 1 s without one and
# polls every 0.2 s, so 2 s holds with room. +0.5 s for a loaded 2-core machine (a status call
# to the router, or the worker thread, can be late by that much under 4 concurrent pytest runs).
MAX_GAP = 2.5
STEP = re.compile(r"(forked|process started|app created|ready) (\d+(?:\.\d+)?) (ms|s)")


def seconds(value: str, unit: str) -> float:
    return float(value) / 1000 if unit == "ms" else float(value)


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real 2-instance deployment, watched by the widget, the text printer and a list."""
    from pfmagic.backends.local.backend import LocalBackend

    home = tmp_path_factory.mktemp("steps-home")
    backend = LocalBackend(settings=PfMagics(home=str(home), widgets=False, warmup=False))
    try:
        backend.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(120)
        dep = ManagedOnlineDeployment(
            name="blue",
            endpoint_name=EP,
            model=Model(path=str(FLOW)),
            instance_type="Standard_DS3_v2",
            instance_count=2,
            # an instance is ready ~0.1 s after its fork now: the first probe waits 3 s (as
            # Azure's waits 10), so its sub-steps arrive one by one and the kernel has to beat
            readiness_probe=ProbeSettings(initial_delay=3, period=1, timeout=2),
        )
        op = backend.create_deployment(dep, all_traffic=True)
        events: list[ProgressEvent] = []
        op.subscribe(events.append)
        view = ProgressView(op, backend=backend, tick=0.2)
        lines: list[str] = []
        printer = TextProgress(op, backend=backend, write=lines.append)
        printer.start_background()
        op.result(240)
        assert view.wait(60) and printer.finished.wait(60)
        yield {"op": op, "events": events, "view": view, "lines": lines, "backend": backend}
    finally:
        try:
            backend.delete_endpoint(EP).result(60)
        finally:
            backend.close()


def test_span_shows_ms_below_a_second() -> None:
    assert span(0.0964) == "96 ms" and span(0.0) == "0 ms"
    assert span(2.34) == "2.3 s" and span(125.4) == "125 s"


def test_each_instance_reports_its_substeps_in_order(rollout: dict[str, Any]) -> None:
    op, events = rollout["op"], rollout["events"]
    assert op.status() == "Succeeded"
    final = [e for e in events if e.stage == "deployment"][-1]
    assert final.state == "Succeeded"
    lines = {line.split(":", 1)[0]: line for line in final.substeps}
    assert set(lines) >= {"instance blue-1-0", "instance blue-1-1"}, final.substeps
    assert any(line.startswith("working copy ") for line in final.substeps), final.substeps
    deploy_started = min(e.time for e in events if e.stage == "deployment")
    deploy_spent = final.time - deploy_started
    for name in ("instance blue-1-0", "instance blue-1-1"):
        steps = STEP.findall(lines[name])
        assert [s[0] for s in steps][-2:] == ["app created", "ready"], lines[name]
        assert steps[0][0] in ("forked", "process started"), lines[name]
        times = [seconds(v, u) for _, v, u in steps]
        assert times == sorted(times), lines[name]  # since the instance's start: cumulative
        assert times[0] < 5, f"a fork/process start took {times[0]} s: {lines[name]}"
        assert 0 < times[-1] <= deploy_spent + 0.5, (lines[name], deploy_spent)
    # each sub-step arrived as its own event while the deployment ran, not only at the end
    seen = [e.message for e in events if e.stage == "deployment" and e.state == "Running"]
    for name in ("blue-1-0", "blue-1-1"):
        mine = [m for m in seen if m.startswith(f"instance {name}:")]
        # each event extends the instance's line (two sub-steps may share one event: a poll
        # that sees the fork late, or the probe in flight answered right after the app exists)
        mine = [m for m in mine if not m.endswith(": starting")]
        assert len(mine) >= 2 and "ready" not in mine[0], mine
        assert all(b.startswith(a + ", ") for a, b in pairwise(mine)), mine
        assert any(STEP.search(m) and ", ready " in m for m in mine), mine


def test_no_event_gap_longer_than_two_seconds(rollout: dict[str, Any]) -> None:
    events = rollout["events"]
    times = [e.time for e in events]
    gaps = [b - a for a, b in pairwise(times)]
    worst = max(gaps)
    where = gaps.index(worst)
    assert worst <= MAX_GAP, (
        f"{worst:.2f} s without an event after {events[where].stage} {events[where].message!r}"
    )
    # heartbeats come from another thread: none may land after the stage ended
    ended = next(
        i for i, e in enumerate(events) if (e.stage, e.state) == ("deployment", "Succeeded")
    )
    assert all(e.stage != "deployment" for e in events[ended + 1 :]), events[ended:]
    beats = [e.message for e in events if e.message.startswith("waiting for ")]
    assert beats, [e.message for e in events]  # 3 s of initial delay: beats happen
    # each says what it waits for: the fork server's imports, an instance's probe, the router
    waits = ("the fork server", "readiness probe GET", "app start", "process start", "router")
    assert all(any(w in m for w in waits) and re.search(r"\(\d+(\.\d)? m?s\)", m) for m in beats), (
        beats
    )
    print(f"\nevents {len(events)}, max gap {worst:.2f} s, heartbeats {len(beats)}: {beats[:3]}")


def test_three_faces_list_the_substeps(rollout: dict[str, Any]) -> None:
    view, lines = rollout["view"], rollout["lines"]
    html_face, plain_face = view.stages_box.value, view.text()
    for name in ("blue-1-0", "blue-1-1"):
        assert re.search(rf"<li>instance {name}: (forked|process started) .*ready ", html_face)
        assert re.search(rf"    · instance {name}: (forked|process started) .*ready ", plain_face)
        assert re.search(rf"    · instance {name}: .*ready ", lines[-1])  # printer's summary
    assert " 0s" not in plain_face and " 0 s" not in plain_face
    # the printer's face of heartbeats: at most one line per BEAT_LINE_EVERY s (a line a
    # second made ~25 lines of a 30 s deploy); every beat is in the events all the same
    op = rollout["op"]
    printed = [line for line in lines if re.search(r" deployment Running .*waiting for ", line)]
    beats = [e for e in op.events if e.beat]
    took = max(e.time for e in op.events) - op.started
    assert len(printed) <= took / BEAT_LINE_EVERY + 1, (took, printed)
    assert len(printed) <= len(beats) and all(e.message.startswith("waiting for ") for e in beats)

"""Operations and their progress events (pfmagic/backends/events.py), with real worker threads.

What every view relies on: events in the order they were emitted, a failure or cancel reported
once at the stage it happened in, heartbeats only while the stage runs and nothing happened,
and an LROPoller-like status / result. No azure or widget import: a mutant run takes a second
(bench/mutate.sh); the views driven by these operations are in test_widgets_progress.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from itertools import pairwise
from typing import Any

import pytest

from pfmagic.backends import events
from pfmagic.backends.events import Canceled, Operation, ProgressEvent, span


def finished(work: Any, stages: tuple[Any, ...] = ("endpoint", "deployment")) -> Operation:
    op = Operation("deploy ep/blue", stages, work)
    assert op.wait(5)
    return op


def test_span_reads_as_people_read_durations() -> None:
    assert span(0.0964) == "96 ms" and span(0.0) == "0 ms"
    assert span(-2.0) == "0 ms"  # a clock step back never shows a negative time
    assert span(0.9994) == "999 ms" and span(1.0) == "1.0 s"
    assert span(2.34) == "2.3 s" and span(99.94) == "99.9 s"
    assert span(100.0) == "100 s" and span(125.4) == "125 s"


def test_heartbeats_come_within_the_two_seconds_of_issue_18() -> None:
    # a beat is due HEARTBEAT s after the last event; the ticker looks every HEARTBEAT / 4 s
    assert events.HEARTBEAT + events.HEARTBEAT / 4 <= 2.0


def test_an_event_defaults_to_nothing_but_its_time() -> None:
    before = time.time()
    event = ProgressEvent("endpoint", "Running")
    assert (event.message, event.provisioning_state, event.log_tail) == ("", None, ())
    assert (event.progress, event.substeps, event.beat) == (None, (), False)
    assert before <= event.time <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.state = "Succeeded"  # type: ignore[misc]


def test_a_finished_operation_reports_like_a_poller() -> None:
    def work(op: Operation) -> str:
        op.emit("endpoint", "Running", "creating")
        op.emit("deployment", "Running", "starting", progress=0.5)
        op.emit("endpoint", "Succeeded", "exists")
        op.emit("deployment", "Succeeded", "1/1 ready")
        return "blue"

    op = finished(work, ("endpoint", "deployment", "traffic"))
    assert op.done() and op.wait(0) and op.status() == "Succeeded"
    assert op.result() == "blue" and op.error is None
    assert [(e.stage, e.state) for e in op.events] == [
        ("endpoint", "Running"),
        ("deployment", "Running"),
        ("endpoint", "Succeeded"),
        ("deployment", "Succeeded"),
    ]
    states = op.stage_states()  # the latest per stage, in stage order; no traffic event yet
    assert list(states) == ["endpoint", "deployment"]
    assert [e.message for e in states.values()] == ["exists", "1/1 ready"]
    assert op.finished is not None and op.started <= op.finished
    assert repr(op) == "<Operation 'deploy ep/blue' Succeeded>"


def test_an_operation_waits_for_start() -> None:
    ran = threading.Event()
    op = Operation("delete ep", ("delete",), lambda _op: ran.set(), start=False)
    assert not op.wait(0.05) and not ran.is_set()
    assert op.status() == "InProgress" and repr(op) == "<Operation 'delete ep' InProgress>"
    assert op.start() is op and op.wait(5) and ran.is_set()
    assert op.start() is op  # starting a finished operation again does nothing


def test_result_times_out_naming_the_last_event() -> None:
    gate = threading.Event()

    def work(op: Operation) -> None:
        op.emit("deployment", "Running", "waiting for readiness")
        gate.wait(5)

    op = Operation("deploy ep/blue", ("deployment",), work)
    while not op.events:
        time.sleep(0.01)
    assert op.finished is None and op.status() == "InProgress"
    # a worker stuck on Azure must not keep the kernel from exiting
    (worker,) = [t for t in threading.enumerate() if t.name == "pfmagic:deploy ep/blue"]
    assert worker.daemon
    with pytest.raises(TimeoutError) as err:
        op.result(timeout=0.01)
    assert str(err.value) == (
        "deploy ep/blue still running after 0.01 s (last: deployment waiting for readiness)"
    )
    gate.set()
    assert op.wait(5)

    quiet = Operation("keys ep", ("keys",), lambda _op: gate.wait(5), start=False)
    with pytest.raises(TimeoutError, match=r"^keys ep still running after 0 s$"):
        quiet.result(timeout=0)


def test_a_failure_is_reported_once_at_the_stage_it_happened_in() -> None:
    def work(op: Operation) -> None:
        op.emit("endpoint", "Succeeded", "exists")
        op.emit("deployment", "Running", "starting")
        raise ValueError("instance exited with code 3")

    op = finished(work)
    assert op.status() == "Failed" and isinstance(op.error, ValueError)
    last = op.events[-1]
    assert (last.stage, last.state, last.message) == (
        "deployment",
        "Failed",
        "instance exited with code 3",
    )
    with pytest.raises(ValueError, match="instance exited with code 3"):
        op.result()

    def reported(op: Operation) -> None:
        op.emit("deployment", "Failed", "probe failed: 503", log_tail=("boom",))
        raise RuntimeError("probe failed")

    op = finished(reported)
    assert [(e.state, e.message) for e in op.events] == [("Failed", "probe failed: 503")]

    # nothing emitted yet: the failure goes to the first stage
    op = finished(lambda _op: 1 / 0, ("model", "deployment"))
    assert [(e.stage, e.state) for e in op.events] == [("model", "Failed")]
    assert op.events[0].message == "division by zero"


def test_cancel_is_reported_as_canceled_at_the_running_stage() -> None:
    started, go = threading.Event(), threading.Event()

    def work(op: Operation) -> None:
        op.emit("endpoint", "Succeeded", "exists")
        op.emit("deployment", "Running", "starting")
        op.check_canceled()  # not yet
        started.set()
        go.wait(5)
        op.check_canceled()

    op = Operation("deploy ep/blue", ("endpoint", "deployment"), work)
    assert started.wait(5)
    assert not op.cancel_requested
    op.cancel()
    assert op.cancel_requested
    go.set()
    assert op.wait(5)
    assert op.status() == "Canceled" and isinstance(op.error, Canceled)
    assert [(e.stage, e.state, e.message) for e in op.events[-1:]] == [
        ("deployment", "Canceled", "deploy ep/blue canceled")
    ]
    with pytest.raises(Canceled, match="deploy ep/blue canceled"):
        op.result()


def test_listeners_get_every_event_and_a_broken_one_breaks_nothing() -> None:
    gate = threading.Event()
    op = Operation(
        "deploy ep/blue",
        ("deployment",),
        lambda op: (
            op.emit("deployment", "Running", "one"),
            gate.wait(5),
            op.emit("deployment", "Succeeded", "two"),
        ),
    )
    while not op.events:
        time.sleep(0.01)
    replayed: list[str] = []
    live: list[str] = []

    def broken(_event: ProgressEvent) -> None:
        raise RuntimeError("a view died")

    op.subscribe(broken, replay=False)  # the broken view listens first
    op.subscribe(lambda e: replayed.append(e.message))
    op.subscribe(lambda e: live.append(e.message), replay=False)
    gate.set()
    assert op.wait(5) and op.status() == "Succeeded"
    assert replayed == ["one", "two"]  # past events first, then the live ones
    assert live == ["two"]


def test_a_beat_says_what_the_running_stage_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()

    def work(op: Operation) -> None:
        op.emit(
            "deployment",
            "Running",
            "starting",
            provisioning_state="Creating",
            progress=0.5,
            substeps=("forked 96 ms",),
            log_tail=("booting",),
            time=100.0,
        )
        gate.wait(5)

    op = Operation("deploy ep/blue", ("endpoint", "deployment"), work)
    while not op.events:
        time.sleep(0.01)
    now = [100.5]
    monkeypatch.setattr(events.time, "time", lambda: now[0])
    assert op.beat(None, lambda: "waiting for readiness", 1.0) is None  # 0.5 s < 1 s: too soon
    now[0] = 101.0
    assert op.beat("endpoint", lambda: "waiting", 1.0) is None  # another stage is running
    assert op.beat("deployment", lambda: None, 1.0) is None  # nothing to say
    assert op.beat("deployment", lambda: "", 1.0) is None
    beat = op.beat("deployment", lambda: "waiting for readiness", 1.0)  # exactly 1 s: due
    assert beat is not None and beat.beat and beat is op.events[-1]
    assert (beat.stage, beat.state, beat.message) == (
        "deployment",
        "Running",
        "waiting for readiness",
    )
    assert (beat.provisioning_state, beat.progress, beat.substeps) == (
        "Creating",
        0.5,
        ("forked 96 ms",),
    )
    assert beat.log_tail == ()  # the tail was news once; a beat does not repeat it
    monkeypatch.undo()
    gate.set()
    assert op.wait(5)
    assert op.beat(None, lambda: "late", 0.0) is None  # never after the operation ended


def test_no_beat_without_a_running_stage() -> None:
    gate = threading.Event()

    def work(op: Operation) -> None:
        gate.wait(5)
        op.emit("endpoint", "Succeeded", "exists")
        gate.wait(5)

    op = Operation("deploy ep/blue", ("endpoint",), work)
    assert op.beat(None, lambda: "waiting", 0.0) is None  # no event yet
    gate.set()
    while not op.events:
        time.sleep(0.01)
    assert op.beat(None, lambda: "waiting", 0.0) is None  # the last event is not Running
    assert op.wait(5)


def test_heartbeat_beats_while_the_block_waits_then_stops() -> None:
    waited: list[float] = []
    ended = threading.Event()

    def describe(seconds: float) -> str:
        waited.append(seconds)
        return f"waiting for readiness ({seconds:.1f} s)"

    def work(op: Operation) -> None:
        op.emit("deployment", "Running", "starting")
        with op.heartbeat(describe, 0.05, stage="deployment"):
            time.sleep(0.6)
        with op.heartbeat(describe, 0.05, stage="endpoint"):  # not the running stage
            time.sleep(0.2)
        ended.set()
        time.sleep(0.2)  # after the blocks: no beat

    op = Operation("deploy ep/blue", ("endpoint", "deployment"), work)
    assert ended.wait(5)
    count = len(op.events)
    assert op.wait(5)
    assert len(op.events) == count
    beats = [e for e in op.events if e.beat]
    # one per 0.05-0.06 s of the 0.6 s (the ticker looks every 0.0125 s), give or take
    assert 5 <= len(beats) <= 13, [e.message for e in beats]
    assert all(e.stage == "deployment" and e.message.startswith("waiting for ") for e in beats)
    assert all(0.0 < s < 0.7 for s in waited)  # seconds since the block began
    gaps = [b.time - a.time for a, b in pairwise(op.events) if b.beat]
    assert min(gaps) >= 0.05  # no beat sooner than ``every`` after the last event


def test_heartbeat_stops_its_ticker_when_the_block_raises() -> None:
    tickers: list[threading.Thread] = []

    def work(op: Operation) -> None:
        assert op.emit("deployment", "Running").message == ""
        with op.heartbeat(lambda s: "waiting", 0.05):
            tickers.extend(
                t for t in threading.enumerate() if t.name == "pfmagic-heartbeat:deploy ep/blue"
            )
            raise ValueError("readiness probe 503")

    op = finished(work, ("deployment",))
    assert op.status() == "Failed" and op.events[-1].message == "readiness probe 503"
    (ticker,) = tickers  # it ran during the block, as a daemon, and is gone after it
    assert ticker.daemon and not ticker.is_alive()

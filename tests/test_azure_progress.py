"""Azure LRO progress (pfmagic/backends/azure/progress.py): what the polls of an operation show.

``watch`` is driven here by a scripted poller with azure-core ``LROPoller``'s four calls (done,
wait, status, result) and a real ``Operation``; no azure import, so a mutant run takes a
second (bench/mutate.sh). The ARM-server runs of the same code are in test_azure_backend.py.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from typing import Any

import pytest

from pfmagic.backends.azure import progress
from pfmagic.backends.azure.progress import (
    AzureSteps,
    log_lines,
    new_lines,
    quietly,
    state_name,
    watch,
)
from pfmagic.backends.events import Canceled, Operation, ProgressEvent


class ScriptedPoller:
    """An LROPoller whose status moves one step per ``wait``; done once the script ends."""

    def __init__(self, statuses: list[str], *, pause: float = 0.0, done_at_end: bool = True):
        self.statuses = statuses
        self.at = 0
        self.pause = pause
        self.done_at_end = done_at_end
        self.waits: list[float] = []

    def done(self) -> bool:
        return self.done_at_end and self.at >= len(self.statuses) - 1

    def wait(self, timeout: float) -> None:
        self.waits.append(timeout)
        time.sleep(self.pause)
        self.at = min(self.at + 1, len(self.statuses) - 1)

    def status(self) -> str:
        return self.statuses[self.at]

    def result(self) -> str:
        if self.status() != "Succeeded":
            raise RuntimeError(f"operation {self.status()}")
        return "the deployment"


def run_watch(poller: ScriptedPoller, **kw: Any) -> tuple[Operation, list[ProgressEvent]]:
    """``watch`` inside a real Operation's worker; the Running events it emitted."""

    def work(op: Operation) -> Any:
        op.emit("deployment", "Running", "creating deployment blue")
        return watch(op, "deployment", poller, every=0.01, what="deployment blue", **kw)

    op = Operation("deploy ep/blue", ("deployment",), work)
    assert op.wait(10)
    return op, [e for e in op.events[1:] if e.state == "Running"]


def test_state_name_capitalises_enums_strings_and_nothing() -> None:
    class ProvisioningState(enum.Enum):
        SUCCEEDED = "Succeeded"

    assert state_name(ProvisioningState.SUCCEEDED) == "Succeeded"
    assert state_name("creating") == "Creating"  # the SDK gives either case
    assert state_name("Updating") == "Updating"
    assert state_name(None) is None and state_name("") is None


def test_log_lines_keep_the_last_lines_without_trailing_blanks() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 31)) + "\n\n  \n"
    assert log_lines(text) == tuple(f"line {i}" for i in range(11, 31))  # 20 by default
    assert log_lines(text, lines=2) == ("line 29", "line 30")
    assert log_lines("  only\n\n") == ("  only",)  # kept as written, only blank lines go
    assert log_lines(None) == () and log_lines("\n \n") == ()


def test_quietly_turns_a_failed_peek_into_the_default() -> None:
    def boom() -> str:
        raise ConnectionError("ARM said 503")

    assert quietly(lambda: "Creating") == "Creating"
    assert quietly(boom) is None and quietly(boom, "") == ""
    assert quietly(None, "none given") == "none given"


def test_log_tail_sub_steps_name_only_new_lines() -> None:
    assert new_lines((), ("a", "b")) == ("a", "b")
    assert new_lines(("a", "b", "c"), ("b", "c", "d", "e")) == ("d", "e")
    assert new_lines(("a", "b", "c"), ("c", "d")) == ("d",)  # overlap of one line
    assert new_lines(("a", "b"), ("a", "b")) == ()
    assert new_lines(("x",), ("y", "z")) == ("y", "z")  # no overlap: all new
    steps = AzureSteps(began=100.0)
    assert steps.saw("InProgress", "Creating", ("booting",), 100.4)
    assert not steps.saw("InProgress", "Creating", ("booting",), 105.0)
    assert steps.saw("InProgress", "Creating", ("booting", "pulling image", "ready"), 110.0)
    assert steps.lines == [
        "operation InProgress at 400 ms",
        "provisioning state Creating at 400 ms",
        "log at 400 ms: booting",
        "log at 10.0 s: ready (+1 lines)",
    ]
    assert steps.waiting("deployment x", 5, 111.0) == (
        "waiting for Azure: deployment x (InProgress), 11.0 s; last poll 1.0 s ago, every 5 s"
    )


def test_sub_steps_keep_state_through_polls_without_one() -> None:
    steps = AzureSteps(began=0.0)
    assert steps.saw("InProgress", "Creating", ("a",), 1.0)
    # no state read (a failed peek) and no tail: nothing new, the old ones stay
    assert not steps.saw("InProgress", None, (), 2.0)
    assert steps.state == "Creating" and steps.tail == ("a",)
    assert steps.saw("InProgress", "Creating", ("a", "b"), 3.0)  # the tail still overlaps
    assert steps.lines[-1] == "log at 3.0 s: b"
    assert steps.polled == 3.0
    long_line = "x" * 200 + "  "
    assert steps.saw("InProgress", "Creating", ("b", long_line), 4.0)
    assert steps.lines[-1] == "log at 4.0 s: " + "x" * 160


def test_sub_steps_keep_the_last_twelve_and_still_see_changes() -> None:
    steps = AzureSteps(began=0.0)
    for i in range(20):
        assert steps.saw("InProgress", None, tuple(f"log {j}" for j in range(i + 1)), i + 1.0)
    assert len(steps.lines) == AzureSteps.LIMIT == 12
    assert steps.lines[0] == "log at 9.0 s: log 8" and steps.lines[-1] == "log at 20.0 s: log 19"
    # a full list: a change of status or state is still news (it replaces the oldest line)
    assert steps.saw("Running", None, steps.tail, 21.0)
    assert steps.lines[-1] == "operation Running at 21.0 s" and len(steps.lines) == 12
    assert steps.saw("Running", "Updating", steps.tail, 22.0)
    assert not steps.saw("Running", "Updating", steps.tail, 23.0)


def test_waiting_without_a_status_yet() -> None:
    steps = AzureSteps(began=10.0)
    assert steps.waiting("endpoint ep", 0.5, 12.5) == (
        "waiting for Azure: endpoint ep, 2.5 s; last poll 2.5 s ago, every 0.5 s"
    )


def test_watch_emits_each_change_once_and_returns_the_result() -> None:
    states = iter(["Creating", "Creating", "Creating", "Succeeded"])
    logs = iter(["booting\n", "booting\n", "booting\npulling image\nready\n"])
    reads: list[str] = []

    def read_logs() -> str:
        reads.append("logs")
        return next(logs)

    poller = ScriptedPoller(["InProgress"] * 5 + ["Succeeded"])
    op, running = run_watch(poller, read_state=lambda: next(states), read_logs=read_logs)
    assert op.result() == "the deployment"
    assert poller.waits == [0.01] * 5
    # polls 1-3 are busy (logs read), poll 4 is Succeeded (no log read), then the poller is done
    assert reads == ["logs"] * 3
    changes = [e for e in running if not e.beat]
    assert [e.message for e in changes] == ["deployment blue: InProgress"] * 3
    assert [e.provisioning_state for e in changes] == ["Creating", "Creating", "Succeeded"]
    assert changes[0].log_tail == ("booting",)
    assert changes[1].log_tail == ("booting", "pulling image", "ready")
    assert changes[2].log_tail == ()  # not read once the deployment stopped being busy
    assert [re.sub(r" at [\d.]+ m?s", "", s) for s in changes[2].substeps] == [
        "operation InProgress",
        "provisioning state Creating",
        "log: booting",
        "log: ready (+1 lines)",
        "provisioning state Succeeded",
    ]
    assert changes[0].substeps == changes[2].substeps[:3]


def test_watch_stops_at_a_final_status_before_the_poller_is_done() -> None:
    # the SDK's status can say failed before done() does; the caller reports the end
    poller = ScriptedPoller(["InProgress", "InProgress", "failed"], done_at_end=False)
    reads: list[int] = []
    op, running = run_watch(poller, read_state=lambda: reads.append(poller.at) or "Creating")
    with pytest.raises(RuntimeError, match="operation failed"):
        op.result()
    changes = [e for e in running if not e.beat]
    assert [[s.split(" at ")[0] for s in e.substeps] for e in changes] == [
        ["operation InProgress", "provisioning state Creating"]
    ]
    assert len(poller.waits) == 2  # no wait after the final status
    assert reads == [1]  # and no more reads of the deployment once it is final


@pytest.mark.parametrize("final", ["Succeeded", "canceled", "Cancelled"])
def test_watch_does_not_report_a_poll_that_found_the_end(final: str) -> None:
    # the status turns final while the state and logs are read: no Running event for it
    poller = ScriptedPoller(["InProgress", "InProgress", final], done_at_end=False)

    def read_state() -> str:
        if poller.at == 1:
            poller.at = 2
        return "Creating"

    op, running = run_watch(poller, read_state=read_state)
    assert op.wait(1) and [e for e in running if not e.beat] == []
    assert len(poller.waits) == 1


def test_watch_survives_failed_peeks() -> None:
    def boom() -> str:
        raise ConnectionError("ARM said 503")

    poller = ScriptedPoller(["InProgress", "InProgress", "Succeeded"])
    op, running = run_watch(poller, read_state=boom, read_logs=boom)
    assert op.result() == "the deployment"
    changes = [e for e in running if not e.beat]
    assert len(changes) == 1 and changes[0].provisioning_state is None
    assert [s.split(" at ")[0] for s in changes[0].substeps] == ["operation InProgress"]

    # the state read works, the logs do not: no log line, and no made-up one
    poller = ScriptedPoller(["InProgress", "InProgress", "Succeeded"])
    op, running = run_watch(poller, read_state=lambda: "Creating", read_logs=boom)
    (change,) = [e for e in running if not e.beat]
    assert change.log_tail == () and not any(s.startswith("log") for s in change.substeps)


def test_cancel_stops_the_waiting_not_azure() -> None:
    started = threading.Event()
    poller = ScriptedPoller(["InProgress"] * 1000, pause=0.01, done_at_end=False)

    def work(op: Operation) -> Any:
        started.set()
        return watch(op, "deployment", poller, every=0.01, what="deployment blue")

    op = Operation("deploy ep/blue", ("deployment",), work, start=False)
    op.cancel()
    op.start()
    assert op.wait(5)
    assert isinstance(op.error, Canceled) and op.status() == "Canceled"
    assert str(op.error) == (
        "stopped waiting for deployment blue; Azure keeps going "
        "(%pf_status shows it, %pf_delete removes it)"
    )
    assert len(poller.waits) == 1  # it looked once, saw the cancel, and left


def test_a_heartbeat_says_what_the_poll_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "HEARTBEAT", 0.05)
    # three slow polls (0.3 s each) with nothing new after the first: beats fill the gaps
    poller = ScriptedPoller(["InProgress"] * 4 + ["Succeeded"], pause=0.3)
    op, running = run_watch(poller, read_state=lambda: "Creating")
    assert op.result() == "the deployment"
    beats = [e for e in running if e.beat]
    assert beats, [e.message for e in running]
    pattern = (
        r"waiting for Azure: deployment blue( \(InProgress\))?, [\d.]+ m?s; "
        r"last poll [\d.]+ m?s ago, every 0.01 s"
    )
    assert all(re.fullmatch(pattern, e.message) for e in beats), beats[0].message
    assert all(e.stage == "deployment" for e in beats)
    # a beat keeps the sub-steps the last event showed
    assert beats[-1].substeps == [e for e in running if not e.beat][-1].substeps
    count = len(op.events)
    time.sleep(0.2)
    assert len(op.events) == count  # no beat once the wait is over


BUSY = ["Creating", "Updating", "Scaling", "Deleting"]  # what Azure shows while it works


@pytest.mark.parametrize("state, read", [(s, True) for s in BUSY] + [("Succeeded", False)])
def test_logs_are_read_while_the_deployment_is_busy(state: str, read: bool) -> None:
    reads: list[str] = []
    poller = ScriptedPoller(["InProgress", "InProgress", "Succeeded"])
    run_watch(poller, read_state=lambda: state, read_logs=lambda: reads.append(state) or "x\n")
    assert reads == ([state] if read else [])

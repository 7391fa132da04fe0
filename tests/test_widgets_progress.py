"""ProgressView and the text printer driven by real ``Operation``s whose workers emit events.

(Real local deployments are in test_widgets_local.py.) The backend here is a small recorder of
the three read calls the view makes after an operation: get_endpoint, get_keys, get_logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.ai.ml.entities import EndpointAuthKeys, ManagedOnlineDeployment

from pfmagic.backends.events import Operation
from pfmagic.errors import BackendError, PfError
from pfmagic.widgets.progress import ProgressView
from pfmagic.widgets.track import TextProgress

STAGES = ("model", "endpoint", "deployment", "traffic")
KEY = "Zm9vYmFyYmF6cXV4c2VjcmV0a2V5MTIzNDU2Nzg5MA=="


class Endpoint:
    def __init__(self, name: str):
        self.name = name
        self.scoring_uri = f"http://127.0.0.1:5123/{name}/score"
        self.traffic = {"blue": 100}
        self.mirror_traffic: dict[str, int] = {}


class RecordingBackend:
    def __init__(self, logs: str = "") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.logs = logs

    def get_endpoint(self, name: str) -> Endpoint:
        self.calls.append(("get_endpoint", name))
        return Endpoint(name)

    def get_keys(self, name: str) -> EndpointAuthKeys:
        self.calls.append(("get_keys", name))
        return EndpointAuthKeys(primary_key=KEY, secondary_key=KEY[::-1])

    def get_logs(
        self, endpoint: str, deployment: str, lines: int = 100, container_type: str | None = None
    ) -> str:
        self.calls.append(("get_logs", endpoint, deployment))
        return self.logs


def deployment_result() -> ManagedOnlineDeployment:
    dep = ManagedOnlineDeployment(
        name="blue", endpoint_name="chat-ep", instance_type="Standard_DS3_v2", instance_count=1
    )
    dep._provisioning_state = "Succeeded"  # read-only property; backends set the field
    return dep


def stepped(gate: threading.Event, reached: threading.Event) -> Callable[[Operation], Any]:
    """A deploy that pauses half-way through the deployment stage until ``gate`` is set."""

    def work(op: Operation) -> Any:
        op.emit("model", "Running", "registering flow")
        op.emit("model", "Succeeded", "chat-flow:1")
        op.emit("endpoint", "Succeeded", "exists", provisioning_state="Succeeded")
        op.emit(
            "deployment",
            "Running",
            "starting 1 instance",
            provisioning_state="Creating",
            progress=0.5,
            log_tail=("booting", "loading flow"),
        )
        reached.set()
        gate.wait(10)
        op.check_canceled()
        op.emit("deployment", "Succeeded", "1/1 ready", provisioning_state="Succeeded")
        op.emit("traffic", "Succeeded", "blue 100%")
        return deployment_result()

    return work


def test_success_states_bar_and_outcome() -> None:
    gate, reached = threading.Event(), threading.Event()
    backend = RecordingBackend()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    view = ProgressView(op, backend=backend, tick=0.05, log_every=60)
    assert reached.wait(5)
    time.sleep(0.1)  # at least one tick: elapsed times drawn
    assert [view.stage_state(s) for s in STAGES] == ["Succeeded", "Succeeded", "Running", "Pending"]
    assert view.bar.value == pytest.approx(2.5 / 4) and view.bar.bar_style == "info"
    assert "[Creating]" in view.stages_box.value and "starting 1 instance" in view.stages_box.value
    assert "loading flow" in view.logs_box.value
    assert view.cancel_button.layout.display != "none" and view.state == "InProgress"
    assert "InProgress" in view.title.value
    gate.set()
    assert view.wait(5)
    assert [view.stage_state(s) for s in STAGES] == ["Succeeded"] * 4
    assert view.bar.value == 1.0 and view.bar.bar_style == "success"
    assert view.cancel_button.layout.display == "none"
    result = view.result_box.value
    assert "http://127.0.0.1:5123/chat-ep/score" in result and "blue 100%" in result
    assert "chat-ep/blue (Succeeded)" in result
    assert KEY not in result and KEY[:8] not in result and "primary key" in result
    assert ("get_endpoint", "chat-ep") in backend.calls and ("get_keys", "chat-ep") in backend.calls
    text = view._repr_mimebundle_()["text/plain"]
    assert text.startswith("deploy chat-ep/blue: Succeeded")
    assert "scoring URI" in text and "traffic     blue 100%" in text and KEY not in text
    assert "Box(" not in text
    row = view.tracker.rows["deployment"]
    assert row.elapsed() is not None and row.elapsed() >= 0.05


def test_failure_shows_reason_and_log_tail() -> None:
    def work(op: Operation) -> None:
        op.emit("model", "Succeeded", "broken-flow:1")
        op.emit("endpoint", "Succeeded", "created")
        op.emit(
            "deployment",
            "Running",
            "starting",
            log_tail=("Traceback (most recent call)", "SyntaxError: bad flow"),
        )
        raise BackendError(
            "deployment blue failed: instance exited (code 1)", code="ResourceNotReady"
        )

    op = Operation("deploy chat-ep/blue", STAGES, work)
    view = ProgressView(op, backend=RecordingBackend(), tick=0.05)
    assert view.wait(5)
    assert view.state == "Failed" and view.bar.bar_style == "danger"
    assert view.stage_state("deployment") == "Failed" and view.stage_state("traffic") == "Pending"
    assert "instance exited (code 1)" in view.result_box.value
    assert "SyntaxError: bad flow" in view.logs_box.value
    text = view.text()
    assert "reason      deployment blue failed" in text and "| SyntaxError: bad flow" in text
    with pytest.raises(BackendError):
        op.result()


def test_failure_without_log_events_fetches_logs() -> None:
    def work(op: Operation) -> None:
        op.emit("deployment", "Running", "starting")
        raise BackendError("probe failed")

    op = Operation("deploy chat-ep/red", STAGES, work, start=False)
    op.target = ("chat-ep", "red")  # type: ignore[attr-defined]  # what backends may set
    backend = RecordingBackend(logs="line 1\nline 2\nreadiness probe failed: 502\n")
    view = ProgressView(op, backend=backend, tick=0.05, log_every=60)
    op.start()
    assert view.wait(5)
    assert ("get_logs", "chat-ep", "red") in backend.calls
    assert "readiness probe failed: 502" in view.logs_box.value


def test_logs_polled_while_deploying() -> None:
    gate, reached = threading.Event(), threading.Event()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached), start=False)
    op.target = ("chat-ep", "blue")  # type: ignore[attr-defined]
    backend = RecordingBackend(logs="polled line A\npolled line B")
    view = ProgressView(op, backend=backend, tick=0.02, log_every=0.02)
    op.start()
    assert reached.wait(5)
    deadline = time.monotonic() + 5
    while "polled line B" not in view.logs_box.value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "polled line B" in view.logs_box.value
    gate.set()
    assert view.wait(5) and view.state == "Succeeded"


def test_cancel_button() -> None:
    def work(op: Operation) -> None:
        op.emit("model", "Succeeded")
        op.emit("endpoint", "Succeeded")
        for i in range(500):
            op.emit("deployment", "Running", f"waiting for instance ({i})")
            op.check_canceled()
            time.sleep(0.01)
        raise AssertionError("cancel was not seen")

    op = Operation("deploy chat-ep/blue", STAGES, work)
    view = ProgressView(op, tick=0.05)
    time.sleep(0.1)
    view.cancel_button.click()
    assert view.cancel_button.disabled and view.cancel_button.description == "Canceling…"
    assert view.wait(5)
    assert view.state == "Canceled" and op.status() == "Canceled"
    assert view.stage_state("deployment") == "Canceled" and view.bar.bar_style == "warning"
    assert "Canceled" in view.result_box.value and "canceled" in view.text()


def test_text_printer_one_line_per_event_then_summary() -> None:
    gate, reached = threading.Event(), threading.Event()
    gate.set()
    lines: list[str] = []
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached), start=False)
    printer = TextProgress(op, backend=RecordingBackend(), write=lines.append)
    op.start()
    assert printer.pump(timeout=5)
    events = lines[1:-1]
    assert len(events) == len(op.events) == 6
    assert "model" in events[0] and "Running" in events[0] and "registering flow" in events[0]
    assert "deployment Running   50% [Creating] starting 1 instance" in events[3]
    summary = lines[-1]
    assert summary.startswith("deploy chat-ep/blue: Succeeded")
    assert "http://127.0.0.1:5123/chat-ep/score" in summary and KEY not in summary
    assert lines[0].startswith("deploy chat-ep/blue: started")


def test_text_printer_gives_up_after_timeout_and_resumes() -> None:
    gate, reached = threading.Event(), threading.Event()
    lines: list[str] = []
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    printer = TextProgress(op, write=lines.append)
    assert printer.pump(timeout=0.3) is False and printer.summary is None
    printer.start_background()
    gate.set()
    assert printer.finished.wait(5)
    assert lines[-1].startswith("deploy chat-ep/blue: Succeeded")


def waiting_deploy(gate: threading.Event) -> Callable[[Operation], Any]:
    """A deploy whose deployment stage waits for ``gate`` with a real 0.05 s heartbeat."""

    def work(op: Operation) -> Any:
        op.emit("deployment", "Running", "starting 1 instance", provisioning_state="Creating")
        with op.heartbeat(lambda s: f"waiting for readiness ({s:.1f} s)", 0.05, "deployment"):
            gate.wait(10)
        op.emit("deployment", "Succeeded", "1/1 ready", provisioning_state="Succeeded")
        return deployment_result()

    return work


def test_printed_heartbeats_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat a second printed as a line each made ~25 lines of a 30 s deploy."""
    monkeypatch.setattr("pfmagic.widgets.track.BEAT_LINE_EVERY", 0.5)
    gate = threading.Event()
    lines: list[str] = []
    op = Operation("deploy chat-ep/blue", ("deployment",), waiting_deploy(gate), start=False)
    printer = TextProgress(op, backend=RecordingBackend(), write=lines.append)
    op.start()
    threading.Timer(1.3, gate.set).start()
    assert printer.pump(timeout=5)
    beats = [e for e in op.events if e.beat]
    printed = [line for line in lines if "waiting for readiness" in line]
    assert len(beats) >= 10, len(beats)  # 1.3 s of 0.05 s beats
    assert 1 <= len(printed) <= 3, printed  # one per 0.5 s at most
    assert not any(e.beat for e in op.events if e.state != "Running")


def test_a_live_text_display_rewrites_its_heartbeat_line() -> None:
    gate = threading.Event()
    lines: list[str] = []
    op = Operation("deploy chat-ep/blue", ("deployment",), waiting_deploy(gate), start=False)
    printer = TextProgress(op, backend=RecordingBackend(), write=lines.append)
    printer.rewrite_beats = True
    op.start()
    threading.Timer(0.6, gate.set).start()
    assert printer.pump(timeout=5)
    shown = [line for line in printer.lines if "waiting for readiness" in line]
    assert len(shown) == 1 and len(lines) > len(printer.lines)  # written often, kept once
    assert "deployment Succeeded" in printer.lines[-2]


# -- through the magics' run_operation ------------------------------------------------------
def _magics(ip: Any) -> Any:
    return ip.magics_manager.registry["QuotaMagics"]


def test_run_operation_text_wait(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gate, reached = threading.Event(), threading.Event()
    gate.set()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    result = _magics(ip).run_operation(op, wait=True)
    assert result.name == "blue" and result.provisioning_state == "Succeeded"
    out = capsys.readouterr().out
    assert out.count("\n") >= 8 and "traffic    Succeeded" in out
    assert "deploy chat-ep/blue: Succeeded after" in out and "Box(" not in out
    assert op in _magics(ip).session.operations


def test_run_operation_text_no_wait(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gate, reached = threading.Event(), threading.Event()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    assert _magics(ip).run_operation(op, wait=False) is op
    assert reached.wait(5) and not op.done()  # the cell returned while deploying
    gate.set()
    deadline = time.monotonic() + 5
    out = ""
    while "Succeeded after" not in out and time.monotonic() < deadline:
        time.sleep(0.05)
        out += capsys.readouterr().out
    assert "deployment Succeeded" in out and "deploy chat-ep/blue: Succeeded after" in out


def test_run_operation_failure_and_cancel_raise_pferrors(ip: Any) -> None:
    def fail(op: Operation) -> None:
        raise BackendError("OutOfQuota: additional needed 8")

    with pytest.raises(BackendError, match="OutOfQuota"):
        _magics(ip).run_operation(Operation("deploy x/y", STAGES, fail), wait=True)

    def canceled(op: Operation) -> None:
        op.cancel()
        op.check_canceled()

    with pytest.raises(PfError, match="canceled"):
        _magics(ip).run_operation(Operation("deploy x/z", STAGES, canceled), wait=True)


def test_run_operation_timeout_returns_op(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gate, reached = threading.Event(), threading.Event()
    ip.run_line_magic("config", "PfMagics.deploy_timeout = 0.3")
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    assert _magics(ip).run_operation(op, wait=True) is op
    assert "still running after 0 s" in capsys.readouterr().err
    gate.set()
    deadline, out = time.monotonic() + 5, ""
    while "Succeeded after" not in out and time.monotonic() < deadline:  # keeps reporting
        time.sleep(0.05)
        out += capsys.readouterr().out
    assert "deploy chat-ep/blue: Succeeded after" in out


def test_run_operation_widget(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = True")
    shown: list[Any] = []
    monkeypatch.setattr("pfmagic.widgets.run._display", shown.append)
    gate, reached = threading.Event(), threading.Event()
    gate.set()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    result = _magics(ip).run_operation(op, wait=True)
    assert result.name == "blue"
    (view,) = shown
    assert isinstance(view, ProgressView) and view.finished.is_set()
    assert view.bar.bar_style == "success" and capsys.readouterr().out == ""


@pytest.mark.parametrize("widgets", [False, True])
def test_ctrl_c_stops_waiting_not_the_operation(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], widgets: bool
) -> None:
    import _thread
    import signal

    # a kernel turns SIGINT into KeyboardInterrupt; pytest started with SIGINT ignored
    # (nohup, some CI runners) would not, so install the handler the test relies on
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def ctrl_c_soon(_obj: Any = None) -> None:  # what Ctrl-C does to a kernel, 0.3 s from now
        threading.Timer(0.3, _thread.interrupt_main).start()

    if widgets:
        monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
        ip.run_line_magic("config", "PfMagics.widgets = True")
        # once the view is built and shown, i.e. while the cell waits
        monkeypatch.setattr("pfmagic.widgets.run._display", ctrl_c_soon)
    gate, reached = threading.Event(), threading.Event()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    if not widgets:
        ctrl_c_soon()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _magics(ip).run_operation(op, wait=True)
    assert time.monotonic() - started < 5  # interrupted within a wait slice, not at the end
    assert "stopped waiting" in capsys.readouterr().err and not op.done()
    gate.set()
    assert op.wait(5) and op.status() == "Succeeded"
    signal.signal(signal.SIGINT, previous)


def test_no_wait_text_in_a_kernel_updates_one_display(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a kernel, late thread prints are dropped: the block is a display re-sent per line."""

    class Handle:
        def __init__(self) -> None:
            self.versions: list[str] = []

        def update(self, obj: Any) -> None:
            self.versions.append(repr(obj))

    handle = Handle()
    shown: list[Any] = []

    def display(obj: Any) -> Handle:
        shown.append(obj)
        return handle

    monkeypatch.setattr("pfmagic.widgets.run._in_kernel", lambda: True)
    monkeypatch.setattr("pfmagic.widgets.run._display", display)
    gate, reached = threading.Event(), threading.Event()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    assert _magics(ip).run_operation(op, wait=False) is op
    (block,) = shown
    assert repr(block).startswith("deploy chat-ep/blue: started")
    gate.set()
    printer = block.printer
    assert printer.finished.wait(5)
    assert len(handle.versions) == len(printer.lines) - 1  # one update per line after the first
    final = handle.versions[-1].splitlines()
    assert final[0].startswith("deploy chat-ep/blue: started") and "Box(" not in final
    assert any("traffic    Succeeded" in line for line in final)
    assert "deploy chat-ep/blue: Succeeded after" in handle.versions[-1]


def test_view_of_a_finished_operation_replays_and_ends() -> None:
    gate, reached = threading.Event(), threading.Event()
    gate.set()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    assert op.wait(5)
    view = ProgressView(op, backend=RecordingBackend(), tick=5.0)  # no tick needed to end
    assert view.wait(2) and view.bar.value == 1.0
    assert [view.stage_state(s) for s in STAGES] == ["Succeeded"] * 4


def test_finished_view_leaves_its_faces_not_a_widget(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved notebook has no widget model: the finished view's display is updated to its
    HTML + text faces, so a reopened notebook shows them instead of "Loading widget..."."""
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = True")
    published: list[tuple[dict[str, Any], bool]] = []

    def publish(data: dict[str, Any], metadata: Any = None, *a: Any, **kw: Any) -> None:
        published.append((data, bool(kw.get("update"))))

    monkeypatch.setattr(ip.display_pub, "publish", publish)
    gate, reached = threading.Event(), threading.Event()
    gate.set()
    op = Operation("deploy chat-ep/blue", STAGES, stepped(gate, reached))
    _magics(ip).run_operation(op, wait=True)
    (first, new), (last, update) = published[0], published[-1]
    assert new is False and "application/vnd.jupyter.widget-view+json" in first
    assert update is True and "application/vnd.jupyter.widget-view+json" not in last
    assert "deploy chat-ep/blue" in last["text/html"] and "Succeeded" in last["text/html"]
    assert "100%" in last["text/html"] and "deploy chat-ep/blue: Succeeded" in last["text/plain"]


def test_a_late_subscriber_sees_events_in_order() -> None:
    """Replayed events come before the ones emitted while the replay runs (a progress view
    subscribing mid-operation drew an old 'Running' over the stage's 'Succeeded')."""
    replaying, go = threading.Event(), threading.Event()

    def work(op: Operation) -> None:
        op.emit("endpoint", "Running", "checking")
        replaying.wait(5)
        op.emit("endpoint", "Succeeded", "up")  # while the subscriber is still replaying
        go.set()

    op = Operation("deploy chat-ep/llm", ("endpoint",), work, start=False)
    calls: list[str] = []
    seen: list[str] = []

    def slow(event: Any) -> None:
        calls.append(event.state)
        if len(calls) == 1:
            replaying.set()
            go.wait(0.5)  # the worker emits now, unless it has to wait for the replay
        seen.append(event.state)

    op.start()
    while not op.events:
        time.sleep(0.01)
    op.subscribe(slow)
    assert op.wait(5)
    assert seen == ["Running", "Succeeded"], seen

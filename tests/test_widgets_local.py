"""Progress widget and Deploy button against real local deployments (LocalBackend).

One endpoint for the module. A broken-flow deployment starts first and runs while the Deploy
button deploys chat-echo (both take ~15-20 s of process start-up; overlapping saves time).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.config import PfMagics
from pfmagic.magics import session_of
from pfmagic.widgets.progress import ProgressView
from pfmagic.widgets.track import TextProgress

FLOW = Path(__file__).parent / "flows" / "chat-echo"
EP = "widgets-ep"
STAGES = ["model", "endpoint", "deployment", "traffic"]


def deployment(name: str, flow: Path) -> ManagedOnlineDeployment:
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=EP,
        model=Model(path=str(flow)),
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pfmagic.backends.local.backend import LocalBackend

    home = tmp_path_factory.mktemp("widgets-home")
    backend = LocalBackend(settings=PfMagics(home=str(home), widgets=False, warmup=False))
    try:
        backend.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(120)
        yield backend
    finally:
        try:
            backend.delete_endpoint(EP).result(60)
        finally:
            backend.close()


@pytest.fixture(scope="module")
def broken(local: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, list[str]]:
    """A deployment whose model folder holds a flow with a syntax error, watched two ways."""
    flow = tmp_path_factory.mktemp("broken") / "broken-flow"
    shutil.copytree(FLOW, flow)
    (flow / "echo.py").write_text("def echo(question:\n")
    op = local.create_deployment(deployment("red", flow))
    lines: list[str] = []
    view = ProgressView(op, backend=local, tick=0.2, log_every=1.0)
    printer = TextProgress(op, backend=local, write=lines.append)
    printer.start_background()
    return view, printer, lines


def test_deploy_button_real_local_deployment(
    broken: Any, local: Any, ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = True")
    monkeypatch.setattr("pfmagic.widgets.run._display", lambda obj: None)
    session = session_of(ip)
    session.use_backend(local)
    dep = deployment("blue", FLOW)
    session.remember(dep)
    panel = ip.magics_manager.registry["QuotaMagics"].show_deployment_panel(dep)
    assert panel.quota.check.needed == 8 and "not checked" in panel.quota.result_box.value
    deploy = panel.deploy_panel
    assert deploy.all_traffic.value is True
    deploy.button.click()
    view = deploy.view
    assert view is not None and view.wait(240), view.text()
    assert view.state == "Succeeded", view.text()
    assert [view.stage_state(s) for s in STAGES] == ["Succeeded"] * 4
    assert view.bar.value == 1.0 and view.bar.bar_style == "success"
    row = view.tracker.rows["deployment"]
    assert row.elapsed() is not None and row.elapsed() > 0
    assert "1/1 instances ready" in view.stages_box.value
    endpoint = local.get_endpoint(EP)
    result, text = view.result_box.value, view.text()
    assert endpoint.scoring_uri.startswith("http://127.0.0.1:")
    assert endpoint.scoring_uri in result and endpoint.scoring_uri in text
    assert "blue 100%" in result and "traffic     blue 100%" in text
    key = local.get_keys(EP).primary_key
    assert key and key not in result and key not in text and key[:6] not in text
    assert "primary key" in text
    session.detach_backend()  # the module fixture closes the backend, not the ip fixture


def test_broken_flow_fails_with_reason_and_logs(broken: Any) -> None:
    view, printer, lines = broken
    assert view.wait(240) and printer.finished.wait(30)
    assert view.state == "Failed" and view.bar.bar_style == "danger"
    assert view.stage_state("deployment") == "Failed"
    assert view.stage_state("traffic") == "Pending"
    assert "SyntaxError" in view.result_box.value or "PythonLoadError" in view.result_box.value
    assert view.tracker.log_tail and "echo.py" in view.logs_box.value
    summary = lines[-1]
    assert summary.startswith("deploy widgets-ep/red: Failed")
    assert "reason" in summary and "last log lines:" in summary
    assert any("deployment Failed" in line for line in lines[:-1])
    assert any("deployment Running" in line for line in lines[:-1])


def test_cancel_real_local_deployment(local: Any) -> None:
    op = local.create_deployment(deployment("green", FLOW))
    view = ProgressView(op, backend=local, tick=0.1)
    deadline = time.monotonic() + 60
    while view.tracker.rows["endpoint"].state != "Succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    view.cancel_button.click()
    assert view.wait(60)
    assert view.state == "Canceled" and op.status() == "Canceled"
    # canceled in the stage that ran (right after the endpoint: the environment stage)
    assert "Canceled" in {view.stage_state(s) for s in op.stages}
    assert view.stage_state("traffic") == "Pending" and view.bar.bar_style == "warning"
    assert "canceled" in view.text()

"""%pf_quota, the panel under %%pf_deployment (widgets and text), and the Deploy button."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment
from IPython.core.error import UsageError

from pfmagic.backends.events import Operation
from pfmagic.errors import BackendError
from pfmagic.magics import session_of
from pfmagic.skus import QuotaCheck

pytest.importorskip("ipywidgets")

STAGES = ("model", "endpoint", "deployment", "traffic")


def remember(
    ip: Any, name: str = "blue", endpoint: str = "chat-ep", sku: str = "Standard_F4s_v2", n: int = 1
) -> ManagedOnlineDeployment:
    dep = ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint, instance_type=sku, instance_count=n
    )
    session_of(ip).remember(dep)
    return dep


def widgets_on(ip: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = True")
    shown: list[Any] = []
    monkeypatch.setattr("pfmagic.widgets.run._display", shown.append)
    return shown


# -- %pf_quota --------------------------------------------------------------------------------
def test_pf_quota_text_free_calculator(ip: Any) -> None:
    check = ip.run_line_magic("pf_quota", "--sku F4s_v2 --instances 1")
    assert isinstance(check, QuotaCheck) and check.needed == 8
    text = repr(check)
    assert text.startswith("Quota: 1 × Standard_F4s_v2") and "local backend" in text
    default = ip.run_line_magic("pf_quota", "")
    assert default.sku_name == "Standard_DS3_v2" and default.needed == 8


def test_pf_quota_deployment_by_name_and_endpoint(ip: Any) -> None:
    remember(ip, sku="Standard_DS3_v2", n=10)
    assert ip.run_line_magic("pf_quota", "blue").needed == 48
    check = ip.run_line_magic("pf_quota", "chat-ep/blue --instances 2")
    assert check.needed == 12 and repr(check).startswith("Quota for blue: 2 × Standard_DS3_v2")
    remember(ip, endpoint="other-ep")
    with pytest.raises(UsageError, match="several endpoints"):
        ip.run_line_magic("pf_quota", "blue")
    with pytest.raises(UsageError, match="no parsed deployment 'nope'.*chat-ep/blue"):
        ip.run_line_magic("pf_quota", "nope")


def test_pf_quota_apply_and_store(ip: Any) -> None:
    dep = remember(ip)
    assert ip.run_line_magic("pf_quota", "blue --sku ds3_v2 --instances 3 --apply -o q") is None
    assert (dep.instance_type, dep.instance_count) == ("Standard_DS3_v2", 3)
    assert ip.user_ns["q"].needed == 16 and ip.user_ns["q"].warnings == []


def test_pf_quota_errors(ip: Any) -> None:
    with pytest.raises(UsageError, match="'DS3_v3' is not a managed.*Standard_DS3_v2"):
        ip.run_line_magic("pf_quota", "--sku DS3_v3")
    with pytest.raises(UsageError, match="at least 1"):
        ip.run_line_magic("pf_quota", "--instances 0")
    with pytest.raises(UsageError, match="--apply needs a DEPLOYMENT"):
        ip.run_line_magic("pf_quota", "--sku F4s_v2 --apply")


def test_pf_quota_widget(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    widgets_on(ip, monkeypatch)
    remember(ip)
    calc = ip.run_line_magic("pf_quota", "blue --instances 3")
    assert type(calc).__name__ == "QuotaCalculator" and calc.check.needed == 16
    calc.picker.value = "Standard_F16s_v2"
    assert calc.check.needed == 64


def test_pf_quota_reads_usage_on_other_backends(ip: Any) -> None:
    class UsageBackend:
        name = "azure"

        def quota_usage(self) -> dict[str, tuple[int, int]]:
            return {"standardFSv2Family": (0, 6)}

        def close(self) -> None:
            pass

    session_of(ip).use_backend(UsageBackend())  # type: ignore[arg-type]
    remember(ip)
    check = ip.run_line_magic("pf_quota", "blue")
    assert check.verdict == "short" and check.short_by == 2


# -- panel under %%pf_deployment --------------------------------------------------------------
def test_panel_text(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dep = remember(ip)
    magics = ip.magics_manager.registry["QuotaMagics"]
    check = magics.show_deployment_panel(dep)
    out = capsys.readouterr().out
    assert out.startswith("Quota for blue: 1 × Standard_F4s_v2")
    assert "2 × 4 = 8 vCPUs" in out and "--create" in out and check.needed == 8
    assert "Box(" not in out and "children" not in out


class DeployBackend:
    """Starts a real Operation for create_deployment; records the all_traffic choice."""

    name = "local"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, bool]] = []

    def create_deployment(self, deployment: Any, *, all_traffic: bool = False) -> Operation:
        self.calls.append((deployment.name, all_traffic))

        def work(op: Operation) -> Any:
            for stage in STAGES:
                op.emit(stage, "Running")
                time.sleep(0.02)
                if self.fail and stage == "deployment":
                    raise BackendError("instance exited")
                op.emit(stage, "Succeeded")
            return deployment

        op = Operation(
            f"deploy {deployment.endpoint_name}/{deployment.name}", STAGES, work, start=False
        )
        op.target = (deployment.endpoint_name, deployment.name)  # type: ignore[attr-defined]
        return op.start()

    def get_endpoint(self, name: str) -> Any:
        raise BackendError(f"no endpoint {name}")

    def get_keys(self, name: str) -> Any:
        raise BackendError("no keys")

    def get_logs(self, *args: Any, **kw: Any) -> str:
        return "log line"

    def close(self) -> None:
        pass


def test_panel_widget_deploy_button(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = widgets_on(ip, monkeypatch)
    backend = DeployBackend()
    session = session_of(ip)
    session.use_backend(backend)  # type: ignore[arg-type]
    dep = remember(ip)
    magics = ip.magics_manager.registry["QuotaMagics"]
    panel = magics.show_deployment_panel(dep)
    assert shown == [panel]
    assert panel._repr_mimebundle_()["text/plain"].startswith("Quota for blue")
    deploy = panel.deploy_panel
    assert deploy.all_traffic.value is True  # the endpoint's only deployment
    panel.quota.slider.value = 3
    panel.quota.apply_button.click()
    deploy.all_traffic.value = False
    deploy.button.click()
    assert backend.calls == [("blue", False)] and deploy.button.disabled
    assert panel.quota.apply_button.disabled  # the parsed deployment is not edited mid-deploy
    view = deploy.view
    assert view is not None and deploy.progress_box.children == (view,)
    assert view.wait(5) and view.state == "Succeeded" and view.bar.bar_style == "success"
    assert view.op in session.operations and session.last_endpoint == "chat-ep"
    assert dep.instance_count == 3
    deadline = time.monotonic() + 5
    while deploy.button.description != "Deployed" and time.monotonic() < deadline:
        time.sleep(0.02)
    # after success nothing is offered for the unchanged cell: Deploy and Apply stay off
    assert deploy.button.disabled and deploy.button.description == "Deployed"
    assert panel.quota.apply_button.disabled and panel.quota.apply() == ""
    assert "edit the cell" in deploy.status.value
    # a panel drawn after the cell's own --create follows that operation: nothing to click
    again = magics.show_deployment_panel(dep)
    assert again.deploy_panel.button.disabled and again.quota.apply_button.disabled
    assert "not readable" in view.result_box.value  # endpoint read failed: said, not raised


def test_deploy_button_failure_and_second_deployment(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    widgets_on(ip, monkeypatch)
    session_of(ip).use_backend(DeployBackend(fail=True))  # type: ignore[arg-type]
    remember(ip, name="blue")
    green = remember(ip, name="green")
    panel = ip.magics_manager.registry["QuotaMagics"].show_deployment_panel(green)
    deploy = panel.deploy_panel
    assert deploy.all_traffic.value is False  # blue exists: don't move traffic by default
    view = deploy.deploy()
    assert view is not None and view.wait(5)
    assert view.state == "Failed" and "instance exited" in view.result_box.value
    assert "log line" in view.logs_box.value and "| log line" in view.text()


def test_deploy_button_sync_error_shown(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    widgets_on(ip, monkeypatch)

    class Refusing(DeployBackend):
        def create_deployment(self, deployment: Any, *, all_traffic: bool = False) -> Operation:
            raise BackendError("endpoint chat-ep does not exist", hint="run %%pf_endpoint first")

    session_of(ip).use_backend(Refusing())  # type: ignore[arg-type]
    dep = remember(ip)
    panel = ip.magics_manager.registry["QuotaMagics"].show_deployment_panel(dep)
    assert panel.deploy_panel.deploy() is None
    assert "does not exist" in panel.deploy_panel.status.value
    assert not panel.deploy_panel.button.disabled


# -- fallbacks and import hygiene ---------------------------------------------------------------
def test_missing_ipywidgets_means_text(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = True")
    magics = ip.magics_manager.registry["QuotaMagics"]
    assert magics.use_widgets()
    monkeypatch.setitem(__import__("sys").modules, "ipywidgets", None)  # import now fails
    assert not magics.use_widgets()
    assert isinstance(ip.run_line_magic("pf_quota", "--sku F2s_v2"), QuotaCheck)
    magics.show_deployment_panel(remember(ip, sku="Standard_F2s_v2"))
    out = capsys.readouterr().out
    assert "too small" in out and "Box(" not in out


def test_widgets_off_by_config(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFMAGIC_FORCE_WIDGETS", "1")
    ip.run_line_magic("config", "PfMagics.widgets = False")
    assert not ip.magics_manager.registry["QuotaMagics"].use_widgets()


def test_text_path_imports_no_ipywidgets() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pfmagic, pfmagic.magics.quota, pfmagic.skus\n"
        "import pfmagic.widgets.run, pfmagic.widgets.track, pfmagic.widgets.text\n"
        "heavy = [m for m in ('ipywidgets', 'azure.ai.ml', 'promptflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

"""QuotaCalculator state, driven headlessly: set the picker / slider, read the derived values."""

from __future__ import annotations

import threading

import pytest
from azure.ai.ml.entities import KubernetesOnlineDeployment, ManagedOnlineDeployment

from pfmagic.skus import SKUS
from pfmagic.widgets.quota import QuotaCalculator


def managed(sku: str = "Standard_F4s_v2", n: int = 1) -> ManagedOnlineDeployment:
    return ManagedOnlineDeployment(
        name="blue", endpoint_name="basic-chat-endpoint", instance_type=sku, instance_count=n
    )


def test_starts_from_the_deployment_and_updates_at_once() -> None:
    calc = QuotaCalculator(managed())
    assert (calc.picker.value, calc.slider.value) == ("Standard_F4s_v2", 1)
    assert calc.check.needed == 8 and "8 vCPUs needed" in calc.result_box.value
    assert "ceil(1.2 × 1) × 4 = 2 × 4 = 8" in calc.formula_box.value
    assert "standardFSv2Family" in calc.sku_box.value and "8 GiB" in calc.sku_box.value
    assert "production" in calc.warn_box.value
    calc.slider.value = 10
    assert calc.check.needed == 48 and "ceil(1.2 × 10) × 4 = 12 × 4 = 48" in calc.formula_box.value
    assert calc.warn_box.value == ""  # 10 instances, F4s_v2: nothing to warn about
    calc.picker.value = "Standard_F16s_v2"
    assert calc.check.needed == 192 and "16 vCPU" in calc.sku_box.value
    calc.picker.value = "Standard_NC24ads_A100_v4"
    assert calc.check.needed == 240 and "skips the 20 % reservation" in calc.formula_box.value
    assert "1 GPU" in calc.sku_box.value
    calc.picker.value = "Standard_DS1_v2"
    assert "too small" in calc.warn_box.value
    assert "not checked" in calc.result_box.value  # local backend


def test_picker_lists_every_sku_with_details() -> None:
    calc = QuotaCalculator()
    values = [v for _label, v in calc.picker.options]
    assert values == [s.name for s in SKUS]
    labels = dict((v, label) for label, v in calc.picker.options)
    assert "4 vCPU" in labels["Standard_DS3_v2"] and "14 GiB" in labels["Standard_DS3_v2"]
    assert "1/6 GPU" in labels["Standard_NV6ads_A10_v5"]
    assert calc.apply_button.disabled  # nothing to write back into
    assert "ND40rs_v2" in calc.skip_box.value


@pytest.mark.parametrize(
    ("usage", "verdict", "shown"),
    [
        ({"standardFSv2Family": (0, 6)}, "short", "short by 2 cores"),
        ({"standardfsv2family": (2, 20)}, "fits", "fits: 8 of 18 free"),
    ],
)
def test_usage_verdict(usage: dict, verdict: str, shown: str) -> None:
    calc = QuotaCalculator(managed(), usage=usage, backend_name="azure")
    assert calc.check.verdict == verdict and shown in calc.result_box.value
    assert "ml.azure.com/quota" in calc.result_box.value or verdict == "fits"


def test_usage_read_in_background_then_redrawn() -> None:
    release = threading.Event()

    def slow_usage() -> dict[str, tuple[int, int]]:
        release.wait(5)
        return {"standardFSv2Family": (0, 6)}

    calc = QuotaCalculator(managed(), usage=slow_usage, backend_name="azure")
    assert "reading workspace quota" in calc.result_box.value
    release.set()
    assert calc.usage_loaded.wait(5)
    assert calc.check.verdict == "short" and "short by 2 cores" in calc.result_box.value
    calc.slider.value = 3  # the usage stays and the verdict follows the slider
    assert calc.check.needed == 16 and "short by 10 cores" in calc.result_box.value


def test_failing_usage_call_is_reported_not_raised() -> None:
    def broken() -> None:
        raise RuntimeError("403 Forbidden")

    calc = QuotaCalculator(managed(), usage=broken, backend_name="azure")
    assert calc.usage_loaded.wait(5)
    assert "403 Forbidden" in calc.result_box.value and calc.check.needed == 8


def test_apply_writes_into_the_deployment() -> None:
    dep = managed()
    calc = QuotaCalculator(dep)
    calc.picker.value = "Standard_DS3_v2"
    calc.slider.value = 3
    message = calc.apply()
    assert (dep.instance_type, dep.instance_count) == ("Standard_DS3_v2", 3)
    assert "instance_count=3" in message and "instance_count=3" in calc.apply_status.value
    calc.slider.value = 4
    calc.apply_button.click()
    assert dep.instance_count == 4


def test_apply_asks_before_a_large_choice() -> None:
    dep = managed()
    calc = QuotaCalculator(dep)
    calc.picker.value = "Standard_DS3_v2"  # 4 vCPUs
    calc.slider.value = 11  # > 10 instances
    before = dep.instance_count
    message = calc.apply()
    assert "click Confirm apply" in message and dep.instance_count == before
    assert calc.apply_button.description == "Confirm apply"
    calc.apply_button.click()  # the confirming click
    assert dep.instance_count == 11 and calc.apply_button.description == "Apply to deployment"
    calc.picker.value = "Standard_E16s_v3"  # 16 vCPUs × 5 = 80 > 64
    calc.slider.value = 5
    assert "80 vCPUs" in calc.apply() and dep.instance_count == 11
    calc.slider.value = 4  # 64 vCPUs: no question asked
    calc.apply()
    assert (dep.instance_type, dep.instance_count) == ("Standard_E16s_v3", 4)


def test_kubernetes_is_explained() -> None:
    dep = KubernetesOnlineDeployment(
        name="k8s", endpoint_name="ep", instance_type="gpu-small", instance_count=2
    )
    calc = QuotaCalculator(dep)
    assert calc.kubernetes and calc.picker.layout.display == "none"
    assert calc.check.verdict == "kubernetes" and "instance type" in calc.result_box.value
    assert "gpu-small" in calc.result_box.value and calc.check.needed is None
    calc.slider.value = 3
    calc.apply()
    assert (dep.instance_type, dep.instance_count) == ("gpu-small", 3)


def test_unknown_sku_kept_and_flagged() -> None:
    calc = QuotaCalculator(managed("Standard_D4s_v5"))
    assert calc.picker.value == "Standard_D4s_v5" and calc.check.verdict == "unknown"
    assert "not in the managed online endpoint SKU list" in calc.result_box.value


def test_text_plain_is_the_text_block() -> None:
    calc = QuotaCalculator(managed(), usage={"standardFSv2Family": (0, 6)}, backend_name="azure")
    bundle = calc._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    assert text == calc.text() == repr(calc)
    assert text.startswith("Quota for blue: 1 × Standard_F4s_v2") and "short by 2 cores" in text
    assert "Box(" not in text and "children" not in text


def test_sku_list_narrows_by_kind_and_text_and_keeps_the_choice() -> None:
    calc = QuotaCalculator(managed("Standard_F4s_v2"))
    calc.kind.value = "GPU"
    names = [v for _label, v in calc.picker.options]
    gpus = [s.name for s in SKUS if s.gpus]
    assert names[1:] == gpus and names[0] == "Standard_F4s_v2"  # the choice stays listed
    assert calc.picker.value == "Standard_F4s_v2" and calc.check.needed == 8
    calc.search.value = "a100"
    names = [v for _label, v in calc.picker.options]
    assert names[1:] == [s.name for s in SKUS if s.gpus and "a100" in s.label().lower()]
    assert len(names) > 1
    calc.picker.value = names[1]
    calc.kind.value = "CPU"
    calc.search.value = ""
    assert calc.picker.value == names[1]  # a filter never changes the chosen SKU
    calc.kind.value = "All"
    assert [v for _label, v in calc.picker.options] == [s.name for s in SKUS]


def test_cores_left_after_the_deployment_are_shown() -> None:
    calc = QuotaCalculator(managed(), usage={"standardFSv2Family": (2, 20)}, backend_name="azure")
    assert calc.check.needed == 8
    assert "18 of 20 free in the family now, 10 left after this deployment" in (
        calc.result_box.value
    )


def test_a_validation_only_panel_asks_the_workspace_only_on_request() -> None:
    """Under a %%pf_deployment cell without --create, no workspace call (no sign-in prompt)
    until the user clicks "Read workspace quota" (issue 14)."""
    calls: list[int] = []

    def usage() -> dict[str, tuple[int, int]]:
        calls.append(1)
        return {"standardFSv2Family": (2, 20)}

    calc = QuotaCalculator(managed(), usage=usage, backend_name="azure", read_now=False)
    assert not calc.usage_loaded.wait(0.3) and calls == []
    assert "workspace usage not read (Read workspace quota)" in calc.result_box.value
    assert calc.read_button.layout.display != "none"
    calc.read_button.click()
    assert calc.usage_loaded.wait(5) and calls == [1]
    assert calc.check.verdict == "fits" and calc.read_button.layout.display == "none"
    calc.read_usage()  # once
    assert calls == [1]

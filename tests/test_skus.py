"""SKU table and quota arithmetic, checked against the rule computed independently here."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import pytest

from pfmagic import skus
from pfmagic.skus import (
    SKUS,
    check_quota,
    cores_needed,
    formula,
    normalise_family,
    sku_info,
    usage_table,
    warnings_for,
)

# the fact sheet's SKU section, copied with its source (no absolute path, no silent skip)
NOTES = Path(__file__).parent / "fixtures_skus.md"
# Skip-20 % SKUs as listed in the reference doc (azure-ai-ml.md §8), typed out here on purpose.
SKIP = {
    "NC24ads_A100_v4",
    "NC48ads_A100_v4",
    "NC96ads_A100_v4",
    "NC40ads_H100_v5",
    "NC80adis_H100_v5",
    "ND96amsr_A100_v4",
    "ND96asr_v4",
    "ND40rs_v2",
    "ND96is_H100_v5",
    "ND96isr_H100_v5",
}


def rule(vcpus: int, instances: int, skip: bool) -> int:
    """how-to-manage-quotas.md: ceil(1.2 × instances) × cores; skip-20 % SKUs: instances × cores."""
    return instances * vcpus if skip else math.ceil(Decimal("1.2") * instances) * vcpus


def parse_notes_table(text: str) -> list[tuple[str, str, int, Fraction, float, bool]]:
    """Rows of the §8 markdown table → (SKU, family, vCPUs, GPUs, memory, skip)."""
    section = text.split("## 8.", 1)[1].split("## 9.", 1)[0]
    out = []
    for line in section.splitlines():
        if not line.startswith("| standard") and not line.startswith("| Standard"):
            continue
        family, names, vcpus, gpus, mems, skip = [c.strip() for c in line.strip("|").split("|")]
        suffix = re.search(r"`(_[^`]+)`", names)
        names = re.sub(r"\([^)]*\)", "", re.sub(r"`[^`]*`", "", names))
        name_list = [
            n.strip() + (suffix.group(1) if suffix else "") for n in names.split(",") if n.strip()
        ]
        cpus = [int(x) for x in vcpus.split("/")]
        gpu_list = (
            [Fraction(x.strip()) for x in gpus.split(",")]
            if "," in gpus
            else [Fraction(int(x)) for x in gpus.split("/")]
        )
        mem_list = [float(x) for x in mems.split("/")]
        if len(gpu_list) == 1:
            gpu_list *= len(name_list)
        assert len(name_list) == len(cpus) == len(gpu_list) == len(mem_list), line
        for row in zip(name_list, cpus, gpu_list, mem_list, strict=True):
            out.append((f"Standard_{row[0]}", family, row[1], row[2], row[3], skip == "Yes"))
    return out


def test_table_matches_notes_row_by_row() -> None:
    expected = parse_notes_table(NOTES.read_text())
    assert len(expected) == len(SKUS) == 85
    got = [(s.name, s.family, s.vcpus, s.gpus, s.memory_gib, s.skip_reservation) for s in SKUS]
    assert got == expected


@pytest.mark.parametrize("sku", SKUS, ids=lambda s: s.short)
def test_cores_needed_follows_the_rule_for_every_row(sku: skus.Sku) -> None:
    assert sku.skip_reservation == (sku.short in SKIP)
    for n in (1, 2, 3, 4, 5, 7, 10, 13, 20, 25, 35, 50):
        assert cores_needed(sku, n) == rule(sku.vcpus, n, sku.short in SKIP)
        assert cores_needed(sku.name, n) == cores_needed(sku.short.lower(), n)
        assert check_quota(sku.name, n).needed == rule(sku.vcpus, n, sku.short in SKIP)


@pytest.mark.parametrize(
    ("sku", "n", "cores"),
    [
        ("Standard_DS3_v2", 10, 48),  # the docs' example
        ("Standard_F4s_v2", 1, 8),  # mslearn-azure-ml #30 "Additional needed: 8"
        ("Standard_F16s_v2", 1, 32),  # azure-realtime-fraud-detection #2
        ("Standard_DS3_v2", 1, 8),  # azure-docs #114478: 8 although the VM has 4
        ("Standard_NC24ads_A100_v4", 2, 48),  # skips the reservation
        ("Standard_ND96isr_H100_v5", 1, 96),
        ("Standard_NV6ads_A10_v5", 5, 36),  # ceil(6.0) must stay 6
    ],
)
def test_known_examples(sku: str, n: int, cores: int) -> None:
    assert cores_needed(sku, n) == cores


def test_float_pitfalls_avoided() -> None:
    # 1.2 * n in floats is slightly above an integer for some n; exact arithmetic must not round up.
    for n in range(1, 200):
        assert cores_needed("DS1_v2", n) == -(-6 * n // 5)


def test_sku_info_accepts_prefix_and_case() -> None:
    a = sku_info("Standard_F4s_v2")
    assert (
        a is not None
        and a.vcpus == 4
        and a.memory_gib == 8
        and a.family_key == "standardfsv2family"
    )
    assert sku_info("f4s_v2") is a and sku_info("STANDARD_F4S_V2") is a
    assert sku_info(" F4s_v2 ") is a
    assert sku_info("Standard_F4s_v3") is None
    nv = sku_info("NV6ads_A10_v5")
    assert nv is not None and nv.gpus == Fraction(1, 6) and nv.gpus_text == "1/6"
    assert "1/6 GPU" in nv.label() and "55 GiB" in nv.label()
    with pytest.raises(ValueError):
        cores_needed("DS3_v2", 0)
    with pytest.raises(KeyError):
        cores_needed("DS3_v9", 1)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("standard NCASv3_T4 Family", "standardNCASv3_T4Family"),
        ("Standard NCASv3_T4 Family", "standardNCASv3T4Family"),
        ("standard NDASv4_A100 Family", "standardNDASv4_A100Family"),
        ("standardDSv2Family", "Standard DSv2 Family Cluster Dedicated vCPUs"),
    ],
)
def test_normalise_family(a: str, b: str) -> None:
    assert normalise_family(a) == normalise_family(b)


def test_families_stay_distinct() -> None:
    keys = {s.family: s.family_key for s in SKUS}
    assert len(set(keys.values())) == len(keys) == 19


class CamelUsage:
    """What azure-ai-ml 1.35.2 hands back: snake_case attributes None, camelCase in __dict__."""

    def __init__(self, value: str, current: int, limit: int):
        self.current_value = None
        self.limit = None
        self.name = None
        self.__dict__.update(
            {
                "currentValue": current,
                "limit": limit,
                "name": {"value": value, "localizedValue": value + " vCPUs"},
            }
        )


def test_usage_table_reads_camel_and_snake() -> None:
    usages = [
        CamelUsage("standardFSv2Family", 2, 10),
        SimpleNamespace(name=SimpleNamespace(value="standardDSv2Family"), current_value=4, limit=6),
        {"name": {"value": "Standard NCASv3_T4 Family"}, "currentValue": 0, "limit": 8},
        SimpleNamespace(
            name=SimpleNamespace(value="TotalDedicatedCores"), current_value=6, limit=100
        ),
        SimpleNamespace(name=None, current_value=None, limit=None),
    ]
    table = usage_table(usages)
    assert table == {
        "standardfsv2family": (2, 10),
        "standarddsv2family": (4, 6),
        "standardncasv3t4family": (0, 8),
    }


def test_verdicts() -> None:
    short = check_quota("F4s_v2", 1, {"standardFSv2Family": (0, 6)}, backend_name="azure")
    assert (short.verdict, short.needed, short.available, short.short_by) == ("short", 8, 6, 2)
    assert "short by 2 cores" in short.message and skus.QUOTA_PAGE in short.message
    assert short.fits is False
    fits = check_quota("DS3_v2", 10, {"standard DSv2 Family": (2, 50)}, backend_name="azure")
    assert (fits.verdict, fits.needed, fits.available, fits.fits) == ("fits", 48, 48, True)
    missing = check_quota("DS3_v2", 1, {"standardFSv2Family": (0, 6)}, backend_name="azure")
    assert missing.verdict == "unchecked" and "no standardDSv2Family quota" in missing.message
    local = check_quota("DS3_v2", 3)
    assert local.verdict == "unchecked" and local.fits is None
    assert "not checked" in local.message and "16 free vCPUs" in local.message
    assert local.needed == 16 and "ceil(1.2 × 3) × 4 = 4 × 4 = 16" in local.formula
    unknown = check_quota("DS3_v3", 1)
    assert unknown.verdict == "unknown" and unknown.needed is None
    assert "Standard_DS3_v2" in unknown.message
    k8s = check_quota("gpu-small", 2, kubernetes=True)
    assert k8s.verdict == "kubernetes" and k8s.needed is None and "instance type" in k8s.message
    assert "no extra 20 %" in k8s.message


def test_formula_text() -> None:
    assert formula("DS3_v2", 10) == "ceil(1.2 × 10) × 4 = 12 × 4 = 48 vCPUs"
    assert formula("ND40rs_v2", 2).startswith("2 × 40 = 80 vCPUs (ND40rs_v2 skips")


def test_warnings() -> None:
    for small in ("DS1_v2", "DS2_v2", "F2s_v2"):
        text = " ".join(warnings_for(sku_info(small), 3))
        assert "too small" in text and "DS3_v2" in text
    assert warnings_for(sku_info("DS3_v2"), 3) == []
    assert "production" in " ".join(warnings_for(sku_info("DS3_v2"), 2))
    assert "retired" in " ".join(warnings_for(sku_info("NC6s_v3"), 3))


def test_text_block_is_readable() -> None:
    check = check_quota("F4s_v2", 1, {"standardFSv2Family": (0, 6)}, backend_name="azure")
    text = repr(check)
    assert text.splitlines()[0] == "Quota: 1 × Standard_F4s_v2"
    assert "ceil(1.2 × 1) × 4 = 2 × 4 = 8 vCPUs" in text and "0/6 used, 6 free" in text
    assert "✗ short by 2 cores" in text and "ND40rs_v2" in text
    assert all(len(line) <= 100 or "https://" in line for line in text.splitlines())


# -- killed mutants (bench/mutation.md): messages, defaults, usage rows, the table guard ------
def test_sku_rows_are_frozen_and_labelled() -> None:
    import dataclasses

    ds3, nv6 = sku_info("DS3_v2"), sku_info("NV6ads_A10_v5")
    assert ds3 is not None and nv6 is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds3.vcpus = 8  # type: ignore[misc]
    assert ds3.label() == "Standard_DS3_v2 · 4 vCPU, 14 GiB · standardDSv2Family"
    assert (
        nv6.label() == "Standard_NV6ads_A10_v5 · 6 vCPU, 1/6 GPU, 55 GiB · standardNVADSA10v5Family"
    )
    # InfiniBand: only the 'r' variant of the ND H100 row
    assert sku_info("ND96isr_H100_v5").note == "InfiniBand"  # type: ignore[union-attr]
    assert sku_info("ND96is_H100_v5").note == ""  # type: ignore[union-attr]


def test_a_ragged_table_row_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    row = ("standardDSv2Family", ("DS1_v2", "DS2_v2"), (1,), ("0", "0"), (3.5, 7), False, "")
    monkeypatch.setattr(skus, "ROWS", (row,))
    with pytest.raises(ValueError):
        skus._build()


def test_close_skus_and_family_keys() -> None:
    assert skus.close_skus(" Standard_DS3_V3 ") == skus.close_skus("ds3_v3")
    near = skus.close_skus("ds3_v3")
    assert near[0] == "Standard_DS3_v2" and len(near) == 3
    assert len(skus.close_skus("ds3_v3", n=1)) == 1
    assert normalise_family("TotalDedicatedCores") == "totaldedicatedcores"  # no "family": kept
    assert normalise_family("standardDSv2Family vCPUs") == "standarddsv2family"


def test_bad_arguments_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="instance count must be at least 1"):
        cores_needed("DS3_v2", 0)
    with pytest.raises(KeyError, match="'DS9_v9' is not in the managed online endpoint SKU list"):
        cores_needed("DS9_v9", 1)


def test_usage_rows_low_priority_and_localized_names() -> None:
    dedicated = "Microsoft.MachineLearningServices/workspaces/dedicatedCores/usages"
    low = "Microsoft.MachineLearningServices/workspaces/lowPriorityCores/usages"
    rows = [
        # a real list: each family twice; the low-priority row first, then last
        {"type": low, "name": {"value": "standardDSv2Family"}, "currentValue": 0, "limit": 99},
        {"type": dedicated, "name": {"value": "standardDSv2Family"}, "currentValue": 4, "limit": 6},
        {"type": dedicated, "name": {"value": "standardFSv2Family"}, "currentValue": 1, "limit": 8},
        {
            "name": {"value": "standardFSv2Family", "localizedValue": "Low Priority FSv2 Family"},
            "currentValue": 0,
            "limit": 50,
        },
        # a second row of a family with limit -1 never replaces the first
        {"name": {"value": "standardESv3Family"}, "currentValue": 2, "limit": 24},
        {"name": {"value": "standardESv3Family"}, "currentValue": 0, "limit": -1},
        # no value: the localized name is used
        {
            "name": {"value": "", "localizedValue": "Standard LSv2 Family vCPUs"},
            "currentValue": 3,
            "limit": 16,
        },
        # incomplete rows are skipped
        {"name": {"value": "standardNCSv3Family"}, "currentValue": None, "limit": 12},
        {"name": {"value": "standardNCSv2Family"}, "currentValue": 1, "limit": None},
        {"name": None, "currentValue": 1, "limit": 2},
    ]
    assert usage_table(rows) == {
        "standarddsv2family": (4, 6),
        "standardfsv2family": (1, 8),
        "standardesv3family": (2, 24),
        "standardlsv2family": (3, 16),
    }


def test_check_messages_name_numbers_family_and_links() -> None:
    short = check_quota("F4s_v2", 1, {"standardFSv2Family": (2, 8)}, backend_name="azure")
    assert short.message == (
        "short by 2 cores: standardFSv2Family usage 2/8, 6 free, 8 needed; request more at "
        "https://ml.azure.com/quota (https://learn.microsoft.com/azure/machine-learning/"
        "how-to-manage-quotas#request-quota-and-limit-increases)"
    )
    assert (short.available, short.short_by, short.family) == (6, 2, "standardFSv2Family")
    fits = check_quota("F4s_v2", 1, {"standardFSv2Family": (0, 8)})
    assert fits.message == "fits: 8 of 8 free vCPUs in standardFSv2Family (usage 0/8)"
    assert (fits.short_by, fits.current, fits.limit) == (0, 0, 8)
    over = check_quota("F4s_v2", 1, {"standardFSv2Family": (9, 8)})  # over the limit already
    assert over.verdict == "short" and over.available == -1 and over.short_by == 9
    missing = check_quota("DS3_v2", 1, {})
    assert missing.message == (
        "the workspace reports no standardDSv2Family quota (limit 0?); 8 vCPUs needed: "
        "request them at https://ml.azure.com/quota"
    )
    assert (missing.available, missing.short_by) == (None, 0)
    local = check_quota("DS3_v2", 1)
    assert local.message == (
        "local backend: quota is not checked here; Azure would need 8 free vCPUs in "
        "standardDSv2Family"
    )
    assert (local.current, local.limit, local.title, local.kubernetes) == (None, None, None, False)
    unknown = check_quota("DS3_v3", 0)
    assert unknown.instances == 1 and unknown.formula == "?"
    assert unknown.message == (
        "'DS3_v3' is not in the managed online endpoint SKU list (did you mean "
        f"{', '.join(skus.close_skus('DS3_v3'))}?); see https://learn.microsoft.com/azure/"
        "machine-learning/reference-managed-online-endpoints-vm-sku-list"
    )
    assert "did you mean" not in check_quota("zzzzzzzz", 1).message
    k8s = check_quota("", 1, kubernetes=True)
    assert k8s.kubernetes and k8s.formula == "no managed reservation" and k8s.family is None
    assert k8s.message.startswith("Kubernetes deployment: 'default' is an instance type defined")
    assert k8s.message.endswith(
        "(https://learn.microsoft.com/azure/machine-learning/"
        "how-to-manage-kubernetes-instance-types)."
    )
    assert check_quota("gpu", 1, kubernetes=True).message.startswith("Kubernetes deployment: 'gpu'")


def test_warning_texts() -> None:
    assert warnings_for(None, 1) == [
        "1 instance: fine for testing; use at least 3 for production (high availability)"
    ]
    assert warnings_for(None, 2)[0].startswith("2 instances: fine for testing;")
    assert warnings_for(sku_info("DS2_v2"), 3) == [
        "Standard_DS2_v2 may be too small for a flow (out of memory, slow start, probe "
        "failures); Standard_DS3_v2 is the practical minimum"
    ]
    assert warnings_for(sku_info("NC6s_v3"), 3) == ["Standard_NC6s_v3: V100; retired 2025-09-30"]


def test_deployment_choice_reads_kind_sku_and_count() -> None:
    from azure.ai.ml.entities import KubernetesOnlineDeployment, ManagedOnlineDeployment

    managed = ManagedOnlineDeployment(name="blue", endpoint_name="ep")
    assert skus.deployment_choice(managed) == ("Standard_DS3_v2", 1, False)
    managed.instance_type, managed.instance_count = "Standard_F4s_v2", 3
    assert skus.deployment_choice(managed) == ("Standard_F4s_v2", 3, False)
    k8s = KubernetesOnlineDeployment(name="blue", endpoint_name="ep")
    assert skus.deployment_choice(k8s) == ("", 1, True)
    # a plain object that says it is Kubernetes (the REST 'type' field), any case
    assert skus.deployment_choice(SimpleNamespace(type="KUBERNETES", instance_type="gpu")) == (
        "gpu",
        1,
        True,
    )
    assert skus.deployment_choice(SimpleNamespace(type="Managed")) == ("Standard_DS3_v2", 1, False)


def test_usage_rows_in_snake_case_and_the_edges_of_the_rules() -> None:
    low = "Microsoft.MachineLearningServices/workspaces/lowPriorityCores/usages"
    rows = [
        {"name": None, "currentValue": 1, "limit": 2},  # skipped; the rows after it still count
        # the SDK's snake_case: a localized name only, a low-priority row known by its type only
        {"name": {"localized_value": "Standard DSv2 Family vCPUs"}, "current_value": 4, "limit": 6},
        {"type": low, "name": {"value": "standardFSv2Family"}, "current_value": 0, "limit": 9},
        {
            "name": {"value": "", "localized_value": "Low Priority ESv3 Family"},
            "limit": 5,
            "current_value": 0,
        },
        # a first row with limit -1 is kept (nothing better yet); a later 0 is a real limit
        {"name": {"value": "standardLSv2Family"}, "currentValue": 0, "limit": -1},
        {"name": {"value": "standardNCSv3Family"}, "currentValue": 0, "limit": 12},
        {"name": {"value": "standardNCSv3Family"}, "currentValue": 0, "limit": 0},
    ]
    assert usage_table(rows) == {
        "standarddsv2family": (4, 6),
        "standardlsv2family": (0, -1),
        "standardncsv3family": (0, 0),
    }


def test_quota_messages_at_the_limit_and_without_a_near_sku() -> None:
    full = check_quota("F4s_v2", 1, {"standardFSv2Family": (8, 8)})  # 0 free: short by all
    assert full.verdict == "short" and full.message.startswith("short by 8 cores:")
    assert "8/8, 0 free, 8 needed" in full.message
    half = skus.QuotaCheck("F4s_v2", 1, None, 8, "", "unchecked", "", limit=8)
    assert half.available is None  # a limit without a current value is no number of free cores
    far = check_quota("zzzzzz", 1)
    assert (
        far.message
        == f"'zzzzzz' is not in the managed online endpoint SKU list; see {skus.SKU_LIST_DOC}"
    )
    k8s = check_quota("gpu-large", 2, kubernetes=True)
    assert (
        "the attached cluster (CPU/memory/GPU requests and limits), not a VM SKU; Azure ML "
        "reserves no extra 20 %" in k8s.message
    )
    with pytest.raises(ValueError, match=r"^instance count must be at least 1$"):
        cores_needed("DS3_v2", 0)
    with pytest.raises(
        KeyError, match=r"^\"'DS9_v9' is not in the managed online endpoint SKU list\"$"
    ):
        cores_needed("DS9_v9", 1)

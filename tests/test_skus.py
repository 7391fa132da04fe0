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

"""Managed online endpoint VM SKUs and the quota a deployment needs (pure data + arithmetic).

Rule (how-to-manage-quotas.md, "Virtual machine quota allocation for deployment"): a managed
deployment needs ``ceil(1.2 × instances) × vCPUs`` free in the SKU's family, because Azure ML
reserves 20 % for OS upgrades and VM recovery; a few GPU SKUs skip that reservation and need
``instances × vCPUs``. Kubernetes deployments use the cluster's instance types instead.

No ipywidgets / azure.ai.ml import here: the widgets, the magics and the Azure backend share it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pfmagic.sku_table import ROWS

QUOTA_PAGE = "https://ml.azure.com/quota"
QUOTA_DOC = (
    "https://learn.microsoft.com/azure/machine-learning/how-to-manage-quotas"
    "#request-quota-and-limit-increases"
)
SKU_LIST_DOC = (
    "https://learn.microsoft.com/azure/machine-learning/"
    "reference-managed-online-endpoints-vm-sku-list"
)
INSTANCE_TYPES_DOC = (
    "https://learn.microsoft.com/azure/machine-learning/how-to-manage-kubernetes-instance-types"
)
RESERVE = Fraction(6, 5)  # the 20 % reservation as an exact factor (no float ceil surprises)
PRODUCTION_MIN_INSTANCES = 3
SMALL_SKUS = frozenset({"Standard_DS1_v2", "Standard_DS2_v2", "Standard_F2s_v2"})
DEFAULT_SKU = "Standard_DS3_v2"  # the docs' practical minimum for a prompt flow


@dataclass(frozen=True)
class Sku:
    """One row of the managed online endpoint SKU list."""

    name: str  # "Standard_DS3_v2"
    family: str  # quota family as the docs write it, e.g. "standardDSv2Family"
    vcpus: int
    gpus: Fraction
    memory_gib: float
    skip_reservation: bool  # True: no 20 % reservation (instances × vCPUs)
    note: str = ""

    @property
    def short(self) -> str:
        return self.name.removeprefix("Standard_")

    @property
    def gpus_text(self) -> str:
        return str(self.gpus)  # "0", "1", "1/6"

    @property
    def family_key(self) -> str:
        return normalise_family(self.family)

    def label(self) -> str:
        """One line for a picker: name, vCPUs, GPUs, memory, family."""
        gpu = f", {self.gpus_text} GPU" if self.gpus else ""
        return f"{self.name} · {self.vcpus} vCPU{gpu}, {_num(self.memory_gib)} GiB · {self.family}"


def _num(value: float) -> str:
    return f"{value:g}"


def _build() -> tuple[Sku, ...]:
    skus: list[Sku] = []
    for family, names, vcpus, gpus, mems, skip, note in ROWS:
        for name, cpu, gpu, mem in zip(names, vcpus, gpus, mems, strict=True):  # ragged → error
            # InfiniBand applies to the 'r' variants only in the ND H100 row.
            this_note = "InfiniBand" if name == "ND96isr_H100_v5" else note
            skus.append(
                Sku(f"Standard_{name}", family, cpu, Fraction(gpu), float(mem), skip, this_note)
            )
    return tuple(skus)


SKUS: tuple[Sku, ...] = _build()
_BY_KEY: dict[str, Sku] = {s.short.lower(): s for s in SKUS}
SKIP_RESERVATION: tuple[Sku, ...] = tuple(s for s in SKUS if s.skip_reservation)


def sku_info(name: str) -> Sku | None:
    """The SKU called ``name`` ("Standard_DS3_v2", "ds3_v2", ...), or None if not listed."""
    key = name.strip().lower().removeprefix("standard_")
    return _BY_KEY.get(key)


def close_skus(name: str, n: int = 3) -> list[str]:
    """Listed SKU names closest to a mistyped one (for error hints)."""
    key = name.strip().lower().removeprefix("standard_")
    hits = difflib.get_close_matches(key, list(_BY_KEY), n=n, cutoff=0.6)
    return [_BY_KEY[h].name for h in hits]


def normalise_family(name: str) -> str:
    """Comparable family key: the docs' "standard NCASv3_T4 Family", the API's
    ``name.value`` "standardNCASv3_T4Family" and the localized "Standard DSv2 Family Cluster
    Dedicated vCPUs" all reduce to lowercase letters and digits up to "family"."""
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    cut = key.find("family")
    return key[: cut + len("family")] if cut >= 0 else key


def reserved_instances(sku: Sku, instances: int) -> int:
    """Instances the quota must cover: ``ceil(1.2 × n)``, or ``n`` for skip-20 % SKUs."""
    if sku.skip_reservation:
        return instances
    return -(-instances * RESERVE.numerator // RESERVE.denominator)  # exact ceil


def cores_needed(sku: Sku | str, instances: int) -> int:
    """vCPUs of the family quota a managed deployment of ``instances`` × ``sku`` needs."""
    info = _require(sku)
    if instances < 1:
        raise ValueError("instance count must be at least 1")
    return reserved_instances(info, instances) * info.vcpus


def formula(sku: Sku | str, instances: int) -> str:
    """The rule with the numbers filled in, e.g. ``ceil(1.2 × 10) × 4 = 12 × 4 = 48``."""
    info = _require(sku)
    reserved = reserved_instances(info, instances)
    total = reserved * info.vcpus
    if info.skip_reservation:
        return (
            f"{instances} × {info.vcpus} = {total} vCPUs ({info.short} skips the 20 % reservation)"
        )
    return f"ceil(1.2 × {instances}) × {info.vcpus} = {reserved} × {info.vcpus} = {total} vCPUs"


def _require(sku: Sku | str) -> Sku:
    if isinstance(sku, Sku):
        return sku
    info = sku_info(sku)
    if info is None:
        raise KeyError(f"'{sku}' is not in the managed online endpoint SKU list")
    return info


# -- workspace usage (azure-ai-ml Usage objects, read defensively) ---------------------------
def _field(obj: Any, snake: str, camel: str) -> Any:
    # azure-ai-ml 1.35.2 fills __dict__ with camelCase keys and leaves snake_case attrs None.
    if isinstance(obj, dict):
        return obj.get(snake, obj.get(camel))
    value = getattr(obj, snake, None)
    if value is None:
        value = getattr(obj, "__dict__", {}).get(camel)
    return value


def usage_table(usages: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """``{normalised family: (current, limit)}`` from ``MLClient.compute.list_usage()``.

    Accepts snake_case or camelCase fields and ``name`` as object or dict; skips entries that
    are not VM families (totals such as ``TotalDedicatedCores``) or lack numbers.
    """
    table: dict[str, tuple[int, int]] = {}
    for usage in usages:
        name = _field(usage, "name", "name")
        value = _field(name, "value", "value") if name is not None else None
        if not value and name is not None:
            value = _field(name, "localized_value", "localizedValue")
        current = _field(usage, "current_value", "currentValue")
        limit = _field(usage, "limit", "limit")
        if not value or current is None or limit is None:
            continue
        key = normalise_family(str(value))
        if not key.endswith("family") or _low_priority(usage, name):
            continue
        # a real list carries each family twice: dedicatedCores (the limit that counts for
        # online endpoints) and lowPriorityCores (limit -1); never let the latter win
        if key in table and int(limit) < 0:
            continue
        table[key] = (int(current), int(limit))
    return table


def _low_priority(usage: Any, name: Any) -> bool:
    """A lowPriorityCores row (type ``…/lowPriorityCores/usages`` or a "LowPriority" name)."""
    kind = str(_field(usage, "type", "type") or "")
    localized = str(_field(name, "localized_value", "localizedValue") or "") if name else ""
    return "lowpriority" in (kind + localized).replace(" ", "").lower()


# -- the check ------------------------------------------------------------------------------
@dataclass
class QuotaCheck:
    """What a deployment of ``instances`` × ``sku`` needs and whether the workspace has it.

    ``verdict``: "fits", "short", "unchecked" (no usage: local backend, or family not
    reported), "kubernetes" (no managed quota) or "unknown" (SKU not in the list).
    """

    sku_name: str
    instances: int
    sku: Sku | None
    needed: int | None
    formula: str
    verdict: str
    message: str
    family: str | None = None
    current: int | None = None
    limit: int | None = None
    warnings: list[str] = field(default_factory=list)
    kubernetes: bool = False
    title: str | None = None  # heading of the text block, e.g. "Quota for blue"

    @property
    def available(self) -> int | None:
        if self.current is None or self.limit is None:
            return None
        return self.limit - self.current

    @property
    def short_by(self) -> int:
        avail = self.available
        if self.needed is None or avail is None:
            return 0
        return max(0, self.needed - avail)

    @property
    def fits(self) -> bool | None:
        return None if self.verdict not in ("fits", "short") else self.verdict == "fits"

    def __repr__(self) -> str:
        from pfmagic.widgets.text import quota_text

        return quota_text(self, title=self.title)


def warnings_for(sku: Sku | None, instances: int) -> list[str]:
    """The seed's and the docs' cautions for a choice of SKU and instance count."""
    out: list[str] = []
    if instances < PRODUCTION_MIN_INSTANCES:
        out.append(
            f"{instances} instance{'s' if instances != 1 else ''}: fine for testing; "
            f"use at least {PRODUCTION_MIN_INSTANCES} for production (high availability)"
        )
    if sku is not None and sku.name in SMALL_SKUS:
        out.append(
            f"{sku.name} may be too small for a flow (out of memory, slow start, probe "
            f"failures); {DEFAULT_SKU} is the practical minimum"
        )
    if sku is not None and "retired" in sku.note:
        out.append(f"{sku.name}: {sku.note}")
    return out


def check_quota(
    sku_name: str,
    instances: int,
    usage: dict[str, tuple[int, int]] | None = None,
    *,
    backend_name: str = "local",
    kubernetes: bool = False,
) -> QuotaCheck:
    """Needed cores for ``instances`` × ``sku_name`` against ``usage`` (None: not checked)."""
    instances = max(1, int(instances))
    if kubernetes:
        return QuotaCheck(
            sku_name,
            instances,
            None,
            None,
            "no managed reservation",
            "kubernetes",
            f"Kubernetes deployment: '{sku_name or 'default'}' is an instance type defined on "
            "the attached cluster (CPU/memory/GPU requests and limits), not a VM SKU; Azure ML "
            f"reserves no extra 20 %. Capacity is the cluster's nodes ({INSTANCE_TYPES_DOC}).",
            warnings=warnings_for(None, instances),
            kubernetes=True,
        )
    sku = sku_info(sku_name) if sku_name else None
    if sku is None:
        near = close_skus(sku_name or "")
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        return QuotaCheck(
            sku_name,
            instances,
            None,
            None,
            "?",
            "unknown",
            f"'{sku_name}' is not in the managed online endpoint SKU list{hint}; "
            f"see {SKU_LIST_DOC}",
            warnings=warnings_for(None, instances),
        )
    needed = cores_needed(sku, instances)
    check = QuotaCheck(
        sku.name,
        instances,
        sku,
        needed,
        formula(sku, instances),
        "unchecked",
        "",
        family=sku.family,
        warnings=warnings_for(sku, instances),
    )
    normalised = {normalise_family(k): v for k, v in (usage or {}).items()}
    if usage is None:
        check.message = (
            f"{backend_name} backend: quota is not checked here; Azure would need "
            f"{needed} free vCPUs in {sku.family}"
        )
    elif sku.family_key not in normalised:
        check.message = (
            f"the workspace reports no {sku.family} quota (limit 0?); "
            f"{needed} vCPUs needed: request them at {QUOTA_PAGE}"
        )
    else:
        check.current, check.limit = normalised[sku.family_key]
        avail = check.available or 0
        if needed <= avail:
            check.verdict = "fits"
            check.message = (
                f"fits: {needed} of {avail} free vCPUs in {sku.family} "
                f"(usage {check.current}/{check.limit})"
            )
        else:
            check.verdict = "short"
            check.message = (
                f"short by {needed - avail} cores: {sku.family} usage "
                f"{check.current}/{check.limit}, {avail} free, {needed} needed; "
                f"request more at {QUOTA_PAGE} ({QUOTA_DOC})"
            )
    return check


def deployment_choice(deployment: Any) -> tuple[str, int, bool]:
    """(instance_type, instance_count, is_kubernetes) of a parsed deployment entity."""
    kind = type(deployment).__name__
    kind_field = str(getattr(deployment, "type", "") or "").lower()  # "Managed" / "Kubernetes"
    kubernetes = kind.startswith("Kubernetes") or kind_field == "kubernetes"
    sku = getattr(deployment, "instance_type", None) or ("" if kubernetes else DEFAULT_SKU)
    count = getattr(deployment, "instance_count", None) or 1
    return str(sku), int(count), kubernetes

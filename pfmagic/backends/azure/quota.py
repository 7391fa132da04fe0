"""Reader of ``compute.list_usage()``: one home, :func:`pfmagic.skus.usage_table`.

Kept as an import path for older callers; the dedicatedCores / lowPriorityCores rule and the
azure-ai-ml 1.35.2 camelCase workaround live in ``pfmagic.skus``.
"""

from __future__ import annotations

from pfmagic.skus import normalise_family, usage_table

__all__ = ["normalise_family", "usage_table"]

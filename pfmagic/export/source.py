"""What an entity was parsed from: the cell's YAML (``{{var}}`` filled), its folder, ``--set``.

Kept in ``Session.sources`` by ``source_key`` so ``%pf_export`` can write back the YAML the user
wrote (comments and all) rather than azure-ai-ml's re-serialisation of the entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CellSource:
    kind: str  # "model" | "endpoint" | "deployment"
    text: str
    base_dir: Path
    overrides: Sequence[tuple[str, Any]] = field(default_factory=tuple)


def source_key(kind: str, entity: Any) -> tuple[str, str]:
    """``("deployment", "endpoint/blue")``; ``("model", "name")``; ``("endpoint", "name")``."""
    name = str(getattr(entity, "name", ""))
    if kind == "deployment":
        return kind, f"{getattr(entity, 'endpoint_name', '')}/{name}"
    return kind, name

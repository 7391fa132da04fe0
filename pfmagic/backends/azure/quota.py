"""Fallback reader of ``compute.list_usage()`` for when ``pfmagic.skus`` is not installed.

azure-ai-ml 1.35.2 fills ``Usage.__dict__`` with camelCase keys and leaves the snake_case
attributes None; ``name`` is a plain dict. Read both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def normalise_family(name: str) -> str:
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    cut = key.find("family")
    return key[: cut + len("family")] if cut >= 0 else key


def _field(obj: Any, snake: str, camel: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(snake, obj.get(camel))
    value = getattr(obj, snake, None)
    return value if value is not None else getattr(obj, "__dict__", {}).get(camel)


def usage_table(usages: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """``{normalised family: (current, limit)}``; totals and incomplete rows are skipped."""
    table: dict[str, tuple[int, int]] = {}
    for usage in usages:
        name = _field(usage, "name", "name")
        value = _field(name, "value", "value") if name is not None else None
        current = _field(usage, "current_value", "currentValue")
        limit = _field(usage, "limit", "limit")
        key = normalise_family(str(value or ""))
        if key.endswith("family") and current is not None and limit is not None:
            table[key] = (int(current), int(limit))
    return table

"""``{{name}}`` placeholders filled from the user namespace before the YAML is parsed.

Azure ML's own ``${{inputs.x}}`` / ``${{azureml://connections/c}}`` expressions are left alone
(jinja2 would fail on them, magics-conventions §4), and so is anything that is not a dotted
Python name. Values containing newlines shift lines, so a line map (new → original) is returned
for error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pfmagic.errors import SpecError

# ``{{ name }}`` / ``{{ obj.attr }}`` not preceded by ``$``.
PLACEHOLDER = re.compile(r"(?<!\$)\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def _lookup(dotted: str, namespace: Mapping[str, Any], line: int) -> Any:
    head, *rest = dotted.split(".")
    if head not in namespace:
        raise SpecError(
            f"'{{{{{dotted}}}}}': name '{head}' is not defined",
            line=line,
            hint="define it in a cell above, or use --no-interpolate",
        )
    value = namespace[head]
    for attr in rest:
        try:
            value = value[attr] if isinstance(value, Mapping) else getattr(value, attr)
        except (KeyError, AttributeError):
            raise SpecError(f"'{{{{{dotted}}}}}': '{head}' has no '{attr}'", line=line) from None
    return value


def interpolate(
    text: str, namespace: Mapping[str, Any], *, line_offset: int = 0
) -> tuple[str, list[int]]:
    """Replace ``{{name}}`` from ``namespace``. Returns the text and, for each of its lines,
    the 1-based line of ``text`` it came from. Undefined names raise ``SpecError`` naming them
    (its line is shifted by ``line_offset``, e.g. 1 for the ``%%`` line of a cell)."""
    out_lines: list[str] = []
    line_map: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        at = number + line_offset
        new = PLACEHOLDER.sub(lambda m, at=at: str(_lookup(m.group(1), namespace, at)), line)
        pieces = new.split("\n")
        out_lines.extend(pieces)
        line_map.extend([number] * len(pieces))
    return "\n".join(out_lines), line_map


def placeholders(text: str) -> list[str]:
    """Names of the ``{{name}}`` placeholders in ``text`` (for help and tests)."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]

"""``%pf_envs``: the built deployment environments (size, last use, packages)."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from pfmagic.render.paths import shown


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _ago(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


@dataclass
class EnvList:
    root: str
    envs: list[dict[str, Any]] = field(default_factory=list)
    in_use: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                e["key"],
                _size(e["size"]),
                _ago(e["last_used"]),
                "in use" if e["key"] in self.in_use else "unused",
                ", ".join(e["packages"]) or "-",
            )
            for e in self.envs
        ]

    def _title(self) -> str:
        head = f"{len(self.envs)} environment(s) in {shown(self.root)}"
        if self.removed:
            head = f"removed {len(self.removed)} unused environment(s); " + head
        return head

    def __repr__(self) -> str:
        lines = [self._title()]
        lines += ["  ".join(row) for row in self._rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th style='text-align:left'>{h}</th>"
            for h in ("environment", "size", "last use", "", "packages")
        )
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        return f"<div><b>{html.escape(self._title())}</b><table><tr>{head}</tr>{body}</table></div>"

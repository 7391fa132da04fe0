"""One home per rule, no reaching into private state (issue 21): checked on the source."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
SOURCES = [
    p
    for top in ("pfmagic", "tests", "bench", "notebooks", "widgets")
    for p in sorted((ROOT / top).rglob("*.py"))
    if ".venv" not in p.parts
]


def _hits(pattern: str, *, allowed: set[str]) -> list[str]:
    rx = re.compile(pattern)
    return [
        f"{p.relative_to(ROOT)}:{n}"
        for p in SOURCES
        if str(p.relative_to(ROOT)) not in allowed
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if rx.search(line)
    ]


def test_nothing_reads_session_backend_outside_session() -> None:
    allowed = {"pfmagic/session.py", "tests/test_boundaries.py"}
    assert not _hits(r"session\._backend\b", allowed=allowed)


def test_traffic_rules_have_one_home() -> None:
    allowed = {"pfmagic/traffic.py", "tests/test_boundaries.py"}
    assert not _hits(
        r"def _?check_(traffic|mirror)\b|def parse_(weights|mirror)\b", allowed=allowed
    )
    assert not _hits(r"random\.choices\(", allowed=allowed)  # the router picks via traffic.pick

"""Which skips the suite may report; any other skip is turned into a failure (see conftest).

A skip hides a test: it is allowed only for what cannot exist on this machine (Azure
credentials, root, a browser binary), each with its reason here. A missing module of the
project or a required dependency is a failure, never a skip (issue 21).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# reason text (a prefix of the skip message) → why that skip is legitimate
ALLOWED: dict[str, str] = {
    "no Azure ML workspace/credential configured": "test_azure_live needs a real workspace",
    "set PFMAGIC_AZURE_DEPLOY=1 and PFMAGIC_AZURE_MODEL": "a real deployment costs money: opt in",
    "needs root to act as another user": "test_security_net switches to user nobody",
    "/usr/bin/chromium is missing": "tests/browser needs chromium (.ci/browser-setup.sh)",
}


def skip_reason(report: Any) -> str | None:
    """The reason of a skipped test or collector (None if it was not skipped)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def allowed(reason: str) -> bool:
    return any(reason.startswith(prefix) for prefix in ALLOWED)


def enforce(report: Any) -> None:
    """Turn a skip whose reason is not in ALLOWED into a failure with one clear line."""
    reason = skip_reason(report)
    if reason is not None and not allowed(reason):
        report.outcome = "failed"
        report.longrepr = f"unexplained skip (add it to tests/skip_policy.py ALLOWED?): {reason}"


# hooks (tests/conftest.py imports them; ``-p skip_policy`` loads them as a plugin)
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    enforce(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    enforce(outcome.get_result())

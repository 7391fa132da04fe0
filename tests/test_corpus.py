"""Same verdict as ``az ml`` on real azureml-examples YAML (tests/corpus_run.py, SOURCES.md).

The oracle is computed here, by azure-ai-ml's own loaders, with the ``--set`` values a user
would pass; the cells run on the local backend and on the Azure backend (validation only: the
ARM server must see no request at all).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from arm_server import ArmServer
from corpus_run import cases, figure, run_all
from test_azure_backend import make_backend


def _assert_clean(outcomes: list, line: str) -> None:
    print(line)
    bad = [o for o in outcomes if o.verdict in ("false-reject", "false-accept", "crash")]
    assert not bad, "\n".join(f"{o.verdict}: {o.case.rel}: {o.message}" for o in bad)
    assert "non-flow files with pf warnings 0" in line
    assert "experimental-class lines 0" in line


def test_corpus_is_real() -> None:
    found = cases()
    assert len(found) >= 60
    assert {c.kind for c in found} == {"model", "endpoint", "deployment"}
    assert any(c.sets for c in found) and any(c.namespace for c in found)


@pytest.mark.parametrize("mode", ["cell", "file"])
def test_corpus_local(mode: str, tmp_path: Path) -> None:
    outcomes = run_all("local", tmp_path / "home", mode)
    _assert_clean(outcomes, figure("local", mode, outcomes))
    assert sum(o.verdict == "ok" for o in outcomes) >= 50


@pytest.mark.parametrize("mode", ["cell", "file"])
def test_corpus_azure_validation_only(mode: str, tmp_path: Path) -> None:
    with ArmServer() as arm:
        outcomes = run_all("azure", tmp_path / "home", mode, make_backend(arm))
        calls = list(arm.state.log)
    _assert_clean(outcomes, figure("azure", mode, outcomes))
    assert calls == []  # no workspace / quota / model request before --create
    assert sum(o.verdict == "ok" for o in outcomes) >= 50

"""README.md's "In a notebook" cells, as written, in order, in a real IPython shell.

Run from the repository root with a fresh PFMAGIC_HOME, exactly as a newcomer pastes them: the
stand-in LLM and its connection, the model, endpoint and deployment cells, two chat turns (the
second carries the first as history; a trailing ``# comment`` is not sent), traffic, delete.
Other README blocks are run elsewhere: the two ``make`` commands are CI itself (.ci/run), the
Azure blocks need a workspace (tests/test_azure_live.py, `make test-azure-live`), the scoring
script cells run against tests/scoring/maf-chat in tests/test_scoring_cells.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from pfmagic.magics import session_of

ROOT = Path(__file__).parent.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def notebook_blocks() -> list[str]:
    """The python/yaml blocks between "## In a notebook" and the next "### Azure"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## In a notebook", 1)[1].split("### Azure", 1)[0]
    return [body for lang, body in FENCE.findall(section) if lang in ("python", "yaml")]


def test_readme_blocks_run_as_written(ip: InteractiveShell, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    ip.user_ns.pop("__vsc_ipynb_file__", None)  # relative paths: the working folder, the root
    blocks = notebook_blocks()
    assert len(blocks) >= 7 and blocks[0].strip() == "%load_ext pfmagic"
    llm = None
    try:
        for block in blocks:
            result = ip.run_cell(block)
            llm = ip.user_ns.get("llm", llm)
            assert result.success, f"README block failed:\n{block}\n{result.error_in_exec!r}"
        assert llm is not None
        sent = llm.requests  # the chat-completions bodies the stand-in received
        assert len(sent) == 2, sent  # two chat turns reached the LLM
        text = repr(sent)
        assert "And how do I deploy to it?" in text
        assert "the history is sent for you" not in text  # the trailing comment stayed behind
        assert "What is Azure Machine Learning?" in repr(sent[1])  # history went with turn 2
        assert session_of(ip).backend.list_endpoints() == []  # %pf_delete ran
    finally:
        if llm is not None:
            llm.stop()

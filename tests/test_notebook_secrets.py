"""A saved, executed notebook holds no endpoint key, token or connection secret.

The run of 01-deploy-local.ipynb (shared with test_notebooks.py) records, after every cell,
every key the local backend held for its endpoints and the stand-in LLM's API key (the
connection secret). None of them may appear anywhere in the saved notebook: outputs, widget
state, metadata. Generic patterns (bearer headers, JWTs, key assignments) are checked in the
executed copy and in the committed notebooks too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from test_notebooks import ALL, MAIN_RUN_GROUP, NOTEBOOKS, main_run

GENERIC = {
    "bearer header": re.compile(r"Bearer\s+(?!\{|<|\$|\"|')[A-Za-z0-9+/=._-]{16,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "key assignment": re.compile(
        r"(?i)(primary_key|secondary_key|access_token|api_key)['\"]?\s*[:=]\s*['\"]"
        r"(?!\{\{|<|\*|•)[A-Za-z0-9+/=_-]{16,}['\"]"
    ),
}


def scan_generic(text: str) -> list[str]:
    return [
        f"{name}: {m.group(0)[:40]}…" for name, rx in GENERIC.items() for m in rx.finditer(text)
    ]


def test_scanner_catches_a_planted_key() -> None:
    """The checks below can fail: a key pasted into an output is found by both scans."""
    key = "Q2hlY2tNZVBsZWFzZV9UaGlzSXNBRmFrZUtleQ=="
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "keys",
                outputs=[
                    nbformat.v4.new_output(
                        "execute_result", {"text/plain": f"primary_key='{key}'"}, execution_count=1
                    )
                ],
            )
        ]
    )
    text = nbformat.writes(nb)
    assert key in text
    assert scan_generic(text)


@MAIN_RUN_GROUP
@pytest.mark.timeout(800)
def test_executed_notebook_contains_no_key_or_token() -> None:
    run = main_run()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # the run really had secrets to leak: two endpoint keys and the LLM connection's key
    assert len(run.secrets) >= 3, "the harvest saw no keys: the check would prove nothing"
    text = Path(run.executed).read_text(encoding="utf-8")
    leaked = [s[:6] + "…" for s in run.secrets if s in text]
    assert not leaked, f"secrets in the saved notebook: {leaked}"
    # nor a recognisable prefix of one (e.g. a key cut short by a repr)
    for secret in run.secrets:
        if len(secret) >= 24:
            assert secret[:16] not in text, f"a prefix of a secret ({secret[:4]}…) was saved"
    assert not scan_generic(text)
    # the notebook did use the key (the httpx cell got an answer with it)
    nb = nbformat.read(run.executed, as_version=4)
    http_cell = next(c for c in nb.cells if c.cell_type == "code" and "httpx.post" in c.source)
    assert "200" in json.dumps(http_cell.outputs), http_cell.outputs


@pytest.mark.parametrize("name", ALL)
def test_committed_notebook_has_no_secret_pattern(name: str) -> None:
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert not scan_generic(text)

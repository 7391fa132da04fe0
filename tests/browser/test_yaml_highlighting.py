"""pfmagic's JupyterLab extension in Debian's Chromium: YAML cells highlight as YAML.

A notebook with a ``%%pf_endpoint`` cell and a plain Python cell is opened in JupyterLab
(the venv's, which finds ``pfmagic-labextension`` where ``make setup`` or a wheel install put
it). From the DOM: the pf cell's editor runs the extension's language (``data-language``), its
YAML keys are painted with JupyterLab's atom colour and its magic with the keyword colour; the
Python cell keeps Python (``def`` a keyword, a name followed by ``:`` not an atom). Typing a
YAML cell magic over the Python cell's first line switches it to YAML; in the dark theme the
keys take the dark atom colour. Screenshots: ``test-artifacts/browser/yaml-cells*.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from lab_session import CHROMIUM, CHROMIUM_ARGS
from playwright import sync_api  # the test extra's: missing is a failure, not a skip

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
ENDPOINT_CELL = """%%pf_endpoint my-endpoint --var ep
name: my-endpoint
auth_mode: key
properties:
  enforce_access_to_default_secret_stores: enabled  # a comment"""
PYTHON_CELL = """def score(auth_mode: str) -> dict:
    return {"auth_mode": auth_mode}"""

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: run .ci/browser-setup.sh (apt-get install chromium)",
    ),
    pytest.mark.timeout(120),
]


@pytest.fixture
def cells_lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a port it picks itself (port 0: no race between parallel tests), with a
    two-cell notebook as its only file (no kernel work: nothing is run)."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(ENDPOINT_CELL), nbformat.v4.new_code_cell(PYTHON_CELL)]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "cells.ipynb")
    settings = tmp_path / "lab-settings"
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # render every cell
    runtime = tmp_path / "jupyter-runtime"
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    log_path = tmp_path / "jupyter.log"
    token = secrets.token_hex(24)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ip=127.0.0.1",
                "--port=0",
                # a listener on a shared machine: authenticated even in a test
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.user_settings_dir={settings}",
                f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
                "--LabApp.news_url=",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            # the server writes its URL (with the port it got) to the private runtime folder
            while not (found := list(runtime.glob("jpserver-*.json"))):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.2)
            time.sleep(0.1)  # the file is written in one go, but not atomically
            url = json.loads(found[0].read_text())["url"].rstrip("/")
            yield f"{url}/lab/tree/cells.ipynb?token={token}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the server and its kernel
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


# The editor facts one cell's DOM shows: its language, and the colour of each token whose text
# is one of `words` next to the colours JupyterLab's theme gives atoms, keywords and plain text.
EDITOR_FACTS = """([cell, words]) => {
  const content = cell.querySelector('.cm-content');
  const colour = value => {
    const probe = document.createElement('span');
    probe.style.color = value;
    document.body.appendChild(probe);
    const rgb = getComputedStyle(probe).color;
    probe.remove();
    return rgb;
  };
  const tokens = {};
  for (const span of content.querySelectorAll('.cm-line span')) {
    const text = span.textContent.trim();
    if (words.includes(text) && !(text in tokens)) tokens[text] = getComputedStyle(span).color;
  }
  return {
    language: content.getAttribute('data-language'),
    tokens,
    atom: colour('var(--jp-mirror-editor-atom-color)'),
    keyword: colour('var(--jp-mirror-editor-keyword-color)'),
    text: getComputedStyle(content).color,
  };
}"""


def _facts(page, cell, words: list[str]) -> dict:  # noqa: ANN001 - playwright objects
    return page.evaluate(EDITOR_FACTS, [cell.element_handle(), words])


def _wait_language(page, cell, name: str) -> None:  # noqa: ANN001
    """JupyterLab loads a cell's language (Python too) asynchronously after the editor shows."""
    page.wait_for_function(
        "([c, name]) => c.querySelector('.cm-content').dataset.language === name",
        arg=[cell.element_handle(), name],
        timeout=15_000,
    )


def test_pf_cells_highlight_as_yaml(cells_lab: str) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.set_default_timeout(30_000)
            # an editor extension that throws breaks other plugins (seen: the metadata editor)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text) if m.type == "error" and "activat" in m.text else None
                ),
            )
            page.goto(cells_lab)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            try:
                cells.nth(1).locator(".cm-line").first.wait_for()
            except sync_api.TimeoutError:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "yaml-cells-99-timeout.png"))
                raise
            pf_cell, py_cell = cells.nth(0), cells.nth(1)
            for cell, lang in ((pf_cell, "pfmagic-yaml"), (py_cell, "python")):
                _wait_language(page, cell, lang)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "yaml-cells.png"))

            pf = _facts(page, pf_cell, ["%%pf_endpoint", "auth_mode", "name", "properties"])
            assert pf["language"] == "pfmagic-yaml", pf
            assert pf["atom"] != pf["text"] and pf["keyword"] != pf["text"], pf
            for key in ("auth_mode", "name", "properties"):
                assert pf["tokens"].get(key) == pf["atom"], (key, pf)
            assert pf["tokens"].get("%%pf_endpoint") == pf["keyword"], pf

            py = _facts(page, py_cell, ["def", "auth_mode", "score"])
            assert py["language"] == "python", py
            assert py["tokens"].get("def") == py["keyword"], py
            # a parameter annotated with ":" is a Python name, not a YAML key
            assert py["tokens"].get("auth_mode", py["text"]) != py["atom"], py

            # typing a YAML cell magic over the Python cell's first line makes it a YAML cell
            py_cell.locator(".cm-content").click()
            page.keyboard.press("Control+Home")
            page.keyboard.type("%%pf_deployment blue\n")
            _wait_language(page, py_cell, "pfmagic-yaml")
            page.screenshot(path=str(ARTIFACTS / "yaml-cells-typed.png"))

            # dark theme: the keys follow the theme's atom colour
            page.get_by_role("menuitem", name="Settings", exact=True).click()
            for label in ("Theme", "JupyterLab Dark"):
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{label}$")).click()
            page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
            page.wait_for_function(
                "([c, light]) => getComputedStyle(c.querySelector('.cm-content')).color !== light",
                arg=[pf_cell.element_handle(), pf["text"]],
            )
            dark = _facts(page, pf_cell, ["auth_mode"])
            assert dark["atom"] != pf["atom"], (dark, pf)
            assert dark["tokens"].get("auth_mode") == dark["atom"], dark
            page.screenshot(path=str(ARTIFACTS / "yaml-cells-dark.png"))
            assert errors == [], errors
        finally:
            browser.close()

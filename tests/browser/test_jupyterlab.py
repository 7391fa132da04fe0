"""JupyterLab in Debian's Chromium, driven by Playwright: 01-deploy-local.ipynb, Run All.

JupyterLab runs headless on 127.0.0.1 with a random token, a copy of notebooks/ as its root and
private Jupyter / pfmagic state. Chromium is /usr/bin/chromium (``.ci/browser-setup.sh``
installs it); Playwright's Python package drives it and never downloads a browser. Checks:
the quota calculator renders and its vCPU count follows the slider, the deployment's progress
view reaches Succeeded, and ``%pf_invoke --history`` shows the three turns. Screenshots go to
``test-artifacts/browser/`` (kept, git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "01-deploy-local.ipynb"
QUESTIONS = [
    "How do I create the blue deployment?",
    "And how long does it take?",
    "How much quota do I need for 10 instances?",
]
# Without the background-networking flags Chromium hangs on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
RUN_ALL_TIMEOUT_S = 150

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: run .ci/browser-setup.sh (apt-get install chromium)",
    ),
    pytest.mark.timeout(300),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _delete_local_endpoints(home: Path) -> None:
    """Whatever a failed run left running under this PFMAGIC_HOME (endpoints are processes)."""
    code = (
        "from pfmagic.backends import make_backend\n"
        "from pfmagic.config import PfMagics\n"
        "b = make_backend('local', settings=PfMagics())\n"
        "for e in b.list_endpoints():\n"
        "    b.delete_endpoint(e.name).wait(120)\n"
        "b.close()\n"
    )
    env = dict(os.environ, PFMAGIC_HOME=str(home))
    subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=180, capture_output=True, check=False
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict]:
    root = tmp_path / "root"
    shutil.copytree(
        NOTEBOOKS,
        root,
        ignore=shutil.ignore_patterns(
            ".ipynb_checkpoints", "__pycache__", ".promptflow", "sample-request.json"
        ),
    )
    settings = tmp_path / "lab-settings"
    # no "receive Jupyter news?" toast over the notebook, no update checks (closed network)
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # render every cell (JupyterLab 4 only renders the cells in view by default)
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    home = tmp_path / "pfhome"
    env = dict(os.environ)
    env.update(
        {
            "PFMAGIC_HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),  # kernels: sys.prefix's python3
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
            "IPYTHONDIR": str(tmp_path / "ipython"),
        }
    )
    env.pop("PFMAGIC_FORCE_WIDGETS", None)
    port, token = _free_port(), secrets.token_hex(24)
    log = (tmp_path / "jupyter.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
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
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "jupyter lab did not start:\n"
                        + (tmp_path / "jupyter.log").read_text()[-3000:]
                    )
                time.sleep(0.5)
        yield {"base": base, "token": token, "tmp": tmp_path, "home": home}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        _delete_local_endpoints(home)


def _shot(page, name: str) -> None:  # noqa: ANN001 - playwright Page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def _cell(page, source_start: str):  # noqa: ANN001, ANN202
    """The notebook cell whose code starts with ``source_start``."""
    return (
        page.locator(".jp-Notebook .jp-CodeCell")
        .filter(
            has=page.locator(
                ".jp-InputArea .cm-content", has_text=re.compile("^" + re.escape(source_start))
            )
        )
        .first
    )


def _vcpus(calc) -> int:  # noqa: ANN001
    match = re.search(r"(\d+) vCPUs needed", calc.inner_text())
    assert match, calc.inner_text()
    return int(match.group(1))


def test_notebook_runs_in_jupyterlab(lab: dict) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    profile = lab["tmp"] / "chromium-profile"
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            # the kernel is the notebook's python3 (this venv); JupyterLab may still ask
            dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
            with contextlib.suppress(sync_api.TimeoutError):
                dialog.wait_for(timeout=5_000)
                dialog.get_by_role("button", name="Select").click()
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=60_000
            )
            _shot(page, "01-opened")

            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()

            # every code cell gets an execution count; none shows an error
            started = time.monotonic()
            nb = json.loads((NOTEBOOKS / NOTEBOOK).read_text())
            count = sum(1 for c in nb["cells"] if c["cell_type"] == "code")
            assert page.locator(".jp-Notebook .jp-CodeCell").count() == count
            while True:
                prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
                texts = prompts.all_inner_texts()
                done = sum(1 for t in texts if re.search(r"\[\d+\]", t))
                errors = page.locator(
                    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                ).filter(has_text=re.compile(r"^(Traceback|[A-Z]\w*(Error|Exception)\b)", re.M))
                if errors.count():
                    _shot(page, "99-error")
                    pytest.fail("a cell failed in JupyterLab:\n" + errors.first.inner_text())
                if done == count and not any("*" in t for t in texts):
                    break
                if time.monotonic() - started > RUN_ALL_TIMEOUT_S:
                    _shot(page, "99-timeout")
                    pytest.fail(
                        f"Run All did not finish in {RUN_ALL_TIMEOUT_S} s "
                        f"({done}/{count} cells ran)"
                    )
                time.sleep(1)
            run_all_s = time.monotonic() - started

            # 1. the deployment cell's quota calculator renders and follows its slider
            deploy = _cell(page, "%%pf_deployment blue")
            deploy.scroll_into_view_if_needed()
            calc = (
                deploy.locator(".jp-OutputArea-output .widget-vbox")
                .filter(has=page.locator(".widget-slider"))
                .first
            )
            calc.wait_for()
            before = _vcpus(calc)
            assert "ceil(1.2 × 1)" in calc.inner_text()  # the cell's instance_count: 1
            _shot(page, "02-quota-calculator")
            handle = calc.locator(".widget-slider .noUi-handle").first
            handle.focus()
            for _ in range(4):
                handle.press("ArrowRight")
            instances = int(calc.locator(".widget-slider .widget-readout").first.inner_text())
            assert instances == 5, instances  # 1 → 5
            # the kernel recomputed the rule for 5 instances and redrew the calculator
            page.wait_for_function(
                "([el, n]) => el.innerText.includes(`ceil(1.2 × ${n})`)",
                arg=[calc.element_handle(), instances],
                timeout=15_000,
            )
            after = _vcpus(calc)
            assert after > before, (before, after)
            calc.screenshot(path=str(ARTIFACTS / "03-quota-after-slider.png"))

            # 2. the progress view reached Succeeded
            progress = deploy.locator(".jp-OutputArea").filter(has_text="Succeeded")
            assert progress.count(), deploy.inner_text()[-2000:]
            deploy.screenshot(path=str(ARTIFACTS / "04-deployment-progress.png"))

            # 3. the transcript shows three turns, each with its answer
            history = _cell(page, "%pf_invoke --history")
            history.scroll_into_view_if_needed()
            text = history.locator(".jp-OutputArea").inner_text()
            for q in QUESTIONS:
                assert q in text, text
            assert "15 minutes" in text and "48 cores" in text, text
            history.screenshot(path=str(ARTIFACTS / "05-chat-transcript.png"))
            _shot(page, "06-final")
            print(f"Run All took {run_all_s:.0f} s; vCPUs {before} -> {after}")
        finally:
            context.close()

"""What the JupyterLab browser tests share: a JupyterLab server, Debian's Chromium, page helpers.

One server per test module (``lab``, module-scoped): headless on 127.0.0.1 at a free port with a
random token, a copy of ``notebooks/`` as its root, private Jupyter / IPython / pfmagic state
under the module's temporary folder (nothing global, so modules can run in parallel workers).
``window.jupyterapp`` is exposed so a test can run JupyterLab commands (``lab_command``) such as
``apputils:change-theme`` or ``docmanager:save``. Chromium is /usr/bin/chromium
(``.ci/browser-setup.sh`` installs it); Playwright drives it and never downloads a browser.
Screenshots go to ``test-artifacts/browser/`` (git-ignored).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
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
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@dataclass
class Lab:
    base: str
    token: str
    root: Path  # the server's root folder (a copy of notebooks/)
    tmp: Path
    home: Path  # PFMAGIC_HOME of the kernels

    def url(self, path: str) -> str:
        return f"{self.base}/lab/tree/{path}?token={self.token}"


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


def _write_settings(settings: Path) -> None:
    def put(plugin: str, values: dict[str, Any]) -> None:
        scope, name = plugin.split(":")
        path = settings / scope / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))

    # no "receive Jupyter news?" toast over the notebook, no update checks (closed network)
    put(
        "@jupyterlab/apputils-extension:notification",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # render every cell (JupyterLab 4 only renders the cells in view by default)
    put("@jupyterlab/notebook-extension:tracker", {"windowingMode": "none"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is missing: run .ci/browser-setup.sh (apt-get install chromium)"
        )
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    shutil.copytree(
        NOTEBOOKS,
        root,
        ignore=shutil.ignore_patterns(
            ".ipynb_checkpoints", "__pycache__", ".promptflow", "sample-request.json"
        ),
    )
    settings = tmp / "lab-settings"
    _write_settings(settings)
    home = tmp / "pfhome"
    env = dict(os.environ)
    env.update(
        {
            "PFMAGIC_HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"),  # kernels: sys.prefix's python3
            "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
            "IPYTHONDIR": str(tmp / "ipython"),
        }
    )
    env.pop("PFMAGIC_FORCE_WIDGETS", None)
    port, token = _free_port(), secrets.token_hex(24)
    log_path = tmp / "jupyter.log"
    log = log_path.open("w")
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
            f"--LabApp.workspaces_dir={tmp / 'lab-workspaces'}",
            "--LabApp.news_url=",
            "--LabApp.expose_app_in_browser=True",
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
                    pytest.fail("jupyter lab did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield Lab(base=base, token=token, root=root, tmp=tmp, home=home)
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


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    """A Chromium context (persistent profile in the module's folder); pages come from it."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(lab.tmp / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def open_notebook(context: Any, lab: Lab, path: str) -> Any:
    """A new page with ``path`` open, its kernel started and idle."""
    from playwright import sync_api

    blank = [p for p in context.pages if p.url == "about:blank"]
    page = blank[0] if blank else context.new_page()
    page.goto(lab.url(path))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    # the kernel is the notebook's python3 (this venv); JupyterLab may still ask
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    with contextlib.suppress(sync_api.TimeoutError):
        dialog.wait_for(timeout=5_000)
        dialog.get_by_role("button", name="Select").click()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
    # the session's kernel connected and answered kernel_info: a Run All sent earlier can be
    # lost (outputs cleared, nothing runs)
    page.wait_for_function(
        """async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            if (!panel || !panel.sessionContext) return false;
            await panel.sessionContext.ready;
            const kernel = panel.sessionContext.session?.kernel;
            if (!kernel || kernel.connectionStatus !== 'connected') return false;
            await kernel.info;
            return kernel.status === 'idle';
        }""",
        timeout=60_000,
        polling=250,
    )
    return page


def lab_command(
    page: Any, command: str, args: dict[str, Any] | None = None, *, wait: bool = True
) -> None:
    """Run a JupyterLab command in ``page`` (needs ``expose_app_in_browser``); ``wait=False``
    returns at once (``notebook:run-all-cells`` resolves only when every cell ran)."""
    js = "([id, args]) => window.jupyterapp.commands.execute(id, args).then(() => null)"
    if not wait:
        js = "([id, args]) => { window.jupyterapp.commands.execute(id, args); return null; }"
    page.evaluate(js, [command, args or {}])


def set_theme(page: Any, theme: str) -> None:
    """``light`` or ``dark``, through JupyterLab's own theme command (its theme setting)."""
    name = THEMES[theme]
    toggled = "n => window.jupyterapp.commands.isToggled('apputils:change-theme', {theme: n})"
    if page.evaluate(toggled, name):
        return
    lab_command(page, "apputils:change-theme", {"theme": name}, wait=False)
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === light",
        arg=str(theme == "light").lower(),
        timeout=15_000,
    )
    # the theme's stylesheet applied: JupyterLab's page colour is the theme's
    page.wait_for_timeout(300)


def cell(page: Any, source_start: str) -> Any:
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


def shot(page: Any, name: str, *, whole_notebook: bool = False) -> Path:
    """``test-artifacts/browser/<name>.png``: the viewport, or the whole notebook at once."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if not whole_notebook:
        page.screenshot(path=str(path))
        return path
    size = page.viewport_size
    # from the notebook's top: its scroller grows with the viewport, so the whole of it shows
    height = page.evaluate(
        """() => {
            const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
            outer.scrollTop = 0;
            const cells = [...outer.querySelectorAll('.jp-Cell')];
            const last = cells[cells.length - 1].getBoundingClientRect();
            return last.bottom - outer.getBoundingClientRect().top + window.innerHeight
                - outer.clientHeight;
        }"""
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 16_000)})
    try:
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)
    return path

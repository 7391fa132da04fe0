"""The router process imports only what it serves with (issue 19: an endpoint's memory).

Each module is tens to hundreds of KB of a router that lives as long as its endpoint. A fresh
interpreter imports the router's module, as ``python -m pfmagic.backends.local.server`` does,
then builds its ``Router`` and app and records and reads metrics as a serving router does;
its ``sys.modules`` must hold none of the kernel's client (httpx), uvicorn's command line
(click, multiprocessing), pretty-printing (pygments), promptflow or azure, nor what only a
Prometheus scrape (prometheus_client), a flow file (yaml) or another platform (psutil) needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pfmagic
from pfmagic.backends.local.procs import child_env
from pfmagic.backends.local.state import Home

NEVER = (
    "httpx",
    "httpcore",
    "pygments",
    "click",
    "multiprocessing",
    "promptflow",
    "azure",
    "azure.ai.ml",
    "prometheus_client",
    "psutil",
    "yaml",
    "h11",  # only with PFMAGIC_PURE_PYTHON_HTTP=1
)

ROUTER = """
import json, os, sys
import pfmagic.backends.local.server as server
from pfmagic.backends.local.state import Home

router = server.Router(Home(sys.argv[1]), "ep")
router.app()
router.metrics.record("blue", 200, 12.0, 3, flow_ms=4.0)
router.metrics.record_unauthorized()
router.metrics.sample({"blue": [os.getpid()]})
router.metrics.snapshot(900, ["blue"])
print(json.dumps(sorted(sys.modules)))
"""


def _router_modules(tmp_path: Path, extra: dict[str, str] | None = None) -> set[str]:
    home = Home(str(tmp_path / "home"))
    env = {**child_env(home), **(extra or {})}
    done = subprocess.run(
        [sys.executable, "-c", ROUTER, str(home.root)],
        env=env,
        cwd=tmp_path,  # as the router: not a checkout
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_router_imports_none_of_what_it_never_uses(tmp_path: Path) -> None:
    modules = _router_modules(tmp_path)
    assert "pfmagic.backends.local.server" in modules and "aiohttp" in modules
    assert "uvicorn.server" in modules and "starlette.routing" in modules
    loaded = sorted(m for m in NEVER if m in modules)
    assert loaded == [], f"the router imported {loaded}"
    assert not any(m.startswith(("promptflow.", "azure.", "httpx.", "click.")) for m in modules)
    # a coarse bound on the rest: main had 482 modules after the import alone
    assert len(modules) < 420, len(modules)


def test_uvicorn_without_its_cli_is_still_whole_on_demand(tmp_path: Path) -> None:
    """The package is set up without running ``uvicorn/__init__``; a name only that file
    defines (``uvicorn.run``) loads it then, and it is the real one."""
    code = (
        "import sys\n"
        "from pfmagic.backends.local.uvicorn_core import Config, Server\n"
        "import uvicorn\n"
        "assert uvicorn.Config is Config and uvicorn.Server is Server\n"
        "assert 'click' not in sys.modules and 'uvicorn.main' not in sys.modules\n"
        "assert uvicorn.__version__ and 'click' in sys.modules\n"
        "cli = sys.modules['uvicorn.main']\n"
        "assert uvicorn.run is cli.run and uvicorn.main is cli.main\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(pfmagic.__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]

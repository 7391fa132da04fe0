"""The scoring-script executor: ``init()`` / ``run(raw_data)`` under azureml-inference-server-http.

Kernel side (``runtime``): the deployment's ``code_configuration`` is snapshotted by content
under ``<home>/code/<hash>``, its environment built (``pfmagic.environments.scoring``), and the
model -- optional -- resolved to its registered copy, which becomes ``AZUREML_MODEL_DIR``.
Router side (``ScoringExecutor``): ``scoring_boot.py`` in that environment's interpreter, on the
socket the router bound. Probes default to the server's own ``GET /``; scoring is ``/score``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfmagic.backends.local.executors import Executor
from pfmagic.backends.local.models import IGNORED, content_hash
from pfmagic.backends.local.state import Home, ensure_dir, locked
from pfmagic.errors import PfError

if TYPE_CHECKING:
    from pfmagic.backends.local.supervisor import Supervisor

BOOT = Path(__file__).with_name("scoring_boot.py")
ROUTES = {"liveness": "/", "readiness": "/", "scoring": "/score"}


class ScoringExecutor(Executor):
    kind = "scoring"

    async def start(
        self,
        sup: Supervisor,
        name: str,
        env: dict[str, str],
        runtime: dict[str, Any],
        workdir: Path,
        sock: socket.socket,
        log_fd: int,
    ) -> Any:
        env.pop("PFMAGIC_CONNECTIONS_FILE", None)  # promptflow's; a scoring script reads env vars
        env["AML_APP_ROOT"] = str(workdir)
        env["AZUREML_ENTRY_SCRIPT"] = runtime["scoring_script"]
        if runtime.get("model_dir"):
            env["AZUREML_MODEL_DIR"] = runtime["model_dir"]
        env.setdefault("WORKER_COUNT", "1")
        return subprocess.Popen(
            [
                runtime["python"],
                str(BOOT),
                "--fd",
                str(sock.fileno()),
                "--id",
                name,
                "--entry-script",
                str(workdir / runtime["scoring_script"]),
            ],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )


def _code_path(config: Any) -> Path:
    code = getattr(config, "code", None)
    if not code:
        raise PfError("code_configuration.code is missing", hint="code: <folder with the script>")
    path = Path(str(getattr(code, "path", code))).expanduser()
    base = getattr(config, "base_path", None)
    if not path.is_absolute() and base:
        path = Path(base) / path
    return path.resolve()


def snapshot_code(home: Home, config: Any) -> tuple[Path, str]:
    """The code folder copied by content (``<home>/code/<hash>``) and the scoring script."""
    src = _code_path(config)
    script = str(config.scoring_script).replace(os.sep, "/")
    if str(code_text := getattr(config, "code", "")).startswith("azureml:"):
        raise PfError(
            f"code_configuration.code '{code_text}': registered code assets are not available "
            "on the local backend",
            hint="code: <local folder>",
        )
    if not src.is_dir():
        raise PfError(f"code_configuration.code: folder '{src}' does not exist")
    if not (src / script).is_file():
        raise PfError(
            f"code_configuration.scoring_script: '{script}' not found in {src}",
            hint="the path is relative to code",
        )
    digest = content_hash(src)[:32]
    root = ensure_dir(home.root / "code")
    dst = root / digest
    with locked(root / ".lock"):
        if not dst.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{digest}."))
            shutil.copytree(src, tmp / "c", ignore=shutil.ignore_patterns(*IGNORED))
            os.replace(tmp / "c", dst)
            shutil.rmtree(tmp, ignore_errors=True)
    return dst, script


def runtime(
    home: Home,
    dep: Any,
    meta: dict[str, Any] | None,
    common: dict[str, Any],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The runtime spec of a scoring-script deployment (``common``: the executor-neutral
    fields -- instance count, variables, probes, request settings, routes)."""
    from pfmagic.environments import scoring as environment

    code_dir, script = snapshot_code(home, dep.code_configuration)
    named = getattr(dep, "environment", None)
    if isinstance(named, str):  # azureml:NAME:VERSION / a curated environment
        progress(
            f"environment '{named}' is not available locally: azureml-inference-server-http "
            "only (give the deployment an environment with a conda_file)"
        )
    env_spec = environment.spec_of(named)
    progress(f"environment: {', '.join(env_spec['pip']) or 'server only'}")
    python = environment.ensure(env_spec, home, progress)
    routes = dict(common.get("routes") or {})
    for key, default in ROUTES.items():  # the inference server's routes unless configured
        if routes.get(key) in (None, "/health") and key != "scoring":
            routes[key] = default
    out = dict(common)
    out.update(
        {
            "executor": "scoring",
            "model": f"{meta['name']}:{meta['version']}" if meta else None,
            "model_dir": meta.get("model_dir") if meta else None,
            "flow_dir": str(code_dir),  # copied per generation by the router, like a flow
            "flow_name": "code",
            "scoring_script": script,
            # not "environment": that key is a flow's declared environment (environments/),
            # built by the router; this venv is built above, before the rollout
            "scoring_environment": env_spec,
            "python": python,
            "routes": routes,
        }
    )
    return out

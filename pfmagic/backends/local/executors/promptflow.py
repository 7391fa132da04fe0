"""The promptflow executor: promptflow's serving app (``instance.py``), forked from the
endpoint's zygote when there is one, else a plain interpreter."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfmagic.backends.local.executors import Executor

if TYPE_CHECKING:
    from pfmagic.backends.local.supervisor import Supervisor


class PromptflowExecutor(Executor):
    kind = "promptflow"

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
        env["PROMPTFLOW_PROJECT_PATH"] = str(workdir)
        variables = runtime.get("environment_variables") or {}
        # a deployment may opt out, e.g. for variables promptflow reads at import time
        python = runtime.get("python") or sys.executable  # the deployment's environment
        if runtime.get("requirements_file"):  # where an ImportError tells the user to declare
            env["PFMAGIC_REQUIREMENTS_FILE"] = runtime["requirements_file"]
        zygote = None if variables.get("PFMAGIC_NO_ZYGOTE") else sup._zygote(python)
        proc: Any = None
        if zygote is not None:
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                proc = await zygote.spawn(name, env, str(workdir), sock.fileno(), log_fd)
        if proc is None:  # no zygote (disabled or broken): a plain interpreter
            proc = subprocess.Popen(
                [
                    python,
                    "-m",
                    "pfmagic.backends.local.instance",
                    "--fd",
                    str(sock.fileno()),
                    "--id",
                    name,
                ],
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )
        return proc

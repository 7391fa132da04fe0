"""How a deployment's instances run: the endpoint contract does not depend on it.

The router (``server.py``) and the supervisor own the contract -- auth, traffic, mirror,
targeting header, ``azureml-model-deployment`` reply header, probes, instances, restarts,
drains, logs, ``request_settings`` -- and ask an *executor* only to start one instance
process on an already-bound loopback socket.

``promptflow``  a flow folder model under promptflow's serving app (``instance.py``, forked
                from the zygote); the deployment has a model and no ``code_configuration``.
``scoring``     a ``code_configuration`` scoring script (``init()`` / ``run(raw_data)``) under
                azureml-inference-server-http in the deployment's own environment
                (``scoring.py``, ``scoring_boot.py``; the venv: ``pfmagic.environments.scoring``).

The deployment's runtime spec (``deployment.json``) names its executor (``"executor"``; no
key means promptflow, as before this module existed).
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pfmagic.backends.local.supervisor import Supervisor


class Executor(ABC):
    kind: str

    @abstractmethod
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
        """Start one instance serving on ``sock``; returns a Popen-like process."""


def kind_of(deployment: Any) -> str:
    """Which executor a (kernel-side) deployment entity needs."""
    config = getattr(deployment, "code_configuration", None)
    return (
        "scoring"
        if config is not None and getattr(config, "scoring_script", None)
        else "promptflow"
    )


def executor_for(runtime: dict[str, Any]) -> Executor:
    kind = runtime.get("executor") or "promptflow"
    if kind == "scoring":
        from pfmagic.backends.local.executors.scoring import ScoringExecutor

        return ScoringExecutor()
    from pfmagic.backends.local.executors.promptflow import PromptflowExecutor

    return PromptflowExecutor()

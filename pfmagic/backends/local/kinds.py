"""Deployment kinds the local backend cannot run, told in one line before anything starts.

The local backend runs prompt flows (promptflow's executor) and scoring scripts
(azureml-inference-server-http). MLflow models without a scoring script (Azure's no-code
deployment), Triton models and custom containers (an image with no flow and no script) run on
Azure only; the cell still parses them and the Azure backend sends them unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pfmagic.spec.flowinfo import flow_file


def unsupported(deployment: Any) -> str | None:
    """Why the local backend cannot run ``deployment`` (None: it can, or cannot tell yet)."""
    config = getattr(deployment, "code_configuration", None)
    if config is not None and getattr(config, "scoring_script", None):
        return None  # the scoring-script executor
    model = getattr(deployment, "model", None)
    env = getattr(deployment, "environment", None)
    image = getattr(env, "image", None) if env is not None and not isinstance(env, str) else None
    if model is None and image and "promptflow" not in str(image):
        return f"custom container {image} (no flow, no scoring script)"
    if model is None or isinstance(model, str):
        return None  # registered: resolved (and checked) at create
    kind = str(getattr(model, "type", "") or "")
    if kind in ("mlflow_model", "triton_model"):
        label = {"mlflow_model": "an MLflow model", "triton_model": "a Triton model"}[kind]
        return f"{label} without a scoring script (Azure's no-code deployment)"
    path = getattr(model, "path", None)
    if path and Path(str(path)).is_dir() and flow_file(Path(str(path))) is None:
        if (Path(str(path)) / "MLmodel").is_file():
            return "an MLflow model without a scoring script (Azure's no-code deployment)"
        if image and "promptflow" not in str(image):
            return f"custom container {image} (its model folder holds no flow)"
    return None  # a plain folder: the create names it ("not a prompt flow folder")


def message(reason: str) -> str:
    return f"the local backend cannot run {reason}; deploy it with %pf_backend azure"

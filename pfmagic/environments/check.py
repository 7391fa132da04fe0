"""``%%pf_deployment --check-env``: the local resolve + build before a create (Azure too).

Azure answers a broken environment with ``ImageBuildFailure`` after a 15-25 minute image
build; the same requirements built here with uv fail in seconds, naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfmagic.environments import build
from pfmagic.environments.resolve import resolve


def flow_folder(deployment: Any, models: dict[str, Any]) -> Path | None:
    """The deployment's flow folder when it is local: an inline model with a path, or an
    ``azureml:NAME:VERSION`` model parsed earlier in the notebook."""
    model = getattr(deployment, "model", None)
    if isinstance(model, str):
        name = model.removeprefix("azureml:").split(":")[0].split("@")[0]
        model = models.get(name)
    path = getattr(model, "path", None)
    if not path or str(path).startswith(("azureml:", "http://", "https://")):
        return None
    folder = Path(str(path))
    base = getattr(model, "base_path", None)
    if not folder.is_absolute() and base:
        folder = Path(str(base)) / folder
    return folder if folder.is_dir() else None


def check_environment(
    deployment: Any, models: dict[str, Any], home_root: Path, log: Callable[[str], None]
) -> str:
    """One line on success; raises ``PfError`` / ``BuildFailure`` (one line) otherwise."""
    folder = flow_folder(deployment, models)
    resolved = resolve(getattr(deployment, "environment", None), folder)
    for warning in resolved.warnings:
        log(f"warning: {warning}")
    if folder is None:
        log("the model is not a local folder: its requirements.txt is not checked")
    built = build.ensure(resolved, build.envs_root(home_root), log)
    how = "cached" if built.cached else "built"
    what = ", ".join(r.spec for r in resolved.requirements) or "nothing beyond promptflow"
    return f"environment check passed ({how}, {built.key}): {what}"

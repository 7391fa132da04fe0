"""What pfmagic needs to know about a flow folder, read from its ``flow.dag.yaml`` with plain yaml.

promptflow is not imported in the kernel (3 s and process-wide side effects, promptflow notes
§4); the chat markers (``is_chat_input`` / ``is_chat_output`` / ``is_chat_history``) and
``additional_includes`` are plain YAML keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FLOW_FILES = ("flow.dag.yaml", "flow.dag.yml", "flow.flex.yaml", "flow.flex.yml")


@dataclass
class FlowInfo:
    """Inputs, outputs and chat markers of a flow folder."""

    folder: Path
    flow_file: Path | None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    additional_includes: list[str] = field(default_factory=list)
    error: str | None = None  # the flow file exists but could not be read

    def _flagged(self, items: dict[str, dict[str, Any]], flag: str) -> str | None:
        return next((name for name, spec in items.items() if spec.get(flag)), None)

    @property
    def chat_input(self) -> str | None:
        return self._flagged(self.inputs, "is_chat_input")

    @property
    def chat_output(self) -> str | None:
        return self._flagged(self.outputs, "is_chat_output")

    @property
    def chat_history(self) -> str | None:
        # promptflow treats an input named chat_history as history even without the flag.
        flagged = self._flagged(self.inputs, "is_chat_history")
        return flagged or ("chat_history" if "chat_history" in self.inputs else None)

    @property
    def is_chat(self) -> bool:
        return self.chat_input is not None


def flow_file(folder: Path) -> Path | None:
    """The flow definition in ``folder`` (``flow.dag.yaml`` first), or None."""
    for name in FLOW_FILES:
        if (folder / name).is_file():
            return folder / name
    prompty = sorted(folder.glob("*.prompty"))
    return prompty[0] if len(prompty) == 1 else None


def read_flow(folder: str | Path) -> FlowInfo | None:
    """Read a flow folder; None when it is not a directory or holds no flow definition."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    path = flow_file(folder)
    if path is None:
        return None
    info = FlowInfo(folder=folder, flow_file=path)
    if path.suffix == ".prompty":
        return info
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        info.error = f"cannot read {path.name}: {str(exc).splitlines()[0]}"
        return info
    if not isinstance(data, dict):
        info.error = f"{path.name} is not a mapping"
        return info
    info.inputs = _specs(data.get("inputs"))
    info.outputs = _specs(data.get("outputs"))
    includes = data.get("additional_includes") or []
    info.additional_includes = [str(i) for i in includes] if isinstance(includes, list) else []
    return info


def _specs(section: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(section, dict):
        return {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in section.items()}

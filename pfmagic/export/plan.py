"""What a session defines, in the order ``az ml`` must create it, with the live traffic split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pfmagic.errors import NotFound, PfError
from pfmagic.export.source import CellSource


@dataclass
class EndpointPlan:
    name: str
    source: CellSource
    entity: Any
    deployments: list[tuple[str, CellSource, Any]] = field(default_factory=list)
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    traffic_from: str = "the cell"  # or "the local backend" / "the azure backend"


@dataclass
class Plan:
    connections: list[Any] = field(default_factory=list)
    models: list[tuple[str, CellSource, Any]] = field(default_factory=list)
    endpoints: list[EndpointPlan] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.connections or self.models or self.endpoints)


def model_name_of(deployment: Any) -> str | None:
    """``azureml:basic-chat-model:1`` → ``basic-chat-model``; inline models have none."""
    model = getattr(deployment, "model", None)
    if isinstance(model, str) and model.startswith("azureml:"):
        return model.split(":")[1] or None
    return None


def make_plan(session: Any, endpoint: str | None = None) -> Plan:
    """Everything parsed from cells (or only ``endpoint`` and what it uses), deploy-ordered."""
    sources = session.sources
    if endpoint is not None and ("endpoint", endpoint) not in sources:
        if not any(k == "deployment" and n.startswith(f"{endpoint}/") for k, n in sources):
            known = sorted(n for k, n in sources if k == "endpoint")
            raise PfError(
                f"no endpoint '{endpoint}' was defined in this session",
                hint=f"defined: {', '.join(known)}" if known else "run its %%pf_endpoint cell",
            )
    plan = Plan(connections=list(session.connections.values()))
    used_models: set[str] = set()
    for (kind, name), source in sources.items():
        if kind != "endpoint" or (endpoint and name != endpoint):
            continue
        entity = session.endpoints.get(name)
        ep = EndpointPlan(name, source, entity)
        for (dkind, dname), dsource in sources.items():
            dep = session.deployments.get(tuple(dname.split("/", 1)))
            if dkind == "deployment" and dname.startswith(f"{name}/") and dep is not None:
                ep.deployments.append((dname.split("/", 1)[1], dsource, dep))
                used_models.add(model_name_of(dep) or "")
        _traffic(session, ep)
        plan.endpoints.append(ep)
    for (kind, name), source in sources.items():
        if kind == "model" and (endpoint is None or name in used_models):
            plan.models.append((name, source, session.models.get(name)))
    return plan


def _traffic(session: Any, ep: EndpointPlan) -> None:
    """The split the backend serves now; else what the endpoint cell said."""
    try:
        live = session.backend.get_endpoint(ep.name)
    except NotFound:
        live = None
    except PfError:
        live = None  # an unreachable backend: the cell's values still make a valid export
    entity = live if live is not None else ep.entity
    ep.traffic = {k: int(v) for k, v in (getattr(entity, "traffic", None) or {}).items()}
    ep.mirror = {k: int(v) for k, v in (getattr(entity, "mirror_traffic", None) or {}).items()}
    if live is not None:
        ep.traffic_from = f"the {session.backend_name} backend"

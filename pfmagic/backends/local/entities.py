"""State files -> azure-ai-ml entities (the objects both backends return).

Imported only when an entity is built: ``azure.ai.ml`` is slow to import and the router and
instance processes never need it.
"""

from __future__ import annotations

from typing import Any


def endpoint(cfg: dict[str, Any], deployments: list[str], *, provisioning_state: str | None) -> Any:
    from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

    traffic = {name: 0 for name in deployments}
    traffic.update({k: int(v) for k, v in (cfg.get("traffic") or {}).items()})
    base = f"http://127.0.0.1:{cfg['port']}"
    kwargs: dict[str, Any] = {
        "name": cfg["name"],
        "auth_mode": cfg.get("auth_mode", "key"),
        "description": cfg.get("description"),
        "tags": dict(cfg.get("tags") or {}),
        "traffic": traffic,
        "scoring_uri": f"{base}/score",
        "openapi_uri": f"{base}/swagger.json",
        "provisioning_state": provisioning_state,
    }
    if cfg.get("kind") == "kubernetes":
        return KubernetesOnlineEndpoint(compute=cfg.get("compute"), **kwargs)
    return ManagedOnlineEndpoint(mirror_traffic=dict(cfg.get("mirror_traffic") or {}), **kwargs)


def deployment(
    data: dict[str, Any], provisioning_state: str | None, ready: tuple[int, int] | None = None
) -> Any:
    """``ready``: (instances answering, wanted) as the router sees them, shown by
    ``%pf_status`` / ``%pf_endpoints`` (``render/status.py``)."""
    from azure.ai.ml.entities import OnlineDeployment

    spec = dict(data["spec"])
    missing_sku = spec.get("type") != "kubernetes" and not spec.get("instance_type")
    if missing_sku:
        # ManagedOnlineDeploymentSchema requires instance_type to load, while the local backend
        # runs without one: load with a placeholder, then give back what the user wrote (None)
        spec["instance_type"] = "Standard_DS3_v2"
    dep = OnlineDeployment._load(data=spec)
    if missing_sku:
        dep.instance_type = None
    dep._provisioning_state = provisioning_state
    if ready is not None:
        dep._pf_ready = ready
    return dep


def model(meta: dict[str, Any]) -> Any:
    from azure.ai.ml.entities import Model

    # the user's properties (e.g. azureml.promptflow.chat_input) win over our bookkeeping
    properties = {
        "source": meta.get("source", ""),
        "hash": meta.get("hash", ""),
        **(meta.get("properties") or {}),
    }
    entity = Model(
        name=meta["name"],
        version=str(meta["version"]),
        path=meta.get("flow_dir") or meta["model_dir"],
        description=meta.get("description"),
        tags=dict(meta.get("tags") or {}),
        type="custom_model",
        properties=properties,
    )
    return entity


def auth_keys(primary: str, secondary: str) -> Any:
    from azure.ai.ml.entities import EndpointAuthKeys

    return EndpointAuthKeys(primary_key=primary, secondary_key=secondary)


def auth_token(token: str, expiry: float, refresh_after: float) -> Any:
    from azure.ai.ml.entities import EndpointAuthToken

    return EndpointAuthToken(
        access_token=token,
        expiry_time_utc=expiry,
        refresh_after_time_utc=refresh_after,
        token_type="Bearer",
    )

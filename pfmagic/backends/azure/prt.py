"""Fill the seed's ``PRT_CONFIG_OVERRIDE`` placeholders from the active workspace.

The seed ships ``deployment.subscription_id=<subscription_id>,…,deployment.deployment_name=
<deployment_name>``; the runtime image reads it to pull connections from the workspace. Only
``<placeholders>`` are replaced, only when asked: a value the user wrote is never changed.
"""

from __future__ import annotations

import re
from typing import Any

PRT = "PRT_CONFIG_OVERRIDE"
_PLACEHOLDER = re.compile(r"<\s*([A-Za-z_ ]+?)\s*>")
# deployment.<key> in PRT_CONFIG_OVERRIDE → which value fills a placeholder there
_KEYS = ("subscription_id", "resource_group", "workspace_name", "endpoint_name", "deployment_name")
_ALIASES = {
    "subscription": "subscription_id",
    "subscription_id": "subscription_id",
    "resource_group": "resource_group",
    "resource_group_name": "resource_group",
    "workspace": "workspace_name",
    "workspace_name": "workspace_name",
    "endpoint": "endpoint_name",
    "endpoint_name": "endpoint_name",
    "deployment": "deployment_name",
    "deployment_name": "deployment_name",
}


def has_placeholders(value: str | None) -> bool:
    return bool(value and _PLACEHOLDER.search(value))


def fill_prt_value(value: str, values: dict[str, str]) -> str:
    """Replace ``<placeholder>``s in a PRT_CONFIG_OVERRIDE string.

    A placeholder is resolved by its own name (``<workspace_name>``) or, failing that, by the
    ``deployment.<key>=`` it is assigned to (``deployment.workspace_name=<my ws>``).
    """
    parts = []
    for item in value.split(","):
        key = item.split("=", 1)[0].strip().removeprefix("deployment.")

        def sub(m: re.Match[str], key: str = key) -> str:
            name = m.group(1).strip().lower().replace(" ", "_")
            field = _ALIASES.get(name) or _ALIASES.get(key)
            return values.get(field, m.group(0)) if field else m.group(0)

        parts.append(_PLACEHOLDER.sub(sub, item))
    return ",".join(parts)


def prt_values(
    *, subscription_id: str, resource_group: str, workspace: str, endpoint: str, deployment: str
) -> dict[str, str]:
    return dict(
        zip(_KEYS, (subscription_id, resource_group, workspace, endpoint, deployment), strict=True)
    )


def fill_prt_config_override(deployment: Any, values: dict[str, str]) -> bool:
    """Fill placeholders of ``deployment.environment_variables[PRT_CONFIG_OVERRIDE]`` in place.

    Returns True when something was replaced. Other variables are left untouched.
    """
    env = getattr(deployment, "environment_variables", None) or {}
    current = env.get(PRT)
    if not has_placeholders(current):
        return False
    filled = fill_prt_value(str(current), values)
    env[PRT] = filled
    deployment.environment_variables = env
    return filled != current

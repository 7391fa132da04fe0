"""Build azure-ai-ml's ``MLClient`` (lazily: importing azure.ai.ml takes seconds).

Workspace: explicit ``subscription_id`` / ``resource_group`` / ``workspace``, or a
``config.json`` found the way ``MLClient.from_config`` finds it (``.azureml/``, ``aml_config/``,
``./`` walking up). Credential: ``DefaultAzureCredential`` (az login, env vars, managed
identity…), ``"browser"`` for ``InteractiveBrowserCredential``, or any ``TokenCredential``.
"""

from __future__ import annotations

import os
from typing import Any

from pfmagic.errors import PfError

CredentialSpec = Any  # "default" | "browser" | a TokenCredential


def workspace_args(env: Any = None) -> str:
    """The ``%pf_backend azure`` arguments that name a workspace from the environment, or ''.

    The one rule (notebooks, notebook tests, live tests): ``PFMAGIC_AZURE_CONFIG`` (a
    config.json) or all three of ``AZURE_SUBSCRIPTION_ID``, ``AZURE_RESOURCE_GROUP`` and
    ``AZUREML_WORKSPACE_NAME``."""
    env = os.environ if env is None else env
    if env.get("PFMAGIC_AZURE_CONFIG"):
        return f"--config {env['PFMAGIC_AZURE_CONFIG']}"
    names = [env.get(k) for k in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP")]
    names.append(env.get("AZUREML_WORKSPACE_NAME"))
    if not all(names):
        return ""
    subscription, group, workspace = names
    return f"--subscription {subscription} --resource-group {group} --workspace {workspace}"


def azure_configured(env: Any = None) -> bool:
    """Whether a workspace is named in the environment (``workspace_args``' rule)."""
    return bool(workspace_args(env))


def make_credential(spec: CredentialSpec = "default") -> Any:
    if not isinstance(spec, str):
        return spec
    if spec == "default":
        from azure.identity import DefaultAzureCredential

        # never pop a browser from inside a kernel unless asked: that is what "browser" is for
        return DefaultAzureCredential(exclude_interactive_browser_credential=True)
    if spec == "browser":
        from azure.identity import InteractiveBrowserCredential

        return InteractiveBrowserCredential()
    raise PfError(f"unknown credential '{spec}'", hint="use 'default' or 'browser'")


def build_ml_client(
    *,
    credential: Any,
    subscription_id: str | None,
    resource_group: str | None,
    workspace: str | None,
    config_path: str | None,
    enable_telemetry: bool = False,
    **client_kwargs: Any,
) -> Any:
    """An MLClient for one workspace; telemetry off unless asked (it is sent from Jupyter)."""
    from azure.ai.ml import MLClient

    given = [subscription_id, resource_group, workspace]
    if any(given) and not all(given):
        raise PfError(
            "give all of --subscription, --resource-group and --workspace",
            hint="or none of them to use config.json",
        )
    kwargs = dict(client_kwargs, enable_telemetry=enable_telemetry)
    if all(given):
        return MLClient(credential, subscription_id, resource_group, workspace, **kwargs)
    try:
        return MLClient.from_config(credential, path=config_path, **kwargs)
    except Exception as exc:  # ValidationException: not found / unreadable
        where = config_path or "this folder or its parents"
        raise PfError(
            f"no usable Azure ML workspace config.json in {where}",
            hint="download config.json from the workspace's overview page, or run "
            "%pf_backend azure --subscription S --resource-group G --workspace W",
            code=type(exc).__name__,
        ) from None

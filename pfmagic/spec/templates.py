# ruff: noqa: E501  (the article's comment lines are kept as users see them)
"""The article's endpoint and deployment YAML, in one place.

"Deploy a flow to online endpoint for real-time inference with CLI" gives one endpoint file and
one deployment file (prompt flow runtime image, its inference routes, serving mode). The
teaching notebooks show them as cells, and the benchmarks and tests deploy the same text, so
all of them render it here rather than keeping copies that drift apart.

Both functions return YAML text (a cell body, ending with a newline), not entities: the
notebooks show it, and a test or benchmark loads it with ``load_online_endpoint`` /
``load_online_deployment`` (or runs it as a cell) as a user would.
"""

from __future__ import annotations

from pathlib import Path

SCHEMAS = "https://azuremlschemas.azureedge.net/latest"

# The article's PRT_CONFIG_OVERRIDE: placeholders that ``%pf_backend azure --fill-prt-config``
# fills from the workspace (and that are refused on Azure when left unfilled).
PRT_PLACEHOLDERS = (
    "deployment.subscription_id=<subscription_id>,deployment.resource_group=<resource_group>,"
    "deployment.workspace_name=<workspace_name>,deployment.endpoint_name=<endpoint_name>,"
    "deployment.deployment_name=<deployment_name>"
)


def endpoint_yaml(name: str = "{{endpoint_name}}") -> str:
    """The article's managed online endpoint (key auth), named ``name``."""
    return f"""\
$schema: {SCHEMAS}/managedOnlineEndpoint.schema.json
name: {name}
auth_mode: key
properties:
# this property only works for system-assigned identity.
# if the deploy user has access to connection secrets,
# the endpoint system-assigned identity will be auto-assigned connection secrets reader role as well
  enforce_access_to_default_secret_stores: enabled
"""


def deployment_yaml(
    name: str,
    endpoint: str,
    model: str | Path,
    *,
    instance_type: str = "Standard_E16s_v3",
    instance_count: int = 1,
    fields: str = "",
    prt: str | None = None,
    extra_env: str = "",
    build: str | None = None,
) -> str:
    """The article's managed online deployment of ``model`` on ``endpoint``.

    ``model`` is an ``azureml:NAME:VERSION`` reference or a flow folder (uploaded with the
    deployment). ``fields`` are more top-level lines (after ``instance_count``), ``prt`` the
    PRT_CONFIG_OVERRIDE value (e.g. ``PRT_PLACEHOLDERS``) and
    ``extra_env`` more indented ``environment_variables`` lines. ``build``: a docker build
    context folder instead of the runtime image (the article's "custom environment").
    """
    model_line = (
        f"model: {model}" if str(model).startswith("azureml:") else f"model:\n  path: {model}"
    )
    prt_lines = (
        f"\n  # for pulling connections from workspace\n  PRT_CONFIG_OVERRIDE: {prt}\n"
        if prt
        else ""
    )
    image = (
        f"  build:\n    path: {build}\n    dockerfile_path: Dockerfile\n"
        "  # deploy prompt flow is BYOC, so we need to specify the inference config\n"
        if build
        else "  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
        "  # inference config is used to build a serving container for online deployments\n"
    )
    return f"""\
$schema: {SCHEMAS}/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: {endpoint}
{model_line}
environment:
{image}  inference_config:
    liveness_route:
      path: /health
      port: 8080
    readiness_route:
      path: /health
      port: 8080
    scoring_route:
      path: /score
      port: 8080
instance_type: {instance_type}
instance_count: {instance_count}
{fields}environment_variables:
  # "compute" mode is the default mode, if you want to deploy to serving mode, you need to set this env variable to "serving"
  PROMPTFLOW_RUN_MODE: serving
{prt_lines}{extra_env}"""

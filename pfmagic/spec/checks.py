"""Prompt-flow checks azure-ai-ml does not make (or makes only at create, after network calls).

Each check returns ``Problem``s (level ``error`` or ``warning``) at a field path; the loader adds
lines. Sources: the seed doc (how-to-deploy-to-code), azure-ai-ml notes §1 (name rules), and
promptflow notes §1-§2 (chat markers, env vars) and §6 (additional_includes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfmagic.spec.diagnose import NAME_RULE, Problem, suggest
from pfmagic.spec.flowinfo import FlowInfo, read_flow

NAME_RE = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
PLACEHOLDER_RE = re.compile(r"<[^<>\s][^<>]*>|place_?holder", re.IGNORECASE)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PROPERTY_PREFIX = "azureml.promptflow."
KNOWN_PROPERTIES = ("source_flow_id", "mode", "chat_input", "chat_output", "chat_history")
KNOWN_ENV = (
    "PROMPTFLOW_RUN_MODE",
    "PROMPTFLOW_MDC_ENABLE",
    "PROMPTFLOW_PROJECT_PATH",
    "PROMPTFLOW_SERVING_ENGINE",
    "PROMPTFLOW_WORKER_NUM",
    "PROMPTFLOW_WORKER_THREADS",
    "PRT_CONFIG_OVERRIDE",
    "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS",
    "UAI_CLIENT_ID",
    "PROMPTFLOW_ENCODED_CONNECTIONS",
    "PROMPTFLOW_CONNECTION_PROVIDER",
    "PF_CONNECTION_PROVIDER",
    "PF_FLOW_INIT_CONFIG",
    "PF_USE_SANDBOX_FOR_JINJA",
    "AZURE_CLIENT_ID",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
)
PRT_KEYS = (
    "subscription_id",
    "resource_group",
    "workspace_name",
    "endpoint_name",
    "deployment_name",
)


@dataclass
class Context:
    """What the checks may look at besides the entity: the YAML as written, the target, and
    entities parsed by earlier cells."""

    raw: dict[str, Any]
    backend_name: str = "local"
    base_dir: Path = field(default_factory=Path.cwd)
    models: Mapping[str, Any] = field(default_factory=dict)
    endpoints: Mapping[str, Any] = field(default_factory=dict)
    flow: FlowInfo | None = None
    # The Azure backend was asked to fill PRT_CONFIG_OVERRIDE's <placeholders> at create.
    fill_prt_config: bool = False
    prompt_flow: bool = False  # set by check_deployment: is_prompt_flow()
    out: list[Problem] = field(default_factory=list)

    @property
    def azure(self) -> bool:
        return self.backend_name == "azure"

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.out.append(Problem(path, message, level="error"))

    def warn(self, path: tuple[str | int, ...], message: str) -> None:
        self.out.append(Problem(path, message, level="warning"))

    def azure_error(self, path: tuple[str | int, ...], message: str) -> None:
        """An error when deploying to Azure, a warning elsewhere."""
        (self.error if self.azure else self.warn)(path, message)


# -- shared pieces ---------------------------------------------------------------------------
def check_name(ctx: Context, path: tuple[str, ...], name: Any, what: str) -> None:
    # azure-ai-ml checks these only inside begin_create_or_update, after network calls.
    if not isinstance(name, str) or not name:
        return
    if not (3 <= len(name) <= 32) or not NAME_RE.match(name):
        ctx.error(path, f"invalid {what} name '{name}': {NAME_RULE}")


def check_placeholders(ctx: Context, node: Any, path: tuple[str | int, ...] = ()) -> None:
    """Values still holding ``<placeholders>`` from docs (PRT_CONFIG_OVERRIDE: own check)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if path == ("environment_variables",) and key == "PRT_CONFIG_OVERRIDE":
                continue
            check_placeholders(ctx, value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_placeholders(ctx, value, (*path, i))
    elif (
        isinstance(node, str) and path and path[0] != "description" and PLACEHOLDER_RE.search(node)
    ):
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        ctx.azure_error(
            path,
            f"'{node}' looks like a placeholder: put the real value, or --set {dotted}=...",
        )


def check_local_path(
    ctx: Context, path: tuple[str, ...], value: Any, *, error: bool
) -> Path | None:
    """A local path must exist (azure-ai-ml checks model paths only at create)."""
    if not isinstance(value, str | Path) or _is_remote(str(value)):
        return None
    resolved = Path(value) if Path(value).is_absolute() else ctx.base_dir / value
    if not resolved.exists():
        (ctx.error if error else ctx.warn)(path, f"path does not exist: {resolved}")
        return None
    return resolved


def _is_remote(value: str) -> bool:
    return value.startswith(("azureml:", "http://", "https://", "wasbs://", "abfss://"))


def check_flow_folder(
    ctx: Context, path: tuple[str, ...], folder: Path, *, required: bool = True
) -> None:
    ctx.flow = read_flow(folder)
    if ctx.flow is None:
        if required:
            ctx.warn(path, f"{folder} holds no flow.dag.yaml: not a prompt flow folder")
    elif ctx.flow.error:
        ctx.warn(path, ctx.flow.error)
    elif ctx.flow.additional_includes:
        includes = ", ".join(ctx.flow.additional_includes)
        ctx.warn(
            path,
            f"the flow uses additional_includes ({includes}); they are resolved "
            "into a copy of the flow when it is deployed",
        )


def check_chat_properties(
    ctx: Context, props: Mapping[str, Any] | None, path: tuple[str, ...], origin: str = ""
) -> None:
    """``azureml.promptflow.*`` model properties vs the flow's own ``is_chat_*`` flags."""
    props = props or {}
    for key in props:
        if key.startswith(PROPERTY_PREFIX) and key[len(PROPERTY_PREFIX) :] not in KNOWN_PROPERTIES:
            hint = suggest(key[len(PROPERTY_PREFIX) :], list(KNOWN_PROPERTIES))
            ctx.warn(
                (*path, key),
                f"unknown prompt flow property{origin}"
                + (f" (did you mean '{PROPERTY_PREFIX}{hint}'?)" if hint else ""),
            )
    flow = ctx.flow
    if flow is None or flow.error:
        return
    mode = props.get(PROPERTY_PREFIX + "mode")
    if flow.is_chat and mode != "chat":
        ctx.warn(
            (*path, PROPERTY_PREFIX + "mode") if mode else path,
            f"the flow is a chat flow (is_chat_input: {flow.chat_input}) but{origin} "
            f"{PROPERTY_PREFIX}mode is {mode or 'not set'}; set it to chat for the Test tab",
        )
    if mode == "chat" and not flow.is_chat:
        ctx.warn(
            (*path, PROPERTY_PREFIX + "mode"),
            f"mode is chat{origin} but the flow marks no input is_chat_input",
        )
    for kind, names, flagged in (
        ("input", flow.inputs, flow.chat_input),
        ("output", flow.outputs, flow.chat_output),
    ):
        key = f"{PROPERTY_PREFIX}chat_{kind}"
        value = props.get(key)
        if value is None:
            if mode == "chat" and flagged:
                ctx.warn(path, f"{key} is not set{origin}; the flow's chat {kind} is '{flagged}'")
            continue
        if str(value) not in names:
            ctx.error(
                (*path, key),
                f"chat {kind} '{value}'{origin} is not a flow {kind} "
                f"(flow {kind}s: {', '.join(names) or 'none'})",
            )
        elif flagged and str(value) != flagged:
            ctx.warn(
                (*path, key),
                f"chat {kind} '{value}'{origin} but the flow marks '{flagged}' is_chat_{kind}",
            )
        elif not flagged:
            ctx.warn(
                (*path, key),
                f"chat {kind} '{value}'{origin} but the flow marks no {kind} is_chat_{kind}",
            )


def check_duplicates(ctx: Context, duplicates: list[tuple[str, int]]) -> None:
    for dotted, _line in duplicates:
        ctx.warn(tuple(dotted.split(".")), "key given twice; YAML keeps the last value")


# -- per entity ------------------------------------------------------------------------------
def check_model(model: Any, ctx: Context) -> None:
    path = model.path
    folder = check_local_path(ctx, ("path",), str(path) if path else None, error=True)
    # Flow-folder warnings only for what claims to be a flow (sklearn, MLflow... models are fine).
    claims_flow = any(str(k).startswith(PROPERTY_PREFIX) for k in (model.properties or {}))
    if path is None and claims_flow:
        ctx.warn(("path",), "no path: the model has no flow folder")
    if folder is not None and folder.is_dir():
        check_flow_folder(ctx, ("path",), folder, required=claims_flow)
    check_chat_properties(ctx, model.properties, ("properties",))
    check_placeholders(ctx, ctx.raw)


def check_endpoint(endpoint: Any, ctx: Context) -> None:
    check_name(ctx, ("name",), endpoint.name, "endpoint")
    if not ctx.azure and type(endpoint).__name__.startswith("Kubernetes"):
        ctx.warn(
            ("compute",),
            f"the {ctx.backend_name} backend ignores compute: it serves "
            "Kubernetes endpoints like managed ones",
        )
    check_placeholders(ctx, ctx.raw)


def check_deployment(dep: Any, ctx: Context) -> None:
    check_name(ctx, ("name",), dep.name, "deployment")
    check_name(ctx, ("endpoint_name",), dep.endpoint_name, "endpoint")
    _check_model_ref(dep, ctx)
    _check_instance_count(dep, ctx)
    _check_sku(dep, ctx)
    ctx.prompt_flow = is_prompt_flow(dep, ctx)
    if ctx.prompt_flow:  # sklearn / MLflow / Triton / custom containers: none of these apply
        if dep.model is None:
            ctx.warn(("model",), "no model: the deployment has no flow to serve")
        _check_environment(dep, ctx)
    _check_env_vars(dep, ctx)
    _check_endpoint_match(dep, ctx)
    check_placeholders(ctx, ctx.raw)


def is_prompt_flow(dep: Any, ctx: Context) -> bool:
    """A prompt flow deployment: its model folder holds a flow, or its image is the prompt flow
    runtime, or it sets PROMPTFLOW_* / PRT_CONFIG_OVERRIDE variables."""
    if ctx.flow is not None:
        return True
    env = getattr(dep, "environment", None)
    image = env if isinstance(env, str) else getattr(env, "image", None)
    raw_env = ctx.raw.get("environment")
    if isinstance(raw_env, dict) and raw_env.get("image"):
        image = raw_env["image"]
    if image and "promptflow" in str(image).lower():
        return True
    names = [str(n) for n in (getattr(dep, "environment_variables", None) or {})]
    if any(n.startswith("PROMPTFLOW_") or n == "PRT_CONFIG_OVERRIDE" for n in names):
        return True
    model = getattr(dep, "model", None)
    if isinstance(model, str):
        known = ctx.models.get(model.removeprefix("azureml:").split(":")[0].split("@")[0])
        props = getattr(known, "properties", None) or {}
    else:
        props = getattr(model, "properties", None) or {}
    return any(str(k).startswith(PROPERTY_PREFIX) for k in props)


def _claims_flow(model: Any, ctx: Context | None = None) -> bool:
    """The model (or the deployment around it) says it is a prompt flow."""
    if any(str(k).startswith(PROPERTY_PREFIX) for k in (model.properties or {})):
        return True
    if ctx is None:
        return False
    env = ctx.raw.get("environment")
    image = env.get("image") if isinstance(env, dict) else env
    names = [str(n) for n in (ctx.raw.get("environment_variables") or {})]
    return "promptflow" in str(image or "").lower() or any(
        n.startswith("PROMPTFLOW_") or n == "PRT_CONFIG_OVERRIDE" for n in names
    )


def _check_instance_count(dep: Any, ctx: Context) -> None:
    # azure-ai-ml's schema takes any integer; Azure rejects < 1 only after the upload and PUT.
    count = dep.instance_count
    if isinstance(count, int) and count < 1:
        ctx.error(("instance_count",), f"must be at least 1 (got {count})")


def _check_model_ref(dep: Any, ctx: Context) -> None:
    model = dep.model
    config = getattr(dep, "code_configuration", None)
    if config is not None and getattr(config, "scoring_script", None):
        return  # a scoring script: the model (optional) is plain files, not a flow
    if model is None:
        return  # a prompt flow deployment without one is warned in check_deployment
    if isinstance(model, str):
        name = model.removeprefix("azureml:").split(":")[0].split("@")[0]
        known = ctx.models.get(name)
        if known is None:
            return  # registered elsewhere; checked by the backend at create
        origin = f" (model {name})"
        if known.path and not _is_remote(str(known.path)) and Path(known.path).is_dir():
            check_flow_folder(ctx, ("model",), Path(known.path), required=_claims_flow(known))
        check_chat_properties(ctx, known.properties, ("model",), origin)
        return
    # Inline model: azure-ai-ml already hashed its folder, so it exists.
    if model.path and Path(str(model.path)).is_dir():
        check_flow_folder(
            ctx, ("model", "path"), Path(str(model.path)), required=_claims_flow(model, ctx)
        )
    if model.properties:
        check_chat_properties(ctx, model.properties, ("model", "properties"))


def _check_sku(dep: Any, ctx: Context) -> None:
    """Managed deployments run on a fixed SKU list (Kubernetes ones on cluster instance types)."""
    sku = dep.instance_type
    if type(dep).__name__.startswith("Kubernetes") or not isinstance(sku, str):
        return
    if PLACEHOLDER_RE.search(sku):
        return  # reported as a placeholder
    try:
        from pfmagic.skus import close_skus, sku_info  # written alongside; optional here
    except ImportError:
        return
    if sku_info(sku) is None:
        close = close_skus(sku, 1)
        ctx.warn(
            ("instance_type",),
            f"'{sku}' is not a managed online endpoint SKU"
            + (f" (did you mean '{close[0]}'?)" if close else ""),
        )


def _check_environment(dep: Any, ctx: Context) -> None:
    raw_env = ctx.raw.get("environment")
    if dep.environment is None:
        ctx.warn(
            ("environment",),
            "no environment: prompt flow deployments need the runtime "
            "image (mcr.microsoft.com/azureml/promptflow/"
            "promptflow-runtime) and inference_config routes",
        )
        return
    if not isinstance(raw_env, dict):
        return  # a registered environment: its routes are not visible here
    if not raw_env.get("inference_config"):
        ctx.warn(
            ("environment",),
            "no inference_config: the prompt flow runtime image is BYOC, "
            "it needs liveness_route, readiness_route and scoring_route",
        )
    build = raw_env.get("build")
    if isinstance(build, dict) and build.get("path"):
        folder = check_local_path(ctx, ("environment", "build", "path"), build["path"], error=False)
        dockerfile = build.get("dockerfile_path") or "Dockerfile"
        if folder is not None and not (folder / dockerfile).is_file():
            ctx.warn(
                ("environment", "build", "dockerfile_path"), f"{dockerfile} not found in {folder}"
            )


def _check_env_vars(dep: Any, ctx: Context) -> None:
    base = ("environment_variables",)
    env: dict[str, Any] = dict(dep.environment_variables or {})
    for name, value in env.items():
        if not ENV_NAME_RE.match(str(name)):
            ctx.error((*base, name), f"invalid environment variable name '{name}'")
        if isinstance(value, dict | list):  # null is accepted, as azure-ai-ml does
            kind = type(value).__name__
            ctx.error((*base, name), f"environment variable values must be strings, got {kind}")
        elif name not in KNOWN_ENV and ctx.prompt_flow:
            hint = suggest(str(name), list(KNOWN_ENV))
            if hint and hint != name:
                ctx.warn((*base, name), f"unknown variable (did you mean '{hint}'?)")
    if not ctx.prompt_flow:
        return
    # Current docs no longer set PROMPTFLOW_RUN_MODE: only a wrong value is worth a word.
    mode = env.get("PROMPTFLOW_RUN_MODE")
    if mode is not None and str(mode) != "serving":
        ctx.warn(
            (*base, "PROMPTFLOW_RUN_MODE"), f"PROMPTFLOW_RUN_MODE is '{mode}', expected serving"
        )
    _check_prt_config(dep, env.get("PRT_CONFIG_OVERRIDE"), ctx)
    _check_included_fields(env.get("PROMPTFLOW_RESPONSE_INCLUDED_FIELDS"), ctx)
    endpoint = ctx.endpoints.get(dep.endpoint_name)
    identity = getattr(endpoint, "identity", None)
    if (
        identity is not None
        and str(getattr(identity, "type", "")).lower() == "user_assigned"
        and "UAI_CLIENT_ID" not in env
    ):
        ctx.warn(
            base,
            f"endpoint {dep.endpoint_name} uses a user-assigned identity: set "
            "UAI_CLIENT_ID to its client id",
        )


def _check_prt_config(dep: Any, value: Any, ctx: Context) -> None:
    path = ("environment_variables", "PRT_CONFIG_OVERRIDE")
    if value is None:
        if ctx.azure:
            ctx.warn(
                path[:1],
                "PRT_CONFIG_OVERRIDE is missing: the deployment cannot pull workspace connections",
            )
        return
    text = str(value)
    if PLACEHOLDER_RE.search(text):
        holes = sorted(set(re.findall(r"<([^<>]+)>", text)))
        if ctx.azure and ctx.fill_prt_config:
            ctx.warn(
                path,
                "PRT_CONFIG_OVERRIDE placeholders will be filled from the workspace: "
                + ", ".join(f"<{h}>" for h in holes),
            )
            return
        ctx.azure_error(
            path,
            "PRT_CONFIG_OVERRIDE still holds placeholders: "
            + ", ".join(f"<{h}>" for h in holes)
            + " (%pf_backend azure --fill-prt-config fills them from the workspace, or "
            "--set environment_variables.PRT_CONFIG_OVERRIDE=...)",
        )
        return
    pairs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    for key, expected in (("endpoint_name", dep.endpoint_name), ("deployment_name", dep.name)):
        got = pairs.get(f"deployment.{key}")
        if got is not None and got != expected:
            ctx.warn(
                path,
                f"PRT_CONFIG_OVERRIDE says deployment.{key}={got}, the deployment is {expected}",
            )
    missing = [k for k in PRT_KEYS if f"deployment.{k}" not in pairs]
    if missing:
        ctx.warn(path, "PRT_CONFIG_OVERRIDE lacks " + ", ".join(f"deployment.{k}" for k in missing))


def _check_included_fields(value: Any, ctx: Context) -> None:
    if value is None or isinstance(value, dict | list):
        return  # not a string: reported by _check_env_vars
    path = ("environment_variables", "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS")
    try:
        fields = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        fields = None
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        ctx.error(
            path,
            "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS must be a JSON list of strings, "
            """e.g. '["answer"]'""",
        )
        return
    if ctx.flow is not None and ctx.flow.outputs:
        unknown = [f for f in fields if f not in ctx.flow.outputs]
        if unknown:
            ctx.warn(
                path,
                f"not flow outputs: {', '.join(unknown)} (outputs: {', '.join(ctx.flow.outputs)})",
            )


def _check_endpoint_match(dep: Any, ctx: Context) -> None:
    endpoint = ctx.endpoints.get(dep.endpoint_name)
    if endpoint is None:
        return
    dep_k8s = type(dep).__name__.startswith("Kubernetes")
    ep_k8s = type(endpoint).__name__.startswith("Kubernetes")
    if dep_k8s != ep_k8s:
        kinds = ("Kubernetes", "managed") if dep_k8s else ("managed", "Kubernetes")
        ctx.error(
            ("type",) if dep_k8s else ("endpoint_name",),
            f"a {kinds[0]} deployment cannot go to the {kinds[1]} endpoint {dep.endpoint_name}",
        )

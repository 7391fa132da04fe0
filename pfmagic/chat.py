"""Chat I/O for ``%pf_invoke``: which inputs/outputs carry the chat, and the history to send.

Names are looked up in the order promptflow's own tools use them:

1. the model's properties ``azureml.promptflow.chat_input`` / ``chat_output`` (what the Azure ML
   studio Test tab reads);
2. the flow folder's ``flow.dag.yaml`` markers (``is_chat_input`` / ``is_chat_output`` /
   ``is_chat_history``);
3. the endpoint's ``/swagger.json`` ``info`` (``x-chat-input`` / ``x-chat-output`` /
   ``x-chat-history``, written by promptflow's serving app, so it works on both backends);
4. ``question`` / ``answer`` / ``chat_history``.

History turns are ``{"inputs": {<chat_input>: q}, "outputs": {<chat_output>: a}}`` as promptflow
expects; a ``meta`` entry (deployment, latency) is kept for display and stripped before sending.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_INPUT, DEFAULT_OUTPUT, DEFAULT_HISTORY = "question", "answer", "chat_history"
PROP_INPUT = "azureml.promptflow.chat_input"
PROP_OUTPUT = "azureml.promptflow.chat_output"
PROP_HISTORY = "azureml.promptflow.chat_history"  # not documented, honoured when present


@dataclass(frozen=True)
class ChatNames:
    """Flow input/output names of the chat, and where they were found."""

    input: str = DEFAULT_INPUT
    output: str = DEFAULT_OUTPUT
    history: str | None = DEFAULT_HISTORY
    source: str = "defaults"
    # The flow's declared inputs (name → flow.dag.yaml spec), None when not known: then the
    # request is a chat turn with the default names, as before.
    declared: dict[str, dict[str, Any]] | None = None
    chat: bool = True
    defaults_known: bool = False  # declared came from flow.dag.yaml (defaults, required)

    def describe(self) -> str:
        return (
            f"input '{self.input}', output '{self.output}', history "
            f"'{self.history or '-'}' (from {self.source})"
        )


def names_from_properties(properties: dict[str, Any] | None) -> ChatNames | None:
    props = properties or {}
    if not props.get(PROP_INPUT) and not props.get(PROP_OUTPUT):
        return None
    return ChatNames(
        str(props.get(PROP_INPUT) or DEFAULT_INPUT),
        str(props.get(PROP_OUTPUT) or DEFAULT_OUTPUT),
        str(props.get(PROP_HISTORY) or DEFAULT_HISTORY),
        "model properties",
    )


def names_from_flow(folder: str | Path | None) -> ChatNames | None:
    """Read the flow folder's markers (``pfmagic.spec.flowinfo`` does the YAML)."""
    if not folder:
        return None
    from pfmagic.spec.flowinfo import read_flow

    info = read_flow(folder)
    if info is None or info.error or not (info.chat_input or info.chat_output):
        return None
    return ChatNames(
        info.chat_input or DEFAULT_INPUT,
        info.chat_output or DEFAULT_OUTPUT,
        info.chat_history,
        "flow.dag.yaml",
    )


def names_from_swagger(info: dict[str, Any] | None) -> ChatNames | None:
    info = info or {}
    if not info.get("x-chat-input") and not info.get("x-chat-output"):
        return None
    return ChatNames(
        str(info.get("x-chat-input") or DEFAULT_INPUT),
        str(info.get("x-chat-output") or DEFAULT_OUTPUT),
        str(info.get("x-chat-history") or DEFAULT_HISTORY),
        "swagger.json",
    )


def model_reference(model: Any) -> tuple[str, str | None] | None:
    """(name, version) of a deployment's ``model``: a ``Model``, ``azureml:name:1``, an ARM id."""
    if model is None:
        return None
    if not isinstance(model, str):
        name = getattr(model, "name", None)
        return (name, getattr(model, "version", None)) if name else None
    arm = re.search(r"/models/([^/]+)(?:/versions/([^/]+))?", model)
    if arm:
        return arm.group(1), arm.group(2)
    ref = model.removeprefix("azureml:")
    if "@" in ref:
        return ref.split("@", 1)[0], None
    name, _, version = ref.partition(":")
    return (name, version or None) if name else None


def resolve_names(
    session: Any, backend: Any, endpoint: str, deployment: str | None = None
) -> ChatNames:
    """Chat names and declared inputs of ``endpoint`` (sources in the module docstring);
    never raises."""
    from dataclasses import replace

    from pfmagic.spec.flowinfo import read_flow

    models = _models_of(session, backend, endpoint, deployment)
    found: ChatNames | None = None
    for model in models:
        found = names_from_properties(getattr(model, "properties", None))
        if found:
            break
    flow = None
    for model in models:
        folder = getattr(model, "path", None)
        flow = _safe(lambda f=folder: read_flow(f) if _is_local_dir(f) else None)
        if flow is not None and not flow.error:
            break
        flow = None
    if flow is not None:
        found = found or names_from_flow(flow.folder)
        declared = {name: dict(spec or {}) for name, spec in flow.inputs.items()}
        return replace(
            found or ChatNames(source="flow.dag.yaml"),
            declared=declared,
            chat=found is not None,
            defaults_known=True,
        )
    swagger = _safe(lambda: fetch_swagger(backend, endpoint)) or {}
    found = found or names_from_swagger(swagger.get("info"))
    declared = _swagger_inputs(swagger)
    if declared is None:
        return found or ChatNames()
    is_chat = found is not None or (swagger.get("info") or {}).get("x-flow-type") == "chat"
    return replace(found or ChatNames(source="swagger.json"), declared=declared, chat=is_chat)


def _swagger_inputs(swagger: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The /score request's properties: the flow's inputs, as promptflow's serving lists them."""
    try:
        post = swagger["paths"]["/score"]["post"]
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        return {str(name): {} for name in schema["properties"]}
    except (KeyError, TypeError):
        return None


def _models_of(session: Any, backend: Any, endpoint: str, deployment: str | None) -> list[Any]:
    """Models behind the endpoint's deployments (the targeted one, else by traffic)."""
    deployments = {d: e for (ep, d), e in session.deployments.items() if ep == endpoint}
    if not deployments:
        listed = _safe(lambda: backend.list_deployments(endpoint)) or []
        deployments = {d.name: d for d in listed}
    traffic = _safe(lambda: dict(backend.get_endpoint(endpoint).traffic or {})) or {}
    order = sorted(deployments, key=lambda d: (d != deployment, -int(traffic.get(d, 0) or 0)))
    models: list[Any] = []
    for name in order:
        ref = model_reference(getattr(deployments[name], "model", None))
        if ref is None:
            continue
        model = getattr(deployments[name], "model", None)
        if isinstance(model, str) or not getattr(model, "properties", None):
            model = session.models.get(ref[0]) or _safe(lambda r=ref: backend.get_model(*r))
        if model is not None:
            models.append(model)
    return models


def fetch_swagger_info(backend: Any, endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """The ``info`` block of the endpoint's ``/swagger.json`` (uses its key or token)."""
    return fetch_swagger(backend, endpoint, timeout).get("info", {})


def fetch_swagger(backend: Any, endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """The endpoint's ``/swagger.json`` (uses its key or token)."""
    import httpx

    ep = backend.get_endpoint(endpoint)
    url = getattr(ep, "openapi_uri", None) or re.sub(
        r"/score/?$", "/swagger.json", ep.scoring_uri or ""
    )
    headers = {}
    secret = key_of(_safe(lambda: backend.get_keys(endpoint)))
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    response = httpx.get(url, headers=headers, timeout=timeout, trust_env=False)
    response.raise_for_status()
    body = response.json()
    return body if isinstance(body, dict) else {}


def key_of(keys: Any) -> str | None:
    """The secret to send from ``EndpointAuthKeys`` / ``EndpointAuthToken``."""
    if keys is None:
        return None
    return getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)


def _is_local_dir(path: Any) -> bool:
    return isinstance(path, (str, Path)) and "://" not in str(path) and Path(path).is_dir()


def _safe(fn: Any) -> Any:
    # Name discovery is best effort: a missing model or an unreachable swagger means "next".
    try:
        return fn()
    except Exception:
        return None


# -- history -----------------------------------------------------------------------------


def history_payload(turns: list[dict[str, Any]], max_history: int) -> list[dict[str, Any]]:
    """The last ``max_history`` turns as promptflow expects them (display ``meta`` removed)."""
    if max_history <= 0:
        return []
    return [{"inputs": t["inputs"], "outputs": t["outputs"]} for t in turns[-max_history:]]


def build_inputs(
    names: ChatNames,
    question: str,
    turns: list[dict[str, Any]],
    max_history: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = dict(extra or {})
    body[names.input] = question
    if names.history:
        body[names.history] = history_payload(turns, max_history)
    return body


def request_body(
    names: ChatNames,
    question: str | None,
    turns: list[dict[str, Any]],
    max_history: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Exactly the inputs the flow declares: chat flows the question (+ history if declared),
    standard flows their ``--input`` values (a lone free text goes to the one string input),
    defaults filled from flow.dag.yaml; one-line errors for unknown or missing inputs."""
    from pfmagic.errors import PfError

    extra = dict(extra or {})
    declared = names.declared
    if declared is None:  # nothing known about the flow: a chat turn with the usual names
        if not question:
            raise PfError("no question given", hint="%pf_invoke [ENDPOINT] QUESTION")
        return build_inputs(names, question, turns, max_history, extra)
    listed = ", ".join(declared) or "none"
    for key in extra:
        if key not in declared:
            raise PfError(f"the flow has no input '{key}' (its inputs: {listed})")
    body: dict[str, Any] = {}
    if names.chat:
        if not question and names.input not in extra:
            raise PfError("no question given", hint="%pf_invoke [ENDPOINT] QUESTION")
        if question:
            body[names.input] = question
        if names.history and names.history in declared and names.history not in extra:
            body[names.history] = history_payload(turns, max_history)
    elif question:
        free = [
            n
            for n, spec in declared.items()
            if n not in extra and spec.get("type", "string") == "string"
        ]
        if len(free) != 1:
            raise PfError(
                f"not a chat flow: give its inputs with --input NAME=VALUE (its inputs: {listed})"
            )
        body[free[0]] = question
    body.update(extra)
    if names.defaults_known:
        for name, spec in declared.items():
            if name in body:
                continue
            if "default" in spec and spec["default"] is not None:
                body[name] = spec["default"]  # what promptflow itself would use
            else:
                raise PfError(
                    f"missing required input '{name}' (give it with --input {name}=VALUE)"
                )
    return body


def make_turn(names: ChatNames, question: str, answer: Any, **meta: Any) -> dict[str, Any]:
    return {"inputs": {names.input: question}, "outputs": {names.output: answer}, "meta": meta}


def parse_inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``name=value`` pairs; values that parse as JSON (numbers, lists, true) are decoded."""
    from pfmagic.errors import PfError

    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PfError(f"--input expects name=value, got '{pair}'")
        try:
            out[name.strip()] = json.loads(value)
        except ValueError:
            out[name.strip()] = value
    return out

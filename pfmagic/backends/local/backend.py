"""``LocalBackend``: the kernel side of the local backend (see ``__init__`` for the design).

Writes the state files, makes sure the endpoint's router runs, asks it to reconcile and turns
its status into ``ProgressEvent``s. Never imports promptflow (that happens in the instance
processes) and imports azure.ai.ml only to build the returned entities.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfmagic import traffic as traffic_rules
from pfmagic.backends.base import Backend, KeyType, ScoreReply
from pfmagic.backends.events import HEARTBEAT, Operation, Stage, span
from pfmagic.backends.local import auth, connections, entities, executors, kinds, models
from pfmagic.backends.local.control import RouterControl, free_port, shutdown_all
from pfmagic.backends.local.executors import scoring as scoring_executor
from pfmagic.backends.local.identity import router_client
from pfmagic.backends.local.logs import log_event, tail, tail_rotated
from pfmagic.backends.local.rollout_steps import StepReporter
from pfmagic.backends.local.state import Home, locked, read_json, write_json
from pfmagic.errors import BackendError, NotFound, PfError

if TYPE_CHECKING:
    from azure.ai.ml.entities import (
        EndpointAuthKeys,
        EndpointAuthToken,
        Model,
        OnlineDeployment,
        OnlineEndpoint,
    )

NAME_RE = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
AUTH_MODES = ("key", "aml_token")
CONTAINERS = ("inference-server", "storage-initializer", "build")  # build: the env's uv log
DEFAULT_ROUTES = {"liveness": "/health", "readiness": "/health", "scoring": "/score"}
LOG_TAIL = 20


def check_name(kind: str, name: str | None) -> str:
    if not name or not (3 <= len(name) <= 32) or not NAME_RE.match(name):
        raise PfError(
            f"{kind} name '{name}' is not valid",
            hint="3-32 characters: letters, digits and '-', starting with a letter",
        )
    return name


def _probe(settings: Any) -> dict[str, Any] | None:
    if settings is None:
        return None
    fields = ("initial_delay", "period", "timeout", "failure_threshold", "success_threshold")
    return {f: getattr(settings, f, None) for f in fields}


def _request_settings(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {}
    fields = ("request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms")
    return {f: getattr(settings, f) for f in fields if getattr(settings, f, None) is not None}


def _routes(environment: Any) -> dict[str, str]:
    config = getattr(environment, "inference_config", None) or {}
    routes = dict(DEFAULT_ROUTES)
    for key, camel in (
        ("liveness", "livenessRoute"),
        ("readiness", "readinessRoute"),
        ("scoring", "scoringRoute"),
    ):
        route = config.get(camel) or config.get(f"{key}_route") or {}
        if route.get("path"):
            routes[key] = route["path"]
    return routes


@dataclass(frozen=True)
class _Target:
    url: str
    auth_mode: str
    key: str
    token_key: str
    admin_token: str  # what the router proves it knows before a key goes to it (identity.py)

    def credential(self, endpoint: str, lifetime: float) -> str:
        if self.auth_mode == "aml_token":  # minted locally (HMAC): no state read per call
            return auth.mint_token(self.token_key, endpoint, lifetime)[0]
        return self.key


class LocalBackend(Backend):
    """Real HTTP endpoints on 127.0.0.1: a router process per endpoint, instance processes per
    deployment running promptflow's serving app. State under ``settings.home``."""

    name = "local"

    def __init__(
        self,
        settings: Any = None,
        *,
        home: str | None = None,
        token_lifetime: float = 3600.0,
        poll_interval: float = 0.2,
        prewarm: bool = True,
        **options: Any,
    ):
        root = home or (getattr(settings, "home", None) if settings is not None else None)
        self.home = Home(root or None).create()
        self.settings = settings
        self.token_lifetime = float(token_lifetime)
        self.poll_interval = float(poll_interval)
        # start promptflow's imports (the zygote) with the endpoint, while the user is still
        # writing the deployment cell
        self.prewarm = bool(prewarm)
        self.options = options
        # endpoint -> where and how to score it; refreshed on connection refused / 401
        self._targets: dict[str, _Target] = {}
        self._clients: dict[tuple[str, str], Any] = {}  # (endpoint, admin token) -> httpx

    def describe(self) -> str:
        from pfmagic.render.paths import shown

        return f"local: endpoints on 127.0.0.1, state in {shown(self.home.root)}"

    def _router(self, endpoint: str) -> RouterControl:
        return RouterControl(self.home, endpoint)

    def _config(self, endpoint: str) -> dict[str, Any]:
        return self._router(endpoint).config()

    def _deploy_timeout(self) -> float:
        return float(getattr(self.settings, "deploy_timeout", 900.0) or 900.0)

    # -- models ------------------------------------------------------------------------
    def create_model(self, model: Model) -> Model:
        check_name("model", model.name)
        if not model.path:
            raise PfError(f"model '{model.name}' has no path", hint="path: <flow folder>")
        meta = models.register(
            self.home,
            model.name,
            model.version,
            self._model_path(model),
            description=model.description,
            tags=model.tags,
            properties=model.properties,
        )
        return entities.model(meta)

    def get_model(self, name: str, version: str | None = None) -> Model:
        return entities.model(models.get(self.home, name, version))

    def list_models(self) -> list[Model]:
        return [entities.model(m) for m in models.list_all(self.home)]

    @staticmethod
    def _model_path(model: Any) -> str:
        from pathlib import Path

        path = Path(str(model.path))
        base = getattr(model, "base_path", None)
        if not path.is_absolute() and base:
            path = Path(base) / path
        return str(path)

    def _resolve_model(self, ref: Any) -> dict[str, Any]:
        """A deployment's ``model``: ``azureml:NAME:VERSION`` / ``NAME@latest`` or an inline
        ``Model`` with a path (registered as an anonymous version)."""
        if ref is None:
            raise PfError("the deployment has no model", hint="model: azureml:NAME:VERSION")
        if isinstance(ref, str):
            text = ref.removeprefix("azureml:")
            if text.startswith("//"):
                raise PfError(
                    f"model '{ref}': registry and workspace URIs are not available on "
                    "the local backend",
                    hint="use azureml:NAME:VERSION",
                )
            if "@" in text:
                name, _, label = text.partition("@")
                if label != "latest":
                    raise PfError(f"model label '{label}' is not supported", hint="use @latest")
                return models.get(self.home, name)
            name, _, version = text.partition(":")
            return models.get(self.home, name, version or None)
        name, version = getattr(ref, "name", None), getattr(ref, "version", None)
        if name and version and (self.home.model_dir(name, str(version)) / "model.json").is_file():
            return models.get(self.home, name, str(version))  # e.g. what create_model returned
        if getattr(ref, "path", None):
            anonymous = bool(
                getattr(ref, "_is_anonymous", False) or getattr(ref, "is_anonymous", False)
            )
            name = ref.name
            if anonymous or not name:
                name = models.source_hash(models.model_source(self._model_path(ref))[0])[:32]
                anonymous = True
            return models.register(
                self.home,
                name,
                ref.version if not anonymous else "1",
                self._model_path(ref),
                description=ref.description,
                tags=ref.tags,
                properties=ref.properties,
                anonymous=anonymous,
            )
        return models.get(self.home, ref.name, ref.version)

    # -- endpoints ---------------------------------------------------------------------
    def create_endpoint(self, endpoint: OnlineEndpoint) -> Operation:
        name = check_name("endpoint", endpoint.name)
        auth_mode = (endpoint.auth_mode or "key").lower()
        if auth_mode not in AUTH_MODES:
            raise PfError(
                f"auth_mode '{endpoint.auth_mode}' is not available on the local backend",
                hint="use key or aml_token",
            )

        def work(op: Operation) -> OnlineEndpoint:
            path = self.home.endpoint_file(name)
            with locked(self.home.state_lock(name)):
                cfg = read_json(path)
                creating = cfg is None
                op.emit(
                    "endpoint",
                    "Running",
                    f"{'creating' if creating else 'updating'} endpoint {name}",
                    provisioning_state="Creating" if creating else "Updating",
                )
                if cfg is None:
                    cfg = {
                        "name": name,
                        "port": free_port(),
                        "created": time.time(),
                        "keys": {"primary": auth.new_key(), "secondary": auth.new_key()},
                        "token_key": auth.new_key(),
                        "admin_token": auth.new_key(),
                        "traffic": {},
                        "mirror_traffic": {},
                    }
                cfg.update(
                    {
                        "auth_mode": auth_mode,
                        "description": endpoint.description,
                        "prewarm": self.prewarm,
                        "tags": dict(endpoint.tags or {}),
                        "updated": time.time(),
                        "kind": "kubernetes" if getattr(endpoint, "compute", None) else "managed",
                        "compute": getattr(endpoint, "compute", None),
                        # Host / Origin allow-lists for the router's guard (guard.py)
                        "allowed_hosts": list(getattr(self.settings, "allowed_hosts", None) or []),
                        "allowed_origins": list(
                            getattr(self.settings, "allowed_origins", None) or []
                        ),
                    }
                )
                mirror = dict(getattr(endpoint, "mirror_traffic", None) or {})
                known = self.home.deployment_names(name)
                if endpoint.traffic or mirror:
                    weights = traffic_rules.check_traffic(
                        dict(endpoint.traffic or cfg["traffic"]), mirror, known=known, endpoint=name
                    )
                    if endpoint.traffic:
                        cfg["traffic"] = weights
                    if mirror:
                        cfg["mirror_traffic"] = traffic_rules.live_mirror(mirror)
                cfg["provisioning_state"] = "Succeeded"
                write_json(path, cfg)
            self._targets.pop(name, None)  # auth_mode may have changed
            self._router(name).reconcile()
            result = self.get_endpoint(name)
            op.emit(
                "endpoint",
                "Succeeded",
                f"listening on {result.scoring_uri}",
                provisioning_state="Succeeded",
            )
            return result

        return Operation(f"create endpoint {name}", ("endpoint",), work)

    def get_endpoint(self, name: str) -> OnlineEndpoint:
        ctl = self._router(name)
        cfg = ctl.config()
        if not cfg.get("stopped"):
            ctl.ensure()  # an endpoint whose router was killed comes back on next use
        cfg = ctl.config()
        return entities.endpoint(
            cfg,
            self.home.deployment_names(name),
            provisioning_state=cfg.get("provisioning_state", "Succeeded"),
        )

    def list_endpoints(self) -> list[OnlineEndpoint]:
        out = []
        for name in self.home.endpoint_names():
            cfg = read_json(self.home.endpoint_file(name))
            if cfg:
                out.append(
                    entities.endpoint(
                        cfg,
                        self.home.deployment_names(name),
                        provisioning_state=cfg.get("provisioning_state"),
                    )
                )
        return out

    def stop_endpoint(self, name: str) -> None:
        """Stop the endpoint's router and instances; state, keys, port and logs stay."""
        with locked(self.home.state_lock(name)):
            cfg = self._config(name)
            cfg["stopped"] = True
            write_json(self.home.endpoint_file(name), cfg)
        self._router(name).stop()

    def start_endpoint(self, name: str) -> OnlineEndpoint:
        """Start a stopped endpoint again (same port and keys when the port is still free)."""
        with locked(self.home.state_lock(name)):
            cfg = self._config(name)
            cfg.pop("stopped", None)
            write_json(self.home.endpoint_file(name), cfg)
        self._router(name).reconcile()
        return self.get_endpoint(name)

    def delete_endpoint(self, name: str, *, purge: bool = False) -> Operation:
        """Delete the endpoint; its logs stay under ``logs/<name>`` unless ``purge``."""
        self._config(name)  # NotFound early, not inside the operation

        def work(op: Operation) -> None:
            op.emit("delete", "Running", f"deleting endpoint {name}", provisioning_state="Deleting")
            with locked(self.home.state_lock(name)):
                cfg = self._config(name)
                cfg["provisioning_state"] = "Deleting"
                write_json(self.home.endpoint_file(name), cfg)
            self._targets.pop(name, None)
            self._router(name).stop()
            shutil.rmtree(self.home.endpoint_dir(name), ignore_errors=True)
            shutil.rmtree(self.home.socket_dir(name), ignore_errors=True)
            if purge:
                shutil.rmtree(self.home.log_dir(name), ignore_errors=True)
            op.emit("delete", "Succeeded", f"endpoint {name} deleted")

        return Operation(f"delete endpoint {name}", ("delete",), work)

    # -- deployments -------------------------------------------------------------------
    def create_deployment(
        self, deployment: OnlineDeployment, *, all_traffic: bool = False
    ) -> Operation:
        endpoint = check_name("endpoint", deployment.endpoint_name)
        name = check_name("deployment", deployment.name)
        reason = kinds.unsupported(deployment)
        if reason:  # before any process starts: a refused create leaves nothing running
            raise BackendError(kinds.message(reason))
        stages: tuple[Stage, ...] = ("model", "endpoint", "environment", "deployment", "traffic")

        def work(op: Operation) -> OnlineDeployment:
            op.emit("model", "Running", "resolving the model")
            scoring = executors.kind_of(deployment) == "scoring"  # a model is optional there
            meta = (
                None
                if scoring and deployment.model is None
                else self._resolve_model(deployment.model)
            )
            ref = f"{meta['name']}:{meta['version']}" if meta else "none"
            op.emit("model", "Succeeded", f"model {ref}")
            op.check_canceled()

            op.emit("endpoint", "Running", f"checking endpoint {endpoint}")
            ctl = self._router(endpoint)
            ctl.ensure()
            op.emit(
                "endpoint",
                "Succeeded",
                f"endpoint {endpoint} is up",
                provisioning_state="Succeeded",
            )

            if scoring:
                runtime = scoring_executor.runtime(
                    self.home,
                    deployment,
                    meta,
                    self._common_runtime(deployment),
                    lambda msg: op.emit("deployment", "Running", msg),
                )
            else:
                op.emit("environment", "Running", "reading what the deployment declares")
                runtime = self._runtime(deployment, meta)
                runtime.update(self._environment(op, deployment, meta))
            # router calls take 0.1-1.3 s each on a loaded machine: say so while they run
            with op.heartbeat(
                lambda s: f"waiting for the router to take the deployment ({span(s)})"
            ):
                current = (ctl.status() or ctl.ensure())["deployments"].get(name) or {}
                gen, unchanged = self._write_deployment(
                    endpoint, name, deployment, meta, runtime, current
                )
                if not unchanged:
                    ctl.reconcile()
            if meta:
                log_event(
                    self.home.deployment_log(endpoint, name, "storage-initializer"),
                    f"model {ref} from {meta['source']} "
                    f"({meta.get('flow_dir') or meta.get('model_dir')})",
                )
            if unchanged:
                env = op.stage_states().get("environment")
                if env is not None and env.state == "Running":  # "reading what it declares"
                    op.emit("environment", "Skipped", "unchanged")
                op.emit("deployment", "Succeeded", "unchanged", provisioning_state="Succeeded")
            else:
                if not runtime.get("environment"):  # (a build reports its own stage first)
                    # as Azure's PUT answers: Creating/Updating from the moment it is accepted
                    # (a fast rollout could end before the first status poll saw the state)
                    state = "Updating" if current else "Creating"
                    op.emit(
                        "deployment",
                        "Running",
                        f"{state.lower()} {name} (generation {gen})",
                        provisioning_state=state,
                        progress=0.0,
                    )
                self._wait_deployment(op, ctl, endpoint, name, gen, runtime)

            if all_traffic:
                op.emit("traffic", "Running", f"sending all traffic to {name}")
                cfg = self._config(endpoint)
                traffic = {d: 0 for d in (cfg.get("traffic") or {})}
                traffic[name] = 100
                self.set_traffic(endpoint, traffic)
                op.emit("traffic", "Succeeded", f"{name}: 100 %")
            else:
                op.emit("traffic", "Skipped", "traffic unchanged")
            return self.get_deployment(endpoint, name)

        return Operation(f"deploy {endpoint}/{name}", stages, work)

    def _runtime(self, dep: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """What the router needs to run the deployment (no azure-ai-ml over there)."""
        if meta.get("kind") == "files":
            what = meta.get("source") if meta.get("anonymous") else meta["name"]
            raise BackendError(
                f"model '{what}' is not a prompt flow folder",
                hint="a flow needs flow.dag.yaml; a scoring script needs code_configuration",
            )
        absent = connections.missing(
            meta["flow_dir"],
            self.home.connections_file,
            {**os.environ, **(dep.environment_variables or {})},  # instances inherit both
        )
        if absent:  # else promptflow fails in the instance with a sqlite/filelock error
            raise BackendError(
                f"connection '{absent[0]}' not found — create it with %%pf_connection "
                "or map it with an environment variable"
            )
        flow_name = (
            meta["name"]
            if not meta.get("anonymous")
            else re.sub(r"[^A-Za-z0-9_.-]", "-", meta["source"].rstrip("/").rsplit("/", 1)[-1])
        )
        common = self._common_runtime(dep)
        # only the connections this flow refers to reach its instances (issue 12)
        used = connections.used_by(
            Path(meta["flow_dir"]), self.home.connections_file, common["environment_variables"]
        )
        return {
            "model": f"{meta['name']}:{meta['version']}",
            "flow_dir": meta["flow_dir"],
            "flow_name": flow_name or "flow",
            **common,
            # instances read connections at start: a changed connection is a new generation
            "connections": connections.fingerprint(self.home.connections_file),
            "connection_names": used,
            # ${env:VAR} of the connections as this kernel has them (0600 state, never logged)
            "connection_env": connections.referenced_env(
                self.home.connections_file, os.environ, used
            ),
        }

    def _environment(self, op: Operation, dep: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """What the deployment declares (build context, conda_file, flow requirements),
        resolved here; the router builds it (``environments/``) as the rollout's first step."""
        from pathlib import Path

        from pfmagic.environments.resolve import resolve

        source = Path(str(meta.get("source") or ""))
        flow_dir = source if source.is_dir() else Path(meta["flow_dir"])  # the user's paths
        resolved = resolve(dep.environment, flow_dir)
        for warning in resolved.warnings:
            op.emit("environment", "Running", f"warning: {warning}")
        if not resolved.declares_anything():
            return {}
        return {
            "environment": resolved.to_json(),
            "requirements_file": os.path.relpath(resolved.requirement_file())
            if resolved.sources
            else None,
        }

    def _common_runtime(self, dep: Any) -> dict[str, Any]:
        """The executor-neutral part of the runtime spec (the endpoint contract's)."""
        return {
            "instance_count": int(dep.instance_count or 1),
            "environment_variables": {
                # FOO: null is accepted by azure-ai-ml: an empty value, not "None"
                str(k): "" if v is None else str(v)
                for k, v in (dep.environment_variables or {}).items()
            },
            "routes": _routes(dep.environment),
            "readiness_probe": _probe(dep.readiness_probe),
            "liveness_probe": _probe(dep.liveness_probe),
            "request_settings": _request_settings(dep.request_settings),
            "instance_type": getattr(dep, "instance_type", None),
        }

    def _write_deployment(
        self,
        endpoint: str,
        name: str,
        dep: Any,
        meta: dict[str, Any] | None,
        runtime: dict[str, Any],
        current: dict[str, Any],
    ) -> tuple[int, bool]:
        """Store the deployment with a new generation, unless the same spec already serves
        (re-running a cell is then a no-op; a Failed one is retried)."""
        spec = dep._to_dict()
        if meta:
            spec["model"] = f"azureml:{meta['name']}:{meta['version']}"
        spec["endpoint_name"] = endpoint
        path = self.home.deployment_file(endpoint, name)
        with locked(self.home.state_lock(endpoint)):
            old = read_json(path) or {}
            unchanged = (
                bool(old)
                and old.get("runtime") == runtime
                and not old.get("deleting")
                and current.get("generation") == old.get("generation")
                and current.get("provisioning_state") == "Succeeded"
            )
            if unchanged:
                return int(old["generation"]), True
            gen = int(old.get("generation", 0)) + 1
            write_json(
                path,
                {
                    "name": name,
                    "endpoint": endpoint,
                    "spec": spec,
                    "runtime": runtime,
                    "generation": gen,
                    "deleting": False,
                    "created": old.get("created", time.time()),
                    "updated": time.time(),
                },
            )
        return gen, unchanged

    def _wait_deployment(
        self,
        op: Operation,
        ctl: RouterControl,
        endpoint: str,
        name: str,
        gen: int,
        runtime: dict[str, Any],
    ) -> dict[str, Any]:
        count = runtime["instance_count"]
        log = self.home.deployment_log(endpoint, name)
        end = time.monotonic() + max(self._deploy_timeout(), 60.0)
        last: tuple[Any, ...] = ()
        building = bool(runtime.get("environment"))
        steps = StepReporter(op, count, gen)
        if not building:
            op.emit("environment", "Skipped", "nothing declared: pfmagic's environment")
        # a ticker beats (what it waits for) while a status call or a sleep holds the loop
        with op.heartbeat(steps.beat_message, HEARTBEAT, stage="deployment"):
            while time.monotonic() < end:
                op.check_canceled()
                status = ctl.status() or ctl.ensure()
                st = status["deployments"].get(name)
                if st and st["generation"] == gen and building:
                    building = self._build_progress(op, endpoint, name, st)
                if st and st["generation"] == gen and not building:
                    state = st["provisioning_state"]
                    if state == "Degraded" and st.get("applied_generation") == gen:
                        state = "Succeeded"  # rolled out; an instance is restarting since
                    if state == "Succeeded":
                        steps.update(st, provisioning_state=state)  # the last "ready" sub-steps
                        op.emit(
                            "deployment",
                            "Succeeded",
                            f"{st['ready']}/{count} instances ready",
                            provisioning_state=state,
                            progress=1.0,
                            substeps=steps.lines,
                        )
                        return st
                    if state == "Failed":
                        lines = tuple(st.get("log_tail") or tail(log, LOG_TAIL))
                        reason = st.get("reason") or "unknown reason"
                        op.emit(
                            "deployment", "Failed", reason, provisioning_state=state, log_tail=lines
                        )
                        exc = BackendError(
                            f"deployment '{name}' failed: {reason}\n" + "\n".join(lines[-10:]),
                            code="DeploymentFailed",
                        )
                        exc.log_tail = lines  # type: ignore[attr-defined]
                        raise exc
                    ready = sum(1 for i in st.get("starting", []) if i.get("start_seconds"))
                    key = (state, ready)
                    if key != last:
                        last = key
                        op.emit(
                            "deployment",
                            "Running",
                            f"{state}: {ready}/{count} instances ready",
                            provisioning_state=state,
                            progress=ready / count,
                            log_tail=tuple(tail(log, 5)),
                            substeps=steps.lines,
                        )
                    steps.update(st, provisioning_state=state)  # sub-steps, heartbeat
                elif not (st and st["generation"] == gen):
                    steps.update(None, provisioning_state=None)  # heartbeat: router not there yet
                time.sleep(self.poll_interval)
            raise BackendError(
                f"deployment '{name}' still not ready after {self._deploy_timeout():.0f} s",
                hint=f"%pf_logs {endpoint} {name}",
            )

    def _build_progress(self, op: Operation, endpoint: str, name: str, st: dict[str, Any]) -> bool:
        """Emit the "environment" stage from the router's build status; True while building."""
        build = st.get("build") or {}
        if build.get("generation") != st.get("generation"):
            build = {}  # the rollout has not started yet: an older build's status
        state = build.get("state")
        lines = tuple(build.get("lines") or ())
        if state == "Running" or state is None:
            elapsed = time.time() - build.get("started", time.time())
            message = f"Building environment ({elapsed:.0f} s): {lines[-1] if lines else '...'}"
            last = op.events[-1] if op.events else None
            if last is None or last.stage != "environment" or last.message != message:
                op.emit("environment", "Running", message, log_tail=lines)
            return True
        if state == "Failed":
            reason = st.get("reason") or "environment build failed"
            op.emit("environment", "Failed", reason, provisioning_state="Failed", log_tail=lines)
            raise BackendError(
                f"deployment '{name}' failed: {reason}",
                code="ImageBuildFailure",
                hint=f"%pf_logs {endpoint} {name} --build",
            )
        how = "cached" if build.get("cached") else "built"
        message = f"environment {build.get('key')} {how} in {build.get('elapsed', 0):.1f} s"
        if build.get("key") == "base":
            message = "everything declared is in pfmagic's environment"
        op.emit("environment", "Succeeded", message)
        return False

    def _deployment_data(self, endpoint: str, name: str) -> dict[str, Any]:
        self._config(endpoint)
        data = read_json(self.home.deployment_file(endpoint, name))
        if data is None:
            raise NotFound(f"deployment '{name}' not found in endpoint '{endpoint}'")
        return data

    def _states(self, endpoint: str) -> dict[str, Any]:
        status = self._router(endpoint).ensure()
        return status.get("deployments", {})

    def get_deployment(self, endpoint: str, name: str) -> OnlineDeployment:
        data = self._deployment_data(endpoint, name)
        st = self._states(endpoint).get(name) or {}
        state = "Deleting" if data.get("deleting") else st.get("provisioning_state", "Creating")
        return entities.deployment(data, state, _ready(st))

    def list_deployments(self, endpoint: str) -> list[OnlineDeployment]:
        self._config(endpoint)
        states = self._states(endpoint)
        out = []
        for name in self.home.deployment_names(endpoint):
            data = read_json(self.home.deployment_file(endpoint, name))
            if data:
                st = states.get(name) or {}
                state = st.get("provisioning_state", "Creating")
                out.append(entities.deployment(data, state, _ready(st)))
        return out

    def delete_deployment(self, endpoint: str, name: str, *, purge: bool = False) -> Operation:
        self._deployment_data(endpoint, name)
        cfg = self._config(endpoint)
        if int((cfg.get("traffic") or {}).get(name, 0)) > 0:
            raise BackendError(
                f"deployment '{name}' still receives {cfg['traffic'][name]} % of the traffic",
                hint=f"%pf_traffic {endpoint} {name}=0 first",
            )

        def work(op: Operation) -> None:
            op.emit(
                "delete", "Running", f"deleting deployment {name}", provisioning_state="Deleting"
            )
            path = self.home.deployment_file(endpoint, name)
            with locked(self.home.state_lock(endpoint)):
                data = read_json(path) or {}
                data["deleting"] = True
                write_json(path, data)
                cfg = self._config(endpoint)
                cfg["traffic"] = {k: v for k, v in (cfg.get("traffic") or {}).items() if k != name}
                cfg["mirror_traffic"] = {
                    k: v for k, v in (cfg.get("mirror_traffic") or {}).items() if k != name
                }
                write_json(self.home.endpoint_file(endpoint), cfg)
            ctl = self._router(endpoint)
            status = ctl.reconcile()
            end = time.monotonic() + 90
            while name in status.get("deployments", {}) and time.monotonic() < end:
                op.check_canceled()
                time.sleep(self.poll_interval)
                status = ctl.status() or ctl.ensure()
            with locked(self.home.state_lock(endpoint)):
                shutil.rmtree(self.home.deployment_dir(endpoint, name), ignore_errors=True)
            if purge:  # else the logs stay for a post-mortem
                shutil.rmtree(self.home.log_dir(endpoint, name), ignore_errors=True)
            ctl.reconcile()
            op.emit("delete", "Succeeded", f"deployment {name} deleted")

        return Operation(f"delete {endpoint}/{name}", ("delete",), work)

    def get_logs(
        self, endpoint: str, deployment: str, lines: int = 100, container_type: str | None = None
    ) -> str:
        self._deployment_data(endpoint, deployment)
        container = (container_type or "inference-server").replace("_", "-").lower()
        if container not in CONTAINERS:
            raise PfError(
                f"container type '{container_type}' is not valid",
                hint="inference-server or storage-initializer",
            )
        return "\n".join(
            tail_rotated(self.home.deployment_log(endpoint, deployment, container), int(lines))
        )

    # -- traffic and keys --------------------------------------------------------------
    def set_traffic(
        self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> OnlineEndpoint:
        with locked(self.home.state_lock(endpoint)):
            cfg = self._config(endpoint)
            merged = {**(cfg.get("traffic") or {}), **traffic}  # names not given keep theirs
            if mirror is None:  # keep the mirror, but still check it against the new split
                mirror = cfg.get("mirror_traffic") or {}
            cfg["traffic"] = traffic_rules.check_traffic(
                merged, mirror, known=self.home.deployment_names(endpoint), endpoint=endpoint
            )
            cfg["mirror_traffic"] = traffic_rules.live_mirror(mirror)
            write_json(self.home.endpoint_file(endpoint), cfg)
        self._router(endpoint).reconcile()
        return self.get_endpoint(endpoint)

    def get_keys(self, endpoint: str) -> EndpointAuthKeys | EndpointAuthToken:
        cfg = self._config(endpoint)
        if cfg.get("auth_mode") == "aml_token":
            token, expiry = auth.mint_token(cfg["token_key"], endpoint, self.token_lifetime)
            return entities.auth_token(token, expiry, expiry - self.token_lifetime / 2)
        return entities.auth_keys(cfg["keys"]["primary"], cfg["keys"]["secondary"])

    def regenerate_keys(self, endpoint: str, key_type: KeyType = "primary") -> EndpointAuthKeys:
        if key_type not in ("primary", "secondary"):
            raise PfError(f"key type '{key_type}' is not valid", hint="primary or secondary")
        with locked(self.home.state_lock(endpoint)):
            cfg = self._config(endpoint)
            if cfg.get("auth_mode") != "key":
                raise BackendError(
                    f"endpoint '{endpoint}' uses {cfg.get('auth_mode')} auth; "
                    "only key auth has keys to regenerate",
                    code="BadArgument",
                )
            cfg["keys"][key_type] = auth.new_key()
            write_json(self.home.endpoint_file(endpoint), cfg)
        self._targets.pop(endpoint, None)
        self._router(endpoint).reconcile()
        return entities.auth_keys(cfg["keys"]["primary"], cfg["keys"]["secondary"])

    def _target(self, endpoint: str, *, reload: bool = False) -> _Target:
        """Scoring URL and credential source, read from the state once and then kept."""
        target = self._targets.get(endpoint)
        if target is None or reload:
            cfg = self._config(endpoint)
            target = _Target(
                f"http://127.0.0.1:{cfg['port']}/score",
                cfg.get("auth_mode", "key"),
                str(cfg["keys"]["primary"]),
                str(cfg.get("token_key", "")),
                str(cfg.get("admin_token", "")),
            )
            self._targets[endpoint] = target
        return target

    # -- scoring -----------------------------------------------------------------------
    def invoke(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        deployment: str | None = None,
        stream: bool = False,
        timeout: float = 120.0,
        on_chunk: Any = None,
    ) -> ScoreReply:
        from pfmagic.http import score

        def post(target: _Target) -> ScoreReply:
            client = self._clients.get((endpoint, target.admin_token))
            if client is None or client.is_closed:
                client = router_client(endpoint, target.admin_token)
                self._clients[(endpoint, target.admin_token)] = client
            return score(
                target.url,
                body,
                key=target.credential(endpoint, self.token_lifetime),
                deployment=deployment,
                stream=stream,
                timeout=timeout,
                on_chunk=on_chunk,
                client=client,  # every new connection proves it reaches the router first
            )

        # Normal path: one POST, no admin round trip and no state read. Both retries below
        # are safe: a refused connection or a 401 means the flow never saw the request.
        target = self._target(endpoint)
        try:
            return post(target)
        except BackendError as exc:
            if exc.code == "ConnectionRefused":
                self._targets.pop(endpoint, None)
                self._router(endpoint).ensure()  # a killed router comes back: same port, keys
                return post(self._target(endpoint))
            if exc.code == "NotRouter":  # nothing was sent; maybe it moved to a new port
                fresh = self._target(endpoint, reload=True)
                if fresh.url != target.url:
                    return post(fresh)
            if exc.status == 401:
                fresh = self._target(endpoint, reload=True)  # keys changed by another kernel?
                if fresh != target:
                    return post(fresh)
            raise

    # -- connections -------------------------------------------------------------------
    def create_connection(self, connection: dict[str, Any]) -> None:
        try:
            connections.store(self.home.connections_file, connection)
        except ValueError as exc:
            raise PfError(str(exc)) from None

    def list_connections(self) -> list[str]:
        return connections.names(self.home.connections_file)

    def delete_connection(self, name: str) -> None:
        if not connections.delete(self.home.connections_file, name):
            raise NotFound(f"connection '{name}' not found")

    # -- monitoring ----------------------------------------------------------------------
    def metrics(
        self, endpoint: str, *, deployment: str | None = None, window: float = 900.0
    ) -> Any:
        """What the endpoint's router recorded (``local/metrics.py``), as EndpointMetrics."""
        from pfmagic.metrics.model import EndpointMetrics

        ctl = self._router(endpoint)
        ctl.config()  # NotFound for an unknown endpoint
        names = self.home.deployment_names(endpoint)
        if deployment is not None and deployment not in names:
            raise NotFound(
                f"deployment '{deployment}' not found in endpoint '{endpoint}'",
                hint=f"its deployments: {', '.join(names)}" if names else "it has none",
            )
        ctl.ensure()
        data = ctl.admin("GET", f"metrics?format=json&window={window:g}")
        if data is None:
            raise BackendError(f"endpoint '{endpoint}': its router did not answer for metrics")
        return EndpointMetrics(data, backend="local", deployment=deployment)

    # -- local extras ------------------------------------------------------------------
    def router_status(self, endpoint: str) -> dict[str, Any]:
        """The router's own view: deployments, instances (pid, port, ready, restarts),
        request and mirror counters."""
        return self._router(endpoint).ensure()

    def shutdown_all(self) -> None:
        """Stop every router and instance under this home (endpoints stay in the state)."""
        shutdown_all(self.home)

    def close(self) -> None:
        """Endpoints keep running after the kernel goes (that is the point)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _ready(st: dict[str, Any]) -> tuple[int, int] | None:
    """(instances answering, instances wanted) from the router's status, if it reported."""
    if "ready" not in st:
        return None
    return int(st["ready"]), int(st.get("instance_count") or 0)

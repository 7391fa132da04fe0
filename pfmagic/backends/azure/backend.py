"""The Azure ML backend: every operation through azure-ai-ml's ``MLClient`` (no hand-written REST).

Same interface and progress stages as the local backend (model → endpoint → deployment →
traffic), so a notebook moves from 127.0.0.1 to a managed or Kubernetes online endpoint by
running ``%pf_backend azure``. azure.ai.ml is imported only inside methods.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfmagic.backends.azure.capture import quiet_sdk
from pfmagic.backends.azure.errors import map_error, score_error
from pfmagic.backends.azure.progress import BUSY, log_lines, quietly, state_name, watch
from pfmagic.backends.azure.prt import fill_prt_config_override, prt_values
from pfmagic.backends.base import Backend, KeyType, ScoreReply
from pfmagic.backends.events import Canceled, Operation
from pfmagic.errors import BackendError, NotFound, PfError
from pfmagic.traffic import check_traffic, live_mirror

if TYPE_CHECKING:
    from azure.ai.ml.entities import (
        EndpointAuthKeys,
        EndpointAuthToken,
        Model,
        OnlineDeployment,
        OnlineEndpoint,
    )

DEPLOY_STAGES = ("model", "endpoint", "deployment", "traffic")
_invoke_lock = threading.Lock()


class AzureBackend(Backend):
    """Azure ML managed / Kubernetes online endpoints of one workspace."""

    name = "azure"

    def __init__(
        self,
        settings: Any = None,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        config_path: str | None = None,
        credential: Any = "default",
        ml_client: Any = None,
        enable_telemetry: bool | None = None,
        fill_prt_config: bool = False,
        poll_seconds: float = 5.0,
        log_lines: int = 20,
        score_client: Any = None,
        **client_kwargs: Any,
    ):
        self.settings = settings
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.config_path = config_path
        self.credential = credential
        # SDK telemetry is sent from Jupyter unless disabled: off unless the user opts in
        self.enable_telemetry = bool(
            getattr(settings, "azure_telemetry", False)
            if enable_telemetry is None
            else enable_telemetry
        )
        # Replace <placeholders> in PRT_CONFIG_OVERRIDE with this workspace (opt-in).
        self.fill_prt_config = fill_prt_config
        self.poll_seconds = poll_seconds
        self.log_lines = log_lines
        self.client_kwargs = client_kwargs  # transport=, polling_interval=, cloud=... → MLClient
        self.score_client = score_client  # httpx.Client for streamed scoring (tests redirect it)
        self._ml = ml_client
        self._lock = threading.Lock()
        self._location: str | None = None

    # -- client ------------------------------------------------------------------------
    @property
    def ml_client(self) -> Any:
        """The ``MLClient``, built on first use (no network call until an operation)."""
        with self._lock:
            if self._ml is None:
                from pfmagic.backends.azure.client import build_ml_client, make_credential

                self._ml = build_ml_client(
                    credential=make_credential(self.credential),
                    subscription_id=self.subscription_id,
                    resource_group=self.resource_group,
                    workspace=self.workspace,
                    config_path=self.config_path,
                    enable_telemetry=self.enable_telemetry,
                    **self.client_kwargs,
                )
            return self._ml

    def describe(self) -> str:
        try:
            ml = self.ml_client
        except PfError as exc:
            return f"azure: not configured ({exc.message})"
        return f"azure: {ml.subscription_id}/{ml.resource_group_name}/{ml.workspace_name}"

    @property
    def location(self) -> str | None:
        if self._location is None:
            ws = self.ml_client.workspaces.get(self.ml_client.workspace_name)
            self._location = ws.location
        return self._location

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call quietly; SDK errors become one-line PfErrors."""
        with quiet_sdk():
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise map_error(exc, what=what) from None

    # -- models ------------------------------------------------------------------------
    def create_model(self, model: Model) -> Model:
        return self._call(
            f"register model {model.name}", self.ml_client.models.create_or_update, model
        )

    def get_model(self, name: str, version: str | None = None) -> Model:
        models = self.ml_client.models
        if version is None:
            return self._call(f"model {name}", models.get, name, label="latest")
        return self._call(f"model {name}:{version}", models.get, name, version)

    def list_models(self) -> list[Model]:
        return self._call("list models", lambda: list(self.ml_client.models.list()))

    # -- endpoints ---------------------------------------------------------------------
    def create_endpoint(self, endpoint: OnlineEndpoint) -> Operation:
        def work(op: Operation) -> OnlineEndpoint:
            with quiet_sdk():
                return self._endpoint_stage_create(op, endpoint)

        return Operation(f"create endpoint {endpoint.name}", ("endpoint",), work)

    def _endpoint_stage_create(self, op: Operation, endpoint: OnlineEndpoint) -> Any:
        ops = self.ml_client.online_endpoints
        what = f"endpoint {endpoint.name}"
        result = self._stage(
            op,
            "endpoint",
            lambda: ops.begin_create_or_update(endpoint),
            running=f"creating {what}",
            done=what,
            what=what,
            fail_what=f"create {what}",
            read_state=lambda: ops.get(endpoint.name).provisioning_state,
            endpoint=endpoint.name,
        )
        return plain(result)

    def get_endpoint(self, name: str) -> OnlineEndpoint:
        return plain(self._call(f"endpoint {name}", self.ml_client.online_endpoints.get, name))

    def list_endpoints(self) -> list[OnlineEndpoint]:
        return [
            plain(e)
            for e in self._call(
                "list endpoints", lambda: list(self.ml_client.online_endpoints.list())
            )
        ]

    def delete_endpoint(self, name: str) -> Operation:
        ops = self.ml_client.online_endpoints
        return self._delete(
            f"endpoint {name}",
            lambda: ops.begin_delete(name=name),
            lambda: ops.get(name).provisioning_state,
        )

    def _delete(self, what: str, begin: Any, read_state: Any) -> Operation:
        def work(op: Operation) -> None:
            with quiet_sdk():
                self._stage(
                    op,
                    "delete",
                    begin,
                    running=f"deleting {what}",
                    done=f"{what} deleted",
                    what=what,
                    fail_what=f"delete {what}",
                    read_state=read_state,
                )

        return Operation(f"delete {what}", ("delete",), work)

    # -- deployments -------------------------------------------------------------------
    def create_deployment(
        self,
        deployment: OnlineDeployment,
        *,
        all_traffic: bool = False,
        fill_prt_config: bool | None = None,
    ) -> Operation:
        """Stages model → endpoint → deployment → traffic, like ``az ml online-deployment
        create [--all-traffic]``. ``fill_prt_config`` (default: the backend's setting) fills
        ``<placeholders>`` of PRT_CONFIG_OVERRIDE from this workspace first."""
        fill = self.fill_prt_config if fill_prt_config is None else fill_prt_config

        def work(op: Operation) -> OnlineDeployment:
            with quiet_sdk():
                self._model_stage(op, deployment)
                self._check_endpoint(op, deployment.endpoint_name)
                if fill:
                    self.fill_prt_config_override(deployment)
                result = self._deployment_stage(op, deployment)
                if all_traffic:
                    self._traffic_stage(op, deployment.endpoint_name, {deployment.name: 100})
                else:
                    op.emit(
                        "traffic", "Skipped", "traffic unchanged (use --all-traffic or %pf_traffic)"
                    )
                return result

        return Operation(
            f"deploy {deployment.endpoint_name}/{deployment.name}", DEPLOY_STAGES, work
        )

    def fill_prt_config_override(self, deployment: OnlineDeployment) -> bool:
        """Fill ``<placeholders>`` of PRT_CONFIG_OVERRIDE from the active workspace (in place)."""
        ml = self.ml_client
        return fill_prt_config_override(
            deployment,
            prt_values(
                subscription_id=ml.subscription_id,
                resource_group=ml.resource_group_name,
                workspace=ml.workspace_name,
                endpoint=deployment.endpoint_name,
                deployment=deployment.name,
            ),
        )

    def _model_stage(self, op: Operation, deployment: OnlineDeployment) -> None:
        model = deployment.model
        if isinstance(model, str):  # a registered model: the loader drops "azureml:"
            ref = model.removeprefix("azureml:")
            if ref.startswith(("/", "azureml:", "//")):  # ARM id / registry: resolved by Azure
                op.emit("model", "Succeeded", f"model {ref}")
                return
            name, _, version = ref.partition(":")
            name, _, label = name.partition("@")
            op.emit("model", "Running", f"checking model {ref}")
            try:
                if version:
                    self.ml_client.models.get(name, version)
                else:
                    self.ml_client.models.get(name, label=label or "latest")
            except Exception as exc:
                raise _stage_failed(
                    op,
                    "model",
                    exc,
                    f"model {ref}",
                    "is not registered in the workspace",
                    "run its %%pf_model cell first (or fix the version)",
                ) from None
            op.emit("model", "Succeeded", f"model {ref} found")
        elif model is not None and getattr(model, "path", None):
            path = str(model.path)
            if not path.startswith(("azureml:", "http", "wasbs:")) and not Path(path).exists():
                err = BackendError(
                    f"model path {path} does not exist",
                    code="BadArgument",
                    hint="fix model.path in the deployment cell",
                )
                op.emit("model", "Failed", err.message)
                raise err
            op.emit("model", "Succeeded", f"{path} is uploaded with the deployment")
        else:
            op.emit("model", "Skipped", "no model")

    def _check_endpoint(self, op: Operation, name: str) -> Any:
        op.emit("endpoint", "Running", f"checking endpoint {name}")
        try:
            endpoint = self.ml_client.online_endpoints.get(name)
        except Exception as exc:
            raise _stage_failed(
                op,
                "endpoint",
                exc,
                f"endpoint {name}",
                "does not exist in the workspace",
                "run its %%pf_endpoint cell first",
            ) from None
        state = state_name(endpoint.provisioning_state)
        if state in BUSY or state == "Failed":
            err = BackendError(
                f"endpoint {name} is {state}: a deployment cannot be created now",
                code="EndpointNotReady",
                hint="wait until %pf_status shows Succeeded, then run the cell again"
                if state != "Failed"
                else "recreate the endpoint (%pf_delete, then its cell)",
            )
            op.emit("endpoint", "Failed", err.message, provisioning_state=state)
            raise err
        op.emit("endpoint", "Succeeded", f"endpoint {name} is ready", provisioning_state=state)
        return endpoint

    def _deployment_stage(self, op: Operation, deployment: OnlineDeployment) -> Any:
        ops = self.ml_client.online_deployments
        ep, name = deployment.endpoint_name, deployment.name
        what = f"deployment {ep}/{name}"

        def details(exc: BaseException) -> dict[str, Any]:
            # the deployment's own state and log tail explain a failure without an error body
            return {
                "log_tail": log_lines(
                    quietly(lambda: ops.get_logs(name, ep, lines=self.log_lines), "")
                ),
                "quota": self._quota_sentence(deployment, exc),
                "state": state_name(quietly(lambda: ops.get(name, ep).provisioning_state)),
            }

        result = self._stage(
            op,
            "deployment",
            lambda: ops.begin_create_or_update(deployment),
            running=f"creating {what}",
            done=what,
            what=what,
            fail_what=f"deploy {ep}/{name}",
            read_state=lambda: ops.get(name, ep).provisioning_state,
            read_logs=lambda: ops.get_logs(name, ep, lines=self.log_lines),
            endpoint=ep,
            details=details,
        )
        return plain(result)

    def _traffic_stage(
        self,
        op: Operation,
        endpoint: str,
        traffic: dict[str, int],
        mirror: dict[str, int] | None = None,
    ) -> Any:
        ops = self.ml_client.online_endpoints

        def begin() -> Any:
            ep = ops.get(endpoint)
            if mirror and "kubernetes" in type(ep).__name__.lower():
                raise PfError(
                    f"{endpoint} is a Kubernetes endpoint: mirrored traffic is only "
                    "for managed online endpoints"
                )
            if mirror is None:  # the mirror kept must still not take live traffic
                check_traffic(traffic, dict(getattr(ep, "mirror_traffic", None) or {}))
            ep.traffic = dict(traffic)
            if mirror is not None:
                ep.mirror_traffic = dict(mirror)
            return ops.begin_create_or_update(ep)

        return self._stage(
            op,
            "traffic",
            begin,
            running=_traffic_text(traffic, mirror),
            done=_traffic_text(traffic, mirror),
            what=f"traffic of {endpoint}",
            fail_what=f"set traffic of {endpoint}",
            read_state=lambda: ops.get(endpoint).provisioning_state,
            endpoint=endpoint,
        )

    def _stage(
        self,
        op: Operation,
        stage: str,
        begin: Any,
        *,
        running: str,
        done: str,
        what: str,
        fail_what: str,
        read_state: Any,
        read_logs: Any = None,
        endpoint: str | None = None,
        details: Any = None,
    ) -> Any:
        """One stage, the same for endpoint, deployment, traffic and delete: emit Running
        (``running``), begin the LRO, watch it, then emit Succeeded (``done``, with the
        resource's state) or Failed with a one-line error (``fail_what`` names the action).

        ``details(exc)`` adds the deployment's log tail, quota sentence and state; a stage with
        ``details`` passes PfErrors raised while watching (timeouts, cancel) through as they are.
        """
        op.emit(stage, "Running", running)
        try:
            result = watch(
                op,
                stage,
                begin(),
                every=self.poll_seconds,
                what=what,
                read_state=read_state,
                read_logs=read_logs,
            )
        except Exception as exc:
            if details is not None and isinstance(exc, (PfError, Canceled)):
                raise
            extra = details(exc) if details is not None else {}
            raise self._fail(op, stage, exc, what=fail_what, endpoint=endpoint, **extra) from None
        # a delete's LRO has no result: its Succeeded event carries no provisioning state
        state = state_name(getattr(result, "provisioning_state", None))
        op.emit(stage, "Succeeded", done, provisioning_state=state)
        return result

    def _fail(
        self,
        op: Operation,
        stage: Any,
        exc: BaseException,
        *,
        what: str,
        log_tail: tuple[str, ...] = (),
        quota: str | None = None,
        endpoint: str | None = None,
        state: str | None = None,
    ) -> BaseException:
        """Map ``exc``, emit the stage's Failed event (with the log tail) and return the error."""
        if isinstance(exc, Canceled):
            return exc
        region = (
            quietly(lambda: self.location) if endpoint and "already" in str(exc).lower() else None
        )
        err = map_error(
            exc,
            what=what,
            log_tail=log_tail,
            quota=quota,
            endpoint=endpoint,
            region=region,
            state=state,
        )
        op.emit(
            stage,
            "Failed",
            str(err),
            provisioning_state="Failed" if log_tail else None,
            log_tail=log_tail,
        )
        return err

    def _quota_sentence(self, deployment: Any, exc: BaseException) -> str | None:
        """The quota calculator's numbers for an OutOfQuota failure (best effort)."""
        from pfmagic.backends.azure.errors import error_code

        if error_code(exc) != "OutOfQuota" and "quota" not in str(exc).lower():
            return None
        if "kubernetes" in type(deployment).__name__.lower():
            return None
        try:
            from pfmagic.skus import check_quota
        except ImportError:  # the SKU table lands with the widgets issue
            return None
        usage = quietly(self.quota_usage)
        check = quietly(
            lambda: check_quota(
                deployment.instance_type or "",
                int(deployment.instance_count or 1),
                usage,
                backend_name="azure",
            )
        )
        return check.message if check is not None else None

    def get_deployment(self, endpoint: str, name: str) -> OnlineDeployment:
        return plain(
            self._call(
                f"deployment {endpoint}/{name}",
                self.ml_client.online_deployments.get,
                name,
                endpoint,
            )
        )

    def list_deployments(self, endpoint: str) -> list[OnlineDeployment]:
        ops = self.ml_client.online_deployments
        return [
            plain(d)
            for d in self._call(f"deployments of {endpoint}", lambda: list(ops.list(endpoint)))
        ]

    def delete_deployment(self, endpoint: str, name: str) -> Operation:
        ops = self.ml_client.online_deployments
        return self._delete(
            f"deployment {endpoint}/{name}",
            lambda: ops.begin_delete(name=name, endpoint_name=endpoint),
            lambda: ops.get(name, endpoint).provisioning_state,
        )

    def get_logs(
        self, endpoint: str, deployment: str, lines: int = 100, container_type: str | None = None
    ) -> str:
        kind = {
            "storage": "storage-initializer",
            "init": "storage-initializer",
            "server": "inference-server",
        }.get(container_type or "", container_type)
        return self._call(
            f"logs of {endpoint}/{deployment}",
            self.ml_client.online_deployments.get_logs,
            deployment,
            endpoint,
            lines,
            container_type=kind,
        )

    # -- traffic and keys --------------------------------------------------------------
    def set_traffic(
        self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> OnlineEndpoint:
        # as the local backend: None keeps the mirror, {} (or only 0 shares) clears it
        traffic = check_traffic(traffic, mirror)  # refused before any request
        if mirror is not None:
            mirror = live_mirror(mirror)
        op = Operation(
            f"traffic {endpoint}",
            ("traffic",),
            lambda op: self._quiet(self._traffic_stage, op, endpoint, traffic, mirror),
        )
        op.result()
        return self.get_endpoint(endpoint)

    def _quiet(self, fn: Any, *args: Any) -> Any:
        with quiet_sdk():
            return fn(*args)

    def get_keys(self, endpoint: str) -> EndpointAuthKeys | EndpointAuthToken:
        # key auth → listKeys; aml_token → the endpoint's get-credentials token. Never logged.
        return self._call(f"keys of {endpoint}", self.ml_client.online_endpoints.get_keys, endpoint)

    def regenerate_keys(self, endpoint: str, key_type: KeyType = "primary") -> EndpointAuthKeys:
        ops = self.ml_client.online_endpoints

        def regen() -> Any:
            ops.begin_regenerate_keys(endpoint, key_type=key_type).result()
            return ops.get_keys(endpoint)

        return self._call(f"regenerate {key_type} key of {endpoint}", regen)

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
        if stream:
            return self._invoke_stream(
                endpoint, body, deployment=deployment, timeout=timeout, on_chunk=on_chunk
            )
        ops = self.ml_client.online_endpoints
        fd, path = tempfile.mkstemp(prefix="pfmagic-", suffix=".json")  # the SDK wants a file
        started = time.perf_counter()
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f)
            with _invoke_lock, quiet_sdk():
                _reset_invoke_headers()
                try:
                    text = ops.invoke(
                        endpoint_name=endpoint, request_file=path, deployment_name=deployment
                    )
                except Exception as exc:
                    raise score_error(exc, endpoint=endpoint) from None
                finally:
                    _reset_invoke_headers()
        finally:
            os.unlink(path)
        try:
            outputs: Any = json.loads(text)
        except ValueError:
            outputs = text
        return ScoreReply(
            status=200,
            outputs=outputs,
            deployment=deployment,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _invoke_stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        deployment: str | None,
        timeout: float,
        on_chunk: Any,
    ) -> ScoreReply:
        from pfmagic.http import score

        ep = self.get_endpoint(endpoint)
        keys = self.get_keys(endpoint)
        key = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        return score(
            ep.scoring_uri,
            body,
            key=key,
            deployment=deployment,
            stream=True,
            timeout=timeout,
            on_chunk=on_chunk,
            **self._score_options(),
        )

    def _score_options(self) -> dict[str, Any]:
        return {"client": self.score_client} if self.score_client is not None else {}

    # -- monitoring ----------------------------------------------------------------------
    def metrics(
        self, endpoint: str, *, deployment: str | None = None, window: float = 900.0
    ) -> Any:
        """Azure Monitor metrics of the endpoint and its deployments (``azure/metrics.py``)."""
        from pfmagic.backends.azure.metrics import query
        from pfmagic.metrics.model import EndpointMetrics

        with quiet_sdk():
            data = query(self, endpoint, deployment, window)
        return EndpointMetrics(data, backend="azure", deployment=deployment)

    # -- quota -------------------------------------------------------------------------
    def quota_usage(self) -> dict[str, tuple[int, int]] | None:
        usages = self._call(
            "quota usage", lambda: list(self.ml_client.compute.list_usage(location=self.location))
        )
        from pfmagic.skus import usage_table

        return usage_table(usages)

    def close(self) -> None:
        self._ml = None


def plain(entity: Any) -> Any:
    """``provisioning_state`` as 'Succeeded' rather than the SDK's enum (shows as
    EndpointProvisioningState.SUCCEEDED in f-strings), like the local backend's entities."""
    state = state_name(getattr(entity, "provisioning_state", None))
    # a read-only property over _provisioning_state in azure-ai-ml 1.35.2
    attr = "_provisioning_state" if "_provisioning_state" in vars(entity) else "provisioning_state"
    try:
        setattr(entity, attr, state)
    except AttributeError:
        pass
    return entity


def _traffic_text(traffic: dict[str, int], mirror: dict[str, int] | None) -> str:
    text = " ".join(f"{k}={v}" for k, v in traffic.items()) or "no traffic"
    if mirror:
        text += " mirror " + " ".join(f"{k}={v}" for k, v in mirror.items())
    return text


def _reset_invoke_headers() -> None:
    # azure-ai-ml's invoke() writes the key and deployment into a class-level default header
    # dict (EndpointInvokeFields.DEFAULT_HEADER); drop them so they neither leak nor stick.
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields

    for name in (EndpointInvokeFields.AUTHORIZATION, EndpointInvokeFields.MODEL_DEPLOYMENT):
        EndpointInvokeFields.DEFAULT_HEADER.pop(name, None)


def _stage_failed(
    op: Operation, stage: Any, exc: BaseException, what: str, missing: str, hint: str
) -> BackendError:
    """Report a failed pre-check on ``stage``; a missing resource says which cell to run."""
    err = map_error(exc, what=what)
    if isinstance(err, NotFound):
        err = BackendError(f"{what} {missing}", status=404, code="ResourceNotFound", hint=hint)
    op.emit(stage, "Failed", err.message)
    return err

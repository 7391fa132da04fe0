"""The interface both backends implement (local processes on 127.0.0.1, or Azure ML).

Entities in and out are azure-ai-ml's own classes (``Model``, ``OnlineEndpoint``,
``OnlineDeployment``, ``EndpointAuthKeys`` / ``EndpointAuthToken``), so a cell works unchanged
on either backend and ``ep = %pf_status my-endpoint`` returns the same kind of object.
Long operations return an ``Operation`` that reports ``ProgressEvent``s.

azure.ai.ml is imported only for type checking here: callers already hold entities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from azure.ai.ml.entities import (
        EndpointAuthKeys,
        EndpointAuthToken,
        Model,
        OnlineDeployment,
        OnlineEndpoint,
    )

    from pfmagic.backends.events import Operation

KeyType = Literal["primary", "secondary"]


@dataclass
class ScoreReply:
    """One reply from an endpoint's scoring route.

    ``outputs`` is the decoded JSON (or the merged stream); ``deployment`` the deployment that
    served it (``azureml-model-deployment`` response header); ``chunks`` the raw stream pieces
    when the reply was ``text/event-stream``.
    """

    status: int
    outputs: dict[str, Any] | Any
    deployment: str | None = None
    latency_ms: float = 0.0
    request_id: str | None = None
    streamed: bool = False
    chunks: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """Where endpoints live. ``name`` is shown by ``%pf_backend``."""

    name: str = "abstract"

    def describe(self) -> str:
        """One line for ``%pf_backend``: where this backend deploys to."""
        return self.name

    # -- models ------------------------------------------------------------------------
    @abstractmethod
    def create_model(self, model: Model) -> Model:
        """Register a flow folder as a model version (copied: later edits don't change it)."""

    @abstractmethod
    def get_model(self, name: str, version: str | None = None) -> Model:
        """A registered model; latest version when ``version`` is None."""

    @abstractmethod
    def list_models(self) -> list[Model]: ...

    # -- endpoints ---------------------------------------------------------------------
    @abstractmethod
    def create_endpoint(self, endpoint: OnlineEndpoint) -> Operation:
        """Create or update an endpoint (stage ``endpoint``); result is the ``OnlineEndpoint``."""

    @abstractmethod
    def get_endpoint(self, name: str) -> OnlineEndpoint:
        """With ``scoring_uri``, ``traffic``, ``mirror_traffic``, ``provisioning_state``."""

    @abstractmethod
    def list_endpoints(self) -> list[OnlineEndpoint]: ...

    @abstractmethod
    def delete_endpoint(self, name: str) -> Operation:
        """Delete an endpoint and all its deployments (stage ``delete``)."""

    # -- deployments -------------------------------------------------------------------
    @abstractmethod
    def create_deployment(
        self, deployment: OnlineDeployment, *, all_traffic: bool = False
    ) -> Operation:
        """Create or update a deployment; stages model → endpoint → deployment → traffic.

        Result is the ``OnlineDeployment`` with ``provisioning_state`` set. Failure raises
        ``BackendError`` from ``Operation.result()`` with the reason and the log tail.
        """

    @abstractmethod
    def get_deployment(self, endpoint: str, name: str) -> OnlineDeployment: ...

    @abstractmethod
    def list_deployments(self, endpoint: str) -> list[OnlineDeployment]: ...

    @abstractmethod
    def delete_deployment(self, endpoint: str, name: str) -> Operation: ...

    @abstractmethod
    def get_logs(
        self, endpoint: str, deployment: str, lines: int = 100, container_type: str | None = None
    ) -> str:
        """Last ``lines`` of the deployment's logs, like ``az ml online-deployment get-logs``."""

    # -- traffic and keys --------------------------------------------------------------
    @abstractmethod
    def set_traffic(
        self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> OnlineEndpoint:
        """Weights must sum to 100 (or all be 0); mirror: one deployment, at most 50 %.

        ``mirror=None`` keeps the endpoint's current mirror; ``{}`` (or only 0 shares) removes it.
        """

    @abstractmethod
    def get_keys(self, endpoint: str) -> EndpointAuthKeys | EndpointAuthToken: ...

    @abstractmethod
    def regenerate_keys(self, endpoint: str, key_type: KeyType = "primary") -> EndpointAuthKeys: ...

    # -- scoring -----------------------------------------------------------------------
    @abstractmethod
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
        """POST ``body`` to the endpoint's scoring URI with its key or token.

        ``on_chunk(dict)`` is called for each streamed event when ``stream`` is true.
        Errors raise ``BackendError`` with ``status`` and the endpoint's own message.
        """

    # -- connections (what the flow's LLM nodes use) -----------------------------------
    def create_connection(self, connection: dict[str, Any]) -> None:
        """Store a promptflow connection (its YAML as a dict; secrets never echoed)."""
        from pfmagic.errors import PfError

        raise PfError(
            f"the {self.name} backend does not store connections",
            hint="use the workspace's connections",
        )

    def list_connections(self) -> list[str]:
        return []

    # -- monitoring ----------------------------------------------------------------------
    def metrics(
        self, endpoint: str, *, deployment: str | None = None, window: float = 900.0
    ) -> Any:
        """``pfmagic.metrics.model.EndpointMetrics`` of the last ``window`` seconds."""
        from pfmagic.errors import PfError

        raise PfError(f"the {self.name} backend has no metrics")

    # -- quota -------------------------------------------------------------------------
    def quota_usage(self) -> dict[str, tuple[int, int]] | None:
        """vCPU usage per VM family, ``{normalised family: (current, limit)}``.

        None where quota does not apply (the local backend). Family names are normalised by
        ``pfmagic.skus.normalise_family`` so they match the SKU table.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients (the local backend leaves endpoints running)."""

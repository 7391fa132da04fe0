"""What one notebook session remembers: parsed entities by name, the active backend, chats.

Magics are thin; they read and write this object. It is plain Python (no IPython), so the
same session can be driven from a script: ``Session().backend.create_endpoint(...)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pfmagic.config import PfMagics

if TYPE_CHECKING:
    from pfmagic.backends.base import Backend
    from pfmagic.backends.events import Operation


@dataclass
class Session:
    settings: PfMagics = field(default_factory=PfMagics)
    # Entities parsed from cells, by name. Deployments by (endpoint, deployment).
    models: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)
    deployments: dict[tuple[str, str], Any] = field(default_factory=dict)
    connections: dict[str, Any] = field(default_factory=dict)
    # The YAML each entity came from, by (kind, name): what %pf_export writes back out.
    sources: dict[tuple[str, str], Any] = field(default_factory=dict)
    # Chat histories per endpoint: list of {"inputs": {...}, "outputs": {...}} turns.
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Last endpoint created or used: the default target of %pf_invoke / %pf_status.
    last_endpoint: str | None = None
    # Operations still running (--no-wait), newest last.
    operations: list[Operation] = field(default_factory=list)
    _backend: Backend | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def backend(self) -> Backend:
        """The active backend, created on first use (local unless settings say otherwise)."""
        with self._lock:
            if self._backend is None:
                from pfmagic.backends import make_backend

                self._backend = make_backend(self.settings.backend, settings=self.settings)
            return self._backend

    @property
    def active_backend(self) -> Backend | None:
        """The backend in use, or None if none was created yet (never creates one)."""
        return self._backend

    def detach_backend(self) -> Backend | None:
        """Forget the backend without closing it (its owner closes it); returns it."""
        with self._lock:
            old, self._backend = self._backend, None
        return old

    @property
    def backend_name(self) -> str:
        """Name of the active backend without creating it."""
        return self._backend.name if self._backend is not None else self.settings.backend

    def use_backend(self, backend: Backend) -> None:
        with self._lock:
            old, self._backend = self._backend, backend
        if old is not None and old is not backend:
            old.close()

    def snapshot(self) -> dict[str, Any]:
        """What a failed magic must leave as it found: entities by name and the last endpoint."""
        return {
            "models": dict(self.models),
            "endpoints": dict(self.endpoints),
            "deployments": dict(self.deployments),
            "connections": dict(self.connections),
            "sources": dict(self.sources),
            "last_endpoint": self.last_endpoint,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name, value in snapshot.items():
            setattr(self, name, value)

    def remember(self, entity: Any) -> None:
        """Keep a parsed entity by its name so later magics can refer to it."""
        kind = type(entity).__name__
        if kind.endswith("Deployment"):
            self.deployments[(entity.endpoint_name, entity.name)] = entity
        elif kind.endswith("Endpoint"):
            self.endpoints[entity.name] = entity
        elif kind == "Model":
            self.models[entity.name] = entity
        else:
            self.connections[getattr(entity, "name", kind)] = entity

    def endpoint_name(self, name: str | None) -> str:
        """Resolve an optional endpoint argument to a name (default: the last one used)."""
        from pfmagic.errors import PfError

        if name:
            self.last_endpoint = name
            return name
        if self.last_endpoint:
            return self.last_endpoint
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints))
        raise PfError(
            "no endpoint given and none used yet",
            hint="name one, e.g. %pf_status basic-chat-endpoint",
        )

"""Backends behind one interface (``base.Backend``); imported lazily by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pfmagic.backends.base import Backend

BACKENDS = ("local", "azure")


def make_backend(name: str, *, settings: Any = None, **options: Any) -> Backend:
    """Build the backend called ``name`` ('local' or 'azure')."""
    from pfmagic.errors import PfError

    if name == "local":
        from pfmagic.backends.local.backend import LocalBackend

        return LocalBackend(settings=settings, **options)
    if name == "azure":
        from pfmagic.backends.azure.backend import AzureBackend

        return AzureBackend(settings=settings, **options)
    raise PfError(f"unknown backend '{name}'", hint="use 'local' or 'azure'")

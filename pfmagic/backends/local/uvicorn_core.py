"""uvicorn's ``Config`` and ``Server`` without uvicorn's command line.

``import uvicorn`` runs ``uvicorn/__init__.py``, which imports ``uvicorn.main``: click (the
CLI), the reload and multiprocess supervisors (multiprocessing) and their helpers -- about 60
modules the router never uses, a few MB of its memory. Here the ``uvicorn`` package is set up
without running that file: its submodules load as usual, ``Config`` and ``Server`` are bound
on it (uvicorn's own ``from uvicorn import Config`` needs them), and the first use of any
other name (``uvicorn.run``, ``uvicorn.main``, ``__version__``) runs the real ``__init__``,
so the package then is just what ``import uvicorn`` makes. A process that already imported
uvicorn keeps it as it is.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any


def _package() -> ModuleType:
    loaded = sys.modules.get("uvicorn")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("uvicorn")  # a top-level name: found, not run
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
    package = importlib.util.module_from_spec(spec)
    whole = False

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook (PEP 562)
        nonlocal whole
        if whole or name.startswith("__") and name != "__version__":
            raise AttributeError(f"module 'uvicorn' has no attribute {name!r}")
        whole = True
        spec.loader.exec_module(package)  # type: ignore[union-attr]  # the real __init__
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["uvicorn"] = package
    try:
        from uvicorn.config import Config
        from uvicorn.server import Server
    except BaseException:
        del sys.modules["uvicorn"]
        raise
    package.Config = Config  # type: ignore[attr-defined]
    package.Server = Server  # type: ignore[attr-defined]
    return package


_uvicorn = _package()
Config = _uvicorn.Config
Server = _uvicorn.Server

__all__ = ["Config", "Server"]

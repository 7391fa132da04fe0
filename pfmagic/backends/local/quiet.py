"""promptflow without its SDK telemetry: no exporter, no threads, no network call.

promptflow 1.18 builds its Application Insights log handler at *import* time
(``_sdk/_utilities/tracing_utils.py`` → ``get_telemetry_logger``) whatever ``telemetry.enabled``
says: the handler only skips ``emit`` when telemetry is off, but its ``AzureMonitorLogExporter``
has already started four threads, one of which (``ConfigurationWorker``) fetches settings
from the Azure Monitor service. In a fork server that makes the process multi-threaded before
every ``fork()`` (fork-unsafe) and calls home from a local endpoint.

The same import also starts ``TraceTelemetryHelper``'s flush thread (a 60 s loop that logs
trace counts to that handler) at module level.

``install()`` (before promptflow is imported) adds an import hook that replaces the handler
factory with a ``NullHandler`` the moment ``promptflow._sdk._telemetry.logging_handler`` has
executed, before anything can call it, and keeps the flush thread from starting while
``tracing_utils`` executes. The local backend always runs promptflow with telemetry off
(``state.ensure_pf_home``), so nothing is lost; the fork server stays single-threaded.

It also keeps two imports a flow never uses out of every instance and the zygote: openai's
aiohttp client (aiohttp is a router dependency; ``OPENAI_AIOHTTP``) and, as the kernel does
(``pfmagic.lazy_imports``), ``rfc3987_syntax``: promptflow's executor imports jsonschema, whose
format checkers import it, and it builds a Lark grammar at import -- 9 of a zygote's 15 s on
2 cores at load 3, for ``iri`` checks no flow runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from types import ModuleType
from typing import Any

TARGET = "promptflow._sdk._telemetry.logging_handler"
TRACING = "promptflow._sdk._utilities.tracing_utils"


def _null_handler() -> logging.Handler:
    return logging.NullHandler()


def _patch(module: ModuleType) -> None:
    module.get_appinsights_log_handler = _null_handler  # type: ignore[attr-defined]
    module.get_promptflow_sdk_log_handler = _null_handler  # type: ignore[attr-defined]


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any):
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ != TRACING:
            self.inner.exec_module(module)
            _patch(module)
            return
        start = threading.Thread.start

        def start_unless_telemetry(thread: threading.Thread) -> None:
            target = getattr(thread, "_target", None)
            if getattr(target, "__name__", "") == "_schedule_flush":
                return  # TraceTelemetryHelper's flush loop: never started
            start(thread)

        threading.Thread.start = start_unless_telemetry  # type: ignore[method-assign]
        try:
            self.inner.exec_module(module)
        finally:
            threading.Thread.start = start  # type: ignore[method-assign]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in (TARGET, TRACING):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


# openai (>= 2) imports its optional aiohttp client at import time whenever aiohttp is
# installed -- it is, for the router (upstream.py) -- costing every instance and the zygote
# ~0.6 s of import and ~15 MB. Unavailable as before aiohttp was a dependency: only openai's
# opt-in DefaultAioHttpClient is affected; aiohttp itself stays importable by a flow.
OPENAI_AIOHTTP = "openai._vendor.httpx_aiohttp"


def install() -> None:
    """Silence promptflow's SDK telemetry in this process (idempotent), keep openai from
    importing aiohttp (``OPENAI_AIOHTTP``) and defer ``rfc3987_syntax``."""
    from pfmagic import lazy_imports

    sys.modules.setdefault(OPENAI_AIOHTTP, None)  # type: ignore[arg-type]  # import: ImportError
    lazy_imports.defer()  # a no-op once imported (or deferred) already
    if TARGET in sys.modules:
        _patch(sys.modules[TARGET])
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())

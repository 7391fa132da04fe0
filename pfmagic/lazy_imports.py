"""Defer what azure.ai.ml costs at import that a local-backend cell never uses.

``defer()``: a third-party import azure.ai.ml pays for without using it.

azure.ai.ml imports ``jsonschema``; where ``jsonschema[format-nongpl]`` is installed (JupyterLab
brings it, through jupyter-events) ``jsonschema._format`` imports ``rfc3987_syntax``, which
builds a Lark grammar at import: ~3.9 s of azure.ai.ml's ~13 s import on a 2-core machine
(``python -X importtime``), for the ``iri`` format checks no pfmagic cell ever runs. Until
something calls it, ``rfc3987_syntax`` is a stand-in whose first use imports the real module,
so every caller gets the real behaviour, only later.

``defer_package_init()``: azure.ai.ml's own ``__init__``, which imports ``MLClient`` and with it
every operations module and REST client (~1.3 s of its ~3.3 s). The cells need only the
loaders, which live in ``azure.ai.ml.entities``; ``%load_ext``'s warm-up (and so the first
cell, which waits for it) now imports just that. The Azure backend's first ``MLClient`` runs
the real ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import pkgutil
import sys
import threading
import types
from typing import Any

DEFERRED = "rfc3987_syntax"


def _real(name: str, stand_in: types.ModuleType) -> types.ModuleType:
    if sys.modules.get(name) is stand_in:
        del sys.modules[name]
    return importlib.import_module(name)


def defer(name: str = DEFERRED) -> bool:
    """Put a stand-in for ``name`` in ``sys.modules`` (True) unless it is imported already or
    not installed. ``is_valid_syntax`` (what jsonschema takes from it) and any other attribute
    load the real module on first use."""
    if name in sys.modules:
        return False
    try:
        if importlib.util.find_spec(name) is None:
            return False
    except (ImportError, ValueError):
        return False
    stand_in = types.ModuleType(name, f"stand-in for {name} (pfmagic.lazy_imports)")

    def is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
        return _real(name, stand_in).is_valid_syntax(*args, **kwargs)

    def __getattr__(attr: str) -> Any:  # noqa: N807 - a module's __getattr__ (PEP 562)
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(_real(name, stand_in), attr)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[name] = stand_in
    return True


# -- azure.ai.ml without its package __init__ (until a name needs it) ----------------------------
PACKAGE = "azure.ai.ml"
# What azure/ai/ml/__init__.py imports first. Its submodules import one another in circles that
# only resolve in that order: imported first, ``azure.ai.ml._schema``, ``.sweep``,
# ``.data_transfer``, ``._internal``, ``._arm_deployments`` fail with "partially initialized".
PRELUDE = _ENTITIES = "azure.ai.ml.entities"
_LOADERS = f"{_ENTITIES}._load_functions"
_DISTRIBUTIONS = f"{_ENTITIES}._job.distribution"
# The names azure/ai/ml/__init__.py takes from entities (and its version), served from there:
# everything a pfmagic cell on the local backend needs. Any other name (MLClient: the other
# ~1.3 s, azure.ai.ml._ml_client and every operations module) runs the real __init__ first.
SERVED: dict[str, str] = {
    "Input": f"{_ENTITIES}._inputs_outputs",
    "Output": f"{_ENTITIES}._inputs_outputs",
    "command": f"{_ENTITIES}._builders.command_func",
    "spark": f"{_ENTITIES}._builders.spark_func",
    "VERSION": "azure.ai.ml._version",
    **dict.fromkeys(
        ("MpiDistribution", "PyTorchDistribution", "RayDistribution", "TensorFlowDistribution"),
        _DISTRIBUTIONS,
    ),
    **dict.fromkeys(
        (
            "load_batch_deployment",
            "load_batch_endpoint",
            "load_capability_host",
            "load_component",
            "load_compute",
            "load_connection",
            "load_data",
            "load_datastore",
            "load_deployment_template",
            "load_environment",
            "load_feature_set",
            "load_feature_store",
            "load_feature_store_entity",
            "load_index",
            "load_job",
            "load_marketplace_subscription",
            "load_model",
            "load_model_package",
            "load_online_deployment",
            "load_online_endpoint",
            "load_registry",
            "load_serverless_endpoint",
            "load_workspace",
            "load_workspace_connection",
        ),
        _LOADERS,
    ),
}


class DeferredInit:
    """The state of a package whose ``__init__`` has not run yet (``defer_package_init``)."""

    def __init__(self, module: types.ModuleType, code: types.CodeType):
        self.module = module
        self.code = code
        self.done = False
        self.prelude_done = False
        self._running: int | None = None  # thread ident running __init__
        self._lock = threading.RLock()
        self._early_handler: logging.Handler | None = None
        self.finder = _PreludeFirstFinder(self)

    def attribute(self, name: str) -> Any:
        """The module's ``__getattr__`` until ``__init__`` has run (then it is the package's)."""
        if not self.done:
            real_name = "VERSION" if name == "__version__" else name
            where = SERVED.get(real_name)
            if where is not None:
                # The prelude first, holding no other module lock: if another thread is
                # importing it, this waits for it (on its lock) instead of racing its imports
                # from the middle, e.g. _load_functions' imports against the prelude's (a
                # deadlock on azure.ai.ml.constants._common when a cell imported
                # azure.ai.ml.constants right after %load_ext).
                importlib.import_module(PRELUDE)
                # a partly imported submodule lacks it: as from a half-initialised package
                value = getattr(importlib.import_module(where), real_name)
                self.module.__dict__.setdefault(name, value)  # next lookups skip this
                return value
            if name.startswith("__") and name != "__all__":  # probes (__wrapped__, ...)
                raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
            self.complete()
        namespace = self.module.__dict__
        if name not in namespace and getattr(namespace.get("__getattr__"), "__self__", 0) is self:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")  # no recursion
        return getattr(self.module, name)

    def complete(self) -> None:
        """Run the package's ``__init__`` in the very module object (once, whichever thread)."""
        with self._lock:
            if self.done:
                return
            if self._running is not None:  # this thread, inside __init__: a circular import
                raise AttributeError(f"partially initialized module {PACKAGE!r}")
            self._running = threading.get_ident()
            try:
                self.prelude_done = True  # __init__ imports in its own order from here
                logger = logging.getLogger(PACKAGE)
                before = list(logger.handlers)
                exec(self.code, self.module.__dict__)  # noqa: S102 - the package's own code
                self.done = True
                if self._early_handler in before:  # keep the one bound at prelude time
                    for added in [h for h in logger.handlers if h not in before]:
                        logger.removeHandler(added)
            finally:
                self._running = None

    def after_prelude(self) -> None:
        """What __init__ does to the "azure.ai.ml" logger (INFO to stderr, no propagation), as
        soon as the prelude is imported, as when __init__ ran at once. That handler stays:
        ``complete`` drops the second one __init__ adds, which would bind whatever
        ``sys.stderr`` is then (pfmagic's capture router, inside an Azure operation)."""
        from azure.ai.ml._utils._logger_utils import initialize_logger_info

        logger = logging.getLogger(PACKAGE)
        before = list(logger.handlers)
        initialize_logger_info(logger, terminator="\n")
        added = [h for h in logger.handlers if h not in before]
        self._early_handler = added[0] if added else None
        self.prelude_done = True


class _PreludeFirstLoader(importlib.abc.Loader):
    """Imports ``PRELUDE`` before the module it loads; runs ``after_prelude`` after ``PRELUDE``.

    The import happens here, not in the finder: ``find_spec`` runs under the global import
    lock, and another thread waiting there while holding a module lock the prelude needs would
    deadlock (module locks detect that; the global lock does not)."""

    def __init__(self, inner: Any, state: DeferredInit):
        self.inner = inner
        self.state = state
        self._meanwhile: tuple[types.ModuleType, Any] | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        # Another thread importing the prelude by now (the warm-up): waiting for it while this
        # thread holds spec.name's module lock deadlocks as soon as the prelude needs spec.name
        # (seen: azure.ai.ml.constants). Load it on its own then, as before any deferral.
        if spec.name != PRELUDE and PRELUDE not in sys.modules:
            importlib.import_module(PRELUDE)
            already = sys.modules.get(spec.name)
            if already is not None:  # the prelude imported it (in this thread): keep that one
                self._meanwhile = (already, already.__spec__)
                return already
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        if self._meanwhile is not None and self._meanwhile[0] is module:
            module.__spec__ = self._meanwhile[1]  # the import system set ours on it
            return
        module.__loader__ = self.inner  # importlib.resources, linecache: the real loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        if module.__name__ == PRELUDE and not self.state.prelude_done:
            self.state.after_prelude()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _PreludeFirstFinder(importlib.abc.MetaPathFinder):
    """Until ``PRELUDE`` is imported, makes the first ``azure.ai.ml.*`` import import it first.

    It stays in ``sys.meta_path`` afterwards, inert: importlib iterates the live list, so taking
    it out could make another thread's import in flight skip the finder after it."""

    def __init__(self, state: DeferredInit):
        self.state = state

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if self.state.prelude_done or not fullname.startswith(PACKAGE + "."):
            return None
        if fullname != PRELUDE and PRELUDE in sys.modules:
            return None  # the prelude is under way: its own imports, in its own order
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None:
                    return spec
                spec.loader = _PreludeFirstLoader(spec.loader, self.state)
                return spec
        return None


def deferred_state() -> DeferredInit | None:
    """The deferral in place (None: azure.ai.ml was imported normally, or not yet at all)."""
    module = sys.modules.get(PACKAGE)
    getter = getattr(module, "__dict__", {}).get("__getattr__")
    state = getattr(getter, "__self__", None)
    return state if isinstance(state, DeferredInit) else None


def defer_package_init() -> bool:
    """Put ``azure.ai.ml`` in ``sys.modules`` without running its ``__init__`` (True).

    Its submodules import as usual, and the names ``SERVED`` lists come from them; any other
    name (``MLClient``, ``__all__`` for ``import *``) runs the real ``__init__`` once, into the
    same module object, so every name keeps its identity. A no-op (False) when azure.ai.ml or
    one of its submodules is imported already, or it is not installed."""
    if any(name == PACKAGE or name.startswith(PACKAGE + ".") for name in list(sys.modules)):
        return False
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return False
    if spec is None or spec.submodule_search_locations is None:
        return False
    code = spec.loader.get_code(PACKAGE) if hasattr(spec.loader, "get_code") else None
    if code is None:
        return False
    module = importlib.util.module_from_spec(spec)
    # the first line of azure/ai/ml/__init__.py (run again by the real __init__: idempotent)
    module.__path__ = pkgutil.extend_path(module.__path__, PACKAGE)
    state = DeferredInit(module, code)
    module.__getattr__ = state.attribute  # type: ignore[method-assign]
    sys.modules[PACKAGE] = module
    parent, _, child = PACKAGE.rpartition(".")
    setattr(sys.modules[parent], child, module)
    sys.meta_path.insert(0, state.finder)
    return True

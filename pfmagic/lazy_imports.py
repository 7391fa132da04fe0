"""Defer a third-party import that azure.ai.ml pays for without using it.

azure.ai.ml imports ``jsonschema``; where ``jsonschema[format-nongpl]`` is installed (JupyterLab
brings it, through jupyter-events) ``jsonschema._format`` imports ``rfc3987_syntax``, which
builds a Lark grammar at import: ~3.9 s of azure.ai.ml's ~13 s import on a 2-core machine
(``python -X importtime``), for the ``iri`` format checks no pfmagic cell ever runs. Until
something calls it, ``rfc3987_syntax`` is a stand-in whose first use imports the real module,
so every caller gets the real behaviour, only later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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

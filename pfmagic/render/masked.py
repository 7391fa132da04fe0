"""Stored azure-ai-ml entities that never display a secret, yet stay the real objects.

``%%pf_deployment dep`` stores the azure-ai-ml entity itself (``MLClient`` and our backends
take it as is). azure-ai-ml's ``repr`` prints every field and its ``str`` the YAML, so typing
``dep`` showed ``environment_variables`` (``OPENAI_API_KEY``, ``Password=`` in connection
strings) and the notebook saved it. ``masked(entity)`` swaps the entity's class for a direct
subclass (same ``__name__``, so ``isinstance`` and name checks are unchanged) whose display
faces -- ``repr``, ``str``, IPython's text/plain (``_repr_pretty_``) and ``_repr_html_`` --
mask secrets twice: structurally (``mask.mask_mapping`` on every mapping, secret-looking
strings anywhere) and then by scrubbing every secret value found in the object from the text
(a secret in a nested object's own ``repr`` is caught too). Attribute access is untouched:
``dep.environment_variables["OPENAI_API_KEY"]`` is still the real key.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from pfmagic.render.mask import MASK, is_reference, is_secret_name, is_secret_value

__all__ = ["masked", "scrub", "secret_values"]

_classes: dict[type, type] = {}
_MAX_DEPTH = 8


def secret_values(obj: Any, extra: tuple[str, ...] = ()) -> set[str]:
    """Every secret string held by ``obj``: values under secret-looking names (at any depth,
    through dicts, lists and object attributes) and secret-looking values under any name."""
    found: set[str] = {s for s in extra if isinstance(s, str) and len(s) >= 4}
    seen: set[int] = set()

    def walk(value: Any, name: str, depth: int) -> None:
        if depth > _MAX_DEPTH or id(value) in seen:
            return
        if isinstance(value, str):
            if is_reference(value) or len(value) < 4:
                return
            if is_secret_value(value) or (name and is_secret_name(name)):
                found.add(value)
            return
        if isinstance(value, (int, float, bool, bytes)) or value is None:
            return
        seen.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, str(key), depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item, name, depth + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            for key, item in vars(value).items():
                walk(item, key.strip("_"), depth + 1)

    walk(obj, "", 0)
    return found


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with every occurrence of each secret (also as ``repr`` / HTML escapes it)
    replaced by the mask. Longest first, so a secret inside another leaves no tail."""
    for secret in sorted(secrets, key=len, reverse=True):
        for form in {secret, repr(secret)[1:-1], html.escape(secret)}:
            if form:
                text = text.replace(form, MASK)
    return text


def _mask_deep(value: Any, name: str = "", depth: int = 0) -> Any:
    """A copy of plain data (dicts, lists, strings) with secrets masked; objects as is."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        if is_reference(value):
            return value
        return MASK if is_secret_value(value) or (name and is_secret_name(name)) else value
    if isinstance(value, Mapping):
        return {k: _mask_deep(v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_deep(v, name, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask_deep(v, name, depth + 1) for v in value)
    return value


class _MaskedFaces:
    """Display faces copied into each masked subclass (a mixin base would change the layout
    and forbid the ``__class__`` swap)."""

    def __repr__(self) -> str:
        fields = {k.strip("_"): _mask_deep(v, k.strip("_")) for k, v in vars(self).items()}
        return scrub(f"{type(self).__name__}({fields})", secret_values(self))

    def __str__(self) -> str:
        try:
            from azure.ai.ml._telemetry.logging_handler import in_jupyter_notebook
            from azure.ai.ml._utils.utils import dump_yaml

            as_yaml = getattr(self, "_print_as_yaml", False) or in_jupyter_notebook()
            if as_yaml and hasattr(self, "_to_dict"):
                text = str(dump_yaml(_mask_deep(self._to_dict()), default_flow_style=False))
                return scrub(text, secret_values(self))
        except Exception:  # an entity azure-ai-ml cannot dump: fall back to the repr
            return repr(self)
        return repr(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # pickle / deepcopy rebuild the azure-ai-ml class (importable anywhere), masked again
        return (_restore, (self._pf_base, dict(vars(self))))


def _restore(base: type, state: dict[str, Any]) -> Any:
    obj = base.__new__(base)
    obj.__dict__.update(state)
    return masked(obj)


def _masked_class(base: type) -> type:
    cls = _classes.get(base)
    if cls is None:
        methods = {
            k: v
            for k, v in vars(_MaskedFaces).items()
            if k in ("__repr__", "__str__", "_repr_pretty_", "_repr_html_", "__reduce_ex__")
        }
        attrs = {**methods, "_pf_masked": True, "_pf_base": base, "__module__": __name__}
        cls = type(base.__name__, (base,), attrs)  # same name: name checks stay true
        cls.__qualname__ = f"Masked{base.__name__}"
        _classes[base] = cls
    return cls


def masked(entity: Any) -> Any:
    """``entity`` itself with masked display faces (its class becomes a subclass); plain
    values, pfmagic's own objects and already-masked entities are returned unchanged."""
    base = type(entity)
    if getattr(base, "_pf_masked", False) or not base.__module__.startswith("azure.ai.ml"):
        return entity
    try:
        entity.__class__ = _masked_class(base)
    except TypeError:  # a layout that forbids the swap (slots): leave it as it was
        return entity
    return entity

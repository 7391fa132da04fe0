"""Endpoint keys and tokens that never show their secret.

``keys = %pf_keys my-endpoint`` returns azure-ai-ml's own ``EndpointAuthKeys`` /
``EndpointAuthToken`` (``keys.primary_key`` works as usual) as a subclass whose repr, str,
pretty-print and HTML show ``****`` instead of the secret. Imported lazily by the magics
(this module imports azure.ai.ml).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from azure.ai.ml.entities import EndpointAuthKeys, EndpointAuthToken

from pfmagic.render.mask import mask_secret

_SECRET_FIELDS = ("primary_key", "secondary_key", "access_token")
_TIMES = ("expiry_time_utc", "refresh_after_time_utc")


def _fields(obj: Any) -> list[tuple[str, str]]:
    rows = []
    for name, value in vars(obj).items():
        if name.startswith("_"):
            continue
        if name in _SECRET_FIELDS:
            shown = mask_secret(value)
        elif name in _TIMES and value:
            shown = datetime.fromtimestamp(float(value), tz=timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
        else:
            shown = str(value)
        rows.append((name, shown))
    return rows


class _Masked:
    """Display methods shared by both classes (the secret stays readable as an attribute)."""

    _base = "EndpointAuthKeys"

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}='{v}'" for k, v in _fields(self))
        return f"{self._base}({inner})"

    def __str__(self) -> str:
        rows = _fields(self)
        width = max((len(k) for k, _ in rows), default=0)
        return "\n".join([self._base] + [f"  {k.ljust(width)}  {v}" for k, v in rows])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td><code>{html.escape(v)}</code></td></tr>"
            for k, v in _fields(self)
        )
        return f"<b>{self._base}</b><table>{rows}</table>"


class MaskedAuthKeys(_Masked, EndpointAuthKeys):
    """``EndpointAuthKeys`` displayed with ``****`` for both keys."""

    _base = "EndpointAuthKeys"


class MaskedAuthToken(_Masked, EndpointAuthToken):
    """``EndpointAuthToken`` displayed with ``****`` for the token."""

    _base = "EndpointAuthToken"


def masked(keys: Any) -> Any:
    """A masked copy of ``EndpointAuthKeys`` / ``EndpointAuthToken`` (same attribute values)."""
    if isinstance(keys, _Masked):
        return keys
    cls = MaskedAuthToken if isinstance(keys, EndpointAuthToken) else MaskedAuthKeys
    return cls(**{k: v for k, v in vars(keys).items() if not k.startswith("_")})

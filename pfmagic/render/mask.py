"""Hide secrets in everything pfmagic prints.

Small API, shared by every display object:

- ``mask_secret(value)``: the printable form of one secret, ``"****"`` (nothing of the value is
  shown, not even its length).
- ``is_secret_name(name)``: does a variable / field name suggest a secret (KEY, SECRET, TOKEN,
  PASSWORD, CONNECTION_STRING, …)?
- ``is_secret_value(value)``: does a value look like a secret whatever its name (``sk-…`` API
  keys, storage / App Insights connection strings, JWTs)?
- ``mask_mapping(mapping)``: a copy of an env-var / connection dict with secret-looking entries
  masked; references (``${env:VAR}``, ``${{azureml://…}}``) are kept because they hold no secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MASK",
    "is_reference",
    "is_secret_name",
    "is_secret_value",
    "mask_mapping",
    "mask_secret",
]

MASK = "****"

# Name parts that mark a secret. Matched on word boundaries of upper-cased, "_"-split names so
# MONKEY or KEYBOARD_LAYOUT do not count but API_KEY, OPENAI_KEY, SAS_TOKEN do.
_SECRET_PARTS = (
    "KEY",
    "KEYS",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PWD",
    "CREDENTIAL",
    "CREDENTIALS",
    "SAS",
    "APIKEY",
)
_SECRET_PHRASES = ("CONNECTION_STRING", "CONNECTIONSTRING", "CONN_STR", "PRIVATE_KEY")
# Values that are secrets whatever their name.
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{8,}"  # OpenAI-style keys
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWT
    r"|gh[pousr]_[A-Za-z0-9]{20,})$"  # GitHub tokens
    r"|(AccountKey|SharedAccessKey|SharedAccessSignature|InstrumentationKey|Password|pwd)="
    r"|://[^/\s:@]+:[^/\s@]+@",  # credentials in a URL (postgres://user:pass@host)
    re.IGNORECASE,
)
_REFERENCE = re.compile(r"^\s*(\$\{env:[A-Za-z_][A-Za-z0-9_]*\}|\$\{\{.*\}\})\s*$")


def is_reference(value: Any) -> bool:
    """``${env:VAR}`` or ``${{azureml://connections/…}}``: points at a secret, is not one."""
    return isinstance(value, str) and bool(_REFERENCE.match(value))


def is_secret_name(name: str) -> bool:
    """True when a field or env-var name suggests its value is a secret."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # apiKey → api_Key
    upper = re.sub(r"[^A-Z0-9]+", "_", snake.upper())
    if any(phrase in upper for phrase in _SECRET_PHRASES):
        return True
    return any(part in _SECRET_PARTS for part in upper.split("_"))


def is_secret_value(value: Any) -> bool:
    """True when a value looks like a secret on its own (``sk-…``, connection strings, JWT)."""
    return isinstance(value, str) and bool(_SECRET_VALUE.search(value.strip()))


def mask_secret(value: Any) -> str:
    """The printable form of a secret: ``"****"`` (empty values stay visibly empty)."""
    if value is None or value == "":
        return "''"
    return MASK


def mask_mapping(
    mapping: Mapping[str, Any] | None, secret_keys: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """Copy of ``mapping`` with secret-looking entries masked (names in ``secret_keys`` too)."""
    out: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        secret = key in secret_keys or is_secret_name(str(key)) or is_secret_value(value)
        out[key] = mask_secret(value) if secret and not is_reference(value) else value
    return out

"""Endpoint credentials: keys and expiring tokens, checked in constant time.

* ``auth_mode: key`` -- two random keys (``secrets``, a CSPRNG); either one is accepted.
* ``auth_mode: aml_token`` -- ``pfm1.<payload>.<mac>`` where payload is base64url JSON
  ``{"ep": name, "exp": unix time}`` and mac an HMAC-SHA256 with the endpoint's signing key.
  The kernel mints tokens from the state file; the router verifies them without a database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

TOKEN_PREFIX = "pfm1"


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(signing_key: str, endpoint: str, lifetime: float) -> tuple[str, float]:
    """A token for ``endpoint`` valid ``lifetime`` seconds; returns (token, expiry unix time)."""
    expiry = time.time() + lifetime
    payload = _b64(json.dumps({"ep": endpoint, "exp": expiry}).encode())
    mac = hmac.new(signing_key.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}.{payload}.{_b64(mac)}", expiry


def check_token(signing_key: str, endpoint: str, token: str) -> str | None:
    """None when ``token`` is valid now, else why not (for the 401 message)."""
    try:
        prefix, payload, mac = token.split(".")
        if prefix != TOKEN_PREFIX:
            return "invalid token"
        expected = hmac.new(signing_key.encode(), payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return "invalid token"
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return "invalid token"
    if claims.get("ep") != endpoint:
        return "token is for another endpoint"
    if float(claims.get("exp", 0)) <= time.time():
        return "token expired"
    return None


def check_key(candidates: list[str], presented: str) -> bool:
    """True when ``presented`` equals one of ``candidates`` (all compared: constant time)."""
    ok = False
    for key in candidates:
        if key and hmac.compare_digest(key.encode(), presented.encode()):
            ok = True
    return ok


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None

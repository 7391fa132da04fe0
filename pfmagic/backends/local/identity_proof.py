"""The proof a router gives of knowing its endpoint's admin secret (``identity.py``).

Its own module: the router computes it, and must not import the kernel's verifying client
(httpx, httpcore) to do so.
"""

from __future__ import annotations

import hashlib
import hmac

IDENTITY_PATH = "/_pfmagic/identity"


def proof(secret: str, endpoint: str, port: int, nonce: str) -> str:
    """``HMAC-SHA256(secret, "<endpoint>|<port>|<nonce>")``, hex."""
    message = f"{endpoint}|{port}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

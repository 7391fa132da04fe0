"""A throwaway certificate authority for the test ARM servers (tests/arm_server.py, replay.py).

One CA per test session (``trustme``), and one leaf certificate it signs for ``127.0.0.1`` and
``localhost``: the servers speak real TLS, and the client trusts the CA the way a user behind a
TLS-inspecting proxy does, with a CA bundle file (``REQUESTS_CA_BUNDLE`` or azure-core's
``connection_verify``). Nothing turns verification off: a client without the bundle fails the
handshake (tests/test_azure_tls.py).
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
from functools import lru_cache
from pathlib import Path

HOST = "127.0.0.1"  # the servers bind here; the leaf certificate names it (and localhost)


@lru_cache(maxsize=1)
def _authority() -> tuple[object, Path]:
    import trustme

    ca = trustme.CA(organization_name="pfmagic tests")
    folder = Path(tempfile.mkdtemp(prefix="pfmagic-test-ca-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    bundle = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ca, bundle


def ca_bundle() -> str:
    """Path of a PEM file holding only this session's test CA."""
    return str(_authority()[1])


@lru_cache(maxsize=1)
def server_context() -> ssl.SSLContext:
    """A server-side context with the leaf certificate for 127.0.0.1 / localhost."""
    ca, _ = _authority()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(ctx)  # type: ignore[attr-defined]
    return ctx

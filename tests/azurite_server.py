"""Azurite, the real Azure Storage emulator (npm package, tests/azurite/package.json).

``.ci/run`` starts one and exports ``PFMAGIC_TEST_AZURITE`` (its blob URL); otherwise the
fixture starts its own on a free port and stops it after the session. Its accounts are the
storage accounts of the recorded workspaces (tests/recordings/SOURCES.md), so a recorded
datastore GET + listSecrets leads azure-ai-ml's real upload code to a real blob service.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent / "azurite"
BIN = HERE / "node_modules" / ".bin" / "azurite-blob"
# account:key of the recorded datastore (the recording's own key, base64 of "this is fake key")
RECORDED_ACCOUNT = "saevqdskf66m6am"
RECORDED_KEY = "dGhpcyBpcyBmYWtlIGtleQ=="
ACCOUNTS = f"{RECORDED_ACCOUNT}:{RECORDED_KEY}"


@dataclass
class Azurite:
    url: str  # http://127.0.0.1:PORT (IP-style: the account is the first path segment)

    def account_url(self, account: str = RECORDED_ACCOUNT) -> str:
        return f"{self.url}/{account}"

    def service(self, account: str = RECORDED_ACCOUNT, key: str = RECORDED_KEY):  # noqa: ANN201
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.account_url(account), credential={"account_name": account, "account_key": key}
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen[bytes] | None, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Azurite exited ({proc.returncode}): {log.read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Azurite did not listen on {port} within {seconds:.0f} s")


@contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    given = os.environ.get("PFMAGIC_TEST_AZURITE")
    if given:
        yield Azurite(given.rstrip("/"))
        return
    if not BIN.exists():
        raise RuntimeError(
            f"Azurite is not installed ({BIN} missing): run `make azurite-deps` "
            "(npm ci in tests/azurite)"
        )
    port = _free_port()
    log = workdir / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
            + ["--location", str(workdir / "data"), "--skipApiVersionCheck", "--silent"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, AZURITE_ACCOUNTS=ACCOUNTS),
        )
    try:
        _wait(port, proc, log, 60)
        yield Azurite(f"http://127.0.0.1:{port}")
    finally:
        proc.kill()  # its data is a temporary folder: no graceful shutdown needed
        proc.wait(10)

"""Where the local backend keeps its state, and how files there are written.

Every JSON state file is written atomically (temp file in the same folder, fsync, ``os.replace``)
with mode 0600, so a crash mid-write leaves the old file intact and secrets stay user-only.
Standard library only: the kernel, the router and the instances all import this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def default_home() -> Path:
    return Path(os.environ.get("PFMAGIC_HOME") or Path.home() / ".pfmagic")


def ensure_dir(path: Path) -> Path:
    # mkdir(parents=True) gives only the leaf the mode: create each missing level user-only.
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR)
    return path


STALE_TMP_SECONDS = 60.0  # a writer that left its temp file this long ago was killed mid-write


def _drop_stale_temps(path: Path) -> None:
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON, readable only by the user."""
    ensure_dir(path.parent)
    _drop_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # the rename itself must reach the disk too
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on ``path``: serialises writers across processes."""
    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def lock_held(path: Path) -> bool:
    """True while another process holds ``flock`` on ``path`` (checked without waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return False


class Home:
    """Paths under the pfmagic home (``PFMAGIC_HOME``, default ``~/.pfmagic``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root).expanduser().resolve() if root else default_home().resolve()

    def create(self) -> Home:
        """Make the root user-only: everything below inherits that protection."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, PRIVATE_DIR)
        return self

    # models/<name>/<version>/{flow/, model.json}
    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, name: str, version: str) -> Path:
        return self.models / name / str(version)

    # endpoints/<ep>/{endpoint.json, run.json, deployments/<dep>/deployment.json}
    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints"

    def endpoint_dir(self, endpoint: str) -> Path:
        return self.endpoints / endpoint

    def endpoint_file(self, endpoint: str) -> Path:
        return self.endpoint_dir(endpoint) / "endpoint.json"

    def run_file(self, endpoint: str) -> Path:
        """Router process id and port (written by the router when it listens)."""
        return self.endpoint_dir(endpoint) / "run.json"

    def lock_file(self, endpoint: str) -> Path:
        """Held while starting the endpoint's router."""
        return self.endpoint_dir(endpoint) / ".router.lock"

    def router_lock(self, endpoint: str) -> Path:
        """Held by the endpoint's running router for its whole life (one router, ever)."""
        return self.endpoint_dir(endpoint) / ".router.running.lock"

    def state_lock(self, endpoint: str) -> Path:
        """Held while changing the endpoint's or its deployments' state files."""
        return self.endpoint_dir(endpoint) / ".state.lock"

    def deployments(self, endpoint: str) -> Path:
        return self.endpoint_dir(endpoint) / "deployments"

    def deployment_dir(self, endpoint: str, deployment: str) -> Path:
        return self.deployments(endpoint) / deployment

    def deployment_file(self, endpoint: str, deployment: str) -> Path:
        return self.deployment_dir(endpoint, deployment) / "deployment.json"

    # logs/<ep>/router.log, logs/<ep>/<dep>/{inference-server,storage-initializer}.log
    def log_dir(self, endpoint: str, deployment: str | None = None) -> Path:
        base = self.root / "logs" / endpoint
        return base / deployment if deployment else base

    def router_log(self, endpoint: str) -> Path:
        return self.log_dir(endpoint) / "router.log"

    def deployment_log(
        self, endpoint: str, deployment: str, container: str = "inference-server"
    ) -> Path:
        return self.log_dir(endpoint, deployment) / f"{container}.log"

    def socket_dir(self, endpoint: str) -> Path:
        """An endpoint's instance UNIX sockets (0700 folders: only the user can connect);
        short on purpose, AF_UNIX paths are limited to 107 bytes."""
        return self.root / "sock" / endpoint

    @property
    def connections_file(self) -> Path:
        return self.root / "connections.json"

    @property
    def promptflow_home(self) -> Path:
        """``PF_HOME_DIRECTORY`` of every promptflow child: keeps ~/.promptflow untouched."""
        return self.root / "promptflow"

    def endpoint_names(self) -> list[str]:
        if not self.endpoints.is_dir():
            return []
        return sorted(p.name for p in self.endpoints.iterdir() if (p / "endpoint.json").is_file())

    def deployment_names(self, endpoint: str) -> list[str]:
        base = self.deployments(endpoint)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "deployment.json").is_file())


def ensure_pf_home(home: Home) -> Path:
    """promptflow's home for the children, with telemetry off (it is on by default)."""
    pf_home = ensure_dir(home.promptflow_home)
    config = pf_home / "pf.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return pf_home

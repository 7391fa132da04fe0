"""Starting and stopping the backend's child processes from the kernel."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pfmagic
from pfmagic.backends.local.state import Home


def child_env(home: Home) -> dict[str, str]:
    """Environment of a router or staging child: this pfmagic on the path, promptflow's home
    under the pfmagic home, and no proxy for loopback traffic."""
    env = dict(os.environ)
    root = str(Path(pfmagic.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["PF_HOME_DIRECTORY"] = str(home.promptflow_home)
    env["PFMAGIC_HOME"] = str(home.root)
    no_proxy = env.get("NO_PROXY", "")
    env["NO_PROXY"] = ",".join(p for p in (no_proxy, "127.0.0.1", "localhost") if p)
    env["PYTHONUNBUFFERED"] = "1"
    for leaked in ("PROMPTFLOW_ENCODED_CONNECTIONS", "PFMAGIC_CONNECTIONS_FILE"):
        env.pop(leaked, None)
    return env


def set_title(title: str) -> None:
    """Name this process in ``ps``/``top`` (endpoint, deployment, instance)."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(title)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (our own exited child not yet reaped) is not alive
    with contextlib.suppress(OSError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def is_router(pid: int, endpoint: str) -> bool:
    """Guard before signalling a stored pid: it must still be that endpoint's router (its
    arguments, or its process title, name the module and the endpoint)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return False
    return b"pfmagic.backends.local.server" in cmd and endpoint.encode() in cmd


def port_holder(port: int) -> tuple[int | None, str | None]:
    """(pid, user name) of the process listening on loopback TCP ``port``, as far as /proc
    tells: the user always (``/proc/net/tcp``), the pid only for processes we may inspect."""
    inode = uid = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    uid, inode = int(fields[7]), fields[9]
                    break
        if inode:
            break
    if inode is None:
        return None, None
    user: str | None = str(uid)
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        user = pwd.getpwuid(int(uid or 0)).pw_name
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return int(proc.name), user
    return None, user


def terminate(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

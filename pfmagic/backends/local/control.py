"""Kernel side of one endpoint's router: start it when it is not running, call its admin API.

The router is started detached (``start_new_session``) so endpoints outlive a kernel restart;
a router that died or was killed is started again on the next use, on the same port and with
the same keys (both come from ``endpoint.json``). A per-endpoint file lock keeps two kernels
from starting two routers, and the lock the router holds while it lives
(``Home.router_lock``) keeps a slow or stopped router from getting a twin. Every admin call
goes over a connection that first proved it reaches this endpoint's router (``identity.py``):
the admin token never goes to a process that squats the port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx

from pfmagic.backends.local.identity import NotRouter, router_client
from pfmagic.backends.local.logs import open_append, tail
from pfmagic.backends.local.procs import child_env, is_router, pid_alive, terminate
from pfmagic.backends.local.state import Home, lock_held, locked, read_json, write_json
from pfmagic.errors import BackendError, NotFound

ADMIN_HEADER = "X-Pfmagic-Admin"
EXIT_PORT_BUSY = 3
EXIT_LOCKED = 4
STATUS_TIMEOUT = 10.0  # a router that does not answer its status in this time is stuck
START_TIMEOUT = 60.0

# routers started by this process, kept so their exit status is collected (no zombies)
_children: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RouterControl:
    def __init__(self, home: Home, endpoint: str):
        self.home = home
        self.endpoint = endpoint

    def config(self) -> dict[str, Any]:
        data = read_json(self.home.endpoint_file(self.endpoint))
        if data is None:
            raise NotFound(f"endpoint '{self.endpoint}' not found")
        return data

    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config()['port']}"

    def admin(self, method: str, action: str, *, timeout: float = 10.0) -> dict[str, Any] | None:
        """The admin API's JSON reply, or None when the router does not answer."""
        cfg = self.config()
        try:
            with router_client(self.endpoint, cfg["admin_token"], timeout=timeout) as client:
                resp = client.request(
                    method,
                    f"http://127.0.0.1:{cfg['port']}/_pfmagic/{action}",
                    headers={ADMIN_HEADER: cfg["admin_token"]},
                )
        except (httpx.HTTPError, NotRouter):
            return None
        if resp.status_code != 200:
            return None
        data: dict[str, Any] = resp.json()
        return data

    def running_pid(self) -> int | None:
        """The router's pid while one holds the endpoint's router lock (even if stopped)."""
        if not lock_held(self.home.router_lock(self.endpoint)):
            return None
        run = read_json(self.home.run_file(self.endpoint), {}) or {}
        pid = run.get("pid")
        return pid if pid and pid_alive(pid) and is_router(pid, self.endpoint) else None

    def status(self) -> dict[str, Any] | None:
        return self.admin("GET", "status", timeout=STATUS_TIMEOUT) if self.running_pid() else None

    def _stuck(self) -> BackendError:
        run = read_json(self.home.run_file(self.endpoint), {}) or {}
        pid = run.get("pid", "?")
        return BackendError(
            f"endpoint '{self.endpoint}': its router (pid {pid}) is running but does not "
            f"answer (stopped or overloaded); a second router is not started",
            hint=f"kill -CONT {pid} if it was stopped, or %pf_stop {self.endpoint}",
        )

    def ensure(self) -> dict[str, Any]:
        """Status of the running router, starting it first if needed (a crashed or killed
        router is started again here, by the kernel's next call; the lock makes it once)."""
        if self.config().get("stopped"):  # NotFound for an unknown endpoint: never start one
            raise BackendError(
                f"endpoint '{self.endpoint}' is stopped", hint=f"%pf_start {self.endpoint}"
            )
        status = self.status()
        if status is not None:
            return status
        with locked(self.home.lock_file(self.endpoint)):
            status = self.status()  # another kernel may have started it meanwhile
            if status is not None:
                return status
            if lock_held(self.home.router_lock(self.endpoint)):
                raise self._stuck()  # alive (it holds its lock) but silent: never a twin
            return self._start()

    def _start(self) -> dict[str, Any]:
        log = self.home.router_log(self.endpoint)
        for _attempt in range(3):
            log_fd = open_append(log)
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "pfmagic.backends.local.server",
                        "--home",
                        str(self.home.root),
                        "--endpoint",
                        self.endpoint,
                    ],
                    env=child_env(self.home),
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    cwd=self.home.root,
                )  # not the notebook's folder: it may go away
            finally:
                os.close(log_fd)
            _children[proc.pid] = proc
            end = time.monotonic() + START_TIMEOUT
            while time.monotonic() < end:
                code = proc.poll()
                if code is not None:
                    break
                run = read_json(self.home.run_file(self.endpoint), {}) or {}
                if run.get("pid") == proc.pid:
                    status = self.admin("GET", "status", timeout=2.0)
                    if status is not None:
                        return status
                time.sleep(0.05)
            else:
                proc.kill()
                raise BackendError(
                    f"endpoint '{self.endpoint}': router did not start in {START_TIMEOUT:.0f} s",
                    hint="; ".join(tail(log, 3)),
                )
            if proc.returncode == EXIT_LOCKED:
                raise self._stuck()
            if proc.returncode == EXIT_PORT_BUSY:
                # the stored port was taken by someone else: move (scoring_uri changes)
                with locked(self.home.state_lock(self.endpoint)):
                    cfg = self.config()
                    cfg["port"] = free_port()
                    write_json(self.home.endpoint_file(self.endpoint), cfg)
                continue
            raise BackendError(
                f"endpoint '{self.endpoint}': router exited with code {proc.returncode}",
                hint="; ".join(tail(log, 3)),
            )
        raise BackendError(f"endpoint '{self.endpoint}': no free port for the router")

    def reconcile(self) -> dict[str, Any]:
        self.ensure()
        status = self.admin("POST", "reconcile", timeout=30.0)
        return status if status is not None else self.ensure()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the router (it stops its instances first)."""
        pid = self.running_pid()
        if pid is None:
            return
        self.admin("POST", "shutdown")
        end = time.monotonic() + timeout
        while time.monotonic() < end and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid) and is_router(pid, self.endpoint):
            terminate(pid)
        proc = _children.pop(pid, None)
        if proc is not None:
            proc.poll()


def shutdown_all(home: Home | str | None = None) -> None:
    """Stop every router (and so every instance) under a pfmagic home (tests, uninstall)."""
    home = home if isinstance(home, Home) else Home(home)
    for name in home.endpoint_names():
        RouterControl(home, name).stop()

"""Router side of the zygote (``zygote.py``): start it, ask it for instances, learn of exits.

``ForkedProcess`` offers the part of ``subprocess.Popen`` the supervisor uses (``pid``,
``poll``, ``send_signal``, ``kill``, ``wait``), so forked and plain instances are handled alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

SPAWN_TIMEOUT = float(os.environ.get("PFMAGIC_STARTUP_TIMEOUT", "180"))
LOST = -1  # exit code reported for instances of a zygote that died


class ForkedProcess:
    def __init__(self, zygote: Zygote, pid: int):
        self._zygote = zygote
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        return self._zygote.exit_codes.get(self.pid)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that may have been reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.poll()


class Zygote:
    def __init__(self, env: dict[str, str], log_fd: int, python: str | None = None):
        self.python = python or sys.executable  # the deployment environment's interpreter
        self.exit_codes: dict[int, int] = {}
        self.ready = threading.Event()
        self.dead = False
        self._pids: set[int] = set()
        self._pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = {}
        self._lock = threading.Lock()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "pfmagic.backends.local.zygote",
                    "--sock",
                    str(theirs.fileno()),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def _read(self) -> None:
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                msg = json.loads(data)
                op = msg.get("op")
                if op == "ready":
                    self.ready.set()
                elif op == "spawned":
                    with self._lock:
                        loop, fut = self._pending.pop(msg["id"], (None, None))
                        self._pids.add(msg["pid"])
                    if loop is not None and fut is not None:
                        loop.call_soon_threadsafe(_resolve, fut, msg["pid"])
                elif op == "exited":
                    self.exit_codes[msg["pid"]] = int(msg["code"])
        except OSError:
            pass
        finally:
            self.dead = True
            with self._lock:
                for pid in self._pids:
                    self.exit_codes.setdefault(pid, LOST)
                pending, self._pending = self._pending, {}
            for loop, fut in pending.values():
                loop.call_soon_threadsafe(_fail, fut)

    async def spawn(
        self, name: str, env: dict[str, str], cwd: str, listen_fd: int, log_fd: int
    ) -> ForkedProcess:
        if self.dead:
            raise ConnectionError("zygote is gone")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        request = str(uuid.uuid4())
        with self._lock:
            self._pending[request] = (loop, fut)
        payload = json.dumps({"id": request, "name": name, "env": env, "cwd": cwd}).encode()
        socket.send_fds(self._sock, [payload], [listen_fd, log_fd])
        pid = await asyncio.wait_for(fut, SPAWN_TIMEOUT)
        return ForkedProcess(self, pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        # A zygote still importing promptflow only sees the closed socket once the import is
        # done (seconds on a busy machine); SIGTERM stops it at once, stopping its instances.
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _resolve(fut: asyncio.Future[int], pid: int) -> None:
    if not fut.done():
        fut.set_result(pid)


def _fail(fut: asyncio.Future[int]) -> None:
    if not fut.done():
        fut.set_exception(ConnectionError("zygote exited"))

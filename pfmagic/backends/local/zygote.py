"""A pre-imported process that forks deployment instances (``python -m ...zygote``).

Importing promptflow's serving stack costs 2-4 s of CPU per process (much more on a busy
machine); that was most of an instance's start time. The router starts one zygote that
imports it once; every instance is then a ``fork()`` that only builds the flow's app
(~0.3 s) and shares the imported code pages with its siblings (copy-on-write).

Protocol over an ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair (one message per datagram):
router -> zygote ``{"id", "env", "cwd"}`` with two fds (listening socket, log file);
zygote -> router ``{"op": "ready"}``, ``{"op": "spawned", "id", "pid"}``,
``{"op": "exited", "pid", "code"}`` (code as ``subprocess``: negative = signal),
``{"op": "refused", "id", "reason"}`` when it is not single-threaded (the router then starts
a plain interpreter). The zygote stays single-threaded (fork-safe: ``quiet.py`` keeps
promptflow's telemetry threads from starting) and exits, killing its instances, when the
router goes away (socket EOF or re-parenting). If it crashes its instances keep serving: the
router is their child subreaper and adopts them (``zygote_client.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
from typing import Any

MAX_MESSAGE = 1 << 20
_children: set[int] = set()  # forked instances still running


def _preload() -> None:
    """What every instance imports anyway: promptflow's FastAPI serving app and uvicorn."""
    import uvicorn  # noqa: F401
    from promptflow.core._connection import _Connection  # noqa: F401
    from promptflow.core._serving.app import create_app  # noqa: F401
    from promptflow.core._serving.extension import azureml_extension  # noqa: F401
    from promptflow.core._serving.utils import encode_dict  # noqa: F401
    from promptflow.core._serving.v2 import app  # noqa: F401

    # imported later by every instance: by create_app (promptflow instruments the app with
    # OpenTelemetry), by starlette on the first request (anyio's asyncio backend)
    with contextlib.suppress(ImportError):
        import anyio._backends._asyncio  # noqa: F401
        import asgiref.sync  # noqa: F401
        import opentelemetry.instrumentation.fastapi  # noqa: F401
        import promptflow._sdk._connection_provider  # noqa: F401
    with contextlib.suppress(ImportError):  # LLM flows: the tools package and its client
        import openai  # noqa: F401
        import openai.resources.chat  # noqa: F401 - promptflow's tracing patches it, 1st run
        import promptflow.tools.common  # noqa: F401


def _child(req: dict[str, Any], fds: list[int], sock: socket.socket) -> None:
    """In the forked instance: become the instance process and never return."""
    code = 1
    try:
        sock.close()
        listen_fd, log_fd = fds
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        env = dict(req["env"])
        # The instance outlives this fork server: it watches the router (its parent once the
        # router, a child subreaper, adopts it after a zygote crash) and accepts us meanwhile.
        env["PFMAGIC_ZYGOTE_PID"] = str(os.getppid())
        os.environ.clear()
        os.environ.update(env)
        os.chdir(req["cwd"])
        from pfmagic.backends.local import instance

        code = instance.main(["--fd", str(listen_fd), "--id", req["name"]])
    except BaseException as exc:  # report, then leave without running the zygote's code
        with contextlib.suppress(Exception):
            print(
                f"[pfmagic] instance {req.get('name')} failed to start: "
                f"{type(exc).__name__}: {exc}",
                flush=True,
            )
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


def _exit_now(*_args: Any) -> None:
    """SIGTERM or the router gone: stop the instances and leave without the interpreter's
    teardown, which takes 1-2 s once promptflow is imported (and SIGTERM during the preload
    would otherwise wait for the whole import: the router waited ~10 s to stop)."""
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def serve(sock: socket.socket) -> int:
    parent = os.getppid()
    children = _children
    _send(sock, {"op": "ready", "pid": os.getpid()})
    try:
        while True:
            readable, _, _ = select.select([sock], [], [], 0.2)
            while children:  # reap and report exits
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                children.discard(pid)
                _send(sock, {"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})
            if os.getppid() != parent:
                return 0
            if not readable:
                continue
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 2)
            if not data:
                return 0  # the router closed its end
            req = json.loads(data)
            if threading.active_count() != 1:  # fork() copies no other thread: refuse
                for fd in fds:
                    os.close(fd)
                names = ", ".join(t.name for t in threading.enumerate())
                _send(sock, {"op": "refused", "id": req["id"], "reason": f"threads: {names}"})
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(req, fds, sock)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            _send(sock, {"op": "spawned", "id": req["id"], "pid": pid})
    except BaseException:
        # A crash of the fork server leaves its instances serving: the router adopts them.
        children.clear()
        raise
    finally:  # the router went away (EOF, re-parenting): its instances go with it
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        children.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pfmagic.backends.local.zygote")
    parser.add_argument("--sock", type=int, required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.sock)
    signal.signal(signal.SIGTERM, _exit_now)
    # named in ps; also sets setproctitle up before any fork (a child that replaced its
    # environment could not set its own instance title otherwise)
    from pfmagic.backends.local.procs import set_title

    set_title(f"pfmagic zygote {os.environ.get('PFMAGIC_ENDPOINT', '?')}")
    from pfmagic.backends.local import quiet

    # promptflow's telemetry would start 4 threads (and call home) on import; forked instances
    # inherit what install() kept from importing
    quiet.install()
    try:
        _preload()
    except Exception as exc:  # the router falls back to plain subprocesses
        print(f"[pfmagic] zygote preload failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    # The instances share the preloaded heap copy-on-write, but a gc pass in an instance
    # writes the header of every tracked object it scans and so copies every page (~45 MB
    # per instance). Frozen objects are never scanned (Python docs: gc.freeze before fork).
    gc.collect()
    gc.freeze()
    serve(sock)
    _exit_now()
    return 0


if __name__ == "__main__":
    sys.exit(main())

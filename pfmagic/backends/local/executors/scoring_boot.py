"""One scoring-script instance: azureml-inference-server-http (``azmlinfsrv``) on a socket.

Runs in the deployment's own environment (``python scoring_boot.py ...``, by path: pfmagic is
not installed there, so this file imports only the standard library and the server). It goes
through the server's own CLI entry (``amlserver.run``: same settings, routes, gunicorn worker
and logging as in Azure's inference images) with two local changes:

* gunicorn binds the loopback socket the router already bound and passed down (``fd://N``)
  instead of ``0.0.0.0:<port>``: no port race, never reachable from the network;
* a failing ``init()`` or script import prints one ``failed to start`` line (exception and
  the script's file and line), which the router puts in the deployment's Failed reason.

The instance exits when its router (``PFMAGIC_PARENT_PID``) is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)  # gunicorn stops its workers
                time.sleep(10)
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _where(exc: BaseException, script: str) -> str:
    """``score.py line 12`` of the deepest frame in the user's script, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
    if not frames:
        return os.path.basename(script)
    return f"{os.path.basename(script)} line {frames[-1].lineno}"


def _report_failures(name: str, script: str) -> None:
    from azureml_inference_server_http.server import user_script

    cls = user_script.UserScript

    def wrap(method: str, what: str) -> None:
        original = getattr(cls, method)

        def patched(self, *args, **kwargs):
            try:
                return original(self, *args, **kwargs)
            except BaseException as exc:
                cause = exc.__cause__ or exc
                last = traceback.format_exception_only(type(cause), cause)[-1].strip()
                print(
                    f"[pfmagic] instance {name} failed to start: {what} failed "
                    f"({_where(cause, script)}): {last}",
                    flush=True,
                )
                raise

        setattr(cls, method, patched)

    wrap("load_script", "importing the scoring script")
    wrap("invoke_init", "init()")

    run = cls.invoke_run

    def invoke_run(self, *args, **kwargs):
        try:
            return run(self, *args, **kwargs)
        except user_script.UserScriptException:
            _name_run_errors()
            raise

    cls.invoke_run = invoke_run


def _name_run_errors() -> None:
    """The server answers a raising ``run()`` with "An unexpected error occurred in scoring
    script. Check the logs..."; locally the reply also names the exception (its last line)."""
    routes = sys.modules.get("azureml_inference_server_http.server.routes")
    if routes is None or getattr(routes.ErrorResponse, "_pfmagic", False):
        return
    base = routes.ErrorResponse

    class Named(base):  # type: ignore[misc, valid-type]
        _pfmagic = True

        def __init__(self, status_code, message, run_function_failed=False):
            cause = getattr(sys.exc_info()[1], "__cause__", None)
            if run_function_failed and cause is not None and "Check the logs" in message:
                last = traceback.format_exception_only(type(cause), cause)[-1].strip()
                message = message.replace(" Check the logs", f" ({last}). Check the logs")
            super().__init__(status_code, message, run_function_failed)

    routes.ErrorResponse = Named


def _has_control_socket() -> bool:
    from gunicorn import config

    return any(getattr(s, "name", "") == "control_socket_disable" for s in config.KNOWN_SETTINGS)


def _bind_fd(fd: int) -> None:
    """Make the server's gunicorn call bind ``fd://N`` rather than its host:port."""
    import gunicorn.app.wsgiapp as wsgiapp

    base = wsgiapp.WSGIApplication

    class Bound(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            argv = sys.argv
            for i, arg in enumerate(argv[:-1]):
                if arg == "-b":
                    argv[i + 1] = f"fd://{fd}"
            if "--no-control-socket" not in argv and _has_control_socket():
                argv.insert(1, "--no-control-socket")  # gunicorn 24+: one shared default path
            super().__init__(*args, **kwargs)
            self.cfg.set("post_fork", _worker_follows_master)

    wsgiapp.WSGIApplication = Bound


def _worker_follows_master(server: object, worker: object) -> None:
    """A worker whose master is killed exits at once (gunicorn's own check waits for the
    worker timeout, minutes, holding the socket and the model's memory)."""
    master = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != master:
                os._exit(0)

    threading.Thread(target=watch, name="master-watch", daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(prog="scoring_boot")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--entry-script", required=True)
    args = parser.parse_args()

    parent = int(os.environ.get("PFMAGIC_PARENT_PID", "0") or 0)
    if parent:
        _exit_with_parent(parent)
    print(f"[pfmagic] instance {args.id} starting (pid {os.getpid()})", flush=True)
    script = os.path.realpath(args.entry_script)
    try:
        from azureml_inference_server_http import amlserver
    except ImportError as exc:
        print(f"[pfmagic] instance {args.id} failed to start: {exc}", flush=True)
        return 1
    _report_failures(args.id, script)
    _bind_fd(args.fd)
    os.set_inheritable(args.fd, True)
    os.environ.pop("AZUREML_SEPERATE_HEALTH_ENDPOINT", None)  # one socket, one listener
    argv = ["azmlinfsrv", "--entry_script", script]
    if os.environ.get("AZUREML_MODEL_DIR"):
        argv += ["--model_dir", os.environ["AZUREML_MODEL_DIR"]]
    sys.argv = argv
    amlserver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

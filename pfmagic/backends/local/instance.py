"""One deployment instance: promptflow's own serving app (FastAPI engine) under uvicorn.

Started by the endpoint's router (``supervisor.py``) as
``python -m pfmagic.backends.local.instance --fd N --id NAME`` with the deployment's
environment; listens on the already-bound socket ``N`` the router passes down (a UNIX socket
in the user-only state directory: only the router reaches an instance).
Never imported by the kernel: promptflow mutates process-global state.

Environment read here (set by the supervisor):
``PROMPTFLOW_PROJECT_PATH`` flow folder; ``PFMAGIC_CONNECTIONS_FILE`` stored connections;
``PFMAGIC_PARENT_PID`` the router -- the instance exits when its router is gone, so a killed
router never leaves orphans holding ports and memory. ``PF_DISABLE_TRACING`` defaults to
"false" here: promptflow counts LLM tokens only while tracing, and each reply carries its
token counts and flow duration to the router (``flow_figures.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import traceback
from pathlib import Path


def _exit_with_parent(parent: int, zygote: int = 0) -> None:
    """Exit once the router is gone. A forked instance's parent is the zygote until that
    dies; the router (a child subreaper) then adopts it, so either is a live parent."""
    allowed = {parent, zygote} - {0}

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() not in allowed:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _use_stored_connections() -> None:
    """Encoded connections for the azureml extension, else the (empty) local provider.

    A deployment variable ``<flow connection>: <stored name>`` (or
    ``${{azureml://connections/<stored name>}}``) is the Azure name override. promptflow
    1.18.5 only resolves such overrides through a provider and skips targets that are already
    among the encoded connections, so the alias is added to the encoded set here.
    """
    from pfmagic.backends.local.connections import execution_connections, override_target

    path = os.environ.pop("PFMAGIC_CONNECTIONS_FILE", "")
    scope = os.environ.pop("PFMAGIC_CONNECTION_NAMES", None)  # the flow's own, JSON list
    only = set(json.loads(scope)) if scope is not None else None
    conns = execution_connections(Path(path), os.environ, only) if path else {}
    for key, value in list(os.environ.items()):
        target = override_target(value)
        if target and target in conns and key != target:
            conns[key] = conns[target]
    if conns:
        from promptflow.core._serving.utils import encode_dict

        os.environ["PROMPTFLOW_ENCODED_CONNECTIONS"] = encode_dict(conns)
    else:
        # the azureml extension insists on some provider when no connections are given
        os.environ.setdefault("PROMPTFLOW_CONNECTION_PROVIDER", "local")


def _missing_module(exc: BaseException) -> str | None:
    """The top-level module an import failed on (promptflow wraps the ImportError of a tool:
    its message still says "No module named 'x'")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            return seen.name.split(".")[0]
        seen = seen.__cause__ or seen.__context__
    match = re.search(r"No module named '([^'.]+)", str(exc))
    return match.group(1) if match else None


def _why(exc: BaseException) -> str:
    module = _missing_module(exc)
    if module:
        where = os.environ.get("PFMAGIC_REQUIREMENTS_FILE") or "the flow's requirements.txt"
        return (
            f"ModuleNotFoundError: the flow imports '{module}', which no environment file "
            f"declares: add it (its pip package) to {where}"
        )
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pfmagic.backends.local.instance")
    parser.add_argument("--fd", type=int, required=True, help="listening socket to serve on")
    parser.add_argument("--id", required=True, help="instance name, for the logs")
    args = parser.parse_args(argv)

    from pfmagic.backends.local.procs import set_title

    set_title(f"pfmagic instance {os.environ.get('PFMAGIC_ENDPOINT', '?')}/{args.id}")
    parent = int(os.environ.get("PFMAGIC_PARENT_PID", "0") or 0)
    if parent:
        _exit_with_parent(parent, int(os.environ.pop("PFMAGIC_ZYGOTE_PID", "0") or 0))
    from pfmagic.backends.local import quiet

    quiet.install()  # no promptflow telemetry exporter (threads, a call home), no unused imports
    started = time.time()
    print(f"[pfmagic] instance {args.id} starting (pid {os.getpid()})", flush=True)
    try:
        flow_dir = os.environ["PROMPTFLOW_PROJECT_PATH"]
        os.chdir(flow_dir)  # as `pf flow serve` does: tools resolve relative paths from here
        _use_stored_connections()
        import uvicorn
        from promptflow.core._serving.app import create_app

        from pfmagic.backends.local import flow_figures
        from pfmagic.backends.local.direct_score import DirectScore

        flow_figures.enable_tracing(os.environ)  # promptflow counts tokens only when tracing
        app = create_app(engine="fastapi", extension_type="azureml")
        # /score into promptflow's handler past FastAPI's middleware stack (most of the CPU)
        served = flow_figures.install(DirectScore(app))  # its tokens and flow time on each reply
    except Exception as exc:  # reported to the router through the log and the exit code
        traceback.print_exc()
        print(f"[pfmagic] instance {args.id} failed to start: {_why(exc)}", flush=True)
        return 1
    print(f"[pfmagic] instance {args.id} app created in {time.time() - started:.1f} s", flush=True)
    # Not uvicorn's fd=: it wraps the fd as AF_UNIX, so asyncio never sets TCP_NODELAY on the
    # accepted connections and every keep-alive reply waits ~40 ms for a delayed ACK. A socket
    # object made from the fd (family and protocol auto-detected) keeps TCP_NODELAY.
    import socket

    from pfmagic.backends.local.limits import INSTANCE_KEEP_ALIVE, fast_http, fast_loop

    # httptools + uvloop (explicit: uvicorn's "auto" would also pick them when installed,
    # PFMAGIC_PURE_PYTHON_HTTP=1 keeps h11 + asyncio for A/B runs)
    config = uvicorn.Config(
        served,
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=30,
        # the router closes an idle connection first (limits.UPSTREAM_IDLE_SECONDS): it never sends
        # a request down a connection this side is closing for idleness at that moment
        timeout_keep_alive=INSTANCE_KEEP_ALIVE,
        lifespan="off",
        http=fast_http(),
        loop=fast_loop(),
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

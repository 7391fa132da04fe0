"""Run a teaching notebook end to end on the local backend and print the chat transcript.

    python notebooks/run.py                       # 01-deploy-local.ipynb; prints the transcript
    python notebooks/run.py 02-safe-rollout.ipynb --save /tmp/rollout.ipynb
    python notebooks/run.py --lab                 # open the notebooks in JupyterLab instead

The kernel is this interpreter (the project's venv): nothing has to be installed globally.
Local endpoints live in a temporary ``PFMAGIC_HOME`` that is removed at the end, and any
endpoint still running after the notebook (because a cell failed) is deleted first.
Exit status: 0 when every cell ran, 1 when a cell raised (its error is printed), 2 on timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfmagic.backends.azure.client import azure_configured

HERE = Path(__file__).resolve().parent
DEFAULT_NOTEBOOK = "01-deploy-local.ipynb"

# Run in the kernel after each cell: every key / token the backend holds right now, so a test can
# check that none of them reached the saved notebook. Prints nothing.
_HARVEST = r"""
def _pfmagic_harvest():
    import json
    out = []
    try:
        from pfmagic.magics import session_of
        session = session_of(get_ipython())
    except Exception:
        return "[]"
    if session.active_backend is not None:
        backend = session.active_backend
        try:
            endpoints = backend.list_endpoints()
        except Exception:
            endpoints = []
        for endpoint in endpoints:
            try:
                creds = backend.get_keys(endpoint.name)
            except Exception:
                continue
            for attr in ("primary_key", "secondary_key", "access_token"):
                value = getattr(creds, attr, None)
                if value:
                    out.append(str(value))
    for value in list(get_ipython().user_ns.values()):
        key = getattr(value, "api_key", None)  # e.g. the stand-in LLM's key
        if isinstance(key, str) and len(key) >= 16:
            out.append(key)
    return json.dumps(out)
"""

# Run in the kernel when the notebook stopped early: delete what it left running.
_CLEANUP = r"""
def _pfmagic_cleanup():
    try:
        from pfmagic.magics import session_of
        session = session_of(get_ipython())
    except Exception:
        return "no pfmagic session"
    if session.active_backend is None or session.active_backend.name != "local":
        return "nothing to clean"
    names = []
    for endpoint in session.active_backend.list_endpoints():
        try:
            session.active_backend.delete_endpoint(endpoint.name).wait(120)
            names.append(endpoint.name)
        except Exception as exc:
            names.append(f"{endpoint.name} (failed: {exc})")
    session.active_backend.close()
    return "deleted: " + (", ".join(names) or "none")
"""


TAG_AZURE = "needs-azure"


@dataclass
class RunResult:
    notebook: Any
    error: str | None = None
    failed_cell: int | None = None
    seconds: float = 0.0
    secrets: set[str] = field(default_factory=set)
    cell_seconds: list[tuple[int, str, float]] = field(default_factory=list)


def first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("# NBVAL"):
            return line.strip()[:70]
    return ""


def _user_expression(kc: Any, code: str, expression: str, timeout: float = 60) -> str | None:
    """Run ``code`` silently through a side client and return ``expression``'s text value."""
    msg_id = kc.execute(code, silent=True, store_history=False, user_expressions={"v": expression})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            return None
        if reply["parent_header"].get("msg_id") != msg_id:
            continue
        value = reply["content"].get("user_expressions", {}).get("v", {})
        if value.get("status") != "ok":
            return None
        text = value["data"].get("text/plain", "")
        with contextlib.suppress(Exception):
            import ast

            return ast.literal_eval(text)
        return text
    return None


@contextlib.contextmanager
def private_home(keep: bool = False) -> Iterator[Path]:
    """A temporary PFMAGIC_HOME for the kernel (set in os.environ, restored after with
    JUPYTER_PATH, which ``private_kernelspec`` extends)."""
    home = Path(tempfile.mkdtemp(prefix="pfmagic-run-"))
    saved = {name: os.environ.get(name) for name in ("PFMAGIC_HOME", "JUPYTER_PATH")}
    os.environ["PFMAGIC_HOME"] = str(home)
    try:
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


KERNEL_NAME = "pfmagic-run"


def private_kernelspec() -> str:
    """A kernelspec for this interpreter, first on JUPYTER_PATH (in the temporary home).

    A "python3" kernelspec in the user's Jupyter folder could point at another Python; this
    one always starts ``sys.executable -m ipykernel_launcher`` (the project's venv).
    """
    home = Path(os.environ.get("PFMAGIC_HOME") or tempfile.mkdtemp(prefix="pfmagic-run-"))
    spec_dir = home / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
            }
        )
    )
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(home / "jupyter") not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(home / "jupyter"), paths]))
    return KERNEL_NAME


def execute(
    path: Path,
    *,
    timeout: float = 600,
    cell_timeout: float = 300,
    harvest: bool = False,
    log: Callable[[str], None] | None = None,
    kernel_log: Path | None = None,
) -> RunResult:
    """Execute a notebook in its own folder with this interpreter's kernel.

    ``PFMAGIC_HOME`` must already point at a private folder (see ``private_home``). Stops at
    the first failing cell; then deletes the endpoints the kernel left behind.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    log = log or (lambda _msg: None)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=private_kernelspec(),
        timeout=cell_timeout,
        startup_timeout=120,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
        # without a workspace, the Azure cells are skipped (left unexecuted, no outputs)
        skip_cells_with_tag=TAG_AZURE if not azure_configured() else "skip-execution",
    )
    result = RunResult(notebook=nb)
    started = time.monotonic()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    client.reset_execution_trackers()
    # the kernel's own stderr (its startup banner, library warnings) goes to a file, not here
    stderr = kernel_log.open("ab") if kernel_log else None
    with contextlib.ExitStack() as stack:
        if stderr:
            stack.callback(stderr.close)
        stack.enter_context(client.setup_kernel(**({"stderr": stderr} if stderr else {})))
        info = client.wait_for_reply(client.kc.kernel_info())
        if info and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        side = client.km.blocking_client()
        side.start_channels()
        try:
            if harvest:
                _user_expression(side, _HARVEST, "0")
            for n, index in enumerate(code_cells, 1):
                cell = nb.cells[index]
                if time.monotonic() - started > timeout:
                    result.error = f"notebook timeout ({timeout:.0f} s) before cell {index}"
                    result.failed_cell = index
                    break
                if client.skip_cells_with_tag in cell.metadata.get("tags", []):
                    log(
                        f"[{n:2d}/{len(code_cells)}] skipped ({client.skip_cells_with_tag}): "
                        f"{first_line(cell.source)}"
                    )
                    continue
                t0 = time.monotonic()
                log(f"[{n:2d}/{len(code_cells)}] {first_line(cell.source)}")
                try:
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                except CellExecutionError as exc:
                    result.error, result.failed_cell = str(exc), index
                except Exception as exc:  # e.g. a cell timeout
                    result.error = f"{type(exc).__name__}: {exc}"
                    result.failed_cell = index
                elapsed = time.monotonic() - t0
                result.cell_seconds.append((index, first_line(cell.source), elapsed))
                log(f"        {'FAILED' if result.error else 'ok'} ({elapsed:.1f} s)")
                if harvest:
                    found = _user_expression(side, "", "_pfmagic_harvest()")
                    if isinstance(found, str):
                        with contextlib.suppress(ValueError):
                            result.secrets.update(json.loads(found))
                if result.error:
                    break
            client.set_widgets_metadata()
            if result.error:
                cleaned = _user_expression(side, _CLEANUP, "_pfmagic_cleanup()", timeout=240)
                log(f"cleanup after failure: {cleaned}")
        finally:
            side.stop_channels()
    result.seconds = time.monotonic() - started
    return result


def _outputs_text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(p.rstrip() for p in parts if p and p.strip())


_INVOKE = re.compile(r"^(?:\w+\s*=\s*)?%pf_invoke\b(.*)$", re.M)  # not inside a block
_INVOKE_CELL = re.compile(r"\A\s*%%pf_invoke\b(.*)\n(.*)\Z", re.S)
_OPTION = re.compile(r"(?:--(?:deployment|input|request-file)|-o)\s+\S+|--(?:stream|raw|reset)")


def transcript(nb: Any) -> list[tuple[str, str]]:
    """(question, reply text) of every ``%pf_invoke QUESTION`` line cell, in order."""
    turns = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.get("execution_count"):
            continue
        as_cell = _INVOKE_CELL.match(cell.source)
        match = as_cell or _INVOKE.search(cell.source)
        if not match or "--history" in match.group(1) or "--request-file" in match.group(1):
            continue
        if as_cell:  # %%pf_invoke [ENDPOINT] [options], the question is the cell
            question = " ".join(as_cell.group(2).split())
        else:
            question = _OPTION.sub("", match.group(1)).strip()
            question = re.sub(r"^[a-z0-9-]+-endpoint\s+", "", question)  # an explicit endpoint
        turns.append((question, _outputs_text(cell)))
    return turns


def print_transcript(nb: Any, out: Any = sys.stdout) -> int:
    turns = transcript(nb)
    print("\n=== Chat transcript ===", file=out)
    for i, (question, reply) in enumerate(turns, 1):
        print(f"\n[{i}] You: {question}", file=out)
        lines = reply.splitlines() or ["(no output)"]
        if lines[0].startswith("You:"):  # the reply shows the question itself
            lines = lines[1:] or ["(no answer)"]
        for line in lines:
            print(f"    {line}", file=out)
    print(f"\n({len(turns)} turns)", file=out)
    return len(turns)


def lab(argv: list[str]) -> int:
    """Open the notebooks in JupyterLab with this interpreter (and its kernel)."""
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        str(HERE / DEFAULT_NOTEBOOK),
        f"--ServerApp.root_dir={HERE}",
        *argv,
    ]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebook",
        nargs="?",
        default=DEFAULT_NOTEBOOK,
        help=f"notebook in {HERE.name}/ (default {DEFAULT_NOTEBOOK})",
    )
    parser.add_argument("--save", metavar="PATH", help="write the executed notebook there")
    parser.add_argument("--timeout", type=float, default=900, help="whole notebook, seconds")
    parser.add_argument("--cell-timeout", type=float, default=600, help="one cell, seconds")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary state")
    parser.add_argument(
        "--secrets-out",
        metavar="PATH",
        help="(tests) write the keys the backend held during the run there",
    )
    parser.add_argument(
        "--lab",
        action="store_true",
        help="open JupyterLab instead (extra arguments go to jupyter lab)",
    )
    args, rest = parser.parse_known_args(argv)
    if args.lab:
        return lab(rest)
    if rest:
        parser.error(f"unknown arguments: {' '.join(rest)}")

    path = Path(args.notebook)
    if not path.exists():
        path = HERE / args.notebook
    path = path.resolve()
    print(f"Running {path.name} on the local backend (kernel: {sys.executable})", flush=True)
    with private_home(keep=args.keep_home) as home:
        print(f"PFMAGIC_HOME={home}", flush=True)
        kernel_log = home / "kernel.log"
        result = execute(
            path,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            harvest=bool(args.secrets_out),
            log=lambda msg: print(msg, flush=True),
            kernel_log=kernel_log,
        )
        if result.error and kernel_log.exists():
            tail = kernel_log.read_text(errors="replace").splitlines()[-20:]
            print("--- kernel stderr (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
    if args.secrets_out:
        fd = os.open(args.secrets_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(sorted(result.secrets), f)
    if args.save:
        import nbformat

        nbformat.write(result.notebook, args.save)
        print(f"executed notebook saved to {args.save}")
    if result.error:
        error = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.error)
        print(
            f"\nFAILED at cell {result.failed_cell} (counting markdown cells from 0) "
            f"after {result.seconds:.0f} s:\n"
            f"{error}",
            file=sys.stderr,
            flush=True,
        )
        print_transcript(result.notebook)
        return 2 if "timeout" in result.error.lower() else 1
    print_transcript(result.notebook)
    print(f"\nAll cells ran in {result.seconds:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

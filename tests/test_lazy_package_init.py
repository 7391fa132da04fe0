"""``lazy_imports.defer_package_init``: azure.ai.ml's ``__init__`` waits for a name beyond the
loaders (``MLClient``), then runs once, into the same module object.

Every case runs in a fresh interpreter: this one imported azure.ai.ml long ago. An audit hook
counts each ``exec`` of a code object from an azure/ai/ml file, so "ran once" is measured, not
inferred from ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLOW = Path(__file__).parent / "flows" / "chat-echo"

# Prepended to every script: counts execs per azure/ai/ml file and defers as %load_ext does.
PRELUDE = """
import collections, json, os, sys
EXECS = collections.Counter()
ML_DIR = os.sep + os.path.join("azure", "ai", "ml") + os.sep
INIT = os.path.join("azure", "ai", "ml", "__init__.py")


def _count(event, args):
    if event == "exec" and ML_DIR in getattr(args[0], "co_filename", ""):
        EXECS[args[0].co_filename] += 1


sys.addaudithook(_count)


def init_runs():
    return sum(n for f, n in EXECS.items() if f.endswith(INIT))


def report(**values):
    print("RESULT " + json.dumps(values))
"""

DEFER = """
from pfmagic import lazy_imports
lazy_imports.defer()
DEFERRED = lazy_imports.defer_package_init()
"""


def run_python(*parts: str, env: dict[str, str] | None = None) -> dict:
    """Run ``PRELUDE`` + ``parts`` (each dedented) in a fresh interpreter; its RESULT values."""
    import os

    code = PRELUDE + "".join(textwrap.dedent(part) for part in parts)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def test_local_backend_cells_never_run_the_package_init(tmp_path: Path) -> None:
    """%load_ext (warm-up on, as by default), then endpoint and deployment cells, parsed and
    created on the local backend: entities' loaders only, never ``MLClient``'s half."""
    home = tmp_path / "pfhome"
    out = run_python(
        f"""
        import logging
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        from pfmagic.spec.templates import deployment_yaml, endpoint_yaml
        c = Config()
        c.HistoryManager.enabled = False
        c.PfMagics.widgets = False
        ip = InteractiveShell.instance(config=c)
        ip.run_line_magic("load_ext", "pfmagic")
        package = sys.modules["azure.ai.ml"]
        endpoint = endpoint_yaml("lazy-ep")
        deployment = deployment_yaml("blue", "lazy-ep", {str(FLOW)!r})
        try:
            results = [
                ip.run_cell("%%pf_endpoint\\n" + endpoint),
                ip.run_cell("%%pf_deployment\\n" + deployment),
                ip.run_cell("%%pf_endpoint --create\\n" + endpoint),
                ip.run_cell("%%pf_deployment --create --all-traffic\\n" + deployment),
                ip.run_cell("%pf_invoke lazy-ep hello"),
                ip.run_cell("%pf_delete lazy-ep"),
            ]
        finally:
            from pfmagic.backends.local.control import shutdown_all
            shutdown_all({str(home)!r})
        errors = [repr(r.error_in_exec or r.error_before_exec) for r in results if not r.success]
        from pfmagic import lazy_imports
        report(
            errors=errors,
            same_module=sys.modules["azure.ai.ml"] is package,
            ml_client="azure.ai.ml._ml_client" in sys.modules,
            init_runs=init_runs(),
            still_deferred=not lazy_imports.deferred_state().done,
            handlers=len(logging.getLogger("azure.ai.ml").handlers),
        )
        """,
        env={"PFMAGIC_HOME": str(home)},
    )
    assert out["errors"] == [], out
    assert out["same_module"] and out["still_deferred"], out
    assert (out["ml_client"], out["init_runs"]) == (False, 0), out
    assert out["handlers"] == 1, out  # the "azure.ai.ml" logger set up as __init__ does


def test_mlclient_completes_init_into_the_same_module() -> None:
    out = run_python(
        DEFER,
        """
        import logging
        package = sys.modules["azure.ai.ml"]
        import azure.ai.ml
        before = {name: getattr(azure.ai.ml, name) for name in lazy_imports.SERVED}
        version = azure.ai.ml.__version__
        served_init_runs = init_runs()
        early_handlers = list(logging.getLogger("azure.ai.ml").handlers)
        from azure.ai.ml import MLClient
        from azure.ai.ml._ml_client import MLClient as real_client
        real_all = list(azure.ai.ml.__all__)
        from azure.ai.ml.entities._credentials import AmlTokenConfiguration
        report(
            deferred=DEFERRED,
            served_init_runs=served_init_runs,
            init_runs=init_runs(),
            same_module=sys.modules["azure.ai.ml"] is package,
            is_real_client=MLClient is real_client,
            same_objects=[n for n, v in before.items() if getattr(azure.ai.ml, n) is v],
            unserved=sorted(set(real_all) - set(lazy_imports.SERVED) - {"MLClient"}),
            version=[version, azure.ai.ml.__version__],
            deprecated=azure.ai.ml.AmlTokenConfiguration is AmlTokenConfiguration,
            handlers=len(logging.getLogger("azure.ai.ml").handlers),
            same_handler=logging.getLogger("azure.ai.ml").handlers == early_handlers,
        )
        """,
    )
    assert out["deferred"] and out["served_init_runs"] == 0, out
    assert out["init_runs"] == 1 and out["same_module"] and out["is_real_client"], out
    import pfmagic.lazy_imports as lazy

    assert sorted(out["same_objects"]) == sorted(lazy.SERVED), out  # loaders keep identity
    assert out["unserved"] == [], out  # every other name of __all__ is served
    assert out["version"][0] == out["version"][1], out
    assert out["deprecated"], out  # the package's own __getattr__ took over
    # one stderr handler, bound when entities were imported (as by a normal import at warm-up)
    assert out["handlers"] == 1 and out["same_handler"], out


def test_three_threads_completing_at_once_run_init_once() -> None:
    out = run_python(
        DEFER,
        """
        import threading
        import azure.ai.ml
        barrier = threading.Barrier(3)
        got, failed = [], []

        def use_client():
            barrier.wait()
            try:
                got.append(azure.ai.ml.MLClient)
            except BaseException as exc:
                failed.append(repr(exc))

        threads = [threading.Thread(target=use_client) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        report(
            init_runs=init_runs(),
            failed=failed,
            got=len(got),
            one_class=len({id(c) for c in got}) == 1,
            most_execs=max(EXECS.values()),
        )
        """,
    )
    assert out == {"init_runs": 1, "failed": [], "got": 3, "one_class": True, "most_execs": 1}


def test_star_import_gives_every_name_of_all() -> None:
    out = run_python(
        DEFER,
        """
        from azure.ai.ml import *
        import azure.ai.ml
        names = azure.ai.ml.__all__
        missing = [n for n in names if globals().get(n) is not getattr(azure.ai.ml, n)]
        report(missing=missing, names=len(azure.ai.ml.__all__), init_runs=init_runs())
        """,
    )
    assert out["missing"] == [] and out["names"] > 30 and out["init_runs"] == 1, out


@pytest.mark.parametrize("first", ["azure.ai.ml.sweep", "azure.ai.ml._schema"])
def test_a_submodule_imported_first_imports_in_the_package_order(first: str) -> None:
    """Imported before anything else, these fail on azure-ai-ml's own circular imports unless
    azure.ai.ml.entities is imported first (as __init__ does); then every module runs once."""
    out = run_python(
        DEFER,
        f"""
        import importlib
        importlib.import_module({first!r})
        from azure.ai.ml import load_model, Input
        import azure.ai.ml.dsl, azure.ai.ml.automl, azure.ai.ml.data_transfer
        served_init_runs = init_runs()
        from azure.ai.ml import MLClient
        from azure.ai.ml import *
        import azure.ai.ml._internal, azure.ai.ml.operations
        twice = [f for f, n in EXECS.items() if n > 1]
        files = {{getattr(m, "__file__", None) for n, m in list(sys.modules.items())
                 if n.startswith("azure.ai.ml")}} - {{None}}
        report(
            twice=twice,
            never=sorted(f for f in files if EXECS[f] == 0),
            served_init_runs=served_init_runs,
            init_runs=init_runs(),
            loaders=sorted({{type(m.__loader__).__name__ for n, m in list(sys.modules.items())
                            if n.startswith("azure.ai.ml.")}}),
        )
        """,
    )
    assert out["twice"] == [] and out["never"] == [], out
    assert (out["served_init_runs"], out["init_runs"]) == (0, 1), out
    assert out["loaders"] == ["SourceFileLoader"], out  # not the wrapper (importlib.resources)


def test_azure_ai_ml_imported_before_load_ext_is_left_alone() -> None:
    out = run_python(
        """
        import azure.ai.ml
        package = sys.modules["azure.ai.ml"]
        """,
        DEFER,
        """
        report(
            deferred=DEFERRED,
            same=sys.modules["azure.ai.ml"] is package,
            init_runs=init_runs(),
            finders=[type(f).__name__ for f in sys.meta_path if "Prelude" in type(f).__name__],
        )
        """,
    )
    assert out == {"deferred": False, "same": True, "init_runs": 1, "finders": []}


def test_a_cell_importing_a_submodule_right_after_load_ext_does_not_deadlock() -> None:
    """%load_ext starts the warm-up; a cell that imports azure.ai.ml.constants at once used to
    deadlock with it (each thread holding a module lock the other's imports needed:
    ``_DeadlockError`` on azure.ai.ml.constants._common), 3 runs out of 3."""
    out = run_python(
        """
        import threading
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        c = Config()
        c.HistoryManager.enabled = False
        c.PfMagics.widgets = False
        ip = InteractiveShell.instance(config=c)
        ip.run_line_magic("load_ext", "pfmagic")
        error = None
        try:
            from azure.ai.ml.constants import _common
        except Exception as exc:
            error = repr(exc)
        (warm,) = [t for t in threading.enumerate() if t.name == "pfmagic-warmup"]
        warm.join(150)
        cell = ip.run_cell("%%pf_endpoint\\nname: abc\\n")
        report(error=error, cell=cell.success, most_execs=max(EXECS.values()))
        """
    )
    assert out == {"error": None, "cell": True, "most_execs": 1}, out

"""``%load_ext pfmagic``: registers the magics, stays light, warms azure.ai.ml up in the back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

pytestmark = pytest.mark.usefixtures("no_atexit_reset")

MAGICS = ("pf_model", "pf_endpoint", "pf_deployment", "pf_connection")


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (sys.modules of this one already hold azure.ai.ml)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SHELL = """
    import sys
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config
    c = Config()
    c.HistoryManager.enabled = False
    c.PfMagics.warmup = {warmup}
    ip = InteractiveShell.instance(config=c)
    ip.run_line_magic("load_ext", "pfmagic")
"""


def test_load_imports_neither_azure_ai_ml_nor_promptflow_nor_pandas() -> None:
    out = run_python(
        SHELL.format(warmup=False)
        + """
    # azure.ai.ml itself is there, its __init__ deferred (lazy_imports.defer_package_init)
    from pfmagic.lazy_imports import deferred_state
    submodules = [n for n in sys.modules if n.startswith("azure.ai.ml.")]
    print(bool(submodules) or deferred_state() is None, "promptflow" in sys.modules)
    print(sorted(n for n in ip.magics_manager.magics["cell"] if n.startswith("pf_")))
    print([m for m in ("pandas", "matplotlib", "prometheus_client") if m in sys.modules])
    """
    )
    heavy, cells, plotting = out.splitlines()[:3]
    assert heavy == "False False"
    assert plotting == "[]"  # %pf_metrics imports them when it runs
    for name in MAGICS:
        assert name in cells


def test_load_starts_warm_up_thread(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import pfmagic.spec.load

    ran = threading.Event()
    names: list[str] = []

    def fake() -> None:
        names.append(threading.current_thread().name)
        ran.set()

    monkeypatch.setattr(pfmagic.spec.load, "warm_up", fake)
    ip.run_line_magic("unload_ext", "pfmagic")
    ip.run_line_magic("load_ext", "pfmagic")
    assert ran.wait(10) and names == ["pfmagic-warmup"]


def test_warm_up_imports_azure_ai_ml_in_the_background() -> None:
    """In a fresh interpreter (here azure.ai.ml is long imported, so an idle warm_up would
    pass): the warm-up thread, not the main one, is what imports azure.ai.ml's entities (the
    package module itself is put in place by %load_ext, its __init__ deferred)."""
    out = run_python(
        """
    import sys, threading
    importers = []

    class Spy:  # records which thread first imports azure.ai.ml.entities (the slow part)
        def find_spec(self, name, path=None, target=None):
            if name == "azure.ai.ml.entities":
                importers.append(threading.current_thread().name)
            return None

    sys.meta_path.insert(0, Spy())
    """
        + SHELL.format(warmup=True)
        + """
    print("loaded", "azure.ai.ml" in sys.modules)
    (warm,) = [t for t in threading.enumerate() if t.name == "pfmagic-warmup"]
    warm.join(120)
    print("warmed", "azure.ai.ml" in sys.modules, "azure.ai.ml.entities" in sys.modules)
    print("importers", importers)
    """
    )
    lines = out.splitlines()
    assert "warmed True True" in lines, out
    assert "importers ['pfmagic-warmup']" in lines, out


def test_config_lists_the_options(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", "PfMagics")
    out = capsys.readouterr().out
    for option in ("PfMagics.backend", "PfMagics.interpolate", "PfMagics.warmup"):
        assert option in out


def test_interpolate_setting_off(ip: InteractiveShell, tmp_path) -> None:  # noqa: ANN001
    ip.run_line_magic("config", "PfMagics.interpolate = False")
    summary = ip.run_cell_magic("pf_endpoint", "", "name: abc\ndescription: '{{x}}'\n")
    assert summary.entity.description == "{{x}}"


def test_unload_removes_the_magics(ip: InteractiveShell) -> None:
    ip.run_line_magic("unload_ext", "pfmagic")
    assert ip.find_cell_magic("pf_endpoint") is None
    ip.run_line_magic("load_ext", "pfmagic")  # the fixture unloads again
    assert ip.find_cell_magic("pf_endpoint") is not None


def test_settings_from_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    (tmp_path / "pyproject.toml").write_text("[tool.pfmagic]\nwidgets = false\nmax_history = 3\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found in a parent folder, like jupysql
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.PfMagics.warmup = False
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "pfmagic")
        from pfmagic.magics import session_of

        settings = session_of(shell).settings
        assert (settings.widgets, settings.max_history) == (False, 3)
        assert f"2 setting(s) from {tmp_path / 'pyproject.toml'}" in capsys.readouterr().out
        shell.run_line_magic("unload_ext", "pfmagic")
        (tmp_path / "pyproject.toml").write_text("[tool.pfmagic]\nmax_histroy = 3\n")
        shell.run_line_magic("load_ext", "pfmagic")
        out = capsys.readouterr().out
        assert "has no setting 'max_histroy'" in out and "did you mean 'max_history'" in out
        assert "pf_invoke" in shell.magics_manager.magics["line"]  # still loaded
        shell.run_line_magic("unload_ext", "pfmagic")
    finally:
        import atexit

        atexit.unregister(shell.atexit_operations)
        InteractiveShell.clear_instance()


def test_warm_up_defers_rfc3987_syntax_and_iri_checks_still_work() -> None:
    """rfc3987_syntax (jsonschema's iri checks, ~4 s of azure.ai.ml's import) is a stand-in
    after the warm-up; its first real use loads it and answers as the real module does."""
    out = run_python(
        SHELL.format(warmup=True)
        + """
    import threading
    (warm,) = [t for t in threading.enumerate() if t.name == "pfmagic-warmup"]
    warm.join(120)
    stand_in = sys.modules["rfc3987_syntax"]
    print("deferred", "azure.ai.ml" in sys.modules, not hasattr(stand_in, "__file__"))
    import jsonschema
    check = jsonschema.Draft7Validator({"format": "iri"}, format_checker=jsonschema.FormatChecker())
    print("iri", check.is_valid("http://example.org/ä"), check.is_valid("http://a b"))
    print("real", hasattr(sys.modules["rfc3987_syntax"], "__file__"))
    """
    )
    lines = out.splitlines()
    assert "deferred True True" in lines, out
    assert "iri True False" in lines, out
    assert "real True" in lines, out


def test_a_magic_right_after_load_ext_waits_for_the_warm_up(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads importing the azure packages at once can see half-initialised modules
    (seen: "cannot import name 'Pipeline' from 'azure.core.pipeline'" from `%pf_backend azure`
    typed at once): a magic runs only once the warm-up has ended."""
    import threading
    import time

    import pfmagic.spec.load

    order: list[str] = []
    started = threading.Event()

    def slow_warm_up() -> None:
        started.set()
        time.sleep(6.0)
        order.append("warm-up done")

    monkeypatch.setattr(pfmagic.spec.load, "warm_up", slow_warm_up)
    ip.run_line_magic("unload_ext", "pfmagic")
    ip.run_line_magic("load_ext", "pfmagic")
    assert started.wait(10)
    ip.run_line_magic("pf_backend", "")  # takes ~1-3 s of its own on a busy machine
    order.append("magic done")
    assert order == ["warm-up done", "magic done"]

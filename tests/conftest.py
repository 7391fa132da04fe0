"""Shared fixtures: a real IPython shell with pfmagic loaded and a private PFMAGIC_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

# no silent skips: a skip not listed in skip_policy.ALLOWED fails (issue 21)
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
from traitlets.config import Config

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture
def pfmagic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "pfhome"
    monkeypatch.setenv("PFMAGIC_HOME", str(home))
    return home


@pytest.fixture
def ip(pfmagic_home: Path, tmp_path: Path) -> Iterator[InteractiveShell]:
    """A fresh InteractiveShell with ``%load_ext pfmagic``; widgets off (no frontend here)."""
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False  # avoids sqlite files and "too many open files"
    config.PfMagics.widgets = False
    config.PfMagics.home = str(pfmagic_home)
    shell = InteractiveShell.instance(config=config)
    shell.user_ns["__vsc_ipynb_file__"] = str(tmp_path / "nb.ipynb")  # notebook folder for paths
    shell.run_line_magic("load_ext", "pfmagic")
    yield shell
    from pfmagic.magics import session_of

    session = session_of(shell)
    if session.active_backend is not None:
        session.active_backend.close()
    if pfmagic_home.exists():  # local endpoints are detached processes: stop this test's ones
        from pfmagic.backends.local.control import shutdown_all

        shutdown_all(pfmagic_home)
    shell.run_line_magic("unload_ext", "pfmagic")
    # Each shell registers an atexit reset (gc.collect ~1 s per shell once azure.ai.ml is loaded).
    import atexit

    atexit.unregister(shell.atexit_operations)
    InteractiveShell.clear_instance()


@pytest.fixture
def echo_flow() -> Path:
    return FLOWS / "chat-echo"


# -- YAML-cell fixtures (foundation issue) ------------------------------------------------------


@pytest.fixture
def seed_nb(ip: InteractiveShell, tmp_path: Path) -> Path:
    """A notebook folder laid out like the seed doc: the model's ``path:
    ../../../../examples/flows/chat/basic-chat`` resolves to a copy of the chat-echo flow, and
    ``image_build_with_reqirements/`` (sic, as in the doc) holds a Dockerfile. Returns the
    notebook folder (also set as the shell's notebook via ``__vsc_ipynb_file__``)."""
    import shutil

    nb = tmp_path / "repo" / "docs" / "how-to" / "prompt-flow" / "nb"
    nb.mkdir(parents=True)
    flow = tmp_path / "repo" / "examples" / "flows" / "chat" / "basic-chat"
    shutil.copytree(FLOWS / "chat-echo", flow)
    build = nb / "image_build_with_reqirements"
    build.mkdir()
    (build / "requirements.txt").write_text("promptflow\n")
    (build / "Dockerfile").write_text(
        "FROM mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
        "COPY ./requirements.txt .\nRUN pip install -r requirements.txt\n"
    )
    ip.user_ns["__vsc_ipynb_file__"] = str(nb / "nb.ipynb")
    return nb


@pytest.fixture
def no_atexit_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop the ``ip`` shell's atexit hook: each InteractiveShell registers one that resets it
    (``displayhook.flush`` → ``gc.collect()``), about a second per shell at interpreter exit once
    azure.ai.ml is imported. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import atexit

    yield
    shell = request.node.funcargs.get("ip")
    if shell is not None:
        atexit.unregister(shell.atexit_operations)


# -- Azure backend fixtures ------------------------------------------------------------------
@pytest.fixture
def arm():
    """An ARM-like server on 127.0.0.1 holding the seed's registered model (tests/arm_server.py)."""
    from arm_server import ArmServer

    ws = (
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
        "/workspaces/ws"
    )
    with ArmServer() as server:
        server.seed(
            f"{ws}/models/basic-chat-model/versions/1",
            {
                "properties": {
                    "modelUri": "azureml://datastores/workspaceblobstore/paths/basic-chat",
                    "modelType": "custom_model",
                    "flavors": {},
                    "tags": {},
                    "properties": {"azureml.promptflow.source_flow_id": "basic-chat"},
                }
            },
        )
        yield server


# -- parallel runs (pytest-xdist ``--dist loadgroup``) -----------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each test module on one worker, unless its tests name an ``xdist_group`` themselves.

    Module- and session-scoped fixtures (real endpoints, Azurite, an ARM server) are built once
    per worker that needs them, so splitting a module would build them twice and two workers
    could share a server-side name (an Azurite container). Tests of different modules that share
    a process-wide resource (``test_invoke.shared_endpoint``, ``test_notebooks.main_run``) carry
    one explicit group. Without xdist the marks do nothing. Runs before xdist's own hook, which
    reads the marks (tryfirst)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))

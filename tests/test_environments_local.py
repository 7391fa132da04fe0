"""Custom environments on real local endpoints (issue 13): a flow that imports a package it
declares runs in a uv-built venv; a broken requirement fails the deployment in seconds
(ImageBuildFailure, file:line, build log) while the endpoint's other deployments keep serving;
an undeclared import fails readiness naming the module and the file to add it to."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.errors import BackendError

FLOWS = Path(__file__).parent / "flows"
EP = "ep-envs"

pytestmark = pytest.mark.timeout(300)


def _dep(name: str, flow: Path) -> ManagedOnlineDeployment:
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=EP,
        model=Model(path=str(flow)),
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    home = tmp_path_factory.mktemp("pfenv") / "home"
    b = LocalBackend(home=str(home), prewarm=False)
    b.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(60)
    try:
        yield b
    finally:
        b.shutdown_all()


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flows")
    broken = root / "broken-req"
    shutil.copytree(FLOWS / "needs-pkg", broken)
    (broken / "requirements.txt").write_text(
        "# the tool imports it\ntext-unidecode==1.3\npfmagic-no-such-package-zz==0.1\n"
    )
    undeclared = root / "undeclared"
    shutil.copytree(FLOWS / "needs-pkg", undeclared)
    (undeclared / "requirements.txt").unlink()
    dag = undeclared / "flow.dag.yaml"
    dag.write_text(
        dag.read_text().replace("environment:\n  python_requirements_txt: requirements.txt\n", "")
    )
    return {"broken": broken, "undeclared": undeclared}


@pytest.fixture(scope="module")
def deployed(backend: LocalBackend) -> dict[str, Any]:
    plain = backend.create_deployment(_dep("plain", FLOWS / "chat-echo"), all_traffic=True)
    pkg = backend.create_deployment(_dep("pkg", FLOWS / "needs-pkg"))
    out = {"plain": plain.result(240), "pkg_op": pkg}
    out["pkg"] = pkg.result(240)
    return out


def _parent(backend: LocalBackend, deployment: str) -> int:
    """The process that forked the deployment's instance (its environment's zygote)."""
    (inst,) = backend.router_status(EP)["deployments"][deployment]["instances"]
    stat = Path(f"/proc/{inst['pid']}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_flow_runs_with_the_package_it_declares(
    backend: LocalBackend, deployed: dict[str, Any]
) -> None:
    reply = backend.invoke(EP, {"question": "Ça va, Zürich?"}, deployment="pkg")
    assert reply.status == 200 and reply.outputs == {"answer": "Ca va, Zurich?"}
    events = [e for e in deployed["pkg_op"].events if e.stage == "environment"]
    assert any(e.state == "Running" and "Building environment" in e.message for e in events)
    assert events[-1].state == "Succeeded" and " built in " in events[-1].message
    assert backend.invoke(EP, {"question": "hi"}, deployment="plain").status == 200
    # a second deployment asking for the same packages reuses the venv and its zygote
    op = backend.create_deployment(_dep("pkg2", FLOWS / "needs-pkg"))
    started = time.monotonic()
    op.result(240)
    env_events = [e for e in op.events if e.stage == "environment"]
    assert env_events[-1].state == "Succeeded" and " cached " in env_events[-1].message
    assert backend.invoke(EP, {"question": "é"}, deployment="pkg2").outputs == {"answer": "e"}
    assert time.monotonic() - started < 120
    # one fork server per environment, not per deployment
    router = backend.router_status(EP)["pid"]
    assert _parent(backend, "pkg") == _parent(backend, "pkg2") != router
    assert _parent(backend, "plain") not in (_parent(backend, "pkg"), router)
    build_log = backend.get_logs(EP, "pkg2", container_type="build")
    assert "is cached" in build_log


def test_broken_requirement_fails_fast_and_others_keep_serving(
    backend: LocalBackend, deployed: dict[str, Any], flows: dict[str, Path]
) -> None:
    started = time.monotonic()
    op = backend.create_deployment(_dep("broken", flows["broken"]))
    with pytest.raises(BackendError) as info:
        op.result(120)
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed
    err = info.value
    assert err.code == "ImageBuildFailure"
    first = str(err).splitlines()[0]
    assert "ImageBuildFailure" in first and "pfmagic-no-such-package-zz==0.1" in first
    assert "requirements.txt:3" in first and "Traceback" not in str(err)
    assert backend.get_deployment(EP, "broken").provisioning_state == "Failed"
    log = backend.get_logs(EP, "broken", container_type="build")
    assert "not found in the package registry" in log  # the resolver's own message
    assert backend.invoke(EP, {"question": "still here"}, deployment="plain").status == 200
    assert backend.invoke(EP, {"question": "ü"}, deployment="pkg").outputs == {"answer": "u"}


def test_undeclared_import_names_module_and_file(
    backend: LocalBackend, deployed: dict[str, Any], flows: dict[str, Path]
) -> None:
    op = backend.create_deployment(_dep("undeclared", flows["undeclared"]))
    with pytest.raises(BackendError) as info:
        op.result(240)
    first = str(info.value).splitlines()[0]
    assert "'text_unidecode'" in first and "requirements.txt" in first, first
    assert "add it" in first

"""Issue 12, blast radius (item 5), tried as an attacker or a crash would.

One real endpoint (router, zygote, two forked chat-echo instances) for the module, started
with an audit hook (``sitecustomize`` on ``PYTHONPATH``, inherited by the router, the zygote
and every fork) that records each ``socket.connect`` / ``getaddrinfo`` to a non-loopback
address: promptflow's telemetry must never call home. The zygote is SIGKILLed under load:
the instances keep their pids and keep answering, a new zygote starts in the background.

The tests run in any order (pytest-randomly): the process tree as started is recorded when the
endpoint is ready (the zygote kill reparents the instances), the audit hook's own check writes
to a log of its own, and the module's whole record is checked again after every process ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.backends.local.state import read_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from zygote_kill import instance_pids, kill_under_load, zygote_pids  # noqa: E402

FLOWS = Path(__file__).parent / "flows"
EP = "ep-blast"
pytestmark = pytest.mark.timeout(400)

AUDIT_HOOK = """
import os, socket, sys

_LOG = os.environ.get("PF12_AUDIT_LOG")
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", None}


def _hook(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == socket.AF_UNIX or not isinstance(address, tuple):
            return
        host = address[0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in _LOOPBACK or str(host).startswith("127."):
        return
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {event} {host!r} {sys.argv[:3]!r}\\n")


if _LOG:
    sys.addaudithook(_hook)
"""


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """PYTHONPATH with the audit sitecustomize, in this process's environment (the router
    inherits it through ``procs.child_env``)."""
    folder = tmp_path_factory.mktemp("audit")
    (folder / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = folder / "connects.log"
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PF12_AUDIT_LOG")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(folder), saved["PYTHONPATH"] or "") if p
    )
    os.environ["PF12_AUDIT_LOG"] = str(log)
    try:
        yield log
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Tree:
    """The endpoint's processes when it first became ready."""

    zygotes: list[int]
    instances: list[int]
    parents: set[int]  # of the instances
    router_log: str  # what the router logged while starting them


@pytest.fixture(scope="module")
def started(
    audit: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalBackend, Tree]]:
    """The endpoint; its process tree as started (before any test kills a part of it)."""
    home = tmp_path_factory.mktemp("pfblast") / "pfhome"
    b = LocalBackend(home=str(home), prewarm=False)
    try:
        b.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(60)
        echo = b.create_model(Model(name="chat-echo", path=str(FLOWS / "chat-echo")))
        b.create_deployment(
            ManagedOnlineDeployment(
                name="blue",
                endpoint_name=EP,
                model=echo,
                instance_type="Standard_DS3_v2",
                instance_count=2,
            ),
            all_traffic=True,
        ).result(300)
        router = read_json(b.home.run_file(EP))["pid"]
        instances = instance_pids(b.router_status(EP))
        parents = {_ppid(p) for p in instances}
        log = b.home.router_log(EP).read_text()
        tree = Tree(zygote_pids(router), instances, parents, log)
        yield b, tree
    finally:
        b.shutdown_all()
    # every process of the module has ended: whatever ran, in whatever order, stayed local
    text = audit.read_text() if audit.exists() else ""
    assert text == "", text


@pytest.fixture(scope="module")
def backend(started: tuple[LocalBackend, Tree]) -> LocalBackend:
    return started[0]


@pytest.fixture(scope="module")
def tree(started: tuple[LocalBackend, Tree]) -> Tree:
    return started[1]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_audit_hook_sees_a_real_outbound_connect(audit: Path, tmp_path: Path) -> None:
    """The guard can fail: a process with the same environment that connects out is logged
    (to a log of its own: the endpoint's record, checked by the other tests, stays its own)."""
    code = (
        "import socket\ntry:\n socket.create_connection(('192.0.2.1', 9), timeout=0.05)\n"
        "except OSError:\n pass"
    )
    own = tmp_path / "connects.log"
    env = {**os.environ, "PF12_AUDIT_LOG": str(own)}
    subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=True)
    assert "192.0.2.1" in own.read_text()


def test_instances_are_forked_from_a_single_threaded_zygote(tree: Tree) -> None:
    assert len(tree.zygotes) == 1
    assert len(tree.instances) == 2
    # forked by the zygote: it refuses to fork unless threading.active_count() == 1
    assert tree.parents == set(tree.zygotes)
    assert "did not fork" not in tree.router_log


def test_zygote_kill_under_load_costs_no_request(backend: LocalBackend) -> None:
    out: dict[str, Any] = kill_under_load(backend, EP, workers=4, seconds=5.0)
    assert out["zygotes_killed"] == 1
    assert out["instances_kept_pids"], out  # nobody restarted: they survived their zygote
    assert out["failure_window_s"] <= 1.0, out
    assert out["failed"] <= 2, out
    assert out["new_zygote_after_s"] is not None, out  # restarted in the background
    router = read_json(backend.home.run_file(EP))["pid"]
    st = backend.router_status(EP)["deployments"]["blue"]
    assert st["ready"] == 2 and st["provisioning_state"] == "Succeeded"
    # the orphans are the router's children now (it is their subreaper), not init's
    assert {_ppid(p) for p in instance_pids(backend.router_status(EP))} == {router}


@pytest.mark.slow  # ~50 s on a busy machine: two instances start again from a new zygote
def test_killed_instance_reports_unavailable_not_succeeded(backend: LocalBackend) -> None:
    """An adopted instance that dies is seen (reaped by the router) and replaced; while no
    instance answers the deployment is not "Succeeded"."""
    import signal
    import time

    pids = instance_pids(backend.router_status(EP))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    seen: set[str] = set()
    end = time.monotonic() + 120
    while time.monotonic() < end:
        st = backend.router_status(EP)["deployments"]["blue"]
        seen.add(st["provisioning_state"])
        if st["ready"] == 2 and not set(instance_pids(backend.router_status(EP))) & set(pids):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"instances not replaced; states seen {seen}")
    assert seen & {"Unavailable", "Degraded"}, seen
    ep = backend.list_deployments(EP)[0]
    assert ep._pf_ready == (2, 2)


def test_no_network_call_from_any_endpoint_process(backend: LocalBackend, audit: Path) -> None:
    """Router, zygote(s) and instances ran and served: nothing left loopback (so far; the
    fixture checks the record again once the module's processes, restarted ones too, end)."""
    backend.invoke(EP, {"question": "hi"})
    text = audit.read_text() if audit.exists() else ""
    assert text == "", text

"""The local backend's network surface, tried as another local user or a web page would.

One real endpoint (router + chat-echo instance) shared by the module; every check talks only
to 127.0.0.1 or to the state directory's UNIX sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.backends.local.control import RouterControl
from pfmagic.backends.local.procs import pid_alive
from pfmagic.backends.local.state import read_json
from pfmagic.errors import BackendError

FLOWS = Path(__file__).parent / "flows"
EP = "ep-sec"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    home = tmp_path_factory.mktemp("pfsec") / "pfhome"
    b = LocalBackend(home=str(home), prewarm=False)
    try:
        yield b
    finally:
        b.shutdown_all()


@pytest.fixture
def endpoint(backend: LocalBackend, deployed: None) -> dict[str, Any]:
    """The endpoint's current state (port and keys), read fresh: tests may move its port."""
    backend.router_status(EP)  # running, whatever the test before did
    return read_json(backend.home.endpoint_file(EP))


@pytest.fixture(scope="module")
def deployed(backend: LocalBackend) -> None:
    backend.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(60)
    echo = backend.create_model(Model(name="chat-echo", path=str(FLOWS / "chat-echo")))
    backend.create_deployment(
        ManagedOnlineDeployment(
            name="blue",
            endpoint_name=EP,
            model=echo,
            instance_type="Standard_DS3_v2",
            instance_count=1,
        ),
        all_traffic=True,
    ).result(240)


def _url(cfg: dict[str, Any], path: str = "/score") -> str:
    return f"http://127.0.0.1:{cfg['port']}{path}"


def _post(cfg: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    send = {"Authorization": f"Bearer {cfg['keys']['primary']}", **(headers or {})}
    return httpx.post(
        _url(cfg), json={"question": "hi"}, headers=send, timeout=30, trust_env=False, **kw
    )


# -- Host, Origin, headers, routes ----------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.2", "10.0.0.1"])
def test_foreign_host_is_refused_even_with_a_valid_key(endpoint: dict[str, Any], host: str) -> None:
    resp = _post(endpoint, {"Host": host})
    assert resp.status_code == 403, resp.text
    assert "Host" in resp.json()["error"]["message"]
    assert "answer" not in resp.text  # the flow never ran


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:{port}", "[::1]:{port}", "LOCALHOST"])
def test_loopback_hosts_are_served(endpoint: dict[str, Any], host: str) -> None:
    resp = _post(endpoint, {"Host": host.format(port=endpoint["port"])})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "SAMEORIGIN"
    assert "access-control-allow-origin" not in resp.headers


def test_cross_site_origin_is_refused_and_no_cors(endpoint: dict[str, Any]) -> None:
    resp = _post(endpoint, {"Origin": "https://attacker.example"})
    assert resp.status_code == 403 and "Origin" in resp.json()["error"]["message"]
    assert "access-control-allow-origin" not in resp.headers
    # a preflight from that site learns nothing either
    pre = httpx.options(
        _url(endpoint),
        headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"},
        trust_env=False,
    )
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers


def test_allow_lists_from_the_endpoint_config(
    backend: LocalBackend, endpoint: dict[str, Any]
) -> None:
    """%config PfMagics.allowed_hosts / allowed_origins reach the router via endpoint.json."""

    class Settings:
        allowed_hosts = ["proxy.example"]
        allowed_origins = ["https://lab.example"]

    other = LocalBackend(Settings(), home=str(backend.home.root), prewarm=False)
    try:
        other.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(60)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the router re-reads endpoint.json within ~1 s
            resp = _post(endpoint, {"Host": "proxy.example", "Origin": "https://lab.example"})
            if resp.status_code == 200:
                break
            time.sleep(0.2)
        assert resp.status_code == 200, resp.text
        assert resp.headers["access-control-allow-origin"] == "https://lab.example"
        assert _post(endpoint, {"Host": "other.example"}).status_code == 403
        assert _post(endpoint, {"Origin": "https://attacker.example"}).status_code == 403
        pre = httpx.options(
            _url(endpoint),
            headers={"Origin": "https://lab.example", "Access-Control-Request-Method": "POST"},
            trust_env=False,
        )
        assert pre.status_code == 204
        assert "authorization" in pre.headers["access-control-allow-headers"]
    finally:
        backend.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(60)
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and _post(endpoint, {"Host": "proxy.example"}).status_code != 403
    ):
        time.sleep(0.2)
    assert _post(endpoint, {"Host": "proxy.example"}).status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/feedback"),
        ("GET", "/version"),
        ("GET", "/docs"),
        ("POST", "/score/../feedback"),
        ("PATCH", "/score"),
        ("GET", "/_pfmagic/status"),
    ],
)
def test_only_documented_routes_answer(endpoint: dict[str, Any], method: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {endpoint['keys']['primary']}"}
    resp = httpx.request(method, _url(endpoint, path), headers=headers, trust_env=False)
    assert resp.status_code in (401, 404, 405), (path, resp.status_code, resp.text)
    assert "answer" not in resp.text


# -- instances: unreachable but through the router ---------------------------------------------
def _listening_tcp_inodes() -> dict[int, int]:
    """inode -> port of every listening TCP socket on the machine (/proc/net/tcp{,6})."""
    out: dict[int, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    out[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def _tcp_ports_of(pid: int) -> set[int]:
    listening = _listening_tcp_inodes()
    ports = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in listening:
                    ports.add(listening[inode])
    return ports


def test_only_the_router_listens_on_tcp(backend: LocalBackend, endpoint: dict[str, Any]) -> None:
    status = backend.router_status(EP)
    inst = status["deployments"]["blue"]["instances"][0]
    assert _tcp_ports_of(inst["pid"]) == set()  # the instance has no TCP listener at all
    assert _tcp_ports_of(status["pid"]) == {endpoint["port"]}
    path = Path(inst["socket"])
    if not path.is_absolute():
        path = backend.home.root / path
    assert path.is_socket() and path.is_relative_to(backend.home.root)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(backend.home.root.stat().st_mode) == 0o700


def test_another_user_cannot_reach_an_instance_socket(
    backend: LocalBackend, endpoint: dict[str, Any]
) -> None:
    """As an unprivileged other user (nobody): connecting to the instance socket is refused by
    the file system; the owner (the router) still gets through."""
    inst = backend.router_status(EP)["deployments"]["blue"]["instances"][0]
    path = str(backend.home.root / inst["socket"])
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    import pwd

    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the other user: a forked child that drops to nobody
        result = b"?"
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            result = b"connected"
        except PermissionError:
            result = b"PermissionError"
        except BaseException as exc:
            result = type(exc).__name__.encode()
        finally:
            os.write(write, result)
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as f:
        assert f.read() == b"PermissionError"
    assert _post(endpoint).status_code == 200


# -- the router's identity: no key to a stranger, never a twin --------------------------------
class Squatter:
    """A stranger that binds the dead router's port, records every byte and answers 200."""

    def __init__(self, port: int):
        self.received = b""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:  # the dead router's connections may hold the port for a moment
            try:
                self.sock.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    from pfmagic.backends.local.procs import port_holder

                    raise AssertionError(f"port {port} still held: {port_holder(port)}") from None
                time.sleep(0.1)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        body = b'{"proof": "0000", "answer": "I am the assistant now"}'
        reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        self.received += chunk
                        if b"\r\n\r\n" in chunk:
                            conn.sendall(reply % (len(body), body))

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def _kill_router(backend: LocalBackend) -> int:
    pid = backend.router_status(EP)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    return pid


def test_a_squatter_on_the_port_gets_no_key_and_no_question(
    shell: Any, backend: LocalBackend, endpoint: dict[str, Any]
) -> None:
    port = endpoint["port"]
    assert backend.invoke(EP, {"question": "warm"}).status == 200  # a pooled connection too
    _kill_router(backend)
    squatter = Squatter(port)
    try:
        with pytest.raises(BackendError) as err:
            backend.invoke(EP, {"question": "the secret question"})
        message = str(err.value)
        assert message.startswith(f"port {port} is held by another process (pid {os.getpid()}, ")
        assert f"`%pf_status {EP}` restarts it on a new port" in message
        assert "\n" not in message
        # the admin channel does not talk to it either
        assert RouterControl(backend.home, EP).admin("GET", "status") is None
        seen = squatter.received
        assert seen, "the client never even connected: the test proves nothing"
        for secret in (*endpoint["keys"].values(), endpoint["admin_token"], endpoint["token_key"]):
            assert secret.encode() not in seen
        assert b"secret question" not in seen and b"Bearer" not in seen
        requests = [line for line in seen.split(b"\r\n") if b" HTTP/1.1" in line]
        assert requests and all(r.startswith(b"GET /_pfmagic/identity?nonce=") for r in requests)
        # %pf_invoke in a notebook: its endpoint lookup finds no router (the squatter fails
        # the proof), starts one on a new port, and only then sends the question -- there
        reply = shell.run_line_magic("pf_invoke", f"{EP} after the move")
        assert "Echo: after the move" in str(reply.outputs)
        status = RouterControl(backend.home, EP).ensure()  # what %pf_status does
        moved = read_json(backend.home.endpoint_file(EP))["port"]
        assert moved != port and status["port"] == moved
        assert backend.invoke(EP, {"question": "again"}).status == 200  # follows the move
    finally:
        squatter.close()
    assert b"after the move" not in squatter.received and b"Bearer" not in squatter.received


def test_identity_proof_is_bound_to_the_secret_and_port(endpoint: dict[str, Any]) -> None:
    from pfmagic.backends.local.identity import proof, router_client

    nonce = "ab" * 16
    resp = httpx.get(_url(endpoint, f"/_pfmagic/identity?nonce={nonce}"), trust_env=False)
    assert resp.status_code == 200 and endpoint["admin_token"] not in resp.text
    assert resp.json()["proof"] == proof(endpoint["admin_token"], EP, endpoint["port"], nonce)
    assert resp.json()["proof"] != proof(endpoint["admin_token"], EP, endpoint["port"] + 1, nonce)
    with (
        router_client(EP, "not-the-secret") as client,
        pytest.raises(BackendError, match="held by"),
    ):
        client.get(_url(endpoint, "/health"))


def test_a_stopped_router_never_gets_a_twin(
    backend: LocalBackend, endpoint: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from pfmagic.backends.local import control
    from pfmagic.backends.local.procs import child_env, is_router

    monkeypatch.setattr(control, "STATUS_TIMEOUT", 1.0)
    pid = backend.router_status(EP)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(BackendError, match="does not answer"):
            RouterControl(backend.home, EP).ensure()
        twin = subprocess.run(
            [
                sys.executable,
                "-m",
                "pfmagic.backends.local.server",
                "--home",
                str(backend.home.root),
                "--endpoint",
                EP,
            ],
            env=child_env(backend.home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert twin.returncode == control.EXIT_LOCKED, twin.stdout
        routers = [p for p in os.listdir("/proc") if p.isdigit() and is_router(int(p), EP)]
        assert routers == [str(pid)]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert backend.router_status(EP)["pid"] == pid
    assert read_json(backend.home.endpoint_file(EP))["port"] == endpoint["port"]


# -- bounded: idle sockets, slow heads, connection floods, fds, logs ----------------------------
@pytest.fixture
def tight(backend: LocalBackend, endpoint: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The router restarted with a 1 s header deadline and at most 8 connections."""
    from pfmagic.backends.local.state import locked, write_json

    def set_limits(**limits: Any) -> None:
        with locked(backend.home.state_lock(EP)):
            cfg = read_json(backend.home.endpoint_file(EP))
            for k, v in limits.items():
                if v is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = v
            write_json(backend.home.endpoint_file(EP), cfg)
        ctl = RouterControl(backend.home, EP)
        ctl.stop()
        ctl.ensure()
        assert backend.invoke(EP, {"question": "ready?"}).status == 200

    set_limits(header_timeout=1, max_connections=8)
    try:
        yield read_json(backend.home.endpoint_file(EP))
    finally:
        set_limits(header_timeout=None, max_connections=None)


def _closed_by_peer(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_are_closed_and_floods_get_503(tight: dict[str, Any]) -> None:
    port = tight["port"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    slow = socket.create_connection(("127.0.0.1", port))
    start = time.monotonic()
    slow.sendall(b"POST /score HTTP/1.1\r\n")
    for _ in range(6):  # slowloris: a header byte every 0.3 s never completes the head
        time.sleep(0.3)
        with contextlib.suppress(OSError):
            slow.sendall(b"X")
    assert _closed_by_peer(slow, 2.0), "a slow request head kept its connection"
    assert all(_closed_by_peer(c, 2.0) for c in idle), "idle connections kept open"
    assert time.monotonic() - start < 6
    for c in [*idle, slow]:
        c.close()
    # a flood: 8 connections held open; beyond them the router answers 503, then recovers
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        time.sleep(0.2)
        resp = _post(tight)
        assert resp.status_code == 503, resp.text
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    assert _post(tight).status_code == 200


def test_router_raises_its_open_file_limit(backend: LocalBackend, endpoint: dict[str, Any]) -> None:
    pid = backend.router_status(EP)["pid"]
    line = next(
        x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in x
    )
    soft, hard = line.split()[3:5]
    assert soft == hard, line


def test_logs_rotate_by_size_under_appending_writers(tmp_path: Path) -> None:
    from pfmagic.backends.local.limits import rotate_in_place

    log = tmp_path / "inference-server.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # as an instance holds it
    try:
        for i in range(2000):
            os.write(fd, f"line {i:05d} {'x' * 80}\n".encode())
        assert rotate_in_place(log, max_bytes=64 << 10)
        os.write(fd, b"after rotation\n")
    finally:
        os.close(fd)
    assert log.read_bytes() == b"after rotation\n"  # the writer carried on at the new start
    old = log.with_name(log.name + ".1").read_text()
    assert old.startswith("line 00000") and "line 01999" in old
    assert not rotate_in_place(log, max_bytes=64 << 10)


def test_repeated_errors_are_rate_limited() -> None:
    from pfmagic.backends.local.limits import RateLimit

    limit = RateLimit(burst=5, window=0.5)
    logged = [limit.allow("POST /score|KeyError") for _ in range(1000)]
    assert sum(ok for ok, _ in logged) == 5
    assert limit.allow("other")[0]  # another error is not silenced by the first
    time.sleep(0.55)
    ok, suppressed = limit.allow("POST /score|KeyError")
    assert ok and suppressed == 995


# -- lifecycle: stop/start, titles, logs kept after delete ---------------------------------------
@pytest.fixture
def shell(ip: Any, backend: LocalBackend) -> Any:
    """A real IPython shell with pfmagic, on this module's home."""
    ip.run_line_magic("config", f"PfMagics.home = {str(backend.home.root)!r}")
    return ip


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_stop_and_start_keep_state_port_and_keys(
    shell: Any, backend: LocalBackend, endpoint: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status = backend.router_status(EP)
    router, inst = status["pid"], status["deployments"]["blue"]["instances"][0]["pid"]
    assert _cmdline(router).startswith(f"pfmagic router {EP} ")
    assert _cmdline(inst).startswith(f"pfmagic instance {EP}/blue-")
    shell.run_line_magic("pf_stop", EP)
    assert f"stopped {EP}" in capsys.readouterr().out
    deadline = time.monotonic() + 10
    while (pid_alive(router) or pid_alive(inst)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(router) and not pid_alive(inst)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", endpoint["port"]), timeout=2).close()
    with pytest.raises(BackendError, match="is stopped") as err:
        backend.invoke(EP, {"question": "anyone?"})
    assert err.value.hint and f"%pf_start {EP}" in err.value.hint
    assert backend.home.router_log(EP).is_file()  # logs kept
    shell.run_line_magic("pf_start", EP)
    assert f"started {EP}: http://127.0.0.1:{endpoint['port']}/score" in capsys.readouterr().out
    after = read_json(backend.home.endpoint_file(EP))
    assert after["keys"] == endpoint["keys"] and after["port"] == endpoint["port"]
    assert backend.invoke(EP, {"question": "back"}).status == 200


def test_logs_stay_after_delete_until_purge(shell: Any, backend: LocalBackend) -> None:
    name = "ep-logs"
    for purge in (False, True):
        backend.create_endpoint(ManagedOnlineEndpoint(name=name, auth_mode="key")).result(60)
        log = backend.home.router_log(name)
        assert log.is_file()
        shell.run_line_magic("pf_delete", f"{name} --purge" if purge else name)
        assert not backend.home.endpoint_file(name).exists()
        assert log.is_file() != purge

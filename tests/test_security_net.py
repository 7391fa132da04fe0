"""The local backend's network surface, tried as another local user or a web page would.

One real endpoint (router + chat-echo instance) shared by the module; every check talks only
to 127.0.0.1 or to the state directory's UNIX sockets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.backends.local.state import read_json

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


@pytest.fixture(scope="module")
def endpoint(backend: LocalBackend) -> dict[str, Any]:
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
    return read_json(backend.home.endpoint_file(EP))


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

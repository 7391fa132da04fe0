"""The replayed ARM traffic reaches the real MLClient over real TLS (issue 15, Must show 1).

The replay server (tests/replay.py on tests/arm_server.py) speaks HTTPS with a leaf certificate
from this session's throwaway CA (tests/tls.py); azure-ai-ml's base-URL override names it. A
client trusts it only the way a user behind a TLS-inspecting proxy would, with the CA bundle in
``REQUESTS_CA_BUNDLE`` or azure-core's ``connection_verify``; without it the handshake fails.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from arm_server import MFE_OVERRIDE
from replay import ReplayServer, replay_backend
from tls import HOST

from pfmagic.backends.azure.backend import AzureBackend
from pfmagic.errors import BackendError

RECORDING = "Get-AzMLWorkspaceOnlineEndpoint.Recording.json"  # a real, empty endpoint list
WS = ("9e223dbe-3399-4e19-88eb-0975f02ac87f", "ml-psh-test", "mlworkspace-test1")
LIST = (
    f"/subscriptions/{WS[0]}/resourceGroups/{WS[1]}/providers/"
    f"Microsoft.MachineLearningServices/workspaces/{WS[2]}/onlineEndpoints"
)


@pytest.fixture(autouse=True)
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # start from the default trust store, whatever the shell running the tests has set
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def backend(server: ReplayServer, **transport: Any) -> AzureBackend:
    return replay_backend(server, WS, **transport)


def test_replay_reaches_the_client_over_tls_by_the_base_url_override() -> None:
    with ReplayServer(RECORDING) as server:
        assert os.environ[MFE_OVERRIDE] == server.url == f"https://{HOST}:{server.port}"
        assert backend(server).list_endpoints() == []
        # the request came to the override's host, not rewritten from management.azure.com
        assert [r.headers["x-original-host"] for r in server.state.log] == [f"{HOST}:{server.port}"]
        # and the server speaks nothing but TLS: plain http gets no answer
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://{HOST}:{server.port}{LIST}", timeout=5)
    assert server.log.replayed == [("GET", LIST)]


def test_client_without_the_test_ca_fails_certificate_verification() -> None:
    with ReplayServer(RECORDING) as server:
        with pytest.raises(BackendError, match="CERTIFICATE_VERIFY_FAILED"):
            backend(server, connection_verify=True).list_endpoints()  # default trust store
    assert server.state.log == [] and server.log.replayed == []


def test_requests_ca_bundle_alone_makes_the_client_trust_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tls import ca_bundle

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle())  # what a user behind a proxy sets
    with ReplayServer(RECORDING) as server:
        assert backend(server, connection_verify=True).list_endpoints() == []
    assert server.log.replayed == [("GET", LIST)]


def test_the_server_certificate_is_signed_by_the_session_ca() -> None:
    """The server's certificate verifies against the session CA alone, for 127.0.0.1."""
    from tls import ca_bundle

    with ReplayServer(RECORDING) as server:
        trusted = ssl.create_default_context(cafile=ca_bundle())
        plain = socket.create_connection((HOST, server.port))
        with trusted.wrap_socket(plain, server_hostname=HOST) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            names = [v for _, v in tls.getpeercert()["subjectAltName"]]
        assert HOST in names and "localhost" in names


def test_recorded_lro_polls_on_management_azure_com_come_over_tls_too() -> None:
    """The base URL covers the requests azure-ai-ml builds; the recorded ``Azure-AsyncOperation``
    URL is absolute (management.azure.com) and comes through RedirectTransport, over the same
    verified TLS."""
    from test_azure_replay_deployments import (
        CREATE_OP,
        EP_PATH,
        SDK_WS,
        endpoint_entity,
        make_backend,
        play_endpoint_create,
    )

    with ReplayServer() as server:
        play_endpoint_create(server)
        created = make_backend(server, SDK_WS).create_endpoint(endpoint_entity()).result(10)
        hosts = {(r.method, r.path): r.headers["x-original-host"] for r in server.state.log}
    assert created.provisioning_state == "Succeeded"
    assert hosts[("PUT", EP_PATH)] == hosts[("GET", EP_PATH)] == f"{HOST}:{server.port}"
    polls = [h for (m, p), h in hosts.items() if p.endswith(CREATE_OP)]
    assert polls == ["management.azure.com"]

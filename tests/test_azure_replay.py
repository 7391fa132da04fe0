"""pfmagic's Azure backend against real recorded ARM responses (tests/recordings/SOURCES.md).

The recorded bodies are replayed byte for byte to the real ``MLClient`` through its own
transport (tests/replay.py); requests no recording covers (the endpoint GET that azure-ai-ml
makes before listKeys / token) are answered by tests/arm_server.py, and each test checks which
requests were replayed so a recording that stops matching fails loudly.
"""

from __future__ import annotations

from replay import ReplayServer, replay_backend
from replay import ws_path as _path

from pfmagic.backends.azure.backend import AzureBackend

# the workspaces the PowerShell recordings were made in
KEY_WS = ("0e745469-49f8-48c9-873b-24ca87143db1", "ml-test", "mlworkspace-test2")
TOKEN_WS = ("9e223dbe-3399-4e19-88eb-0975f02ac87f", "ml-test", "mlworkspace-test2")
LIST_WS = ("9e223dbe-3399-4e19-88eb-0975f02ac87f", "ml-psh-test", "mlworkspace-test1")
EP = "online-pwsh01"


def _backend(server: ReplayServer, ws: tuple[str, str, str]) -> AzureBackend:
    return replay_backend(server, ws)


def _seed_endpoint(server: ReplayServer, ws: tuple[str, str, str], auth: str) -> None:
    server.seed(
        _path(ws, f"/onlineEndpoints/{EP}"),
        {
            "location": "eastus",
            "kind": "Managed",
            "identity": {"type": "SystemAssigned"},
            "properties": {"authMode": auth, "provisioningState": "Succeeded", "traffic": {}},
        },
    )


def test_list_endpoints_replayed_empty_workspace() -> None:
    with ReplayServer("Get-AzMLWorkspaceOnlineEndpoint.Recording.json") as server:
        assert _backend(server, LIST_WS).list_endpoints() == []
    path = _path(LIST_WS, "/onlineEndpoints")
    assert server.log.replayed == [("GET", path)]
    recorded, sent = server.log.versions[("GET", path)]
    assert recorded == "2024-04-01" and sent  # azure-ai-ml pins its own api-version


def test_key_endpoint_whose_listkeys_returns_null_keys() -> None:
    """Real listKeys answered ``{"primaryKey": null, "secondaryKey": null}`` (finding 4)."""
    from pfmagic.backends.events import Operation
    from widgets.track import outcome_details

    with ReplayServer("Get-AzMLWorkspaceOnlineEndpointKey.Recording.json") as server:
        _seed_endpoint(server, KEY_WS, "Key")
        backend = _backend(server, KEY_WS)
        keys = backend.get_keys(EP)
        assert keys.primary_key is None and keys.secondary_key is None
        ep = backend.get_endpoint(EP)
        op = Operation(f"create endpoint {EP}", ("endpoint",), lambda op: ep)
        op.result()
        rows = dict(outcome_details(op, backend))
    assert ("POST", _path(KEY_WS, f"/onlineEndpoints/{EP}/listKeys")) in server.log.replayed
    assert "token" not in rows and rows["primary key"].startswith("none returned")


def test_aml_token_endpoint_token_is_the_recorded_one_and_masked() -> None:
    from pfmagic.render.keys import masked

    with ReplayServer("Get-AzMLWorkspaceOnlineEndpointToken.Recording.json") as server:
        _seed_endpoint(server, TOKEN_WS, "AMLToken")
        token = _backend(server, TOKEN_WS).get_keys(EP)
    assert ("POST", _path(TOKEN_WS, f"/onlineEndpoints/{EP}/token")) in server.log.replayed
    assert token.access_token.startswith("eyJhbGciOiJSUzI1NiIs")
    assert token.token_type == "Bearer"
    assert int(token.expiry_time_utc) == 1721897442
    shown = masked(token)
    for text in (repr(shown), str(shown), shown._repr_html_()):
        assert token.access_token not in text and token.access_token[-12:] not in text
    assert "2024-07-25" in str(shown)  # expiry 1721897442 rendered as a date

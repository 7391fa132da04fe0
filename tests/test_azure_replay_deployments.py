"""Online endpoints and deployments end to end against real recorded Azure traffic (issue 15).

The recording is azure-ai-ml's own e2e test of an online deployment (an excerpt, see
tests/recordings/SOURCES.md): endpoint create → deployment create → traffic 100 % → token →
scoring → endpoint delete, each LRO polled through ``Updating`` to ``Succeeded``. The real
MLClient behind pfmagic's AzureBackend gets the recorded bytes through its own transport
(tests/replay.py); each step plays only the responses recorded for it, and each test says which
requests were replayed and which fell back to tests/arm_server.py.

The PowerShell recordings (same workspace family as tests/test_azure_replay.py) cover deployment
get/list, getLogs and the usage list behind the quota figures.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from replay import Recorded, ReplayServer, load_recording, replay_backend, ws_path

from pfmagic.backends.azure.backend import AzureBackend

SDK_REC = "test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.excerpt.json"
SDK_WS = ("00000000-0000-0000-0000-000000000", "00000", "00000")
EP = "online-ept-10cd4ed17147449"  # the recorded test named its deployment like its endpoint
DEP = EP

# PowerShell recordings (tests/test_azure_replay.py uses the same workspaces)
KEY_WS = ("0e745469-49f8-48c9-873b-24ca87143db1", "ml-test", "mlworkspace-test2")
TOKEN_WS = ("9e223dbe-3399-4e19-88eb-0975f02ac87f", "ml-test", "mlworkspace-test2")
PS_EP, PS_DEP = "online-pwsh01", "online-pwsh01-blue01"

# the conda file azure-ai-ml's test registered (the recorded environment PUT body)
CONDA = (
    "channels:\n- conda-forge\ndependencies:\n- python=3.6.1\n- numpy=1.19.4\n- pip=21.2.4\n"
    "- scikit-learn=0.19.1\n- scipy=1.5.1\n- pip:\n  - azureml-defaults==1.33.0\n"
    "  - inference-schema[numpy-support]==1.3.0\n  - joblib==1.0.1\n  - numpy==1.19.4\n"
    "  - scikit-learn==0.19.1\n  - scipy==1.5.1\nname: model-env\n"
)
IMAGE = "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210727.v1"


EP_PATH = ws_path(SDK_WS, f"/onlineEndpoints/{EP}")
DEP_PATH = f"{EP_PATH}/deployments/{DEP}"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # the recorded polls carry no Retry-After, so azure-ai-ml would wait its 5 s between them;
    # 0.5 s keeps each recorded "Updating" in view of pfmagic's 0.02 s watch even on a busy machine
    from azure.ai.ml.constants._common import LROConfigurations

    monkeypatch.setattr(LROConfigurations, "POLL_INTERVAL", 0.5)


def make_backend(server: ReplayServer, ws: tuple[str, str, str]) -> AzureBackend:
    # endpoint LROs wait polling_interval between polls (deployments: POLL_INTERVAL)
    return replay_backend(server, ws, polling_interval=0.5)


def sdk_entries() -> list[Recorded]:
    return load_recording(SDK_REC)


def pick(entries: list[Recorded], *wanted: tuple[str, str, int]) -> list[Recorded]:
    """The recorded responses for one step: (method, path suffix, n-th such entry)."""
    out = []
    for method, suffix, nth in wanted:
        found = [e for e in entries if e.method == method and e.path.endswith(suffix)]
        out.append(found[nth])
    return out


def request_body(method: str, suffix: str, nth: int = 0) -> Any:
    """The body azure-ai-ml 1.1.0 sent in the recorded test (not replayed: compared)."""
    data = json.loads((Path(__file__).parent / "recordings" / SDK_REC).read_text())
    found = [
        e
        for e in data["Entries"]
        if e["RequestMethod"] == method and e["RequestUri"].split("?")[0].endswith(suffix)
    ]
    return found[nth]["RequestBody"]


def replayed(server: ReplayServer, method: str, suffix: str) -> bool:
    return any(m == method and p.endswith(suffix) for m, p in server.log.replayed)


def events(op: Any, stage: str) -> list[Any]:
    return [e for e in op.events if e.stage == stage]


OP = "/mfeOperationsStatus/oe:ee8c8c7b-8359-4874-b140-2a13f80fdccd:"
CREATE_OP = OP + "fd60cdd9-87eb-4f1b-8d21-395134b07aa5"
TRAFFIC_OP = OP + "60f99b95-e9ab-4fab-b606-8c723e51dd5b"
DELETE_OP = OP + "069ae5ba-3fcb-4bb8-b38f-cce08070965f"
DEP_OP = OP.replace("/oe:", "/od:") + "4f5726bc-af9d-486e-b71b-73308069f3a5"  # deployment ops
WS = ws_path(SDK_WS)


def play_endpoint_create(server: ReplayServer, *extra: tuple[str, str, int]) -> None:
    e = sdk_entries()
    server.play(
        pick(
            e,
            ("GET", WS, 0),
            ("PUT", EP_PATH, 0),  # 201, provisioningState Creating, scoringUri null
            ("GET", CREATE_OP, 0),  # Updating
            ("GET", CREATE_OP, 1),  # Succeeded
            ("GET", EP_PATH, 0),  # Succeeded, scoringUri set, traffic {}
            *extra,
        )
    )


def play_deployment_create(server: ReplayServer) -> None:
    e = sdk_entries()
    server.play(
        pick(
            e,
            ("GET", EP_PATH, 0),
            ("GET", WS, 0),
            ("PUT", "/environments/online-endpoint-mir-test/versions/3", 0),  # 201
            ("PUT", DEP_PATH, 0),  # 201, provisioningState Updating
            ("GET", DEP_OP, 0),  # Updating
            ("GET", DEP_OP, 1),  # Succeeded
            ("GET", DEP_PATH, 0),
            ("GET", f"{EP_PATH}/deployments", 0),
        )
    )
    # pfmagic checks the registered model first: the recording registered it (PUT → 200) and
    # never read it back, so arm_server answers the GET with the recorded version's body
    model = pick(e, ("PUT", "/models/mir_test_model/versions/1", 0))[0]
    server.seed(ws_path(SDK_WS, "/models/mir_test_model/versions/1"), json.loads(model.content))


def deployment_entity(tmp_path: Path) -> Any:
    from azure.ai.ml import load_online_deployment

    (tmp_path / "conda.yml").write_text(CONDA)
    text = f"""
name: {DEP}
endpoint_name: {EP}
model: azureml:mir_test_model:1
environment:
  name: online-endpoint-mir-test
  version: "3"
  image: {IMAGE}
  conda_file: conda.yml
instance_type: Standard_DS2_V2
instance_count: 1
"""
    return load_online_deployment(io.StringIO(text), relative_origin=str(tmp_path / "dep.yml"))


def endpoint_entity() -> Any:
    from azure.ai.ml import load_online_endpoint

    return load_online_endpoint(
        io.StringIO(f"name: {EP}\nauth_mode: aml_token\nidentity:\n  type: system_assigned\n")
    )


# -- endpoint create: PUT 201 → Updating → Succeeded → GET ------------------------------------
def test_endpoint_create_replayed_through_updating_to_succeeded() -> None:
    with ReplayServer() as server:
        play_endpoint_create(server)
        backend = make_backend(server, SDK_WS)
        op = backend.create_endpoint(endpoint_entity())
        created = op.result(timeout=10)
    assert created.provisioning_state == "Succeeded"
    assert created.scoring_uri == f"https://{EP}.eastus2.inference.ml.azure.com/score"
    assert created.auth_mode.lower() == "aml_token"
    running = [e.message for e in events(op, "endpoint") if e.state == "Running"]
    assert any(m.endswith(": Updating") for m in running), running  # the operation's own word
    assert events(op, "endpoint")[-1].state == "Succeeded"
    assert replayed(server, "PUT", EP_PATH) and replayed(server, "GET", CREATE_OP)
    # pfmagic's PUT says what azure-ai-ml's own test sent (location from the workspace GET)
    put = server.state.requests("PUT", EP_PATH)[0].body
    recorded = request_body("PUT", EP_PATH)
    assert put["location"] == recorded["location"] == "eastus2"
    assert put["identity"]["type"] == recorded["identity"]["type"]
    for key in ("authMode", "traffic", "mirrorTraffic"):
        assert put["properties"][key] == recorded["properties"][key]
    # pfmagic's state reads list the deployments too (azure-ai-ml's get() does): none recorded
    # at this point, so arm_server answers an empty list, as Azure would for a new endpoint
    assert {p for _, p in server.log.fallback} == {f"{EP_PATH}/deployments"}


# -- deployment create with an environment PUT, get, list -------------------------------------
def test_deployment_create_registers_environment_and_polls_to_succeeded(tmp_path: Path) -> None:
    with ReplayServer() as server:
        play_deployment_create(server)
        backend = make_backend(server, SDK_WS)
        op = backend.create_deployment(deployment_entity(tmp_path))
        result = op.result(timeout=10)
        listed = backend.list_deployments(EP)
        got = backend.get_deployment(EP, DEP)
    assert result.provisioning_state == "Succeeded" and result.instance_type == "Standard_DS2_V2"
    states = {s: e.state for s, e in op.stage_states().items()}
    assert states == {
        "model": "Succeeded",
        "endpoint": "Succeeded",
        "deployment": "Succeeded",
        "traffic": "Skipped",
    }
    assert any(e.message.endswith(": Updating") for e in events(op, "deployment"))
    assert [d.name for d in listed] == [DEP] and listed[0].provisioning_state == "Succeeded"
    assert got.instance_count == 1 and got.endpoint_name == EP

    # the environment went through the recorded PUT (201) with the recorded image and conda file
    env_put = server.state.requests("PUT", "/environments/online-endpoint-mir-test/versions/3")
    assert env_put and env_put[0].body["properties"]["image"] == IMAGE
    assert env_put[0].body["properties"]["condaFile"] == CONDA
    # the deployment PUT names the same environment, model and SKU azure-ai-ml 1.1.0 sent
    sent = server.state.requests("PUT", DEP_PATH)[0].body
    recorded = request_body("PUT", DEP_PATH)
    for key in ("environmentId", "model", "instanceType", "endpointComputeType"):
        assert sent["properties"][key] == recorded["properties"][key]
    assert sent["sku"] == recorded["sku"] == {"name": "Default", "capacity": 1}
    assert replayed(server, "GET", DEP_OP)
    # only the model read (never recorded) fell back to arm_server
    assert {p for _, p in server.log.fallback} == {
        ws_path(SDK_WS, "/models/mir_test_model/versions/1")
    }


def test_deployment_progress_has_sub_steps_and_never_sits_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: Azure polls every few seconds; between them the view says what it waits for
    (a heartbeat ≤ 1 s apart), and each change a poll saw is a sub-step with its own time."""
    from azure.ai.ml.constants._common import LROConfigurations

    monkeypatch.setattr(LROConfigurations, "POLL_INTERVAL", 2.0)
    with ReplayServer() as server:
        play_deployment_create(server)
        backend = replay_backend(server, SDK_WS, polling_interval=0.5, poll_seconds=1.0)
        op = backend.create_deployment(deployment_entity(tmp_path))
        op.result(timeout=20)
    running = [e for e in events(op, "deployment") if e.state == "Running"]
    beats = [e for e in running if e.beat]
    assert beats and all(e.message.startswith("waiting for Azure: ") for e in beats)
    assert "last poll" in beats[-1].message and "every 1 s" in beats[-1].message
    times = [e.time for e in events(op, "deployment")]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 2.0
    # the recorded operation status reads "Updating"; the recording's only deployment GET is
    # the final one (Succeeded), which the watch reads as the resource's state
    steps = running[-1].substeps
    assert steps[0].startswith("operation Updating at "), steps
    assert any(s.startswith("provisioning state ") for s in steps), steps
    assert all(re.search(r" at \d+(\.\d)? (ms|s)", s) for s in steps), steps


# -- traffic: PUT 201 answers traffic {} while Updating; the GET after shows 100 % ------------
def test_traffic_update_replayed() -> None:
    e = sdk_entries()
    with ReplayServer() as server:
        server.play(
            pick(
                e,
                ("GET", EP_PATH, 0),  # before: traffic {}
                ("GET", EP_PATH, 1),  # after the operation: traffic {dep: 100}
                ("GET", f"{EP_PATH}/deployments", 0),
                ("GET", WS, 0),
                ("PUT", EP_PATH, 1),  # 201 with provisioningState Updating, traffic {}
                ("GET", TRAFFIC_OP, 0),
                ("GET", TRAFFIC_OP, 1),
            )
        )
        backend = make_backend(server, SDK_WS)
        ep = backend.set_traffic(EP, {DEP: 100})
    assert ep.traffic == {DEP: 100} and ep.provisioning_state == "Succeeded"
    put = server.state.requests("PUT", EP_PATH)[0].body
    assert put["properties"]["traffic"] == request_body("PUT", EP_PATH, 1)["properties"]["traffic"]
    assert replayed(server, "GET", TRAFFIC_OP) and not server.log.fallback


# -- token and scoring through the recorded responses -----------------------------------------
def test_token_and_invoke_replayed() -> None:
    e = sdk_entries()
    with ReplayServer() as server:
        server.play(
            pick(
                e,
                ("GET", EP_PATH, 1),
                ("GET", f"{EP_PATH}/deployments", 0),
                ("POST", f"{EP_PATH}/token", 0),
                ("POST", "/score", 0),
            )
        )
        backend = make_backend(server, SDK_WS)
        token = backend.get_keys(EP)
        body = {"data": [list(range(1, 11)), list(range(10, 0, -1))]}
        reply = backend.invoke(EP, body, deployment=DEP)
    assert token.token_type == "Bearer" and int(token.expiry_time_utc) == 1667071623
    assert reply.status == 200 and reply.outputs == [5215.1981315798685, 3726.995485938578]
    score = server.state.requests("POST", "/score")[0]
    assert score.body == request_body("POST", "/score")  # the recorded request, byte for byte
    assert score.headers["authorization"] == f"Bearer {token.access_token}"
    assert score.headers["azureml-model-deployment"] == DEP
    assert not server.log.fallback


# -- endpoint delete: 202 with a null body; the recording ends while Azure is still Updating --
def test_endpoint_delete_replayed_until_the_recording_ends() -> None:
    e = sdk_entries()
    with ReplayServer() as server:
        server.play(pick(e, ("DELETE", EP_PATH, 0), ("GET", DELETE_OP, 0)))
        backend = make_backend(server, SDK_WS)
        op = backend.delete_endpoint(EP)
        deadline = time.time() + 5
        while time.time() < deadline and not any(
            m.message.endswith(": Updating") for m in events(op, "delete")
        ):
            time.sleep(0.02)
        assert not op.done()  # the recorded operation never finished: neither do we
        op.cancel()
        op.wait(5)
        # past the recording's end: arm_server knows no such operation (404), so the SDK's
        # poller thread, which goes on polling after we stop waiting, fails and ends here
        server.play([])
        for thread in threading.enumerate():
            if thread.name.startswith("LROPoller("):
                thread.join(5)
                assert not thread.is_alive()
    assert op.status() == "Canceled"
    assert "Azure keeps going" in op.events[-1].message
    assert replayed(server, "DELETE", EP_PATH)
    assert replayed(server, "GET", DELETE_OP)


# -- PowerShell: deployment get / list ----------------------------------------------------------
def test_deployment_get_and_list_from_powershell_recording() -> None:
    from pfmagic.render.status import _model_text

    with ReplayServer("Get-AzMLWorkspaceOnlineDeployment.Recording.json") as server:
        backend = make_backend(server, TOKEN_WS)
        dep = backend.get_deployment(PS_EP, PS_DEP)
        listed = backend.list_deployments(PS_EP)
    assert dep.provisioning_state == "Succeeded"
    assert dep.instance_type == "Standard_F4s_v2" and dep.instance_count == 3  # sku.capacity
    assert _model_text(dep.model) == "work-online-model:1"  # %pf_status, not the ARM id
    assert [d.name for d in listed] == [PS_DEP]
    base = ws_path(TOKEN_WS, f"/onlineEndpoints/{PS_EP}/deployments")
    assert server.log.replayed == [("GET", f"{base}/{PS_DEP}"), ("GET", base)]
    assert not server.log.fallback


# -- PowerShell: getLogs -----------------------------------------------------------------------
def test_logs_from_powershell_recording() -> None:
    from pfmagic.backends.azure.progress import log_lines

    with ReplayServer("Get-AzMLWorkspaceOnlineDeploymentLog.Recording.json") as server:
        backend = make_backend(server, KEY_WS)
        text = backend.get_logs(PS_EP, PS_DEP, lines=20)
        backend.get_logs(PS_EP, PS_DEP, lines=5, container_type="storage")
    assert text.startswith("Instance status:\nSystemSetup: Succeeded\n")
    assert "Container is ready" in text and "Worker with pid 78 ready" in text
    assert text.endswith('"kube-probe/1.29"\n\n')  # real logs end with a blank line
    tail = log_lines(text, 3)  # the tail under a failed deployment: no blank last line
    assert len(tail) == 3 and all(line.endswith('"kube-probe/1.29"') for line in tail)
    posts = server.state.requests("POST", "/getLogs")
    assert posts[0].body == {"tail": 20}
    assert posts[1].body == {"tail": 5, "containerType": "StorageInitializer"}
    assert not server.log.fallback


# -- PowerShell: usage list → quota figures ----------------------------------------------------
def test_quota_from_recorded_usage_list() -> None:
    from pfmagic.skus import check_quota

    with ReplayServer("Get-AzMLServiceUsage.Recording.excerpt.json") as server:
        backend = make_backend(server, KEY_WS)
        table = backend.quota_usage()
    usages = f"/subscriptions/{KEY_WS[0]}/providers/Microsoft.MachineLearningServices"
    assert ("GET", f"{usages}/locations/eastus/usages") in server.log.replayed
    assert table is not None
    # the dedicatedCores rows, not the lowPriorityCores rows (limit -1) that follow them
    assert table["standarddsv2family"] == (4, 6)
    assert table["standardfsv2family"] == (16, 16)
    assert table["standardesv3family"] == (0, 20)
    assert table["standardncasv3t4family"] == (0, 0)  # "Standard NCASv3_T4 Family"
    assert all(limit >= 0 for _, limit in table.values())
    assert "totaldedicatedcores" not in table
    fits = check_quota("E4s_v3", 1, table, backend_name="azure")
    assert (fits.verdict, fits.available, fits.needed) == ("fits", 20, 8)
    short = check_quota("DS3_v2", 1, table, backend_name="azure")  # 2 free, 8 needed
    assert (short.verdict, short.available, short.needed) == ("short", 2, 8)
    full = check_quota("F4s_v2", 1, table, backend_name="azure")
    assert (full.verdict, full.available) == ("short", 0)


def test_every_managed_sku_family_is_named_as_the_real_usage_list_names_it() -> None:
    """A family pfmagic spells unlike Azure's usage list would leave its quota 'unchecked'."""
    from pfmagic.skus import SKUS, check_quota, normalise_family

    with ReplayServer("Get-AzMLServiceUsage.Recording.excerpt.json") as server:
        table = make_backend(server, KEY_WS).quota_usage()
    assert table is not None
    missing = {s.family for s in SKUS if normalise_family(s.family) not in table}
    assert not missing
    verdicts = {check_quota(s.name, 1, table, backend_name="azure").verdict for s in SKUS}
    assert "unchecked" not in verdicts and "unknown" not in verdicts


# -- tests/arm_server.py answers the recorded shapes ---------------------------------------------
def test_arm_server_answers_like_the_recording() -> None:
    """arm_server stands in wherever no recording exists: it must send what the recording
    shows for the same requests (status, LRO headers, state and traffic in the body)."""
    import requests
    from arm_server import ArmServer
    from tls import ca_bundle

    data = json.loads((Path(__file__).parent / "recordings" / SDK_REC).read_text())["Entries"]

    def recorded(method: str, suffix: str, nth: int = 0) -> dict[str, Any]:
        return [
            e
            for e in data
            if e["RequestMethod"] == method and e["RequestUri"].split("?")[0].endswith(suffix)
        ][nth]

    lro = {"Azure-AsyncOperation", "Location", "x-ms-async-operation-timeout"}

    def same_shape(resp: Any, entry: dict[str, Any], *fields: str) -> None:
        assert resp.status_code == entry["StatusCode"]
        assert lro & set(entry["ResponseHeaders"]) <= set(resp.headers)
        body, want = resp.json(), entry["ResponseBody"]
        for name in fields:
            assert body["properties"][name] == want["properties"][name], name

    ep_body = request_body("PUT", EP_PATH)
    dep_body = request_body("PUT", DEP_PATH)
    with ArmServer() as arm, requests.Session() as http:
        http.verify = ca_bundle()  # the server's TLS certificate is from the session's test CA
        http.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment replaces it
        arm.state.op_seconds = 60  # every operation still running when polled
        base = arm.url
        q = "?api-version=2023-04-01-preview"
        created = http.put(base + EP_PATH + q, json=ep_body, timeout=5)
        same_shape(
            created,
            recorded("PUT", EP_PATH),
            "provisioningState",
            "scoringUri",
            "traffic",
            "mirrorTraffic",
        )
        status_url = created.headers["Azure-AsyncOperation"]
        poll = http.get(status_url.replace("https://management.azure.com", base), timeout=5)
        assert poll.json()["status"] == recorded("GET", CREATE_OP)["ResponseBody"]["status"]
        arm.state.resources[EP_PATH.lower()]["properties"]["provisioningState"] = "Succeeded"
        same_shape(
            http.put(base + DEP_PATH + q, json=dep_body, timeout=5),
            recorded("PUT", DEP_PATH),
            "provisioningState",
        )
        same_shape(
            http.put(base + EP_PATH + q, json=request_body("PUT", EP_PATH, 1), timeout=5),
            recorded("PUT", EP_PATH, 1),
            "provisioningState",
            "traffic",
        )
        gone = http.delete(base + EP_PATH + q, timeout=5)
        want = recorded("DELETE", EP_PATH)
        assert gone.status_code == want["StatusCode"] and gone.content == b"null"
        assert lro <= set(gone.headers)


# -- the same readings through the %pf_ magics in a real IPython shell ---------------------------
def use(ip: Any, server: ReplayServer, ws: tuple[str, str, str]) -> None:
    from pfmagic.magics import session_of

    session_of(ip).use_backend(make_backend(server, ws))


def test_pf_quota_cell_shows_the_recorded_dedicated_figures(ip: Any) -> None:
    with ReplayServer("Get-AzMLServiceUsage.Recording.excerpt.json") as server:
        use(ip, server, KEY_WS)
        check = ip.run_line_magic("pf_quota", "--sku DS3_v2 --instances 1")
    text = repr(check)
    assert (check.verdict, check.available, check.needed) == ("short", 2, 8)
    assert "workspace 4/6 used, 2 free" in text and "short by 6 cores" in text
    assert "-1" not in text  # the lowPriorityCores limit never reaches the user


def test_pf_status_and_pf_logs_cells_from_powershell_recordings(ip: Any) -> None:
    from pfmagic.magics import session_of

    with ReplayServer("Get-AzMLWorkspaceOnlineDeployment.Recording.json") as server:
        # the endpoint itself is not in this recording: arm_server holds it, as recorded in
        # Get-AzMLWorkspaceOnlineEndpoint (Key auth, Succeeded, traffic to blue01)
        server.seed(
            ws_path(TOKEN_WS, f"/onlineEndpoints/{PS_EP}"),
            {
                "location": "eastus",
                "kind": "Managed",
                "properties": {
                    "authMode": "Key",
                    "provisioningState": "Succeeded",
                    "traffic": {PS_DEP: 100},
                },
            },
        )
        use(ip, server, TOKEN_WS)
        status = ip.run_line_magic("pf_status", f"{PS_EP} {PS_DEP}")
    rows = {line.split()[0]: line.split(None, 1)[1] for line in repr(status).splitlines()[1:]}
    assert rows["model"] == "work-online-model:1"  # not the recorded ARM id
    assert rows["instances"] == "3 × Standard_F4s_v2" and rows["state"] == "Succeeded"
    assert rows["traffic"] == "100%"
    session_of(ip).active_backend.close()

    with ReplayServer("Get-AzMLWorkspaceOnlineDeploymentLog.Recording.json") as server:
        use(ip, server, KEY_WS)
        logs = ip.run_line_magic("pf_logs", f"{PS_EP} {PS_DEP} --lines 5")
    assert str(logs).rstrip().endswith('"kube-probe/1.29"')
    assert server.state.requests("POST", "/getLogs")[0].body == {"tail": 5}


def test_endpoint_and_deployment_cells_replayed(ip: Any, tmp_path: Path) -> None:
    """The notebook's two cells, unchanged, against the recorded create sequence."""
    from IPython.utils.capture import capture_output

    e = sdk_entries()
    token = ("POST", f"{EP_PATH}/token", 0)  # the create summary shows the endpoint's token
    (tmp_path / "conda.yml").write_text(CONDA)
    with ReplayServer() as server:
        use(ip, server, SDK_WS)
        play_endpoint_create(server, token)
        with capture_output() as out:
            ip.run_cell_magic("pf_endpoint", "--create", f"name: {EP}\nauth_mode: aml_token\n")
        play_deployment_create(server)
        with capture_output() as out2:
            ip.run_cell_magic(
                "pf_deployment",
                "--create",
                f"name: {DEP}\nendpoint_name: {EP}\nmodel: azureml:mir_test_model:1\n"
                f'environment:\n  name: online-endpoint-mir-test\n  version: "3"\n'
                f"  image: {IMAGE}\n  conda_file: conda.yml\n"
                "instance_type: Standard_DS2_V2\ninstance_count: 1\n",
            )
    shown = out.stdout + "".join(o.data.get("text/plain", "") for o in out.outputs)
    assert f"create endpoint {EP}: Succeeded" in shown
    assert f"scoring URI https://{EP}.eastus2.inference.ml.azure.com/score" in shown
    assert "token       ****" in shown
    recorded_token = json.loads(pick(e, token)[0].content)["accessToken"]
    assert recorded_token[:12] not in shown and recorded_token[-12:] not in shown
    shown = out2.stdout + "".join(o.data.get("text/plain", "") for o in out2.outputs)
    assert f"deploy {EP}/{DEP}: Succeeded" in shown
    assert "model mir_test_model:1 found" in shown and ": Updating" in shown
    assert "traffic unchanged" in shown
    sent = server.state.requests("PUT", DEP_PATH)[0].body["properties"]
    assert sent["instanceType"] == "Standard_DS2_V2"
    assert sent["environmentId"].endswith("/environments/online-endpoint-mir-test/versions/3")

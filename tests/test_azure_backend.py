"""AzureBackend driven through the real azure-ai-ml MLClient against a local ARM-like server.

The only doubles are the server (tests/arm_server.py, speaking ARM's LRO protocol) and the
credential. Requests are checked for method, URL, api-version and body; operations for their
progress events; failures for the one-line message and hint.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from arm_server import ArmServer, FakeCredential
from azure.ai.ml import load_online_deployment, load_online_endpoint
from azure.ai.ml.entities import EndpointAuthKeys, EndpointAuthToken

from pfmagic.backends.azure.backend import AzureBackend
from pfmagic.backends.azure.prt import fill_prt_value
from pfmagic.errors import BackendError, NotFound, PfError
from pfmagic.spec.templates import PRT_PLACEHOLDERS, deployment_yaml, endpoint_yaml

W = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
EP = "basic-chat-endpoint"
EP_PATH = f"{W}/onlineEndpoints/{EP}"
PRT_SEED = PRT_PLACEHOLDERS

ENDPOINT_YAML = endpoint_yaml(EP)
DEPLOYMENT_YAML = deployment_yaml(
    "blue", EP, "azureml:basic-chat-model:1", fields="app_insights_enabled: true\n", prt=PRT_SEED
)

K8S_ENDPOINT_YAML = f"""
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json
name: {EP}
compute: azureml:k8s-compute
auth_mode: key
"""

K8S_DEPLOYMENT_YAML = (
    DEPLOYMENT_YAML.replace("name: blue\n", "name: blue\ntype: kubernetes\n")
    .replace("instance_type: Standard_E16s_v3", "instance_type: gpu-small")
    .replace("managedOnlineDeployment", "kubernetesOnlineDeployment")
)


# -- fixtures ----------------------------------------------------------------------------
def make_backend(arm: ArmServer, **kw: Any) -> AzureBackend:
    kw.setdefault("credential", FakeCredential())
    return AzureBackend(
        subscription_id="sub",
        resource_group="rg",
        workspace="ws",
        transport=arm.transport(),
        polling_interval=0,
        poll_seconds=0.02,
        **kw,
    )


@pytest.fixture
def backend(arm: ArmServer) -> AzureBackend:
    return make_backend(arm)


def endpoint(text: str = ENDPOINT_YAML) -> Any:
    return load_online_endpoint(io.StringIO(text))


def deployment(text: str = DEPLOYMENT_YAML, name: str = "blue") -> Any:
    return load_online_deployment(io.StringIO(text.replace("name: blue\n", f"name: {name}\n")))


def seed_endpoint(
    arm: ArmServer,
    state: str = "Succeeded",
    auth: str = "Key",
    traffic: dict[str, int] | None = None,
) -> None:
    arm.seed(
        EP_PATH,
        {
            "location": "eastus",
            "kind": "Managed",
            "identity": {"type": "None"},
            "properties": {
                "authMode": auth,
                "provisioningState": state,
                "traffic": traffic or {},
                "scoringUri": f"https://{EP}.eastus.inference.ml.azure.com/score",
            },
        },
    )


def seed_deployment(arm: ArmServer, name: str) -> None:
    arm.seed(
        f"{EP_PATH}/deployments/{name}",
        {
            "location": "eastus",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                "instanceType": "Standard_E16s_v3",
                "provisioningState": "Succeeded",
                "scaleSettings": {"scaleType": "Default"},
            },
        },
    )


def states(op: Any) -> list[tuple[str, str]]:
    return [(e.stage, e.state) for e in op.events]


# -- the seed, end to end ------------------------------------------------------------------
def test_seed_endpoint_then_deployment_all_traffic(
    arm: ArmServer, backend: AzureBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    op = backend.create_endpoint(endpoint())
    created = op.result(timeout=30)
    assert state_of(created) == "Succeeded"
    assert created.scoring_uri == f"https://{EP}.eastus.inference.ml.azure.com/score"
    assert states(op)[0] == ("endpoint", "Running") and states(op)[-1] == ("endpoint", "Succeeded")
    put = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")[0]
    assert put.path == EP_PATH and put.api_version == "2022-02-01-preview"
    assert put.body["location"] == "eastus"
    assert put.body["properties"]["authMode"] == "Key"
    assert put.body["properties"]["properties"] == {
        "enforce_access_to_default_secret_stores": "enabled"
    }
    assert put.headers["authorization"] == "Bearer fake-token"

    arm.state.op_seconds = 0.3  # the deployment stays Creating for a few slices
    arm.state.logs = "\n".join(f"log {i}" for i in range(30))
    op = backend.create_deployment(deployment(), all_traffic=True)
    result = op.result(timeout=30)
    assert result.name == "blue" and state_of(result) == "Succeeded"
    assert type(result.provisioning_state) is str  # plain, not the SDK's enum

    # stages in the local backend's order, each ending Succeeded
    assert [s for s, _ in states(op) if _ == "Succeeded"] == list(op.stages)
    running = [e for e in op.events if e.stage == "deployment" and e.state == "Running"]
    # a new deployment reports Updating from its PUT on (recorded, tests/recordings/SOURCES.md)
    busy = [e for e in running if e.provisioning_state == "Updating"]
    assert busy and busy[-1].log_tail[-1] == "log 29" and len(busy[-1].log_tail) == 20

    # model checked by GET of the registered version
    model_get = arm.state.requests("GET", "/models/basic-chat-model/versions/1")
    assert model_get and model_get[0].api_version == "2023-08-01-preview"
    # deployment PUT carries the seed untouched (PRT placeholders stay: fill is opt-in)
    dput = arm.state.requests("PUT", f"/onlineEndpoints/{EP}/deployments/blue")[0]
    assert dput.api_version == "2023-04-01-preview"
    props = dput.body["properties"]
    assert props["endpointComputeType"] == "Managed"
    assert props["instanceType"] == "Standard_E16s_v3"
    assert dput.body["sku"]["capacity"] == 1
    assert props["appInsightsEnabled"] is True
    assert props["environmentVariables"] == {
        "PROMPTFLOW_RUN_MODE": "serving",
        "PRT_CONFIG_OVERRIDE": PRT_SEED,
    }
    assert props["model"].endswith("/models/basic-chat-model/versions/1")
    env_put = arm.state.requests("PUT", "/environments/")[0]
    assert env_put.body["properties"]["image"].endswith("promptflow-runtime:latest")
    assert env_put.body["properties"]["inferenceConfig"]["scoringRoute"] == {
        "path": "/score",
        "port": 8080,
    }
    # logs read while Creating: POST getLogs {"tail": 20}
    logs = arm.state.requests("POST", "/deployments/blue/getLogs")
    assert logs and logs[0].body == {"tail": 20}
    # --all-traffic: a second endpoint PUT with traffic blue=100, after the deployment
    eputs = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")
    traffic_put = [r for r in eputs if "/deployments/" not in r.path][-1]
    assert traffic_put.body["properties"]["traffic"] == {"blue": 100}
    assert arm.state.log.index(traffic_put) > arm.state.log.index(dput)
    assert backend.get_endpoint(EP).traffic == {"blue": 100}
    # the SDK's dots and "Check: endpoint … exists" did not reach the notebook
    out, err = capsys.readouterr()
    assert "." not in out and "Check: endpoint" not in err


def state_of(entity: Any) -> str:
    from pfmagic.backends.azure.progress import state_name

    return state_name(entity.provisioning_state) or ""


def test_prt_config_override_filled_on_request(arm: ArmServer) -> None:
    seed_endpoint(arm)
    backend = make_backend(arm, fill_prt_config=True)
    dep = deployment()
    backend.create_deployment(dep).result(timeout=30)
    body = arm.state.requests("PUT", "/deployments/blue")[0].body
    env = body["properties"]["environmentVariables"]
    assert env["PRT_CONFIG_OVERRIDE"] == (
        "deployment.subscription_id=sub,deployment.resource_group=rg,"
        "deployment.workspace_name=ws,deployment.endpoint_name=basic-chat-endpoint,"
        "deployment.deployment_name=blue"
    )
    assert env["PROMPTFLOW_RUN_MODE"] == "serving"


def test_prt_fill_leaves_user_values() -> None:
    values = {
        "subscription_id": "s",
        "resource_group": "g",
        "workspace_name": "w",
        "endpoint_name": "e",
        "deployment_name": "d",
    }
    assert (
        fill_prt_value("deployment.subscription_id=mine,deployment.workspace_name=<ws>", values)
        == "deployment.subscription_id=mine,deployment.workspace_name=w"
    )


def test_kubernetes_endpoint_and_deployment(arm: ArmServer, backend: AzureBackend) -> None:
    ep = endpoint(K8S_ENDPOINT_YAML)
    assert type(ep).__name__ == "KubernetesOnlineEndpoint"
    backend.create_endpoint(ep).result(timeout=30)
    put = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")[0]
    assert put.body["properties"]["compute"] == f"{W}/computes/k8s-compute"
    dep = deployment(K8S_DEPLOYMENT_YAML)
    assert type(dep).__name__ == "KubernetesOnlineDeployment"
    backend.create_deployment(dep).result(timeout=30)
    body = arm.state.requests("PUT", "/deployments/blue")[0].body
    assert body["properties"]["endpointComputeType"] == "Kubernetes"
    assert body["properties"]["instanceType"] == "gpu-small"
    with pytest.raises(PfError, match="Kubernetes endpoint"):
        backend.set_traffic(EP, {"blue": 100}, mirror={"green": 10})


# -- traffic, keys, logs, invoke, delete ----------------------------------------------------
def test_traffic_and_mirror(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm, traffic={"blue": 100})
    seed_deployment(arm, "blue")
    seed_deployment(arm, "green")
    ep = backend.set_traffic(EP, {"blue": 90, "green": 10})
    put = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")[-1]
    assert put.api_version == "2022-02-01-preview"
    assert put.body["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert ep.traffic == {"blue": 90, "green": 10}

    backend.set_traffic(EP, {"blue": 100}, mirror={"green": 20})
    put = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")[-1]
    # green's 0 is stripped by the SDK; the mirror goes with the same PUT
    assert put.body["properties"]["traffic"] == {"blue": 100}
    assert put.body["properties"]["mirrorTraffic"] == {"green": 20}
    assert backend.get_endpoint(EP).mirror_traffic == {"green": 20}

    before = len(arm.state.log)
    with pytest.raises(PfError, match="traffic adds up to 60%, not 100%"):
        backend.set_traffic(EP, {"blue": 50, "green": 10})
    with pytest.raises(PfError, match="above the 50% limit"):
        backend.set_traffic(EP, {"blue": 100}, mirror={"green": 60})
    with pytest.raises(PfError, match="green cannot receive both live"):  # as the local backend
        backend.set_traffic(EP, {"blue": 80, "green": 20}, mirror={"green": 10})
    assert len(arm.state.log) == before  # refused before any request


def test_keys_token_and_regenerate(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    keys = backend.get_keys(EP)
    assert isinstance(keys, EndpointAuthKeys) and keys.primary_key.startswith("pk-")
    post = arm.state.requests("POST", "/listKeys")[0]
    assert post.path == f"{EP_PATH}/listKeys" and post.api_version == "2022-02-01-preview"

    new = backend.regenerate_keys(EP, "primary")
    regen = arm.state.requests("POST", "/regenerateKeys")[0]
    assert regen.body == {"keyType": "Primary", "keyValue": keys.primary_key}
    assert new.primary_key != keys.primary_key and new.secondary_key == keys.secondary_key

    seed_endpoint(arm, auth="AMLToken")
    token = backend.get_keys(EP)
    assert isinstance(token, EndpointAuthToken) and token.access_token == "aml-token-xyz"
    assert arm.state.requests("POST", f"{EP_PATH}/token")


def test_invoke_through_the_sdk(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    seed_deployment(arm, "blue")
    body = {"question": "What is Azure Machine Learning?", "chat_history": []}
    reply = backend.invoke(EP, body, deployment="blue")
    assert reply.status == 200 and reply.outputs["echo"] == body
    score = arm.state.requests("POST", "/score")[0]
    key = backend.get_keys(EP).primary_key
    assert score.host == f"{EP}.eastus.inference.ml.azure.com"
    assert score.headers["authorization"] == f"Bearer {key}"
    assert score.headers["azureml-model-deployment"] == "blue"
    # the SDK keeps headers in a class-level dict: the next call must not inherit them
    backend.invoke(EP, body)
    assert "azureml-model-deployment" not in arm.state.requests("POST", "/score")[-1].headers
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields

    assert "Authorization" not in EndpointInvokeFields.DEFAULT_HEADER


def test_invoke_stream_uses_pfmagic_http(arm: ArmServer) -> None:
    import ssl

    import httpx
    from tls import ca_bundle

    class Redirect(httpx.HTTPTransport):
        def handle_request(self, request: Any) -> Any:
            request.headers["x-original-host"] = request.url.host
            request.url = request.url.copy_with(scheme="https", host="127.0.0.1", port=arm.port)
            return super().handle_request(request)

    seed_endpoint(arm)
    trust = ssl.create_default_context(cafile=ca_bundle())  # the test CA, as for MLClient
    with httpx.Client(transport=Redirect(verify=trust)) as client:
        backend = make_backend(arm, score_client=client)
        reply = backend.invoke(EP, {"question": "hi"}, deployment="blue", stream=True)
    assert reply.status == 200 and reply.outputs["answer"] == "hi"
    score = arm.state.requests("POST", "/score")[-1]
    assert score.headers["authorization"].startswith("Bearer pk-")
    assert "text/event-stream" in score.headers["accept"]


def test_logs_and_deletes(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    seed_deployment(arm, "blue")
    arm.state.logs = "a\nb\nc\nd"
    assert backend.get_logs(EP, "blue", lines=2) == "c\nd"
    assert backend.get_logs(EP, "blue", lines=3, container_type="storage-initializer")
    posts = arm.state.requests("POST", "/getLogs")
    assert posts[0].body == {"tail": 2} and posts[0].api_version == "2023-04-01-preview"
    assert posts[1].body == {"tail": 3, "containerType": "StorageInitializer"}

    arm.state.op_seconds = 0.1
    op = backend.delete_deployment(EP, "blue")
    op.result(timeout=30)
    assert states(op)[0] == ("delete", "Running") and states(op)[-1] == ("delete", "Succeeded")
    dels = arm.state.requests("DELETE")
    assert dels[0].path == f"{EP_PATH}/deployments/blue"
    assert dels[0].api_version == "2023-04-01-preview"
    backend.delete_endpoint(EP).result(timeout=30)
    assert arm.state.requests("DELETE")[-1].path == EP_PATH
    assert backend.list_endpoints() == []
    with pytest.raises(NotFound):
        backend.get_endpoint(EP)


def test_no_wait_reports_and_cancel(
    arm: ArmServer, backend: AzureBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_endpoint(arm)
    arm.state.op_seconds = 2  # Azure still provisioning when we stop waiting
    op = backend.create_deployment(deployment())
    assert not op.done()  # returned at once; the worker keeps reporting
    import time

    deadline = time.time() + 20
    while time.time() < deadline and not any(e.provisioning_state == "Updating" for e in op.events):
        time.sleep(0.02)
    assert any(e.provisioning_state == "Updating" and e.log_tail for e in op.events)
    op.cancel()
    op.wait(10)
    assert op.status() == "Canceled"
    assert "Azure keeps going" in op.events[-1].message
    # the SDK's poller thread goes on polling until Azure is done (op_seconds); its dots must
    # stay out of the notebook all along, and it must not outlive the test (nor print into the
    # next one once this test's ARM server is gone)
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("LROPoller("):
            thread.join(20)
            assert not thread.is_alive()
    out, _ = capsys.readouterr()
    assert "." not in out


def test_quota_usage_reads_camel_case(arm: ArmServer, backend: AzureBackend) -> None:
    arm.state.usages = [
        {
            "id": "u1",
            "type": "Microsoft.MachineLearningServices/workspaces/quotas",
            "unit": "Count",
            "currentValue": 8,
            "limit": 24,
            "name": {"value": "standardESv3Family", "localizedValue": "Standard ESv3 Family vCPUs"},
        },
        {
            "id": "u2",
            "unit": "Count",
            "currentValue": 8,
            "limit": 100,
            "name": {"value": "TotalDedicatedCores", "localizedValue": "Total"},
        },
    ]
    assert backend.quota_usage() == {"standardesv3family": (8, 24)}
    get = arm.state.requests("GET", "/usages")[0]
    assert get.path == (
        "/subscriptions/sub/providers/Microsoft.MachineLearningServices/locations/eastus/usages"
    )
    assert get.api_version == "2023-08-01-preview"


# -- error mapping -------------------------------------------------------------------------
def failed(op: Any) -> BackendError:
    with pytest.raises(PfError) as info:
        op.result(timeout=30)
    return info.value  # type: ignore[return-value]


def test_out_of_quota_with_calculator_numbers(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    arm.state.usages = [
        {"currentValue": 0, "limit": 6, "unit": "Count", "name": {"value": "standardESv3Family"}}
    ]
    arm.state.fail_deployment = {
        "code": "OutOfQuota",
        "message": "Not enough quota available for Standard_E16s_v3 in SubscriptionId sub. "
        "Current usage/limit: 0/6. Additional needed: 32 Please see "
        "troubleshooting guide, available here: https://aka.ms/oe-tsg#error-outofquota",
    }
    err = failed(backend.create_deployment(deployment(), all_traffic=True))
    assert isinstance(err, BackendError) and err.code == "OutOfQuota"
    assert "\n" not in str(err)
    assert "usage/limit 0/6, additional needed 32" in err.message
    assert "32" in err.message and "short by" in err.message  # from pfmagic.skus.check_quota
    assert "quota" in (err.hint or "")
    assert not [
        r
        for r in arm.state.requests("PUT", f"/onlineEndpoints/{EP}")
        if "/deployments/" not in r.path
    ]  # no traffic update after the failure


def test_image_build_failure(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    arm.state.fail_deployment = {
        "code": "ImageBuildFailure",
        "message": "Image build failed: pip install exited with 1",
    }
    op = backend.create_deployment(deployment())
    err = failed(op)
    assert err.code == "ImageBuildFailure" and "image failed to build" in err.message
    assert op.stage_states()["deployment"].state == "Failed"


def test_probe_failure_carries_log_tail(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    arm.state.logs = (
        "starting promptflow serving\nConnectionNotFoundError: Connection "
        "'open_ai_connection' is not found."
    )
    arm.state.fail_deployment = {
        "code": "ResourceNotReady",
        "message": "User container has crashed or terminated: Liveness probe failed.",
    }
    op = backend.create_deployment(deployment())
    err = failed(op)
    assert err.code == "ResourceNotReady" and "probe" in err.message
    assert "open_ai_connection" in (err.hint or "")
    event = op.stage_states()["deployment"]
    assert event.state == "Failed" and event.log_tail[-1].startswith("ConnectionNotFound")


def test_endpoint_still_updating(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm, state="Updating")
    op = backend.create_deployment(deployment())
    err = failed(op)
    assert "Updating" in err.message and "Succeeded" in (err.hint or "")
    assert op.stage_states()["endpoint"].provisioning_state == "Updating"
    assert not arm.state.requests("PUT", "/deployments/")


def test_missing_model(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    op = backend.create_deployment(
        deployment(DEPLOYMENT_YAML.replace("chat-model:1", "chat-model:7"))
    )
    err = failed(op)
    assert err.code == "ResourceNotFound" and "not registered" in err.message
    assert states(op)[-1] == ("model", "Failed")


def test_endpoint_name_taken(arm: ArmServer, backend: AzureBackend) -> None:
    arm.state.reject[("PUT", f"/onlineEndpoints/{EP}")] = (
        400,
        "BadRequest",
        "There is already an endpoint with this name, Endpoint name needs "
        "to be unique within a region. Try some other name.",
    )
    err = failed(backend.create_endpoint(endpoint()))
    assert f"'{EP}' is already taken in eastus" in err.message
    assert "another name" in (err.hint or "")


def test_auth_401_and_403(arm: ArmServer, backend: AzureBackend) -> None:
    arm.state.reject[("GET", f"/onlineEndpoints/{EP}")] = (
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid.",
    )
    with pytest.raises(BackendError, match="rejected the credential") as info:
        backend.get_endpoint(EP)
    assert info.value.status == 401 and "az login" in (info.value.hint or "")

    arm.state.reject = {
        ("GET", "/onlineEndpoints"): (
            403,
            "AuthorizationFailed",
            "The client 'me' does not have authorization to perform "
            "action 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read'.",
        )
    }
    with pytest.raises(BackendError) as info:
        backend.list_endpoints()
    assert info.value.status == 403 and info.value.code == "AuthorizationFailed"
    assert "Contributor" in (info.value.hint or "")
    assert "onlineEndpoints/*" in (info.value.hint or "")


def test_no_credential(arm: ArmServer) -> None:
    from azure.identity import CredentialUnavailableError

    class NoCredential:
        def get_token(self, *scopes: str, **kw: Any) -> Any:
            raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token")

    backend = make_backend(arm, credential=NoCredential())
    with pytest.raises(BackendError, match="no usable Azure credential") as info:
        backend.list_endpoints()
    assert "az login" in (info.value.hint or "")


# -- client construction ---------------------------------------------------------------------
def test_client_from_config_and_telemetry_off(
    tmp_path: Any, arm: ArmServer, tmp_path_factory: Any
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"subscription_id": "sub2", "resource_group": "rg2", "workspace_name": "ws2"})
    )
    backend = AzureBackend(
        config_path=str(config), credential=FakeCredential(), transport=arm.transport()
    )
    assert backend.describe() == "azure: sub2/rg2/ws2"
    assert backend.ml_client._operation_config.enable_telemetry is False
    with pytest.raises(PfError, match="config.json"):
        empty = tmp_path_factory.mktemp("noconfig")
        _ = AzureBackend(config_path=str(empty), credential=FakeCredential()).ml_client
    with pytest.raises(PfError, match="all of"):
        _ = AzureBackend(subscription_id="s", credential=FakeCredential()).ml_client


def test_identity_and_properties_pass_through(arm: ArmServer, backend: AzureBackend) -> None:
    uai = (
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/flow-id"
    )
    text = (
        ENDPOINT_YAML
        + f"""identity:
  type: user_assigned
  user_assigned_identities:
    - resource_id: {uai}
tags:
  team: chat
"""
    )
    backend.create_endpoint(endpoint(text)).result(timeout=30)
    body = arm.state.requests("PUT", f"/onlineEndpoints/{EP}")[0].body
    assert body["identity"]["type"].lower() == "userassigned"
    assert list(body["identity"]["userAssignedIdentities"]) == [uai]
    assert body["tags"] == {"team": "chat"}
    assert body["properties"]["properties"]["enforce_access_to_default_secret_stores"] == "enabled"


def test_factory_and_light_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pfmagic.backends.azure.backend as b; "
        "from pfmagic.backends import make_backend; "
        "x = make_backend('azure', subscription_id='s', resource_group='g', workspace='w'); "
        "assert type(x).__name__ == 'AzureBackend'; "
        "assert not [m for m in sys.modules if m.startswith('azure.ai.ml')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_invoke_error_is_one_line(arm: ArmServer, backend: AzureBackend) -> None:
    seed_endpoint(arm)
    arm.state.scoring_status = 424
    with pytest.raises(BackendError) as info:
        backend.invoke(EP, {"question": "boom"})
    err = info.value
    assert err.status == 424 and "\n" not in str(err)
    assert err.message.startswith(f"{EP} answered 424: Execution failure in 'answer'")
    assert "%pf_logs" in (err.hint or "")


def test_sdk_log_lines_stay_out_of_the_notebook(arm: ArmServer, backend: AzureBackend) -> None:
    import logging

    # stands in for the StreamHandler azure.ai.ml binds to the kernel's stderr at import
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    sdk_logger = logging.getLogger("azure.ai.ml")
    sdk_logger.addHandler(handler)
    try:
        seed_endpoint(arm)
        backend.create_deployment(deployment()).result(timeout=30)
        assert "Check: endpoint" not in seen.getvalue()
        # outside our operations the SDK's logging is untouched
        logging.getLogger("azure.ai.ml.operations._online_deployment_operations").info(
            "Check: endpoint %s exists", "x"
        )
        assert "Check: endpoint x exists" in seen.getvalue()
    finally:
        sdk_logger.removeHandler(handler)
    assert not handler.filters
    import sys

    assert type(sys.stdout).__name__ != "_Router"


def test_failed_without_error_body_explained_from_state_and_logs(
    arm: ArmServer, backend: AzureBackend
) -> None:
    seed_endpoint(arm)
    arm.state.logs = "Downloading model\nERROR: model folder is empty\n"
    arm.state.fail_deployment = {}  # operation status Failed, no "error" in the body
    op = backend.create_deployment(deployment())
    err = failed(op)
    assert "invalid status" not in err.message
    assert "provisioning" in err.message and "Azure gave no reason" in err.message
    assert "model folder is empty" in err.message
    assert op.stage_states()["deployment"].state == "Failed"

"""Smoke test against a real Azure ML workspace; skipped unless one is configured.

Runs when a workspace is named and a credential is signalled:
- workspace: ``AZURE_SUBSCRIPTION_ID`` + ``AZURE_RESOURCE_GROUP`` + ``AZUREML_WORKSPACE_NAME``,
  or ``PFMAGIC_AZURE_CONFIG`` (path of a workspace config.json);
- credential: ``PFMAGIC_AZURE_LIVE=1`` (use ``az login`` / managed identity) or the service
  principal variables ``AZURE_CLIENT_ID`` + ``AZURE_TENANT_ID`` (DefaultAzureCredential).

Read-only by default (list endpoints, quota). ``PFMAGIC_AZURE_DEPLOY=1`` plus
``PFMAGIC_AZURE_MODEL=name:version`` (a registered flow model) also deploys the seed's endpoint
and deployment (Standard_DS3_v2 × 1, ~15 min, costs money), invokes it and deletes it.
"""

from __future__ import annotations

import io
import os
import uuid

import pytest

from pfmagic.backends.azure.client import azure_configured
from pfmagic.spec.templates import PRT_PLACEHOLDERS, deployment_yaml, endpoint_yaml

WORKSPACE = {
    k: os.environ.get(k)
    for k in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
}
CONFIG = os.environ.get("PFMAGIC_AZURE_CONFIG")
HAS_WORKSPACE = azure_configured()  # the one rule (pfmagic.backends.azure.client)
HAS_CREDENTIAL = os.environ.get("PFMAGIC_AZURE_LIVE") == "1" or (
    bool(os.environ.get("AZURE_CLIENT_ID")) and bool(os.environ.get("AZURE_TENANT_ID"))
)

pytestmark = [
    pytest.mark.skipif(
        not (HAS_WORKSPACE and HAS_CREDENTIAL),
        reason="no Azure ML workspace/credential configured (see module doc)",
    ),
    pytest.mark.timeout(3600),
]


@pytest.fixture(scope="module")
def backend():
    from pfmagic.backends.azure.backend import AzureBackend

    if all(WORKSPACE.values()):
        b = AzureBackend(
            subscription_id=WORKSPACE["AZURE_SUBSCRIPTION_ID"],
            resource_group=WORKSPACE["AZURE_RESOURCE_GROUP"],
            workspace=WORKSPACE["AZUREML_WORKSPACE_NAME"],
            poll_seconds=10,
        )
    else:
        b = AzureBackend(config_path=CONFIG, poll_seconds=10)
    yield b
    b.close()


def test_live_read_only(backend) -> None:
    ml = backend.ml_client
    assert backend.describe() == (
        f"azure: {ml.subscription_id}/{ml.resource_group_name}/{ml.workspace_name}"
    )
    if all(WORKSPACE.values()):
        assert ml.subscription_id == WORKSPACE["AZURE_SUBSCRIPTION_ID"]
        assert ml.workspace_name == WORKSPACE["AZUREML_WORKSPACE_NAME"]
    endpoints = backend.list_endpoints()
    for ep in endpoints:  # real entities with real fields, not just "a list"
        assert ep.name and ep.auth_mode in ("key", "aml_token", "aad_token")
        assert sum(int(v) for v in (ep.traffic or {}).values()) in (0, 100)
    usage = backend.quota_usage()
    assert usage, "a workspace region always reports some VM family quota"
    for family, (used, limit) in usage.items():
        assert family.endswith("family") and 0 <= used and 0 <= limit, (family, used, limit)


@pytest.mark.skipif(
    os.environ.get("PFMAGIC_AZURE_DEPLOY") != "1" or not os.environ.get("PFMAGIC_AZURE_MODEL"),
    reason="set PFMAGIC_AZURE_DEPLOY=1 and PFMAGIC_AZURE_MODEL=name:version",
)
def test_live_seed_deploy_invoke_delete(backend) -> None:
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    name = f"pfmagic-smoke-{uuid.uuid4().hex[:8]}"
    endpoint = load_online_endpoint(io.StringIO(endpoint_yaml(name)))
    model = f"azureml:{os.environ['PFMAGIC_AZURE_MODEL']}"
    text = deployment_yaml(
        "blue", name, model, instance_type="Standard_DS3_v2", prt=PRT_PLACEHOLDERS
    )
    deployment = load_online_deployment(io.StringIO(text))
    try:
        backend.create_endpoint(endpoint).result(timeout=1800)
        op = backend.create_deployment(deployment, all_traffic=True, fill_prt_config=True)
        op.result(timeout=3000)
        assert backend.get_endpoint(name).traffic == {"blue": 100}
        logs = backend.get_logs(name, "blue", lines=5)
        assert 1 <= len(logs.splitlines()) <= 5, logs
        reply = backend.invoke(
            name, {"question": "What is Azure Machine Learning?", "chat_history": []}
        )
        assert reply.status == 200
        assert isinstance(reply.outputs.get("answer"), str) and reply.outputs["answer"].strip()
    finally:
        backend.delete_endpoint(name).result(timeout=1800)

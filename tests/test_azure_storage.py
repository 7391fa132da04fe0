"""Uploads through azure-ai-ml's real datastore path to a real blob service (Azurite).

ARM answers come from a real recording (tests/recordings/test_model.py…create_autoincrement,
SOURCES.md): the workspace's default datastore and its listSecrets, the model container and the
model version PUT. With them azure-ai-ml's own upload code (hashing, ignore files, the
``upload_status`` metadata that makes re-registration a no-op) writes to Azurite, and the blobs
Azurite holds afterwards are compared with the folder on disk, byte for byte.

The one redirection: azure-ai-ml builds the account URL as ``https://{account}.blob.{suffix}``
(``STORAGE_ACCOUNT_URLS``); the test points that template at Azurite's IP-style URL.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arm_server import FakeCredential
from azurite_server import Azurite, azurite
from IPython.utils.capture import capture_output
from replay import ReplayServer

from pfmagic.backends.azure.backend import AzureBackend
from pfmagic.magics import session_of
from pfmagic.spec.templates import deployment_yaml, endpoint_yaml

RECORDING = "test_model.pyTestModeltest_create_autoincrement.json"
WS = ("00000000-0000-0000-0000-000000000", "00000", "00000")  # the recording's workspace
CONTAINER = "azureml-blobstore-bee21b35-9695-4616-ba22-4ebb55a05e7f"
MODEL = "test_238148868107"
FLOWS = Path(__file__).parent / "flows"
W = (
    f"/subscriptions/{WS[0]}/resourceGroups/{WS[1]}/providers/"
    f"Microsoft.MachineLearningServices/workspaces/{WS[2]}"
)


@pytest.fixture(scope="module")
def blob_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture
def store(blob_service: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh workspace container in Azurite, and azure-ai-ml's account URL pointed at it."""
    from azure.ai.ml.constants import _common

    monkeypatch.setitem(_common.STORAGE_ACCOUNT_URLS, "AzureBlob", blob_service.url + "/{}")
    container = blob_service.service().get_container_client(CONTAINER)
    if container.exists():
        container.delete_container()
    container.create_container()
    yield container


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(RECORDING) as server:
        yield server


def use_azure(ip: Any, server: ReplayServer) -> None:
    backend = AzureBackend(
        subscription_id=WS[0],
        resource_group=WS[1],
        workspace=WS[2],
        credential=FakeCredential(),
        transport=server.transport(),
        polling_interval=0,
        poll_seconds=0.02,
    )
    session_of(ip).use_backend(backend)


def flow_folder(tmp_path: Path) -> Path:
    """basic-chat plus files its .amlignore excludes."""
    flow = tmp_path / "chat-flow"
    shutil.copytree(FLOWS / "basic-chat", flow)
    (flow / ".amlignore").write_text("*.log\nscratch/\n")
    (flow / "run.log").write_text("not for upload\n")
    (flow / "scratch").mkdir()
    (flow / "scratch" / "notes.txt").write_text("not for upload either\n")
    (flow / "data.jsonl").write_bytes(b'{"question": "caf\xc3\xa9?"}\n')  # non-ASCII bytes
    return flow


def blobs(container: Any) -> dict[str, Any]:
    return {b.name: b for b in container.list_blobs(include=["metadata"])}


MODEL_CELL = f"""
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: {MODEL}
version: 2
path: chat-flow
type: custom_model
description: basic chat flow
"""


def test_model_registration_uploads_the_flow_folder_to_blob_storage(
    ip: Any, replay: ReplayServer, store: Any, tmp_path: Path
) -> None:
    flow = flow_folder(tmp_path)
    use_azure(ip, replay)
    with capture_output() as out:
        ip.run_cell_magic("pf_model", "--register", MODEL_CELL)
    shown = out.stdout + out.stderr + "".join(o.data.get("text/plain", "") for o in out.outputs)
    assert "Traceback" not in shown

    held = blobs(store)
    assert held, "nothing was uploaded"
    prefixes = {name.split("/chat-flow/")[0] for name in held}
    assert len(prefixes) == 1 and prefixes.pop().startswith("LocalUpload/")
    uploaded = {name.split("/chat-flow/", 1)[1]: blob for name, blob in held.items()}
    on_disk = {"chat.jinja2", "flow.dag.yaml", "data.jsonl", ".amlignore"}
    assert set(uploaded) == on_disk  # run.log and scratch/ honoured .amlignore
    for rel, blob in uploaded.items():
        data = store.download_blob(blob.name).readall()
        assert data == (flow / rel).read_bytes(), rel
    # azure-ai-ml marks a finished upload on one blob; that mark is what makes a re-run free
    assert any(b.metadata.get("upload_status") == "completed" for b in held.values())

    # the model version PUT carries the uploaded folder's datastore URI (asset path)
    put = replay.state.requests("PUT", f"/models/{MODEL}/versions/2")
    assert put, "model version was not registered"
    uri = put[-1].body["properties"]["modelUri"]
    assert "/datastores/workspaceblobstore/paths/LocalUpload/" in uri and "chat-flow" in uri
    assert ("PUT", f"{W}/models/{MODEL}/versions/2") in replay.log.replayed
    assert ("POST", f"{W}/datastores/workspaceblobstore/listSecrets") in replay.log.replayed


def test_reregistering_an_unchanged_folder_uploads_nothing(
    ip: Any, replay: ReplayServer, store: Any, tmp_path: Path
) -> None:
    flow = flow_folder(tmp_path)
    use_azure(ip, replay)
    ip.run_cell_magic("pf_model", "--register", MODEL_CELL)
    first = {name: (b.etag, b.last_modified) for name, b in blobs(store).items()}
    ip.run_cell_magic("pf_model", "--register", MODEL_CELL)
    assert {name: (b.etag, b.last_modified) for name, b in blobs(store).items()} == first

    (flow / "chat.jinja2").write_text("changed\n")  # a change uploads a new folder
    ip.run_cell_magic("pf_model", "--register", MODEL_CELL)
    after = blobs(store)
    assert set(first) < set(after)
    assert all(first[n] == (after[n].etag, after[n].last_modified) for n in first)


def build_context(tmp_path: Path) -> Path:
    """The seed's "Deploy with a custom environment" folder."""
    ctx = tmp_path / "image_build_with_reqirements"
    ctx.mkdir()
    (ctx / "requirements.txt").write_text("text-unidecode==1.3\n")
    (ctx / "Dockerfile").write_text(
        "FROM mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
        "COPY ./requirements.txt .\n"
        "RUN pip install -r requirements.txt\n"
    )
    return ctx


ENDPOINT_CELL = endpoint_yaml("chat-storage-ep")

PRT = ",".join(
    f"deployment.{k}={v}"
    for k, v in zip(
        ("subscription_id", "resource_group", "workspace_name", "endpoint_name", "deployment_name"),
        (*WS, "chat-storage-ep", "blue"),
        strict=True,
    )
)
# the article's deployment with its "custom environment" build context instead of the image
DEPLOYMENT_CELL = deployment_yaml("blue", "chat-storage-ep", "chat-flow", prt=PRT).replace(
    "  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n",
    "  build:\n    path: image_build_with_reqirements\n    dockerfile_path: Dockerfile\n",
)


def test_deployment_uploads_its_model_folder_and_build_context(
    ip: Any, replay: ReplayServer, store: Any, tmp_path: Path
) -> None:
    flow = flow_folder(tmp_path)
    ctx = build_context(tmp_path)
    use_azure(ip, replay)
    with capture_output() as out:
        ip.run_cell_magic("pf_endpoint", "--create", ENDPOINT_CELL)
        ip.run_cell_magic("pf_deployment", "--create", DEPLOYMENT_CELL)
    shown = out.stdout + out.stderr + "".join(o.data.get("text/plain", "") for o in out.outputs)
    assert "Traceback" not in shown

    held = blobs(store)
    for folder, names in (
        (flow, {"chat.jinja2", "flow.dag.yaml", "data.jsonl", ".amlignore"}),
        (ctx, {"Dockerfile", "requirements.txt"}),
    ):
        mine = {n.split(f"/{folder.name}/", 1)[1]: n for n in held if f"/{folder.name}/" in n}
        assert set(mine) == names, folder.name
        for rel, name in mine.items():
            assert store.download_blob(name).readall() == (folder / rel).read_bytes()

    # the deployment refers to what was uploaded: an anonymous model and an environment
    # whose build context is the uploaded folder
    env_put = replay.state.requests("PUT", "/environments/")
    assert env_put, "no environment version was registered"
    build = env_put[-1].body["properties"]["build"]
    assert "LocalUpload/" in build["contextUri"] and ctx.name in build["contextUri"]
    assert build["dockerfilePath"] == "Dockerfile"
    dep_put = replay.state.requests("PUT", "/onlineEndpoints/chat-storage-ep/deployments/blue")
    props = dep_put[-1].body["properties"]
    assert "/environments/" in props["environmentId"]
    assert "/models/" in props["model"]

"""Azure backend against the shapes real Azure sends (issue 15).

The usage rows and the 404 body follow the public ARM shapes (a dedicatedCores and a
lowPriorityCores row per family; ``NotFound`` with a ``NoSuchEndpoint`` detail). Recorded
traffic replay is still to come (see tests/recordings/SOURCES.md).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import HttpResponse

from pfmagic.backends.azure.errors import map_error
from pfmagic.backends.azure.quota import usage_table as azure_usage_table
from pfmagic.errors import NotFound
from pfmagic.skus import check_quota, usage_table

USAGE_TYPE = "Microsoft.MachineLearningServices/{kind}/usages"


def _row(kind: str, value: str, localized: str, current: int, limit: int) -> dict:
    return {
        "id": f"/subscriptions/0/providers/Microsoft.MachineLearningServices/locations/eastus2/"
        f"usages/{value}",
        "type": USAGE_TYPE.format(kind=kind),
        "unit": "Count",
        "currentValue": current,
        "limit": limit,
        "name": {"value": value, "localizedValue": localized},
    }


REAL_USAGES = [
    _row("totalCores", "TotalDedicatedCores", "Total Cluster Dedicated Regional vCPUs", 4, 100),
    _row(
        "dedicatedCores",
        "standardDSv2Family",
        "Standard DSv2 Family Cluster Dedicated vCPUs",
        4,
        24,
    ),
    _row(
        "lowPriorityCores",
        "standardDSv2Family",
        "Standard DSv2 Family Cluster LowPriority vCPUs",
        0,
        -1,
    ),
    _row(
        "dedicatedCores", "standardFSv2Family", "Standard FSv2 Family Cluster Dedicated vCPUs", 0, 6
    ),
    _row(
        "lowPriorityCores",
        "standardFSv2Family",
        "Standard FSv2 Family Cluster LowPriority vCPUs",
        0,
        -1,
    ),
]


@pytest.mark.parametrize("reader", [usage_table, azure_usage_table])
def test_quota_keeps_dedicated_row_over_low_priority(reader) -> None:
    table = reader(REAL_USAGES)
    assert table == {"standarddsv2family": (4, 24), "standardfsv2family": (0, 6)}
    # order must not matter: the lowPriority row first
    assert reader(list(reversed(REAL_USAGES))) == table
    check = check_quota("DS3_v2", 3, table, backend_name="azure")
    # ceil(1.2 × 3) × 4 = 16 needed, 24 − 4 = 20 free: fits (before the fix: "-1 free, short by …")
    assert (check.verdict, check.available, check.needed) == ("fits", 20, 16)


def _http_error(status: int, body: bytes) -> HttpResponseError:
    class _Resp(HttpResponse):
        def __init__(self) -> None:
            super().__init__(None, None)  # type: ignore[arg-type]
            self.status_code = status
            self.reason = "Not Found"
            self.headers = {"Content-Type": "application/json"}
            self.content_type = "application/json"

        def body(self) -> bytes:
            return body

        def text(self, encoding: str | None = None) -> str:
            return body.decode()

    return HttpResponseError(response=_Resp())


def test_404_with_probe_in_workspace_name_is_not_found() -> None:
    body = (
        b'{"error": {"code": "NotFound", "message": "Not found: workspace pf-probe-ws endpoint '
        b'gone-ep", "details": [{"code": "NoSuchEndpoint", "message": "Could not find endpoint '
        b'gone-ep in pf-probe-ws"}]}}'
    )
    err = map_error(_http_error(404, body), what="endpoint gone-ep")
    assert isinstance(err, NotFound)
    assert "not found" in err.message and "probe" not in err.message.split("(")[0]


def test_azure_configured_is_one_rule() -> None:
    from pfmagic.backends.azure.client import azure_configured

    three = {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_RESOURCE_GROUP": "g"}
    assert not azure_configured({})
    assert not azure_configured(three)
    assert azure_configured(dict(three, AZUREML_WORKSPACE_NAME="w"))
    assert azure_configured({"PFMAGIC_AZURE_CONFIG": "/x/config.json"})


def test_workspace_args_are_what_pf_backend_azure_takes() -> None:
    from pfmagic.backends.azure.client import workspace_args

    three = {
        "AZURE_SUBSCRIPTION_ID": "s",
        "AZURE_RESOURCE_GROUP": "g",
        "AZUREML_WORKSPACE_NAME": "w",
    }
    assert workspace_args(three) == "--subscription s --resource-group g --workspace w"
    # a config.json wins over the three (MLClient.from_config's file is the user's choice)
    both = dict(three, PFMAGIC_AZURE_CONFIG="/x/config.json")
    assert workspace_args(both) == "--config /x/config.json"
    assert workspace_args(dict(three, AZURE_RESOURCE_GROUP="")) == ""


def test_status_shows_arm_model_id_as_name_version() -> None:
    from pfmagic.render.status import _model_text

    arm_id = (
        "/subscriptions/0/resourceGroups/g/providers/Microsoft.MachineLearningServices/"
        "workspaces/w/models/chat-flow/versions/3"
    )
    assert _model_text(arm_id) == "chat-flow:3"
    assert _model_text("azureml://registries/r/models/m/versions/7") == "m:7"
    assert _model_text("azureml:m:1") == "azureml:m:1"


def test_key_endpoint_without_key_is_not_labelled_token() -> None:
    from types import SimpleNamespace

    from azure.ai.ml.entities import EndpointAuthKeys, ManagedOnlineEndpoint

    from pfmagic.backends.events import Operation
    from widgets.track import outcome_details

    ep = ManagedOnlineEndpoint(name="ep", auth_mode="key")
    op = Operation("create endpoint ep", ("endpoint",), lambda op: ep)
    op.result()
    backend = SimpleNamespace(get_keys=lambda name: EndpointAuthKeys(primary_key=None))
    rows = dict(outcome_details(op, backend))
    assert "token" not in rows and rows["primary key"].startswith("none returned")

"""The same notebook cells, unchanged, on the Azure backend (real MLClient, local ARM server)."""

from __future__ import annotations

from typing import Any

import pytest
from arm_server import ArmServer
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from test_azure_backend import (
    DEPLOYMENT_YAML,
    ENDPOINT_YAML,
    EP,
    EP_PATH,
    make_backend,
)

from pfmagic.magics import session_of


def use_azure(ip: Any, arm: ArmServer, **kw: Any) -> None:
    session_of(ip).use_backend(make_backend(arm, **kw))


def test_seed_cells_deploy_on_azure_with_prt_filled(ip: Any, arm: ArmServer) -> None:
    use_azure(ip, arm, fill_prt_config=True)
    with capture_output() as out:
        ip.run_cell_magic("pf_endpoint", "--create", ENDPOINT_YAML)
        ip.run_cell_magic("pf_deployment", "blue --create --all-traffic", DEPLOYMENT_YAML)
    shown = out.stdout + "".join(o.data.get("text/plain", "") for o in out.outputs)
    assert "will be filled from the workspace" in shown
    assert "primary key ****" in shown  # the progress view's final block masks the key
    put = arm.state.requests("PUT", f"{EP_PATH}/deployments/blue")[0]
    env = put.body["properties"]["environmentVariables"]
    assert env["PRT_CONFIG_OVERRIDE"].startswith("deployment.subscription_id=sub,")
    assert "deployment.deployment_name=blue" in env["PRT_CONFIG_OVERRIDE"]
    traffic_puts = [r for r in arm.state.requests("PUT", EP_PATH) if r.path.endswith(EP)]
    assert traffic_puts[-1].body["properties"]["traffic"] == {"blue": 100}
    ep = ip.run_line_magic("pf_status", EP)
    assert ep.traffic == {"blue": 100} and ep.provisioning_state == "Succeeded"
    assert ip.user_ns["blue"].name == "blue"


def test_placeholders_refused_on_azure_before_any_request(ip: Any, arm: ArmServer) -> None:
    use_azure(ip, arm)
    before = len(arm.state.log)
    with pytest.raises(UsageError, match="PRT_CONFIG_OVERRIDE still holds placeholders"):
        ip.run_cell_magic("pf_deployment", "--create", DEPLOYMENT_YAML)
    assert len(arm.state.log) == before

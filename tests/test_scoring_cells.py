"""Notebook cells for a scoring-script deployment: %%pf_endpoint, %%pf_deployment with
``code_configuration`` (no model), %pf_invoke rendering the script's reply as a chat turn."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

SCRIPTS = Path(__file__).parent / "scoring"

pytestmark = pytest.mark.timeout(600)


def test_agent_framework_deployment_from_cells(
    ip: InteractiveShell,
) -> None:
    ip.run_cell_magic("pf_endpoint", "ep --create", "name: ep-cells\nauth_mode: key\n")
    result = ip.run_cell_magic(
        "pf_deployment",
        "green --create",
        f"""
name: green
endpoint_name: ep-cells
code_configuration:
  code: {SCRIPTS / "maf-chat"}
  scoring_script: score.py
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
  conda_file: {SCRIPTS / "maf-chat" / "conda.yml"}
request_settings:
  request_timeout_ms: 60000
  max_concurrent_requests_per_instance: 5
instance_type: Standard_DS3_v2
instance_count: 1
""",
    )
    first = ip.run_line_magic("pf_invoke", "ep-cells --deployment green hello workflow")
    assert first.answer == "Echo: hello workflow" and first.deployment == "green"
    # the chat history of the first turn went to the workflow with the second question
    second = ip.run_line_magic("pf_invoke", "--deployment green and again")
    assert second.answer == "Echo: and again (earlier: hello workflow)"
    assert "Assistant [green" in repr(ip.run_line_magic("pf_invoke", "--history"))
    assert result is None or "green" in repr(result)
    assert ip.user_ns["green"].code_configuration.scoring_script == "score.py"


@pytest.mark.slow
def test_flow_blue_workflow_green_traffic_from_cells(ip: InteractiveShell) -> None:
    """The migration from cells: blue a prompt flow, green the Agent Framework workflow,
    ``%pf_traffic blue=90 green=10`` splits real requests, then the cutover to green."""
    flow = Path(__file__).parent / "flows" / "chat-echo"
    ip.run_cell_magic("pf_endpoint", "ep --create", "name: ep-mig\nauth_mode: key\n")
    ip.run_cell_magic(
        "pf_deployment",
        "blue --create --all-traffic",
        f"name: blue\nendpoint_name: ep-mig\nmodel:\n  path: {flow}\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n",
    )
    ip.run_cell_magic(
        "pf_deployment",
        "green --create",
        f"name: green\nendpoint_name: ep-mig\ncode_configuration:\n  code: {SCRIPTS / 'maf-chat'}\n"
        "  scoring_script: score.py\nenvironment:\n  image: mcr.microsoft.com/azureml/"
        f"openmpi4.1.0-ubuntu22.04:latest\n  conda_file: {SCRIPTS / 'maf-chat' / 'conda.yml'}\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n",
    )
    ip.run_line_magic("pf_traffic", "ep-mig blue=90 green=10")
    served = [
        ip.run_line_magic("pf_invoke", f"ep-mig --reset question {i}").deployment for i in range(80)
    ]
    # binomial(80, 0.1): mean 8, sd 2.7; P(0 green) = 0.9**80 = 0.02 %; 20 is 4.5 sd above
    assert 1 <= served.count("green") <= 20 and served.count("blue") + served.count("green") == 80
    ip.run_line_magic("pf_traffic", "ep-mig blue=0 green=100")
    reply = ip.run_line_magic("pf_invoke", "ep-mig --reset after the cutover")
    assert reply.deployment == "green" and reply.answer == "Echo: after the cutover"

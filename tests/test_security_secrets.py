"""Issue 12, secrets (item 6) as an attacker reading a saved notebook or a log would.

Every display face of a stored variable (``dep``, ``print(dep)``, ``repr``, IPython's
text/plain and HTML, a saved .ipynb) is scanned for the planted secrets; the same objects must
still hand the real values to code. Log masking and per-deployment connection scoping are
checked on the real modules.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import FIXTURES_YAML
from IPython.core.interactiveshell import InteractiveShell

pytestmark = pytest.mark.usefixtures("no_atexit_reset")

OPENAI = "sk-planted0SECRETabcdefghijklmnop"
ACCOUNT_KEY = "c2VjcmV0UGxhbnRlZEFjY291bnRLZXk="
DB_PASSWORD = "Hunter2Planted!"
URL_PASSWORD = "urlPlantedPw9"
SECRETS = (OPENAI, ACCOUNT_KEY, DB_PASSWORD, URL_PASSWORD)

DEPLOYMENT = (FIXTURES_YAML / "deployment_managed.yml").read_text() + (
    f"  OPENAI_API_KEY: {OPENAI}\n"
    f"  STORAGE: DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY}\n"
    f"  DB: Server=tcp:db.example,1433;User ID=app;Password={DB_PASSWORD};\n"
    f"  CACHE_URL: redis://app:{URL_PASSWORD}@cache.example:6379\n"
    "  MY_TOKEN: ${env:MY_TOKEN}\n"
)


def faces(ip: InteractiveShell, obj: Any) -> dict[str, str]:
    """Everything a notebook could show (and save) for ``obj``."""
    fmt = ip.display_formatter.format(obj)[0]
    return {
        "repr": repr(obj),
        "str": str(obj),
        **{f"format {mime}": str(data) for mime, data in fmt.items()},
        "html": obj._repr_html_() if hasattr(obj, "_repr_html_") else "",
    }


def leaks(texts: dict[str, str]) -> list[str]:
    return [f"{face}: {s}" for face, text in texts.items() for s in SECRETS if s in text]


def test_scanner_sees_the_raw_azure_object_leak(ip: InteractiveShell, seed_nb: Path) -> None:
    """Without masking azure-ai-ml's own faces show the secrets: the scan can fail."""
    import io

    from azure.ai.ml import load_online_deployment

    raw = load_online_deployment(source=io.StringIO(DEPLOYMENT))
    assert len(leaks(faces(ip, raw))) >= len(SECRETS)


@pytest.mark.parametrize("in_jupyter", [False, True])
def test_stored_deployment_is_masked_in_every_face(
    ip: InteractiveShell, seed_nb: Path, monkeypatch: pytest.MonkeyPatch, in_jupyter: bool
) -> None:
    import azure.ai.ml._telemetry.logging_handler as lh

    # azure-ai-ml's str() prints YAML in Jupyter and the field dict elsewhere: both faces
    monkeypatch.setattr(lh, "in_jupyter_notebook", lambda: in_jupyter)
    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    shown = faces(ip, dep)
    assert not leaks(shown), leaks(shown)
    assert "****" in shown["repr"] and "****" in shown["str"] and "****" in shown["html"]
    assert "${env:MY_TOKEN}" in shown["str"]  # references are not secrets
    # what the cell prints when the variable is typed (displayhook → saved output)
    result = ip.run_cell("dep", store_history=True)
    assert result.success and not leaks({"out": repr(result.result)})


def test_masked_deployment_keeps_real_values_and_type(ip: InteractiveShell, seed_nb: Path) -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    assert isinstance(dep, ManagedOnlineDeployment)
    assert type(dep).__name__ == "ManagedOnlineDeployment"  # name checks unchanged
    assert dep.environment_variables["OPENAI_API_KEY"] == OPENAI
    assert f"AccountKey={ACCOUNT_KEY}" in dep.environment_variables["STORAGE"]
    # what azure-ai-ml sends (REST body) and dumps keeps the real values
    rest = dep._to_rest_object(location="westus")
    assert rest.properties.environment_variables["OPENAI_API_KEY"] == OPENAI
    assert dep._to_dict()["environment_variables"]["OPENAI_API_KEY"] == OPENAI
    # copies and pickles stay masked and real
    for clone in (copy.deepcopy(dep), pickle.loads(pickle.dumps(dep))):
        assert clone.environment_variables["OPENAI_API_KEY"] == OPENAI
        assert not leaks({"repr": repr(clone), "str": str(clone)})
    # the session holds the same (masked) object
    from pfmagic.magics import session_of

    assert session_of(ip).deployments[("basic-chat-endpoint", "blue")] is dep


def test_endpoint_and_model_variables_masked(ip: InteractiveShell, seed_nb: Path) -> None:
    ip.run_cell_magic(
        "pf_endpoint",
        "ep",
        f"name: ep-secret\nauth_mode: key\nproperties:\n  db_password: {DB_PASSWORD}\n"
        f"  storage: DefaultEndpointsProtocol=https;AccountKey={ACCOUNT_KEY}\n",
    )
    ep = ip.user_ns["ep"]
    assert ep.properties["db_password"] == DB_PASSWORD
    assert not leaks(faces(ip, ep))
    flow = seed_nb.parent.parent.parent.parent / "examples" / "flows" / "chat" / "basic-chat"
    ip.run_cell_magic("pf_model", "m", f"name: m\npath: {flow}\ntags:\n  api_key: {OPENAI}\n")
    assert ip.user_ns["m"].tags["api_key"] == OPENAI
    assert not leaks(faces(ip, ip.user_ns["m"]))


def test_saved_notebook_holds_no_secret(
    ip: InteractiveShell, seed_nb: Path, tmp_path: Path
) -> None:
    """The outputs a notebook would save for `dep`, `print(dep)` and `repr(dep)`."""
    ip.run_cell_magic("pf_deployment", "dep", DEPLOYMENT)
    dep = ip.user_ns["dep"]
    outputs = []
    for source in ("dep", "print(dep)", "repr(dep)"):
        data, _ = ip.display_formatter.format(eval(source.replace("print", "str"), {"dep": dep}))
        outputs.append(
            nbformat.v4.new_output("execute_result", dict(data), execution_count=len(outputs))
        )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("dep", outputs=outputs)])
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    assert "****" in text
    assert not [s for s in SECRETS if s in text or json.dumps(s)[1:-1] in text]

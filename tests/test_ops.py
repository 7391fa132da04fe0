"""Ops magics: %pf_backend %pf_status %pf_logs %pf_traffic %pf_keys %pf_delete %pf_endpoints.

Pure parts (traffic rules, log-follow diffing, masked displays of azure-ai-ml's own entities) are
tested directly; the magics run against real local endpoints (see the ``live`` section).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from pfmagic.errors import BackendError, PfError
from pfmagic.http import score
from pfmagic.magics import session_of
from pfmagic.magics.ops import new_lines
from pfmagic.traffic import parse_mirror

SECRET = "pk-0123456789abcdefghij"
SECRET2 = "sk-zyxwvutsrqponmlk9876"


def test_new_lines_of_a_growing_tail() -> None:
    assert new_lines([], ["a", "b"]) == ["a", "b"]
    assert new_lines(["a", "b", "c"], ["a", "b", "c"]) == []
    assert new_lines(["a", "b", "c"], ["b", "c", "d"]) == ["d"]  # tail window moved by one
    assert new_lines(["a", "b"], ["a", "b", "c", "d"]) == ["c", "d"]
    assert new_lines(["a", "b"], ["x", "y"]) == ["x", "y"]  # rotated: everything is new


# -- masked displays of azure-ai-ml's own entities ---------------------------------------------


def test_masked_keys_keep_values_hide_them_everywhere() -> None:
    from azure.ai.ml.entities import EndpointAuthKeys

    from pfmagic.render.keys import masked

    keys = masked(EndpointAuthKeys(primary_key=SECRET, secondary_key=SECRET2))
    assert isinstance(keys, EndpointAuthKeys)
    assert keys.primary_key == SECRET and keys.secondary_key == SECRET2
    from IPython.lib.pretty import pretty

    for shown in (repr(keys), str(keys), keys._repr_html_(), pretty(keys), f"{keys}", repr([keys])):
        assert SECRET not in shown and SECRET2 not in shown
        assert "****" in shown
    assert repr(keys) == "EndpointAuthKeys(primary_key='****', secondary_key='****')"
    assert pickle.loads(pickle.dumps(keys)).primary_key == SECRET  # explicit copies keep it


def test_masked_token() -> None:
    from azure.ai.ml.entities import EndpointAuthToken

    from pfmagic.render.keys import MaskedAuthToken

    token = MaskedAuthToken(access_token=SECRET, expiry_time_utc=1_900_000_000, token_type="Bearer")
    assert isinstance(token, EndpointAuthToken) and token.access_token == SECRET
    assert SECRET not in repr(token) + str(token) + token._repr_html_()
    assert "2030-03-17" in str(token)  # expiry readable


def test_status_display_masks_environment_and_keeps_entity() -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    from pfmagic.render.status import deployment_status, endpoint_status

    dep = ManagedOnlineDeployment(
        name="blue",
        endpoint_name="ep",
        model="azureml:m:1",
        instance_type="Standard_DS3_v2",
        instance_count=1,
        environment_variables={"OPENAI_API_KEY": SECRET, "MODE": "x"},
    )
    shown = deployment_status(dep, {"blue": 100})
    assert shown is dep and isinstance(dep, ManagedOnlineDeployment)
    for text in (repr(dep), str(dep), dep._repr_html_()):
        assert SECRET not in text
    assert "OPENAI_API_KEY=****" in repr(dep) and "MODE=x" in repr(dep)
    assert "traffic" in repr(dep) and "100%" in repr(dep)
    assert dep.environment_variables["OPENAI_API_KEY"] == SECRET  # the object is untouched

    ep = ManagedOnlineEndpoint(name="ep", traffic={"blue": 90, "green": 10})
    endpoint_status(ep, [dep])
    assert isinstance(ep, ManagedOnlineEndpoint)
    assert "blue=90%, green=10%" in repr(ep)
    assert ep._to_dict()["name"] == "ep"  # still serialisable by azure-ai-ml


def test_usage_errors_are_one_line(ip) -> None:  # noqa: ANN001 - fixture
    with pytest.raises(UsageError, match="traffic adds up to 110%"):
        ip.run_line_magic("pf_traffic", "some-ep blue=100 green=10")
    with pytest.raises(UsageError, match="the local backend takes no Azure options"):
        ip.run_line_magic("pf_backend", "local --workspace ws")
    with pytest.raises(UsageError, match="--lines must be at least 1"):
        ip.run_line_magic("pf_logs", "ep blue --lines 0")


def test_help_has_examples(ip) -> None:  # noqa: ANN001
    for name in (
        "pf_backend",
        "pf_status",
        "pf_logs",
        "pf_traffic",
        "pf_keys",
        "pf_delete",
        "pf_endpoints",
    ):
        doc = ip.find_line_magic(name).__doc__
        assert "Examples" in doc and "%" + name in doc
    assert "--regenerate" in ip.find_line_magic("pf_keys").__doc__
    assert "--mirror none" in ip.find_line_magic("pf_traffic").__doc__


def test_mirror_none_clears_and_omitted_keeps_on_azure(ip, arm) -> None:  # noqa: ANN001
    """Same semantics as the local backend: no --mirror keeps it, ``none`` clears it."""
    from test_azure_backend import EP as AZ_EP
    from test_azure_backend import make_backend, seed_deployment, seed_endpoint

    session_of(ip).use_backend(make_backend(arm))
    seed_endpoint(arm, traffic={"blue": 100})
    seed_deployment(arm, "blue")
    seed_deployment(arm, "green")

    def last_put() -> dict[str, Any]:
        return arm.state.requests("PUT", f"/onlineEndpoints/{AZ_EP}")[-1].body["properties"]

    with capture_output():
        ip.run_line_magic("pf_traffic", f"{AZ_EP} blue=100 --mirror green=20")
        assert last_put()["mirrorTraffic"] == {"green": 20}
        ep = ip.run_line_magic("pf_traffic", f"{AZ_EP} blue=100")
        assert last_put()["mirrorTraffic"] == {"green": 20} and ep.mirror_traffic == {"green": 20}
        ep = ip.run_line_magic("pf_traffic", f"{AZ_EP} --mirror none")
        assert last_put()["mirrorTraffic"] == {} and not ep.mirror_traffic
        assert last_put()["traffic"] == {"blue": 100}
    assert parse_mirror([]) is None and parse_mirror(["NONE"]) == {}
    assert parse_mirror(["green=0"]) == {} and parse_mirror(["green=5"]) == {"green": 5}
    with pytest.raises(PfError, match="DEPLOYMENT=PERCENT"):
        parse_mirror(["none", "green=5"])


# -- live: real local endpoints (shared with test_invoke; this module deletes green last) -------

from test_invoke import EP, secret_of, shared_endpoint  # noqa: E402 - same process-wide endpoint

# one worker holds the process-wide endpoint of shared_endpoint (xdist group, tests/conftest.py)
pytestmark = pytest.mark.xdist_group("shared-echo-invoke-endpoint")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    yield from shared_endpoint(tmp_path_factory)


@pytest.fixture
def backend(live: tuple[Path, Any]) -> Any:
    return live[1]


@pytest.fixture
def shell(ip: Any, live: tuple[Path, Any]) -> Any:
    session_of(ip).settings.home = str(live[0])
    return ip


def line(shell: Any, magic: str, text: str = "") -> Any:
    return shell.run_line_magic(magic, text)


def test_backend_shows_and_switches(shell: Any, live: tuple[Path, Any]) -> None:
    with capture_output() as out:
        line(shell, "pf_backend")
        line(shell, "pf_backend", "local")
    assert out.stdout.count(f"state in {live[0]}") == 2
    assert session_of(shell).backend_name == "local"
    sub = "00000000-0000-0000-0000-000000000000"
    with capture_output() as out:  # building the client contacts nothing yet
        line(
            shell,
            "pf_backend",
            f"azure --subscription {sub} --resource-group rg --workspace ws --credential default",
        )
    assert out.stdout.strip() == f"azure: {sub}/rg/ws"
    assert session_of(shell).backend_name == "azure"
    with pytest.raises(UsageError, match="either --config or"):
        line(shell, "pf_backend", "azure --config c.json --workspace ws")
    with capture_output():
        line(shell, "pf_backend", "local")
    assert session_of(shell).backend_name == "local"


def test_status_returns_azure_entities(shell: Any) -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint, OnlineDeployment

    ep = line(shell, "pf_status", EP)
    assert isinstance(ep, ManagedOnlineEndpoint) and ep.name == EP
    assert ep.traffic == {"blue": 100, "green": 0}
    text = repr(ep)
    assert text.startswith(f"endpoint {EP}") and "blue=100%, green=0%" in text
    assert "blue (Succeeded, 1/1 ready), green (Succeeded, 1/1 ready)" in text
    assert ep.scoring_uri in text
    assert "<table>" in ep._repr_html_()
    assert line(shell, "pf_status").name == EP  # default: the last endpoint used

    green = line(shell, "pf_status", f"{EP} green")
    assert isinstance(green, OnlineDeployment) and green.name == "green"
    assert "ECHO_DELAY=0.3" in repr(green) and "traffic      0%" in repr(green)
    with pytest.raises(UsageError, match="nosuch"):
        line(shell, "pf_status", f"{EP} nosuch")


def test_endpoints_table(shell: Any) -> None:
    table = line(shell, "pf_endpoints")
    assert [e.name for e in table] == [EP]
    text = repr(table).splitlines()
    assert text[0].split() == ["name", "state", "scoring", "uri", "traffic", "deployments"]
    # each deployment with its state (and what answers), so a Failed one shows as such
    assert text[1].startswith(EP)
    assert text[1].endswith("blue (Succeeded, 1/1 ready), green (Succeeded, 1/1 ready)")
    assert "green <span style='background:#107c10" in table._repr_html_()
    assert table._repr_html_().count("<tr>") == 2
    assert line(shell, "pf_endpoints", "-o eps") is None and shell.user_ns["eps"] == table


def test_keys_masked_but_usable_and_regenerated(shell: Any, backend: Any) -> None:
    from azure.ai.ml.entities import EndpointAuthKeys

    keys = line(shell, "pf_keys", EP)
    assert isinstance(keys, EndpointAuthKeys)
    assert keys.primary_key == secret_of(backend)
    assert keys.primary_key not in repr(keys) + str(keys) + keys._repr_html_()
    uri = backend.get_endpoint(EP).scoring_uri
    assert score(uri, {"question": "k"}, key=keys.secondary_key).status == 200

    with capture_output() as out:
        new = line(shell, "pf_keys", f"{EP} --regenerate secondary")
    assert new.primary_key == keys.primary_key and new.secondary_key != keys.secondary_key
    assert keys.secondary_key not in out.stdout and new.secondary_key not in out.stdout
    with pytest.raises(BackendError) as err:  # the old secondary key is refused now
        score(uri, {"question": "k"}, key=keys.secondary_key)
    assert err.value.status == 401 and keys.secondary_key not in str(err.value)
    assert line(shell, "pf_invoke", f"{EP} still works").status == 200


def test_traffic_split_mirror_and_no_traffic(shell: Any) -> None:
    try:
        ep = line(shell, "pf_traffic", f"{EP} blue=50 green=50")
        assert ep.traffic == {"blue": 50, "green": 50}
        served: set[str] = set()
        for _ in range(40):  # a 50/50 router misses one of them in 40 with p = 2 * 0.5**40
            served.add(line(shell, "pf_invoke", f"{EP} --reset hi").deployment)
            if len(served) == 2:
                break
        assert served == {"blue", "green"}

        ep = line(shell, "pf_traffic", f"{EP} green=100")  # blue not named: 0
        assert ep.traffic == {"blue": 0, "green": 100}
        # the change reads before → after, with the new split as a bar in both faces
        assert "traffic      blue=50% → 0%, green=50% → 100%" in repr(ep)
        assert "split        [▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓]" in repr(ep)
        assert "<div title='green 100%' style='width:100%" in ep._repr_html_()
        ep = line(shell, "pf_traffic", f"{EP} blue=100 --mirror green=10")
        assert ep.traffic == {"blue": 100, "green": 0} and ep.mirror_traffic == {"green": 10}
        assert "mirror" in repr(ep) and "green=10%" in repr(ep)
        ep = line(shell, "pf_traffic", f"{EP} blue=100")  # no --mirror: the mirror stays
        assert ep.mirror_traffic == {"green": 10}
        ep = line(shell, "pf_traffic", f"{EP} --mirror none")
        assert not ep.mirror_traffic and ep.traffic == {"blue": 100, "green": 0}
        line(shell, "pf_traffic", f"{EP} --mirror green=10")
        ep = line(shell, "pf_traffic", f"{EP} --mirror green=0")
        assert not ep.mirror_traffic
        assert "→" not in repr(ep) and "split" not in repr(ep)  # the split did not change

        line(shell, "pf_traffic", f"{EP} blue=0 green=0")
        with pytest.raises(UsageError, match=rf"^{EP}: .*404.*No valid deployments"):
            line(shell, "pf_invoke", f"{EP} anyone there?")
        assert line(shell, "pf_invoke", f"{EP} -d blue targeted still works").status == 200
        with pytest.raises(UsageError, match="red"):
            line(shell, "pf_traffic", f"{EP} red=100")
    finally:
        line(shell, "pf_traffic", f"{EP} blue=100")
    assert line(shell, "pf_traffic", EP).traffic == {"blue": 100, "green": 0}


def test_logs_tail_and_follow(shell: Any) -> None:
    # a request of its own: on an endpoint idle for a while (whatever ran before) the last
    # lines are all health probes, which the tail folds away
    line(shell, "pf_invoke", f"{EP} a line for the log")
    logs = line(shell, "pf_logs", f"{EP} blue --lines 5")
    readable = [x for x in logs.splitlines() if not x.endswith("--all shows them)")]
    assert isinstance(logs, str) and 1 <= len(readable) <= 5
    assert "health probe(s)" in logs.splitlines()[-1]  # the router probes every few seconds
    everything = line(shell, "pf_logs", f"{EP} blue --lines 400 --all")
    assert '"GET /health HTTP/1.1" 200' in everything and "folded" not in everything
    shown = shell.display_formatter.format(logs)[0]["text/plain"]
    assert shown == str(logs)  # shown as lines, not as a quoted repr
    start = time.monotonic()
    with capture_output() as out:
        line(shell, "pf_logs", f"{EP} blue --lines 3 --follow --for 1.5")
    assert 1.4 < time.monotonic() - start < 6
    assert out.stdout.strip()
    with pytest.raises(UsageError, match="nosuch"):
        line(shell, "pf_logs", f"{EP} nosuch")


def test_delete_endpoint_and_deployment(shell: Any, backend: Any) -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    from pfmagic.backends.events import Operation

    backend.create_endpoint(ManagedOnlineEndpoint(name="scratch")).result(60)
    uri = backend.get_endpoint("scratch").scoring_uri
    with capture_output():
        op = line(shell, "pf_delete", "scratch --no-wait")
    assert isinstance(op, Operation)

    # meanwhile: a deployment of its own goes away (the shared blue and green stay, so this
    # module and test_invoke can run in any order)
    from azure.ai.ml.entities import ManagedOnlineDeployment

    extra = ManagedOnlineDeployment(
        name="extra",
        endpoint_name=EP,
        model=backend.get_model("chat-echo"),
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )
    backend.create_deployment(extra).result(180)
    with capture_output() as out:
        assert line(shell, "pf_delete", f"{EP} extra") is None
    assert f"deleted {EP}/extra" in out.stdout
    assert sorted(d.name for d in backend.list_deployments(EP)) == ["blue", "green"]
    with pytest.raises(UsageError, match=rf"^{EP}: .*404"):
        line(shell, "pf_invoke", f"{EP} -d extra hello?")

    op.result(60)
    assert op.status() == "Succeeded"
    with pytest.raises(UsageError, match="scratch"):
        line(shell, "pf_status", "scratch")
    with pytest.raises(BackendError) as err:  # its router is gone: endpoint stopped
        score(uri, {"question": "x"}, key="k", timeout=5)
    assert err.value.code == "ConnectionRefused"

"""Ops magics: %pf_backend %pf_status %pf_logs %pf_traffic %pf_keys %pf_delete %pf_endpoints.

Pure parts (traffic rules, log-follow diffing, masked displays of azure-ai-ml's own entities) are
tested directly; the magics run against real local endpoints (see the ``live`` section).
"""

from __future__ import annotations

import pickle

import pytest
from IPython.core.error import UsageError

from pfmagic.errors import PfError
from pfmagic.magics.ops import check_traffic, new_lines, parse_weights

SECRET = "pk-0123456789abcdefghij"
SECRET2 = "sk-zyxwvutsrqponmlk9876"


# -- traffic rules ------------------------------------------------------------------------

def test_parse_weights() -> None:
    assert parse_weights(["blue=90", "green=10"]) == {"blue": 90, "green": 10}


@pytest.mark.parametrize(("pairs", "message"), [
    (["blue"], "expected DEPLOYMENT=PERCENT, got 'blue'"),
    (["blue=ninety"], "'ninety' for blue is not a whole percentage"),
    (["blue=90.5"], "'90.5' for blue is not a whole percentage"),
    (["blue=101"], "blue=101 is outside 0..100"),
    (["blue=50", "blue=50"], "blue given twice"),
])
def test_parse_weights_errors(pairs: list[str], message: str) -> None:
    with pytest.raises(PfError, match=message.replace(".", r"\.")):
        parse_weights(pairs)


def test_check_traffic_rules() -> None:
    check_traffic({"blue": 90, "green": 10}, {})
    check_traffic({"blue": 0, "green": 0}, {})
    check_traffic({"blue": 100}, {"green": 50})
    with pytest.raises(PfError, match="traffic adds up to 95%, not 100%"):
        check_traffic({"blue": 90, "green": 5}, {})
    with pytest.raises(PfError, match="above the 50% limit"):
        check_traffic({"blue": 100}, {"green": 60})
    with pytest.raises(PfError, match="only one deployment"):
        check_traffic({"blue": 100}, {"green": 10, "red": 10})
    with pytest.raises(PfError, match="both live"):
        check_traffic({"blue": 90, "green": 10}, {"green": 10})


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

    for shown in (repr(keys), str(keys), keys._repr_html_(), pretty(keys), f"{keys}",
                  repr([keys])):
        assert SECRET not in shown and SECRET2 not in shown
        assert "****" in shown
    assert repr(keys) == "EndpointAuthKeys(primary_key='****', secondary_key='****')"
    assert pickle.loads(pickle.dumps(keys)).primary_key == SECRET  # explicit copies keep it


def test_masked_token() -> None:
    from azure.ai.ml.entities import EndpointAuthToken

    from pfmagic.render.keys import MaskedAuthToken

    token = MaskedAuthToken(access_token=SECRET, expiry_time_utc=1_900_000_000,
                            token_type="Bearer")
    assert isinstance(token, EndpointAuthToken) and token.access_token == SECRET
    assert SECRET not in repr(token) + str(token) + token._repr_html_()
    assert "2030-03-17" in str(token)  # expiry readable


def test_status_display_masks_environment_and_keeps_entity() -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    from pfmagic.render.status import deployment_status, endpoint_status

    dep = ManagedOnlineDeployment(name="blue", endpoint_name="ep", model="azureml:m:1",
                                  instance_type="Standard_DS3_v2", instance_count=1,
                                  environment_variables={"OPENAI_API_KEY": SECRET, "MODE": "x"})
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
    for name in ("pf_backend", "pf_status", "pf_logs", "pf_traffic", "pf_keys", "pf_delete",
                 "pf_endpoints"):
        doc = ip.find_line_magic(name).__doc__
        assert "Examples" in doc and "%" + name in doc
    assert "--regenerate" in ip.find_line_magic("pf_keys").__doc__
    assert "--mirror" in ip.find_line_magic("pf_traffic").__doc__

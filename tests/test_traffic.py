"""The traffic/mirror rules (pfmagic/traffic.py) the magics and both backends share."""

from __future__ import annotations

from collections import Counter

import pytest
from binomial import FALSE_FAILURE, false_failure, tail_bounds

from pfmagic.errors import BackendError, PfError
from pfmagic.traffic import check_traffic, live_mirror, mirrors, parse_mirror, parse_weights, pick

GRID = [i / 1000 for i in range(1000)]  # u values spread evenly over [0, 1)


# -- parsing ------------------------------------------------------------------------------
def test_parse_weights() -> None:
    assert parse_weights(["blue=90", "green=10"]) == {"blue": 90, "green": 10}
    assert parse_weights(["blue=0", "green=100"]) == {"blue": 0, "green": 100}
    assert parse_weights([]) == {}
    assert parse_weights(["blue= 7 "]) == {"blue": 7}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["blue"], "traffic: expected DEPLOYMENT=PERCENT, got 'blue'"),
        (["=5"], "traffic: expected DEPLOYMENT=PERCENT, got '=5'"),
        (["blue=ninety"], "traffic: 'ninety' for blue is not a whole percentage"),
        (["blue=90.5"], "traffic: '90.5' for blue is not a whole percentage"),
        (["blue="], "traffic: '' for blue is not a whole percentage"),
        (["blue=101"], "traffic: blue=101 is outside 0..100"),
        (["blue=-1"], "traffic: blue=-1 is outside 0..100"),
        (["blue=50", "blue=50"], "traffic: blue given twice"),
    ],
)
def test_parse_weights_errors(pairs: list[str], message: str) -> None:
    with pytest.raises(BackendError) as err:
        parse_weights(pairs)
    assert str(err.value) == message and err.value.code == "BadArgument"


def test_parse_mirror() -> None:
    assert parse_mirror([]) is None and parse_mirror(None) is None  # keep the mirror
    assert parse_mirror(["none"]) == {} and parse_mirror([" NONE "]) == {}  # stop it
    assert parse_mirror(["green=0"]) == {} and parse_mirror(["green=5"]) == {"green": 5}
    assert parse_mirror(["green=50"]) == {"green": 50}
    with pytest.raises(PfError, match="^mirror: expected DEPLOYMENT=PERCENT, got 'none'$"):
        parse_mirror(["none", "green=5"])
    with pytest.raises(PfError, match="^mirror: green=51% is above the 50% limit$"):
        parse_mirror(["green=51"])


# -- the rules ----------------------------------------------------------------------------
def test_accepted_splits_come_back_as_ints() -> None:
    assert check_traffic({"blue": 90, "green": 10}) == {"blue": 90, "green": 10}
    assert check_traffic({"blue": 0, "green": 0}, {}) == {"blue": 0, "green": 0}
    assert check_traffic({}) == {}
    assert check_traffic({"blue": "100"}) == {"blue": 100}  # JSON state and --set strings
    assert check_traffic({"blue": 100}, {"green": 50}) == {"blue": 100}
    assert check_traffic({"blue": 100, "green": 0}, {"green": 10, "red": 0}) == {
        "blue": 100,
        "green": 0,
    }  # a 0 share mirrors nothing, so it is not a second mirror


@pytest.mark.parametrize(
    ("traffic", "mirror", "message"),
    [
        (
            {"blue": 90, "green": 5},
            None,
            "traffic adds up to 95%, not 100% (or set every deployment to 0)",
        ),
        (
            {"blue": 100, "green": 1},
            None,
            "traffic adds up to 101%, not 100% (or set every deployment to 0)",
        ),
        ({"blue": 1}, None, "traffic adds up to 1%, not 100% (or set every deployment to 0)"),
        ({"blue": 101}, None, "traffic: blue=101 is outside 0..100"),
        ({"blue": -10, "green": 110}, None, "traffic: blue=-10 is outside 0..100"),
        ({"blue": True}, None, "traffic: 'True' for blue is not a whole percentage"),
        ({"blue": 99.5}, None, "traffic: '99.5' for blue is not a whole percentage"),
        ({"blue": 100}, {"green": 51}, "mirror: green=51% is above the 50% limit"),
        ({"blue": 100}, {"green": -1}, "mirror: green=-1 is outside 0..100"),
        (
            {"blue": 100},
            {"green": 10, "red": 10},
            "only one deployment can receive mirrored traffic (mirror green or red)",
        ),
        (
            {"blue": 90, "green": 10},
            {"green": 10},
            "green cannot receive both live (10%) and mirrored traffic "
            "(set green=0 or stop mirroring with --mirror none)",
        ),
    ],
)
def test_refusals(traffic: dict, mirror: dict | None, message: str) -> None:
    with pytest.raises(BackendError) as err:
        check_traffic(traffic, mirror)
    assert str(err.value) == message and err.value.code == "BadArgument"


def test_live_mirror_of_a_deployment_without_live_traffic_is_fine() -> None:
    check_traffic({"blue": 100, "green": 0}, {"green": 10})
    assert live_mirror({"green": 0, "red": "20"}) == {"red": 20}
    assert live_mirror(None) == {}
    assert live_mirror({"green": 1}) == {"green": 1}  # the smallest share still mirrors


def test_known_deployments() -> None:
    known = ["blue", "green"]
    check_traffic({"blue": 100}, {"green": 10}, known=known, endpoint="ep")
    with pytest.raises(
        BackendError, match="^traffic: deployment 'red' does not exist in endpoint 'ep'$"
    ):
        check_traffic({"blue": 50, "red": 50}, known=known, endpoint="ep")
    with pytest.raises(BackendError, match="^mirror: deployment 'red' does not exist$"):
        check_traffic({"blue": 100}, {"red": 10}, known=known)
    check_traffic({"blue": 100}, {"red": 0}, known=known)  # a 0 share names nothing live
    with pytest.raises(BackendError, match="'blue' does not exist"):
        check_traffic({"blue": 100}, known=[])


# -- routing: deterministic over an even grid of u values -------------------------------------
@pytest.mark.parametrize(
    "weights",
    [{"blue": 90, "green": 10}, {"blue": 80, "green": 20}, {"a": 50, "b": 30, "c": 20}, {"x": 7}],
)
def test_pick_follows_the_weights_exactly(weights: dict[str, int]) -> None:
    counts = Counter(pick(weights, u) for u in GRID)
    total = sum(weights.values())
    assert counts == Counter({k: v * 1000 // total for k, v in weights.items()})


def test_pick_slices_in_order() -> None:
    weights = {"blue": 90, "green": 10}
    assert pick(weights, 0.0) == "blue" and pick(weights, 0.8999) == "blue"
    assert pick(weights, 0.9) == "green" and pick(weights, 0.99999) == "green"
    assert pick({"a": 1, "b": 3}, 0.2499) == "a" and pick({"a": 1, "b": 3}, 0.25) == "b"
    assert pick({"a": 30, "b": 70}, 1.0) == "b"  # float edge: the last slice, not ""


def test_pick_with_unnormalised_weights() -> None:
    # the router passes positive weights only; they need not sum to 100
    assert Counter(pick({"a": 1, "b": 1}, u) for u in GRID) == Counter({"a": 500, "b": 500})


def test_mirrors_share() -> None:
    assert sum(mirrors(10, u) for u in GRID) == 100
    assert sum(mirrors(50, u) for u in GRID) == 500
    assert not any(mirrors(0, u) for u in GRID)
    assert mirrors(10, 0.0999) and not mirrors(10, 0.1)


def test_pick_with_real_randomness() -> None:
    """The router's own call (random.random()) over 2000 draws, bound at p < 1e-6."""
    import random

    n = 2000
    for green in (10, 20):
        counts = Counter(
            pick({"blue": 100 - green, "green": green}, random.random()) for _ in range(n)
        )
        lo, hi = tail_bounds(n, green / 100)
        assert false_failure(n, green / 100, lo, hi) < FALSE_FAILURE
        assert lo <= counts["green"] <= hi

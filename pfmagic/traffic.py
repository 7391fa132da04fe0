"""Traffic and mirror rules: one home for the magics and both backends.

Azure ML's rules for an online endpoint (the local backend enforces the same ones):
live weights are whole percentages 0..100 summing to 100 (or all 0); at most one deployment
receives mirrored traffic, at most 50 %, and never one that also takes live traffic.
Every refusal is a ``BackendError`` with code ``BadArgument`` (what the service answers)
and one line naming the deployment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pfmagic.errors import BackendError

MIRROR_LIMIT = 50


def _refuse(message: str, hint: str | None = None) -> BackendError:
    return BackendError(message, code="BadArgument", hint=hint)


def _percent(what: str, name: str, value: object, limit: int = 100) -> int:
    """A share as an int in 0..limit, or a refusal naming ``what`` and ``name``."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(f"{what}: '{value}' for {name} is not a whole percentage")
    if not 0 <= value <= 100:
        raise _refuse(f"{what}: {name}={value} is outside 0..100")
    if value > limit:
        raise _refuse(f"{what}: {name}={value}% is above the {limit}% limit")
    return value


def parse_weights(pairs: Iterable[str], what: str = "traffic") -> dict[str, int]:
    """``blue=90 green=10`` → ``{"blue": 90, "green": 10}`` (whole percentages 0..100)."""
    weights: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _refuse(f"{what}: expected DEPLOYMENT=PERCENT, got '{pair}'")
        if name in weights:
            raise _refuse(f"{what}: {name} given twice")
        weights[name] = _percent(what, name, value.strip())
    return weights


def parse_mirror(pairs: list[str] | None) -> dict[str, int] | None:
    """``--mirror`` values: None when not given (keep the mirror), {} for ``none`` or only
    zero shares (stop mirroring), else the one live mirror."""
    if not pairs:
        return None
    if [p.strip().lower() for p in pairs] == ["none"]:
        return {}
    return live_mirror(parse_weights(pairs, "mirror"))


def live_mirror(mirror: Mapping[str, object] | None) -> dict[str, int]:
    """The shares that mirror anything (a 0 share means "not mirrored")."""
    return {
        name: pct
        for name, value in (mirror or {}).items()
        if (pct := _percent("mirror", name, value, MIRROR_LIMIT)) > 0
    }


def check_traffic(
    traffic: Mapping[str, object],
    mirror: Mapping[str, object] | None = None,
    *,
    known: Iterable[str] | None = None,
    endpoint: str | None = None,
) -> dict[str, int]:
    """Refuse what the service would refuse; return the live weights as ints.

    ``mirror`` None means "no mirror to check"; ``known`` (the endpoint's deployments),
    when given, must contain every deployment named.
    """
    weights = {name: _percent("traffic", name, value) for name, value in traffic.items()}
    mirrored = live_mirror(mirror)
    if known is not None:
        names = set(known)
        where = f" in endpoint '{endpoint}'" if endpoint else ""
        for what, shares in (("traffic", weights), ("mirror", mirrored)):
            for name in shares:
                if name not in names:
                    raise _refuse(f"{what}: deployment '{name}' does not exist{where}")
    total = sum(weights.values())
    if weights and total not in (0, 100):
        raise _refuse(f"traffic adds up to {total}%, not 100%", hint="or set every deployment to 0")
    if len(mirrored) > 1:
        raise _refuse(
            "only one deployment can receive mirrored traffic",
            hint="mirror " + " or ".join(sorted(mirrored)),
        )
    for name in mirrored:
        if weights.get(name):
            raise _refuse(
                f"{name} cannot receive both live ({weights[name]}%) and mirrored traffic",
                hint=f"set {name}=0 or stop mirroring with --mirror none",
            )
    return weights


# -- routing (the local router; kept here so the split is tested where the rule lives) -------
def pick(weights: Mapping[str, int], u: float) -> str:
    """The deployment a request goes to: ``u`` uniform in [0, 1) lands in a deployment's
    slice of the cumulative weights (blue=90 green=10: u < 0.9 → blue). Positive weights only."""
    point = u * sum(weights.values())
    name = ""
    for name, weight in weights.items():
        if point < weight:
            return name
        point -= weight
    return name  # u * total rounded up to the total: the last slice


def mirrors(percent: int, u: float) -> bool:
    """Whether a request (``u`` uniform in [0, 1)) is copied to a ``percent`` % mirror."""
    return u * 100 < percent

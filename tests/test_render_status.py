"""``%pf_status`` display rows (render/status.py): each field shown from the entity itself."""

from __future__ import annotations

import re

import pytest
from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

from pfmagic.render.status import endpoint_status


@pytest.mark.parametrize("auth_mode", ["key", "aml_token"])
def test_endpoint_shows_its_auth_mode(auth_mode: str) -> None:
    ep = endpoint_status(ManagedOnlineEndpoint(name="ep", auth_mode=auth_mode))
    assert f"  auth         {auth_mode}" in repr(ep).splitlines()
    assert re.search(rf"<th[^>]*>auth</th><td[^>]*>{auth_mode}</td>", ep._repr_html_())


def test_endpoint_rows_in_order() -> None:
    ep = KubernetesOnlineEndpoint(
        name="ep",
        auth_mode="key",
        compute="k8s",
        traffic={"blue": 90, "green": 10},
        mirror_traffic={"green": 0},
    )
    ep = endpoint_status(ep)
    assert repr(ep).splitlines() == [
        "endpoint ep",
        "  name         ep",
        "  state        ?",
        "  auth         key",
        "  scoring uri  -",
        "  traffic      blue=90%, green=10%",
        "  mirror       green=0%",
    ]
    assert str(ep) == repr(ep)  # not azure-ai-ml's YAML dump

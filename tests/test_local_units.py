"""Local backend pieces that need no process: auth, probes, connections, logs, state."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pfmagic.backends.local import auth, connections
from pfmagic.backends.local.logs import log_event, redact, rotate, tail, tail_rotated
from pfmagic.backends.local.state import Home, locked, write_json
from pfmagic.backends.local.supervisor import AZURE_PROBE, LOCAL_LIVENESS, Probe


def test_keys_are_random_and_compared_in_full() -> None:
    keys = {auth.new_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) >= 40 for k in keys)
    key = next(iter(keys))
    assert auth.check_key(["", key], key)
    assert not auth.check_key([key], key[:-1])
    assert not auth.check_key([""], "")
    assert auth.bearer("Bearer abc") == "abc" and auth.bearer("Basic abc") is None
    assert auth.bearer(None) is None and auth.bearer("Bearer ") is None


def test_tokens_sign_expire_and_bind_to_endpoint() -> None:
    token, expiry = auth.mint_token("k1", "ep", 60)
    assert expiry > time.time() + 50
    assert auth.check_token("k1", "ep", token) is None
    assert auth.check_token("k2", "ep", token) == "invalid token"
    assert auth.check_token("k1", "other", token) == "token is for another endpoint"
    prefix, payload, mac = token.split(".")
    assert auth.check_token("k1", "ep", f"{prefix}.{payload}x.{mac}") == "invalid token"
    assert auth.check_token("k1", "ep", "garbage") == "invalid token"
    old, _ = auth.mint_token("k1", "ep", -1)
    assert auth.check_token("k1", "ep", old) == "token expired"
    # a token from another scheme, signed right, is refused by its prefix (mutation survivor)
    assert auth.check_token("k1", "ep", f"pfm0.{payload}.{mac}") == "invalid token"


def test_token_expires_at_its_expiry_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid strictly before ``exp``, expired at ``exp`` itself (mutation survivor ``<``)."""
    monkeypatch.setattr(auth.time, "time", lambda: 1_000_000.0)
    token, expiry = auth.mint_token("k1", "ep", 60)
    assert expiry == 1_000_060.0
    monkeypatch.setattr(auth.time, "time", lambda: 1_000_059.999)
    assert auth.check_token("k1", "ep", token) is None
    monkeypatch.setattr(auth.time, "time", lambda: 1_000_060.0)
    assert auth.check_token("k1", "ep", token) == "token expired"


def test_check_key_answers_a_bool() -> None:
    assert auth.check_key(["a-key"], "other") is False and auth.check_key([], "x") is False
    assert auth.check_key(["a-key"], "a-key") is True


def test_probe_settings_explicit_vs_local_defaults() -> None:
    local = Probe.of(None, "/health", LOCAL_LIVENESS)
    assert not local.explicit and local.period == LOCAL_LIVENESS["period"]
    explicit = Probe.of({"period": 3, "initial_delay": None}, "/health", LOCAL_LIVENESS)
    assert explicit.explicit and explicit.period == 3
    assert explicit.initial_delay == AZURE_PROBE["initial_delay"]  # Azure's default
    assert explicit.startup_deadline() == 10 + 3 * 30 + 2


def test_connections_validate_store_private(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    with pytest.raises(ValueError, match="base_url"):
        connections.validate({"name": "c", "type": "open_ai", "api_base": "http://x"})
    with pytest.raises(ValueError, match="unknown type"):
        connections.validate({"name": "c", "type": "nope"})
    with pytest.raises(ValueError, match="name"):
        connections.validate({"type": "open_ai"})
    connections.store(path, {"name": "c", "type": "open_ai", "api_key": "${env:K}"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert connections.names(path) == ["c"]
    first = connections.fingerprint(path)
    connections.store(path, {"name": "d", "type": "custom", "secrets": {"s": "v"}})
    assert connections.fingerprint(path) != first and "v" not in connections.fingerprint(path)
    assert connections.delete(path, "d") and not connections.delete(path, "d")
    assert connections.referenced_env(path, {"K": "v", "OTHER": "x"}) == {"K": "v"}
    assert connections.override_target("my_conn") == "my_conn"
    assert connections.override_target("${{azureml://connections/other}}") == "other"
    assert connections.override_target('{"api_key": "x"}') is None  # a data override


def test_logs_tail_and_redaction(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert tail(log, 5) == []
    for i in range(300):
        log_event(log, f"line {i}")
    lines = tail(log, 3)
    assert len(lines) == 3 and lines[-1].endswith("[pfmagic] line 299")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    rotate(log, max_bytes=100)
    assert not log.exists() and tail_rotated(log, 2)[-1].endswith("line 299")
    log_event(log, "fresh")
    both = tail_rotated(log, 3)
    assert both[-1].endswith("fresh") and both[-2].endswith("line 299")
    assert "sk-secret" not in redact('Authorization: Bearer sk-secret, "api_key": "sk-secret"')


def test_state_lock_and_home_layout(tmp_path: Path) -> None:
    home = Home(tmp_path / "h").create()
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700
    with locked(home.state_lock("ep")):
        write_json(home.endpoint_file("ep"), {"name": "ep"})
    assert home.endpoint_names() == ["ep"] and home.deployment_names("ep") == []
    assert home.deployment_log("ep", "blue").name == "inference-server.log"
    assert not any(p.name.endswith(".tmp") for p in home.endpoint_dir("ep").iterdir())
    assert os.access(home.endpoint_file("ep"), os.R_OK)


def test_state_folders_private_at_every_level_and_stale_temps_swept(tmp_path: Path) -> None:
    target = tmp_path / "home" / "endpoints" / "ep" / "deployments" / "blue" / "deployment.json"
    write_json(target, {"ok": True})
    for folder in (target.parents[i] for i in range(5)):  # blue … home: all created here
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    crashed = target.parent / ".deployment.json.abc123.tmp"  # left by a writer killed mid-write
    crashed.write_text("{partial")
    fresh = target.parent / ".deployment.json.def456.tmp"  # a concurrent writer, still working
    fresh.write_text("{")
    old = time.time() - 3600
    os.utime(crashed, (old, old))
    write_json(target, {"ok": 2})
    assert not crashed.exists() and fresh.exists()

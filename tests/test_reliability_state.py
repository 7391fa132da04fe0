"""State files: secrets readable only by the user; no partial file after a crash mid-write.

A writer process rewrites a large state file in a loop and is SIGKILLed at random moments;
after every kill the file must be absent (first write never finished) or a complete JSON
document (the old or the new one), never a prefix.
"""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

WRITER = """
import sys
from pathlib import Path
from pfmagic.backends.local.state import write_json
path = Path(sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    i += 1
    # ~1 MB per write so a kill lands mid-write often; a checksum field proves completeness
    blob = str(i) * (1_000_000 // len(str(i)))
    write_json(path, {"i": i, "blob": blob, "len": len(blob), "key": "secret-%d" % i})
"""


def _check_complete(path: Path) -> int:
    data = json.loads(path.read_text())
    assert len(data["blob"]) == data["len"], "state file holds a partial document"
    assert data["key"] == f"secret-{data['i']}"
    return data["i"]


def test_no_partial_state_file_after_kill_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "home" / "endpoints" / "ep" / "endpoint.json"
    rng = random.Random(8)
    kills = complete = absent = 0
    last = 0
    for _ in range(25):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.005, 0.25))
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        kills += 1
        if not path.exists():
            absent += 1
            continue
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        last = _check_complete(path)
        complete += 1
    assert kills == 25
    assert complete + absent == kills
    assert complete > 0, "the writer never finished one write: make the sleeps longer"
    # leftovers of interrupted writes are hidden temp files, user-only like the real file
    for leftover in path.parent.iterdir():
        if leftover != path:
            assert leftover.name.startswith(".") and leftover.name.endswith(".tmp")
            assert stat.S_IMODE(leftover.stat().st_mode) == 0o600
    print(
        f"\n{kills} kills mid-write: {complete} complete files (last i={last}), "
        f"{absent} never written, 0 partial; "
        f"{sum(1 for p in path.parent.iterdir() if p != path)} temp leftovers"
    )


def test_state_file_private_under_open_umask(tmp_path: Path) -> None:
    from pfmagic.backends.local.state import write_json

    old = os.umask(0o000)  # even a wide-open umask must not widen what we write
    try:
        path = tmp_path / "home" / "endpoints" / "ep" / "endpoint.json"
        write_json(path, {"keys": {"primary": "k1"}})
        write_json(path, {"keys": {"primary": "k2"}})  # replacing keeps the mode
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# -- through the real local backend -----------------------------------------------------------
REGENERATOR = """
import sys
from pfmagic.backends.local.backend import LocalBackend
be = LocalBackend(home=sys.argv[1])
be.regenerate_keys(sys.argv[2], "secondary")  # pays the imports before "ready"
print("ready", flush=True)
while True:
    be.regenerate_keys(sys.argv[2], "primary")
    be.regenerate_keys(sys.argv[2], "secondary")
"""


@pytest.fixture
def local_endpoint(tmp_path: Path):  # noqa: ANN201 - (backend, name, home)
    from pfmagic.backends.local.backend import LocalBackend

    home = tmp_path / "pfhome"
    be = LocalBackend(home=str(home))
    sys.path.insert(0, str(Path(__file__).parent))
    from reliability.helpers import endpoint_entity

    be.create_endpoint(endpoint_entity("rel-state")).result(timeout=120)
    be.create_connection(
        {
            "name": "llm",
            "type": "open_ai",
            "api_key": "sk-rel-secret-123",
            "base_url": "http://127.0.0.1:9/v1",
        }
    )
    try:
        yield be, "rel-state", home
    finally:
        be.shutdown_all()
        from reliability.helpers import stop_leftovers

        left = stop_leftovers(home)
        assert not left, f"processes left after shutdown_all: {left}"


def _secrets(be, name: str, home: Path) -> list[str]:  # noqa: ANN001
    cfg = json.loads((home / "endpoints" / name / "endpoint.json").read_text())
    return [
        cfg["keys"]["primary"],
        cfg["keys"]["secondary"],
        cfg["token_key"],
        cfg["admin_token"],
        "sk-rel-secret-123",
    ]


def test_secrets_readable_only_by_the_user(local_endpoint) -> None:  # noqa: ANN001
    be, name, home = local_endpoint
    be.router_status(name)  # the router is running and has written its files and logs
    secrets = _secrets(be, name, home)
    holders = []
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if path.is_file():
            data = path.read_bytes()
            if any(s.encode() in data for s in secrets):
                holders.append(path.relative_to(home))
                assert mode & 0o077 == 0, f"{path} holds a secret and has mode {oct(mode)}"
                assert path.stat().st_uid == os.getuid()
            assert not (
                path.suffix == ".log" and any(s.encode() in path.read_bytes() for s in secrets)
            ), f"secret in {path}"
    # the home itself is closed: nobody else can even list what is in it
    assert stat.S_IMODE(home.stat().st_mode) & 0o077 == 0, oct(home.stat().st_mode)
    print(
        f"\nsecrets found only in {sorted(map(str, holders))}: all 0600, home "
        f"{oct(stat.S_IMODE(home.stat().st_mode))}"
    )
    assert {str(p) for p in holders} >= {f"endpoints/{name}/endpoint.json", "connections.json"}


def test_killed_mid_key_rotation_leaves_valid_state(local_endpoint) -> None:  # noqa: ANN001
    """SIGKILL a kernel-like process while it rewrites the endpoint's state (key rotation):
    the state file stays a whole document, a new backend reads it and the endpoint serves
    with the keys it holds."""
    import httpx

    from pfmagic.backends.local.backend import LocalBackend

    be, name, home = local_endpoint
    rng = random.Random(5)
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", REGENERATOR, str(home), name], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        cfg = json.loads((home / "endpoints" / name / "endpoint.json").read_text())
        assert cfg["keys"]["primary"] and cfg["keys"]["secondary"] and cfg["port"]
    fresh = LocalBackend(home=str(home))
    keys = fresh.get_keys(name)
    assert keys.primary_key == cfg["keys"]["primary"]
    health = httpx.get(
        fresh.get_endpoint(name).scoring_uri.replace("/score", "/health"),
        trust_env=False,
        timeout=10,
    )
    assert health.status_code == 200
    # the router authenticates with the keys now in the file (no deployment yet: 404, not 401)
    resp = httpx.post(
        fresh.get_endpoint(name).scoring_uri,
        json={"question": "hi"},
        headers={"Authorization": f"Bearer {keys.primary_key}"},
        trust_env=False,
        timeout=10,
    )
    assert resp.status_code == 404, resp.text
    bad = httpx.post(
        fresh.get_endpoint(name).scoring_uri,
        json={"question": "hi"},
        headers={"Authorization": "Bearer stale"},
        trust_env=False,
        timeout=10,
    )
    assert bad.status_code == 401

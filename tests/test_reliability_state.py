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
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True)
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
    print(f"\n{kills} kills mid-write: {complete} complete files (last i={last}), "
          f"{absent} never written, 0 partial; "
          f"{sum(1 for p in path.parent.iterdir() if p != path)} temp leftovers")


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

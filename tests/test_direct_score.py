"""``DirectScore`` answers ``POST /score`` as promptflow's whole serving app does.

The instance serves ``/score`` past FastAPI's middleware stack (direct_score.py); promptflow's
own app is the reference: the same requests (replies, streams, every error kind, request ids,
Accept variants, paths it must pass on) go to both in one process and must get the same
status, headers and body, and the same calls into promptflow's flow monitor (what its metrics
and pfmagic's figures read).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PAIR = Path(__file__).with_name("direct_score_pair.py")
ECHO_FLOW = Path(__file__).parent / "flows" / "chat-echo"
# what promptflow's middleware must still see: paths other than /score, and /score with Origin
PASSED_ON = ["/score", "/health", "/score/", "/nowhere"]


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    flow = tmp_path_factory.mktemp("flow") / "chat-echo"
    shutil.copytree(ECHO_FLOW, flow)
    out = flow.parent / "answers.json"
    run = subprocess.run(
        [sys.executable, str(PAIR), str(flow), str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def test_score_takes_the_direct_path(answers: dict[str, Any]) -> None:
    assert answers["direct"] is True
    assert answers["middleware_paths"] == PASSED_ON


def test_every_reply_is_promptflows(answers: dict[str, Any]) -> None:
    names = [a["name"] for a in answers["whole"]]
    assert [a["name"] for a in answers["ours"]] == names
    for whole, ours in zip(answers["whole"], answers["ours"], strict=True):
        assert ours == whole, whole["name"]


def test_the_reference_answers_are_real(answers: dict[str, Any]) -> None:
    """The comparison means something only if promptflow's own replies are what it serves."""
    by_name = {a["name"]: a for a in answers["whole"]}
    assert json.loads(by_name["json"]["body"]) == {"answer": "Echo: hello there ", "turns": 0}
    stream = by_name["stream"]
    assert dict(stream["headers"])["content-type"].startswith("text/event-stream")
    assert stream["body"].count("data: ") >= 3
    assert stream["monitor"][-1][0] == "finish" and stream["monitor"][-1][-1] is True
    assert by_name["request ids"]["monitor"][-1][3] == "req-1"
    assert by_name["client id only"]["monitor"][-1][3] == "client-2"
    assert by_name["not acceptable"]["status"] == 406
    assert by_name["not acceptable"]["monitor"][-1] == ["error", "NotAcceptable", 406]
    assert by_name["missing input"]["status"] == 400
    assert "question" in json.loads(by_name["missing input"]["body"])["error"]["message"]
    assert by_name["flow error"]["status"] == 500
    # a stream that fails midway ends its reply, then the app raises (the server logs it)
    assert by_name["flow error streamed"]["ends"][-2:] == [
        ["http.response.body", None, True],
        ["raised", "ValueError"],
    ]
    assert by_name["health"]["status"] == 200 and by_name["health"]["monitor"] == []
    assert "access-control-allow-origin" in dict(by_name["with origin"]["headers"])

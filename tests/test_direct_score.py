"""``DirectScore`` answers ``POST /score`` as promptflow's whole serving app does.

The instance serves ``/score`` past FastAPI's middleware stack (direct_score.py); promptflow's
own app is the reference: the same requests (replies, streams, every error kind, request ids,
Accept variants, paths it must pass on) go to both in one process and must get the same
status, headers and body, and the same calls into promptflow's flow monitor (what its metrics
and pfmagic's figures read) and log lines (the deployment's log).
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


# promptflow's middleware pipes a stream through a task of its own, which starts the stream
# (and logs this) while the monitor finishes; the direct path starts it right after: the one
# line of a deployment's log that may come in another place
STREAM_START = ["log", "INFO", "start streaming response..."]


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "monitor": [c for c in answer["monitor"] if c != STREAM_START]}


def _calls(answer: dict[str, Any]) -> list[Any]:
    """The monitor's calls without the log lines."""
    return [c for c in answer["monitor"] if c[0] != "log"]


def test_every_reply_is_promptflows(answers: dict[str, Any]) -> None:
    """Status, headers, body, how the reply ends, the monitor's calls, the log lines."""
    names = [a["name"] for a in answers["whole"]]
    assert [a["name"] for a in answers["ours"]] == names
    for whole, ours in zip(answers["whole"], answers["ours"], strict=True):
        assert _comparable(ours) == _comparable(whole), whole["name"]
        assert ours["monitor"].count(STREAM_START) == whole["monitor"].count(STREAM_START)


def test_the_reference_answers_are_real(answers: dict[str, Any]) -> None:
    """The comparison means something only if promptflow's own replies are what it serves."""
    by_name = {a["name"]: a for a in answers["whole"]}
    assert json.loads(by_name["json"]["body"]) == {"answer": "Echo: hello there ", "turns": 0}
    stream = by_name["stream"]
    assert dict(stream["headers"])["content-type"].startswith("text/event-stream")
    assert stream["body"].count("data: ") >= 3
    assert _calls(stream)[-1][0] == "finish" and _calls(stream)[-1][-1] is True
    assert _calls(by_name["request ids"])[-1][3] == "req-1"
    assert _calls(by_name["client id only"])[-1][3] == "client-2"
    assert by_name["not acceptable"]["status"] == 406
    assert _calls(by_name["not acceptable"])[-1] == ["error", "NotAcceptable", 406]
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
    assert [
        "log",
        "INFO",
        "Finish monitoring request, request_id: req-1, client_request_id: client-1.",
    ] in by_name["request ids"]["monitor"]
    assert by_name["stream"]["monitor"].count(STREAM_START) == 1
    # OpenTelemetry's FastAPI middleware (create_app turns it on) gave promptflow a parent span
    no_parent = ["log", "INFO", "No parent span found, try to extract trace context from request."]
    assert no_parent not in by_name["json"]["monitor"]


def _app(*, score: bool, cors: bool) -> Any:
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import PlainTextResponse

    app = FastAPI()
    if score:
        app.add_api_route("/score", lambda: PlainTextResponse("whole app"), methods=["POST"])
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=["*"])
    app.flow_monitor = object()  # type: ignore[attr-defined]
    return app


@pytest.mark.parametrize(
    ("score", "cors", "direct"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_an_app_of_another_shape_serves_everything_itself(
    score: bool, cors: bool, direct: bool
) -> None:
    """No score route, or no promptflow middleware stack where it is expected (another
    promptflow): no direct path."""
    from pfmagic.backends.local.direct_score import DirectScore

    assert DirectScore(_app(score=score, cors=cors)).direct is direct

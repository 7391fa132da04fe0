"""A corpus of bad cells and bad requests against a live local endpoint.

Bad cells (``tests/reliability/bad_cells.txt``, run in a real InteractiveShell): each ends in
a one-line ``UsageError`` with no traceback; the next cell runs; the session's entities, the
last-used endpoint, the endpoint's traffic and keys are unchanged; the endpoint still answers.

Bad requests (below, sent with a plain HTTP client to the scoring URI): each gets a 4xx with a
readable error (no traceback, no 5xx) or, for odd-but-valid input, a correct 200; after each,
the router and its instances are the same processes and a normal request still gets a 200.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from reliability.helpers import FLOW

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

CORPUS = Path(__file__).parent / "reliability" / "bad_cells.txt"
EP = "rel-bad-input"

SETUP_ENDPOINT = f"""%%pf_endpoint --create
name: {EP}
auth_mode: key
"""
SETUP_DEPLOYMENT = f"""%%pf_deployment --create --all-traffic
name: blue
endpoint_name: {EP}
model:
  path: {FLOW}
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
  inference_config:
    liveness_route: {{path: /health, port: 8080}}
    readiness_route: {{path: /health, port: 8080}}
    scoring_route: {{path: /score, port: 8080}}
instance_type: Standard_E16s_v3
instance_count: 1
environment_variables:
  PROMPTFLOW_RUN_MODE: serving
"""


def load_corpus(**subst: str) -> list[tuple[str, str]]:
    cells: list[tuple[str, str]] = []
    current: list[str] | None = None
    ident = ""
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            if current is not None:
                cells.append((ident, "\n".join(current).strip("\n") + "\n"))
            ident, current = line[4:].split(":", 1)[0].strip(), []
        elif current is not None:
            current.append(line)
        # comment lines before the first ### are the file's header
    if current is not None:
        cells.append((ident, "\n".join(current).strip("\n") + "\n"))
    out = []
    for ident, cell in cells:
        for key, value in subst.items():
            cell = cell.replace("{" + key + "}", value)
        cell = cell.replace("\\x07", "\x07")
        out.append((ident, cell))
    return out


def test_corpus_size() -> None:
    cells = load_corpus()
    assert len(cells) >= 40
    assert len({i for i, _ in cells}) == len(cells), "duplicate ids in bad_cells.txt"
    assert len(REQUESTS) >= 20
    assert len({r.ident for r in REQUESTS}) == len(REQUESTS)


# -- bad requests ---------------------------------------------------------------------------
@dataclass
class Bad:
    ident: str
    body: bytes | None = None
    json_body: Any = None
    headers: dict[str, Any] = field(default_factory=dict)
    method: str = "POST"
    path: str = "/score"
    auth: str | None = "key"  # "key" = the endpoint's key; None = no Authorization header
    expect: tuple[int, ...] = (400, 401, 404, 405, 406, 413, 415, 422, 424, 431)
    check: Callable[[httpx.Response], bool] | None = None
    json_error: bool = True  # a 4xx must carry {"error": {"message": ...}}


def _answer_has(text: str) -> Callable[[httpx.Response], bool]:
    return lambda r: text in r.json()["answer"]


UNICODE_Q = "héllo ✓ 漢字 🙂 שלום مرحبا e\u0301 \u200b"
HISTORY_5K = [{"inputs": {"question": f"turn {i}"}, "outputs": {"answer": f"a{i}", "turns": i}}
              for i in range(5_000)]
NESTED = "[" * 100_000 + "]" * 100_000

REQUESTS: list[Bad] = [
    Bad("oversized-body-20MB", json_body={"question": "x" * (20 * 2**20)}, expect=(413,)),
    # JSON sent as text/plain: served leniently (Azure's scoring does the same), never a 5xx
    Bad("content-type-text", body=b'{"question": "hi"}', headers={"Content-Type": "text/plain"},
        expect=(200, 400, 415, 424), check=lambda r: r.status_code != 200 or
        "Echo: hi" in r.json()["answer"]),
    Bad("content-type-xml", body=b"<question>hi</question>",
        headers={"Content-Type": "application/xml"}),
    Bad("content-type-form", body=b"question=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Bad("invalid-json", body=b'{"question": ', headers={"Content-Type": "application/json"}),
    Bad("empty-body", body=b"", headers={"Content-Type": "application/json"}),
    Bad("json-array", json_body=[{"question": "hi"}]),
    Bad("json-string", json_body="hi"),
    Bad("json-null", json_body=None, body=b"null", headers={"Content-Type": "application/json"}),
    Bad("invalid-utf8", body=b'{"question": "\xff\xfe\xfa"}',
        headers={"Content-Type": "application/json"}),
    Bad("deeply-nested-json", body=('{"question": ' + NESTED + "}").encode(),
        headers={"Content-Type": "application/json"}),
    Bad("wrong-key", json_body={"question": "hi"}, auth="not-the-key", expect=(401,)),
    Bad("no-auth-header", json_body={"question": "hi"}, auth=None, expect=(401,)),
    Bad("basic-auth-scheme", json_body={"question": "hi"}, auth=None,
        headers={"Authorization": "Basic dXNlcjpwYXNz"}, expect=(401,)),
    Bad("bearer-without-key", json_body={"question": "hi"}, auth=None,
        headers={"Authorization": "Bearer"}, expect=(401,)),
    Bad("non-ascii-key", json_body={"question": "hi"}, auth=None,
        headers={"Authorization": "Bearer cl\u00e9-\u00fc".encode("latin-1")}, expect=(401,)),
    Bad("forged-token", json_body={"question": "hi"}, auth="pfm1.e30.AAAA", expect=(401,)),
    Bad("missing-question", json_body={"chat_history": []}),
    Bad("history-not-list", json_body={"question": "hi", "chat_history": "not a list"}),
    Bad("question-not-string", json_body={"question": {"nested": [1, 2]}, "chat_history": []},
        expect=(200, 400, 424), check=lambda r: r.status_code != 200 or "nested" in r.text),
    Bad("nan-literal", body=b'{"question": "hi", "chat_history": [], "x": NaN}',
        headers={"Content-Type": "application/json"}, expect=(200, 400, 424)),
    # promptflow 1.18.5 loses a generator tool's own message in JSON mode ("can only join an
    # iterable"); the endpoint still answers 424 with a JSON error, as Azure does
    Bad("flow-raises", json_body={"question": "explode", "chat_history": []}, expect=(424,)),
    Bad("accept-html", json_body={"question": "hi"}, headers={"Accept": "text/html"},
        expect=(406, 424)),
    Bad("unknown-deployment-header", json_body={"question": "hi"},
        headers={"azureml-model-deployment": "ghost"}, expect=(404,)),
    Bad("get-score", method="GET", expect=(404, 405)),
    Bad("put-score", method="PUT", json_body={"question": "hi"}, expect=(404, 405)),
    Bad("unknown-path", path="/nope", json_body={"question": "hi"}, expect=(404,)),
    Bad("path-traversal", path="/../../etc/passwd", method="GET", expect=(400, 404)),
    # sent over a raw socket: the server answers 400 (h11's limit) and closes mid-upload
    Bad("huge-header-200KB", json_body={"question": "hi"}, headers={"X-Big": "y" * 200_000},
        expect=(400, 413, 431), json_error=False),
    Bad("unicode-question", json_body={"question": UNICODE_Q, "chat_history": []},
        expect=(200,), check=_answer_has(UNICODE_Q.split()[0])),
    Bad("nul-and-controls", json_body={"question": "a\u0000b\u0007c\u001b[31m",
                                       "chat_history": []}, expect=(200,)),
    Bad("lone-surrogate", body=b'{"question": "bad \\ud800 half", "chat_history": []}',
        headers={"Content-Type": "application/json"}, expect=(200, 400, 424)),
    Bad("huge-history-5k-turns", json_body={"question": "after 5k", "chat_history": HISTORY_5K},
        expect=(200,), check=lambda r: r.json()["turns"] == 5_000),
    Bad("huge-history-50k-turns", json_body={"question": "after 50k",
                                             "chat_history": HISTORY_5K * 10},
        expect=(200, 413), check=lambda r: r.status_code == 413 or r.json()["turns"] == 50_000),
    Bad("history-garbage-items", json_body={"question": "hi", "chat_history": [1, "two", None]},
        expect=(200, 400, 424)),
]


def _raw(base: str, key: str, bad: Bad) -> httpx.Response:
    """One request over a plain socket: for inputs httpx refuses to send or to read back."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base)
    body = json.dumps(bad.json_body).encode()
    head = [f"{bad.method} {bad.path} HTTP/1.1", f"Host: {url.netloc}",
            f"Authorization: Bearer {key}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in bad.headers.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    reply = b""
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may close before it has read everything
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except OSError:
            pass
    status_line, _, rest = reply.partition(b"\r\n")
    if not status_line.startswith(b"HTTP/1.1 "):
        raise httpx.RemoteProtocolError(f"no HTTP reply: {reply[:100]!r}")
    content = rest.partition(b"\r\n\r\n")[2]
    return httpx.Response(int(status_line.split()[1]), content=content)


def _send(client: httpx.Client, base: str, key: str, bad: Bad) -> httpx.Response:
    if sum(len(v) for v in bad.headers.values()) > 65536:
        return _raw(base, key, bad)
    headers = {"Accept": "application/json"}
    if bad.auth == "key":
        headers["Authorization"] = f"Bearer {key}"
    elif bad.auth is not None:
        headers["Authorization"] = f"Bearer {bad.auth}"
    headers.update(bad.headers)
    if bad.body is not None:
        return client.request(bad.method, base + bad.path, content=bad.body, headers=headers)
    if bad.json_body is not None:
        return client.request(bad.method, base + bad.path, json=bad.json_body, headers=headers)
    return client.request(bad.method, base + bad.path, headers=headers)


def _processes(status: dict[str, Any]) -> tuple[int, list[int]]:
    return status["pid"], sorted(i["pid"] for d in status["deployments"].values()
                                 for i in d["instances"])


# -- the test -------------------------------------------------------------------------------
def test_bad_cells_and_bad_requests(ip: InteractiveShell, tmp_path: Path) -> None:
    from pfmagic.magics import session_of

    for cell in (SETUP_ENDPOINT, SETUP_DEPLOYMENT):
        res = ip.run_cell(cell)
        assert res.success, res.error_in_exec or res.error_before_exec
    session = session_of(ip)
    backend = session.backend
    uri = backend.get_endpoint(EP).scoring_uri
    base = uri.rsplit("/score", 1)[0]
    keys = backend.get_keys(EP)
    key = keys.primary_key

    def snapshot() -> dict[str, Any]:
        ep = backend.get_endpoint(EP)
        k = backend.get_keys(EP)
        return {
            # the objects themselves: a failed cell must not replace a parsed entity
            "session_endpoints": {k: id(v) for k, v in session.endpoints.items()},
            "session_deployments": {k: id(v) for k, v in session.deployments.items()},
            "session_models": {k: id(v) for k, v in session.models.items()},
            "last_endpoint": session.last_endpoint,
            "backend": session.backend_name,
            "traffic": dict(ep.traffic or {}), "mirror": dict(ep.mirror_traffic or {}),
            "keys": (k.primary_key, k.secondary_key),
            "deployments": sorted(d.name for d in backend.list_deployments(EP)),
            "endpoints": sorted(e.name for e in backend.list_endpoints()),
        }

    def healthy(client: httpx.Client) -> bool:
        r = client.post(uri, json={"question": "still there?", "chat_history": []},
                        headers={"Authorization": f"Bearer {key}"})
        return r.status_code == 200 and "still there?" in r.json()["answer"]

    a_file = tmp_path / "not-a-flow.txt"
    a_file.write_text("not json, not a flow\n")
    cells = load_corpus(EP=EP, FLOW=str(FLOW), MISSING=str(tmp_path / "missing"),
                        FILE=str(a_file))
    before = snapshot()
    procs_before = _processes(backend.router_status(EP))
    problems: list[str] = []
    notes: list[str] = []
    shown: list[str] = []
    with httpx.Client(trust_env=False, timeout=120) as client:
        assert healthy(client)
        for ident, cell in cells:
            with capture_output() as cap:
                res = ip.run_cell(cell)
            err = res.error_in_exec or res.error_before_exec
            output = cap.stdout + cap.stderr
            if not isinstance(err, UsageError):
                problems.append(f"cell {ident}: expected a UsageError, got {err!r}"
                                f"{' (the cell succeeded)' if err is None else ''}")
            else:
                message = str(err).strip()
                shown.append(f"{ident}: {message}")
                if "\n" in message or not message:
                    problems.append(f"cell {ident}: error is not one line: {message!r}")
            if "Traceback" in output:
                problems.append(f"cell {ident}: printed a traceback: {output[-500:]!r}")
            probe = ip.run_cell("__pfmagic_probe = 6 * 7")
            if not probe.success or ip.user_ns.get("__pfmagic_probe") != 42:
                problems.append(f"cell {ident}: the next cell did not run")
            ip.user_ns.pop("__pfmagic_probe", None)
            now = snapshot()
            for kind in ("session_endpoints", "session_deployments", "session_models"):
                # a failed cell may have parsed (and kept) its own new entity; it must not
                # replace or drop one the notebook already had
                added = set(now[kind]) - set(before[kind])
                if added:
                    notes.append(f"cell {ident}: kept its parsed {kind[8:-1]} {sorted(added)}")
                for name, ident_before in before[kind].items():
                    if now[kind].get(name) != ident_before:
                        problems.append(f"cell {ident}: replaced or dropped {kind[8:-1]} "
                                        f"{name!r}")
            diff = {k: (before[k], now[k]) for k in now
                    if not k.startswith("session_") and now[k] != before[k]}
            if diff:
                problems.append(f"cell {ident}: state changed: {diff}")
            before = now  # report each change once
            if not healthy(client):
                problems.append(f"cell {ident}: the endpoint stopped answering")

        statuses: dict[str, int] = {}
        for bad in REQUESTS:
            try:
                resp = _send(client, base, key, bad)
            except httpx.HTTPError as exc:
                problems.append(f"request {bad.ident}: no reply ({type(exc).__name__}: {exc})")
                continue
            statuses[bad.ident] = resp.status_code
            text = resp.text
            if resp.status_code not in bad.expect:
                problems.append(f"request {bad.ident}: status {resp.status_code}, expected "
                                f"{bad.expect}: {text[:200]!r}")
            if "Traceback" in text or re.search(r'File ".*", line \d+', text):
                problems.append(f"request {bad.ident}: traceback in the reply")
            if bad.json_error and (resp.status_code >= 400 and resp.status_code != 404 or
                                   resp.status_code == 404 and bad.path == "/score"):
                try:
                    message = resp.json()["error"]["message"]
                    assert isinstance(message, str) and message
                except (ValueError, KeyError, TypeError, AssertionError):
                    problems.append(f"request {bad.ident}: {resp.status_code} without a JSON "
                                    f"error message: {text[:200]!r}")
            if bad.check is not None and resp.status_code in bad.expect:
                try:
                    ok = bad.check(resp)
                except (ValueError, KeyError, TypeError):
                    ok = False
                if not ok:
                    problems.append(f"request {bad.ident}: wrong reply {text[:200]!r}")
            if not healthy(client):
                problems.append(f"request {bad.ident}: the endpoint stopped answering")
        procs_after = _processes(backend.router_status(EP))
    if procs_after != procs_before:
        problems.append(f"router/instance processes changed: {procs_before} -> {procs_after}")
    after = snapshot()
    if after != before:
        problems.append(f"state changed by bad requests: {before} -> {after}")
    print(f"\n{len(cells)} bad cells, {len(REQUESTS)} bad requests; statuses {statuses}")
    print("\n".join(shown))
    print("\n".join(notes))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)

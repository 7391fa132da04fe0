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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from reliability.helpers import FLOW, processes_under, stop_leftovers

from pfmagic.spec.templates import deployment_yaml, endpoint_yaml

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

CORPUS = Path(__file__).parent / "reliability" / "bad_cells.txt"
EP = "rel-bad-input"

SETUP_ENDPOINT = "%%pf_endpoint --create\n" + endpoint_yaml(EP)
SETUP_DEPLOYMENT = "%%pf_deployment --create --all-traffic\n" + deployment_yaml("blue", EP, FLOW)


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


CELLS = load_corpus()


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
    expect: tuple[int, ...] = ()  # the exact status, given by each case (issue 21)
    check: Callable[[httpx.Response], bool] | None = None
    json_error: bool = True  # a 4xx must carry {"error": {"message": ...}}


def _answer_has(text: str) -> Callable[[httpx.Response], bool]:
    return lambda r: text in r.json()["answer"]


UNICODE_Q = "héllo ✓ 漢字 🙂 שלום مرحبا e\u0301 \u200b"
HISTORY_5K = [
    {"inputs": {"question": f"turn {i}"}, "outputs": {"answer": f"a{i}", "turns": i}}
    for i in range(5_000)
]
NESTED = "[" * 100_000 + "]" * 100_000

REQUESTS: list[Bad] = [
    Bad("oversized-body-20MB", json_body={"question": "x" * (20 * 2**20)}, expect=(413,)),
    # JSON sent as text/plain: served leniently (Azure's scoring does the same), never a 5xx
    Bad(
        "content-type-text",
        body=b'{"question": "hi"}',
        headers={"Content-Type": "text/plain"},
        expect=(200,),
        check=lambda r: r.status_code != 200 or "Echo: hi" in r.json()["answer"],
    ),
    Bad(
        "content-type-xml",
        expect=(424,),
        body=b"<question>hi</question>",
        headers={"Content-Type": "application/xml"},
    ),
    Bad(
        "content-type-form",
        expect=(424,),
        body=b"question=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Bad(
        "invalid-json",
        expect=(424,),
        body=b'{"question": ',
        headers={"Content-Type": "application/json"},
    ),
    Bad("empty-body", expect=(424,), body=b"", headers={"Content-Type": "application/json"}),
    Bad("json-array", expect=(424,), json_body=[{"question": "hi"}]),
    Bad("json-string", expect=(424,), json_body="hi"),
    Bad(
        "json-null",
        expect=(424,),
        json_body=None,
        body=b"null",
        headers={"Content-Type": "application/json"},
    ),
    Bad(
        "invalid-utf8",
        expect=(424,),
        body=b'{"question": "\xff\xfe\xfa"}',
        headers={"Content-Type": "application/json"},
    ),
    Bad(
        "deeply-nested-json",
        expect=(424,),
        body=('{"question": ' + NESTED + "}").encode(),
        headers={"Content-Type": "application/json"},
    ),
    Bad("wrong-key", json_body={"question": "hi"}, auth="not-the-key", expect=(401,)),
    Bad("no-auth-header", json_body={"question": "hi"}, auth=None, expect=(401,)),
    Bad(
        "basic-auth-scheme",
        json_body={"question": "hi"},
        auth=None,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
        expect=(401,),
    ),
    Bad(
        "bearer-without-key",
        json_body={"question": "hi"},
        auth=None,
        headers={"Authorization": "Bearer"},
        expect=(401,),
    ),
    Bad(
        "non-ascii-key",
        json_body={"question": "hi"},
        auth=None,
        headers={"Authorization": "Bearer cl\u00e9-\u00fc".encode("latin-1")},
        expect=(401,),
    ),
    Bad("forged-token", json_body={"question": "hi"}, auth="pfm1.e30.AAAA", expect=(401,)),
    Bad("missing-question", expect=(424,), json_body={"chat_history": []}),
    Bad(
        "history-not-list",
        expect=(424,),
        json_body={"question": "hi", "chat_history": "not a list"},
    ),
    Bad(
        "question-not-string",
        json_body={"question": {"nested": [1, 2]}, "chat_history": []},
        expect=(200,),
        check=lambda r: r.status_code != 200 or "nested" in r.text,
    ),
    Bad(
        "nan-literal",
        body=b'{"question": "hi", "chat_history": [], "x": NaN}',
        headers={"Content-Type": "application/json"},
        expect=(200,),
    ),
    # promptflow 1.18.5 loses a generator tool's own message in JSON mode ("can only join an
    # iterable"); the endpoint still answers 424 with a JSON error, as Azure does
    Bad("flow-raises", json_body={"question": "explode", "chat_history": []}, expect=(424,)),
    Bad(
        "accept-html",
        json_body={"question": "hi"},
        headers={"Accept": "text/html"},
        expect=(424,),
    ),
    Bad(
        "unknown-deployment-header",
        json_body={"question": "hi"},
        headers={"azureml-model-deployment": "ghost"},
        expect=(404,),
    ),
    Bad("get-score", method="GET", expect=(404,)),
    Bad("put-score", method="PUT", json_body={"question": "hi"}, expect=(404,)),
    Bad("unknown-path", path="/nope", json_body={"question": "hi"}, expect=(404,)),
    Bad("path-traversal", path="/../../etc/passwd", method="GET", expect=(404,)),
    # sent over a raw socket: the server answers 400 (h11's limit) and closes mid-upload
    Bad(
        "huge-header-200KB",
        json_body={"question": "hi"},
        headers={"X-Big": "y" * 200_000},
        expect=(400,),
        json_error=False,
    ),
    Bad(
        "unicode-question",
        json_body={"question": UNICODE_Q, "chat_history": []},
        expect=(200,),
        check=_answer_has(UNICODE_Q.split()[0]),
    ),
    Bad(
        "nul-and-controls",
        json_body={"question": "a\u0000b\u0007c\u001b[31m", "chat_history": []},
        expect=(200,),
    ),
    Bad(
        "lone-surrogate",
        body=b'{"question": "bad \\ud800 half", "chat_history": []}',
        headers={"Content-Type": "application/json"},
        expect=(424,),
    ),
    Bad(
        "huge-history-5k-turns",
        json_body={"question": "after 5k", "chat_history": HISTORY_5K},
        expect=(200,),
        check=lambda r: r.json()["turns"] == 5_000,
    ),
    Bad(
        "huge-history-50k-turns",
        json_body={"question": "after 50k", "chat_history": HISTORY_5K * 10},
        expect=(413,),
        check=lambda r: r.status_code == 413 or r.json()["turns"] == 50_000,
    ),
    Bad(
        "history-garbage-items",
        json_body={"question": "hi", "chat_history": [1, "two", None]},
        expect=(424,),
    ),
]


def _raw(base: str, key: str, bad: Bad) -> httpx.Response:
    """One request over a plain socket: for inputs httpx refuses to send or to read back."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base)
    body = json.dumps(bad.json_body).encode()
    head = [
        f"{bad.method} {bad.path} HTTP/1.1",
        f"Host: {url.netloc}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
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
    return status["pid"], sorted(
        i["pid"] for d in status["deployments"].values() for i in d["instances"]
    )


# -- a live shell + endpoint shared by every case of this module ------------------------------
@dataclass
class Live:
    shell: InteractiveShell
    session: Any
    backend: Any
    uri: str
    base: str
    key: str
    client: httpx.Client
    subst: dict[str, str]
    processes: tuple[int, list[int]]
    before: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        ep = self.backend.get_endpoint(EP)
        k = self.backend.get_keys(EP)
        s = self.session
        return {
            # the objects themselves: a failed cell must not replace a parsed entity
            "session_endpoints": {n: id(v) for n, v in s.endpoints.items()},
            "session_deployments": {n: id(v) for n, v in s.deployments.items()},
            "session_models": {n: id(v) for n, v in s.models.items()},
            "last_endpoint": s.last_endpoint,
            "backend": s.backend_name,
            "traffic": dict(ep.traffic or {}),
            "mirror": dict(ep.mirror_traffic or {}),
            "keys": (k.primary_key, k.secondary_key),
            "deployments": sorted(d.name for d in self.backend.list_deployments(EP)),
            "endpoints": sorted(e.name for e in self.backend.list_endpoints()),
        }

    def healthy(self) -> bool:
        r = self.client.post(
            self.uri,
            json={"question": "still there?", "chat_history": []},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        return r.status_code == 200 and "still there?" in r.json()["answer"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from traitlets.config import Config

    from pfmagic.magics import session_of

    tmp = tmp_path_factory.mktemp("bad-input")
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.PfMagics.widgets = False
    config.PfMagics.home = str(tmp / "pfhome")
    shell = InteractiveShell.instance(config=config)
    shell.user_ns["__vsc_ipynb_file__"] = str(tmp / "nb.ipynb")
    shell.run_line_magic("load_ext", "pfmagic")
    session = session_of(shell)
    client = httpx.Client(trust_env=False, timeout=120)
    try:
        with capture_output():
            for cell in (SETUP_ENDPOINT, SETUP_DEPLOYMENT):
                res = shell.run_cell(cell)
                assert res.success, res.error_in_exec or res.error_before_exec
        backend = session.backend
        uri = backend.get_endpoint(EP).scoring_uri
        a_file = tmp / "not-a-flow.txt"
        a_file.write_text("not json, not a flow\n")
        live = Live(
            shell=shell,
            session=session,
            backend=backend,
            uri=uri,
            base=uri.rsplit("/score", 1)[0],
            key=backend.get_keys(EP).primary_key,
            client=client,
            processes=_processes(backend.router_status(EP)),
            subst={
                "EP": EP,
                "FLOW": str(FLOW),
                "MISSING": str(tmp / "missing"),
                "FILE": str(a_file),
            },
        )
        assert live.healthy()
        live.before = live.snapshot()
        yield live
    finally:
        client.close()
        if session.active_backend is not None:
            session.active_backend.shutdown_all()
        shell.run_line_magic("unload_ext", "pfmagic")
        InteractiveShell.clear_instance()
        left = stop_leftovers(tmp / "pfhome")
        assert not left, f"processes left after shutdown_all: {left}"


# -- bad cells --------------------------------------------------------------------------------
@pytest.mark.parametrize("ident", [ident for ident, _ in CELLS])
def test_bad_cell(live: Live, ident: str) -> None:
    cell = dict(CELLS)[ident]
    for key, value in live.subst.items():
        cell = cell.replace("{" + key + "}", value)
    before = live.snapshot()
    with capture_output() as cap:
        res = live.shell.run_cell(cell)
    err = res.error_in_exec or res.error_before_exec
    output = cap.stdout + cap.stderr
    problems: list[str] = []
    if not isinstance(err, UsageError):
        problems.append(
            f"expected a UsageError, got {err!r}{' (the cell succeeded)' if err is None else ''}"
        )
    else:
        message = str(err).strip()
        print(f"\n{ident}: {message}")
        if "\n" in message or not message:
            problems.append(f"error is not one line: {message!r}")
    if "Traceback" in output:
        problems.append(f"printed a traceback: {output[-500:]!r}")
    probe = live.shell.run_cell("__pfmagic_probe = 6 * 7")
    if not probe.success or live.shell.user_ns.pop("__pfmagic_probe", None) != 42:
        problems.append("the next cell did not run")
    now = live.snapshot()
    for kind in ("session_endpoints", "session_deployments", "session_models"):
        # a failed cell may keep its own newly parsed entity; it must not replace or drop one
        # the notebook already had
        added = set(now[kind]) - set(before[kind])
        if added:
            print(f"(kept its parsed {kind[8:-1]} {sorted(added)})")
        for name, obj in before[kind].items():
            if now[kind].get(name) != obj:
                problems.append(f"replaced or dropped the {kind[8:-1]} {name!r} parsed earlier")
    diff = {
        k: (before[k], now[k]) for k in now if not k.startswith("session_") and now[k] != before[k]
    }
    if diff:
        problems.append(f"state changed: {diff}")
    if not live.healthy():
        problems.append("the endpoint stopped answering")
    # undo what this cell changed so one bug is reported once, by its own case
    live.session.last_endpoint = before["last_endpoint"]
    assert not problems, f"cell {ident}:\n{cell}\n" + "\n".join(problems)


# -- bad requests -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", REQUESTS, ids=[r.ident for r in REQUESTS])
def test_bad_request(live: Live, bad: Bad) -> None:
    problems: list[str] = []
    try:
        resp = _send(live.client, live.base, live.key, bad)
    except httpx.HTTPError as exc:
        pytest.fail(f"request {bad.ident}: no reply ({type(exc).__name__}: {exc})")
    text = resp.text
    print(f"\n{bad.ident}: {resp.status_code} {text[:150]!r}")
    if resp.status_code not in bad.expect:
        problems.append(f"status {resp.status_code}, expected {bad.expect}: {text[:200]!r}")
    if "Traceback" in text or re.search(r'File ".*", line \d+', text):
        problems.append("traceback in the reply")
    if bad.json_error and (
        resp.status_code >= 400
        and resp.status_code != 404
        or resp.status_code == 404
        and bad.path == "/score"
    ):
        try:
            message = resp.json()["error"]["message"]
            assert isinstance(message, str) and message
        except (ValueError, KeyError, TypeError, AssertionError):
            problems.append(f"{resp.status_code} without a JSON error message: {text[:200]!r}")
    if bad.check is not None and resp.status_code in bad.expect:
        try:
            ok = bad.check(resp)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            problems.append(f"wrong reply {text[:200]!r}")
    if not live.healthy():
        problems.append("the endpoint stopped answering")
    assert not problems, f"request {bad.ident}:\n" + "\n".join(problems)


def test_same_processes_and_state_after_the_corpus(live: Live) -> None:
    """Last in the module: nothing above crashed the router or an instance, and no cell
    about a missing endpoint left a process behind (a router for 'no-such-endpoint')."""
    assert _processes(live.backend.router_status(EP)) == live.processes
    home = live.session.settings.home
    strays = [
        " ".join(p.cmdline())
        for p in processes_under(home)
        if "no-such-endpoint" in " ".join(p.cmdline())
    ]
    assert not strays, f"processes started for an endpoint that does not exist: {strays}"
    now = live.snapshot()
    for key in ("traffic", "mirror", "keys", "deployments", "backend"):
        assert now[key] == live.before[key], key
    assert live.healthy()

"""Replay recorded ARM traffic (tests/recordings/, see SOURCES.md) to the real ``MLClient``.

A recording is the Azure PowerShell test-proxy format: ``{key: {"Request": {Method,
RequestUri, ...}, "Response": {StatusCode, Headers, ContentHeaders, Content}}}``. Responses are
served by method + path (case-insensitive); the api-version is not matched, because
azure-ai-ml pins other api-versions than PowerShell did. Both are kept in ``versions`` so a test
can say which differed. Repeated requests (LRO polls) get the recorded responses in recorded
order; the last one repeats. ``play`` swaps in the responses of one step of a longer recording
(tests/test_azure_replay_deployments.py plays create, traffic and delete one after another).

Requests no recording covers fall through to ``tests/arm_server.py`` (the workspace GET, an
endpoint GET before listKeys, ...), and ``replayed`` / ``fallback`` tell which were which. The
server reuses arm_server's plumbing: HTTPS with a certificate from the session's test CA
(tests/tls.py), azure-ai-ml's base-URL override (``AZUREML_DEV_URL_MFE``) pointing the MLClient
here, the CA trusted through azure-core's ``connection_verify``, and ``RedirectTransport`` for
the recorded absolute URLs (management.azure.com polls, scoring hosts), restoring each URL so
ARM polling and the bearer-token policy see the real one (tests/test_azure_tls.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from arm_server import ArmServer, Logged, _Handler

RECORDINGS = Path(__file__).parent / "recordings"
# hop-by-hop / length headers the server writes itself
_SKIP = {"content-length", "transfer-encoding", "connection", "date"}


def replay_backend(
    server: ArmServer,
    ws: tuple[str, str, str],
    *,
    polling_interval: float = 0,
    poll_seconds: float = 0.02,
    **transport: Any,
) -> Any:
    """pfmagic's AzureBackend for workspace ``ws`` through ``server``'s transport."""
    from arm_server import FakeCredential

    from pfmagic.backends.azure.backend import AzureBackend

    sub, rg, name = ws
    return AzureBackend(
        subscription_id=sub,
        resource_group=rg,
        workspace=name,
        credential=FakeCredential(),
        transport=server.transport(**transport),
        polling_interval=polling_interval,
        poll_seconds=poll_seconds,
    )


def ws_path(ws: tuple[str, str, str], rest: str = "") -> str:
    """The ARM path of workspace ``(subscription, resource group, name)`` + ``rest``."""
    sub, rg, name = ws
    return (
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{name}{rest}"
    )


@dataclass
class Recorded:
    method: str
    path: str
    api_version: str | None
    status: int
    headers: dict[str, str]
    content: bytes


@dataclass
class ReplayLog:
    replayed: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    fallback: list[tuple[str, str]] = field(default_factory=list)
    # (method, path) → (recorded api-version, sent api-version)
    versions: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)


def load_recording(name: str) -> list[Recorded]:
    """The entries of ``tests/recordings/<name>`` in recorded order."""
    data = json.loads((RECORDINGS / name).read_text())
    if "Entries" in data:
        return _load_sdk_entries(data["Entries"])
    out = []
    for entry in data.values():
        req, resp = entry["Request"], entry["Response"]
        parts = urlsplit(req["RequestUri"])
        headers = {
            k: ", ".join(v)
            for group in ("Headers", "ContentHeaders")
            for k, v in (resp.get(group) or {}).items()
            if k.lower() not in _SKIP
        }
        content = resp.get("Content")
        if content is None:
            body = b""
        elif resp.get("isContentBase64"):
            import base64

            body = base64.b64decode(content)
        else:
            body = content.encode()
        out.append(
            Recorded(
                req["Method"].upper(),
                parts.path,
                (parse_qs(parts.query).get("api-version") or [None])[0],
                int(resp["StatusCode"]),
                headers,
                body,
            )
        )
    return out


def _load_sdk_entries(entries: list[dict[str, Any]]) -> list[Recorded]:
    """azure-sdk-for-python's test-proxy format: ``{"Entries": [{RequestUri, RequestMethod,
    StatusCode, ResponseHeaders, ResponseBody}]}``; management.azure.com and scoring
    (``*.inference.ml.azure.com``) entries are served (storage goes to Azurite, sign-in never
    happens here). A string ``ResponseBody`` is the raw body text (the proxy records a DELETE's
    ``null`` body and a scoring reply that way), anything else is JSON."""
    out = []
    for entry in entries:
        parts = urlsplit(entry["RequestUri"])
        if parts.netloc != "management.azure.com" and not parts.netloc.endswith(
            ".inference.ml.azure.com"
        ):
            continue
        body = entry.get("ResponseBody")
        headers = {
            k: ", ".join(v) if isinstance(v, list) else v
            for k, v in (entry.get("ResponseHeaders") or {}).items()
            if k.lower() not in _SKIP | {"content-encoding"}
        }
        out.append(
            Recorded(
                entry["RequestMethod"].upper(),
                parts.path,
                (parse_qs(parts.query).get("api-version") or [None])[0],
                int(entry["StatusCode"]),
                headers,
                _sdk_body(body),
            )
        )
    return out


def vcr_reply(name: str, index: int = 0) -> tuple[int, dict[str, str], bytes]:
    """Interaction ``index`` of a vcrpy cassette (azure-cli's recordings, YAML): the response
    as (status, headers without hop-by-hop/length ones, body bytes exactly as recorded)."""
    import yaml

    data = yaml.safe_load((RECORDINGS / name).read_text())
    resp = data["interactions"][index]["response"]
    headers = {
        k: ", ".join(v) if isinstance(v, list) else str(v)
        for k, v in (resp.get("headers") or {}).items()
        if k.lower() not in _SKIP
    }
    return int(resp["status"]["code"]), headers, resp["body"]["string"].encode()


def sdk_reply(name: str, index: int = 0) -> tuple[int, dict[str, str], bytes]:
    """Entry ``index`` of an azure-sdk-for-python recording as (status, headers, body): a JSON
    body in compact form, which is how the service sent it (its recorded Content-Length)."""
    entry = json.loads((RECORDINGS / name).read_text())["Entries"][index]
    headers = {
        k: v for k, v in (entry.get("ResponseHeaders") or {}).items() if k.lower() not in _SKIP
    }
    body = json.dumps(entry["ResponseBody"], separators=(",", ":")).encode()
    return int(entry["StatusCode"]), headers, body


def _sdk_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class _ReplayHandler(_Handler):
    server: Any

    def _handle(self) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        key = (self.command, parts.path.lower())
        queue = srv.replay.get(key)
        if not queue:
            srv.replay_log.fallback.append((self.command, parts.path))
            return super()._handle()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        with srv.state.lock:  # replayed requests are logged like arm_server's own
            srv.state.log.append(Logged(self.command, parts.path, query, body, headers, ""))
        rec = queue[0] if len(queue) == 1 else queue.pop(0)
        sent = (parse_qs(parts.query).get("api-version") or [None])[0]
        srv.replay_log.replayed.append((self.command, parts.path))
        srv.replay_log.versions[(self.command, parts.path)] = (rec.api_version, sent)
        self.send_response(rec.status)
        for k, v in rec.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rec.content)))
        self.end_headers()
        self.wfile.write(rec.content)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815


class ReplayServer(ArmServer):
    """``ArmServer`` that answers recorded requests from recordings first."""

    def __init__(self, *recordings: str) -> None:
        super().__init__()
        self._server.RequestHandlerClass = _ReplayHandler
        self._server.replay_log = ReplayLog()
        self.play([rec for name in recordings for rec in load_recording(name)])

    def play(self, records: list[Recorded]) -> None:
        """Answer from ``records`` from now on (in their order), instead of what was loaded.

        A test plays a recording step by step (create, then traffic, then delete) because
        pfmagic reads a resource more often than the recorded client did: with one table, its
        extra GETs during the create would use up the responses recorded after the traffic
        update."""
        table: dict[tuple[str, str], list[Recorded]] = defaultdict(list)
        for rec in records:
            table[(rec.method, rec.path.lower())].append(rec)
        self._server.replay = dict(table)

    @property
    def log(self) -> ReplayLog:
        return self._server.replay_log

    def __enter__(self) -> ReplayServer:
        super().__enter__()
        return self

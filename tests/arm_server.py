"""A small in-memory server that answers the ARM calls azure-ai-ml makes for online endpoints.

It speaks the real protocol (PUT → 201 + ``Azure-AsyncOperation``, status polling until
Succeeded/Failed, DELETE → 202 + ``Location``, ARM error bodies) so tests drive the real
``MLClient``. The server speaks HTTPS with a certificate from this session's test CA
(tests/tls.py); while it runs, azure-ai-ml's base-URL override (``AZUREML_DEV_URL_MFE``) points
the MLClient's ARM clients at it, and the client trusts the CA through azure-core's
``connection_verify`` (a CA bundle, as behind a TLS-inspecting proxy). ``RedirectTransport``
sends here only what the override does not cover: absolute URLs the server itself hands out
(``Azure-AsyncOperation`` / ``Location`` polls on management.azure.com, as recorded) and the
scoring hosts, and restores the URL afterwards (see /work/shared/notes/azure-ai-ml.md §2).

Knobs for failure tests: ``fail_deployment`` / ``fail_endpoint`` (async failure with an ARM
error), ``reject`` (synchronous error for a method + path suffix), ``op_seconds`` (how long
an LRO stays InProgress), ``logs``.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from tls import HOST, ca_bundle, server_context

ARM = "https://management.azure.com"
MFE_OVERRIDE = "AZUREML_DEV_URL_MFE"  # azure-ai-ml's base-URL override (aml/_utils/utils.py)
PROVIDER = "/providers/Microsoft.MachineLearningServices"
WS_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    + PROVIDER
    + r"/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?$",
    re.I,
)
LOC_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)" + PROVIDER + r"/locations/(?P<loc>[^/]+)"
    r"/(?P<kind>usages|mfeOperationsStatus|mfeOperationResults)(?:/(?P<id>[^/]+))?$",
    re.I,
)


@dataclass
class Logged:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # lower-case names
    host: str

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


NULL = object()  # a body of JSON ``null`` (real ARM's DELETE 202), unlike no body at all


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


@dataclass
class _Op:
    done_at: float
    resource: str | None  # resource path whose provisioningState follows the op
    error: dict[str, str] | None = None
    delete: bool = False
    status: str = "InProgress"
    # properties the resource takes only when the op succeeds (an endpoint's new traffic)
    pending: dict[str, Any] | None = None
    started: str = field(default_factory=lambda: _iso(time.time()))
    ended: str | None = None


@dataclass
class ArmState:
    location: str = "eastus"
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    ops: dict[str, _Op] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    logs: str = "line 1\nline 2\nline 3"
    usages: list[dict[str, Any]] = field(default_factory=list)
    op_seconds: float = 0.0
    fail_deployment: dict[str, str] | None = None
    fail_endpoint: dict[str, str] | None = None
    # (method, path suffix) → (status, code, message): answered instead of the normal reply
    reject: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)
    scoring_reply: dict[str, Any] = field(default_factory=lambda: {"answer": "hi"})
    scoring_status: int = 200  # non-200: reply with promptflow's error body
    # Azure Monitor: resource id (lower case) -> metric name -> [(dimensions, [points])]
    metrics: dict[str, dict[str, list[tuple[dict[str, str], list[dict[str, Any]]]]]] = field(
        default_factory=dict
    )
    # Log Analytics query API (api.loganalytics.io/v1/<resource id>/query): resource id (lower
    # case) -> replies (status, headers, body bytes) served as given, in order, the last repeats
    log_queries: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        return [
            r
            for r in self.log
            if (method is None or r.method == method) and contains.lower() in r.path.lower()
        ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ----------------------------------------------------------------------
    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else b"null" if body is NULL else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(status, {"error": {"code": code, "message": message}})

    def _not_found(self, endpoint: str) -> None:
        # the shape real ARM sends for a missing online endpoint
        self._reply(
            404,
            {
                "error": {
                    "code": "NotFound",
                    "message": f"Not found: endpoint {endpoint}",
                    "details": [
                        {"code": "NoSuchEndpoint", "message": f"Could not find endpoint {endpoint}"}
                    ],
                }
            },
        )

    def _handle(self) -> None:
        st = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        host = self.headers.get("x-original-host", "")
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = Logged(self.command, parts.path, query, body, headers, host)
        with st.lock:
            st.log.append(entry)
            for (method, suffix), (status, code, msg) in st.reject.items():
                if method == self.command and parts.path.lower().endswith(suffix.lower()):
                    return self._error(status, code, msg)
            if "inference.ml.azure.com" in host:
                return self._score(host, body)
            if parts.path.lower().endswith("/providers/microsoft.insights/metrics"):
                return self._metrics(parts.path, query)
            if host == "api.loganalytics.io":
                return self._log_query(parts.path)
            m = LOC_RE.match(parts.path)
            if m:
                return self._location(m, query)
            m = WS_RE.match(parts.path)
            if not m:
                return self._error(404, "NotFound", f"no route {parts.path}")
            return self._workspace(m, parts.path, body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815

    # -- routes ------------------------------------------------------------------------
    def _location(self, m: re.Match[str], query: dict[str, str]) -> None:
        st = self.server.state
        kind = m["kind"].lower()
        if kind == "usages":
            return self._reply(200, {"value": st.usages})
        op = st.ops.get(m["id"] or "")
        if op is None:
            return self._error(404, "NotFound", "no such operation")
        self.server.advance(op)
        if kind == "mfeoperationresults":  # Location polling: 202 until done
            if op.status == "InProgress":
                return self._reply(202, None, self._poll_headers(op_id=m["id"], location=True))
            if op.status == "Failed":
                return self._reply(400, {"error": op.error})
            return self._reply(200, None)
        # real Azure reports a running operation as "Updating", not "InProgress" (recorded in
        # azure-ai-ml's test_online_deployment recording, endpoint create polls)
        shown = "Updating" if op.status == "InProgress" else op.status
        body: dict[str, Any] = {
            "id": m["id"],
            "name": m["id"],
            "status": shown,
            "startTime": op.started,
            "percentComplete": 0.0,  # real Azure reports 0.0 throughout
        }
        if op.status != "InProgress":
            body["endTime"] = op.ended
        if op.error:
            body["error"] = op.error
        return self._reply(200, body, {"retry-after-ms": "20"})

    def _workspace(self, m: re.Match[str], path: str, body: Any) -> None:
        st = self.server.state
        rest = m["rest"] or ""
        ws_path = path[: len(path) - len(rest)]
        if not rest:
            return self._reply(
                200,
                {
                    "id": ws_path,
                    "name": m["ws"],
                    "location": st.location,
                    "type": "Microsoft.MachineLearningServices/workspaces",
                    "properties": {"discoveryUrl": f"{ARM}/discovery"},
                },
            )
        key = path.lower()
        verb = self.command
        if verb == "POST":
            return self._action(key, rest, body)
        if verb == "GET":
            if key in st.resources:
                return self._reply(200, st.resources[key])
            children = [
                v
                for k, v in st.resources.items()
                if k.startswith(key + "/") and "/" not in k[len(key) + 1 :]
            ]
            if children or re.search(r"/(onlineendpoints|deployments|versions)$", key):
                return self._reply(200, {"value": children})
            if re.search(r"/onlineendpoints/[^/]+$", key):
                return self._not_found(key.rsplit("/", 1)[-1])
            return self._error(
                404, "ResourceNotFound", f"Resource {rest.rsplit('/', 1)[-1]} not found."
            )
        if verb == "PUT":
            return self._put(key, path, rest, body)
        if verb == "DELETE":
            if key not in st.resources:
                return self._reply(204)
            op_id = self.server.new_op(key, delete=True)
            st.resources[key]["properties"]["provisioningState"] = "Deleting"
            # real Azure (azure-ai-ml's test_online_deployment recording): DELETE → 202, body
            # ``null``, both Azure-AsyncOperation and Location, and ARM's timeout
            headers = self._poll_headers(op_id=op_id, location=True)
            headers.update(self._poll_headers(op_id=op_id))
            headers["x-ms-async-operation-timeout"] = "PT30M"
            return self._reply(202, NULL, headers)
        return self._error(405, "MethodNotAllowed", verb)

    def _put(self, key: str, path: str, rest: str, body: dict[str, Any]) -> None:
        st = self.server.state
        name = rest.rsplit("/", 1)[-1]
        is_endpoint = re.search(r"/onlineendpoints/[^/]+$", key) is not None
        is_deployment = re.search(r"/onlineendpoints/[^/]+/deployments/[^/]+$", key) is not None
        resource = dict(body or {})
        resource.update(id=path, name=name)
        props = resource.setdefault("properties", {})
        if not (is_endpoint or is_deployment):  # models, environments...: synchronous
            existed = key in st.resources
            if re.search(r"/models/[^/]+/versions/[^/]+$", key):
                # real ARM fills these (azure-ai-ml's test_model recording, SOURCES.md);
                # azure-ai-ml's Model._from_rest_object fails without ``flavors``
                props.setdefault("flavors", {})
                props.setdefault("isArchived", False)
                props.setdefault("isAnonymous", False)
                props.setdefault("jobName", None)
                resource["type"] = "Microsoft.MachineLearningServices/workspaces/models/versions"
            st.resources[key] = resource
            return self._reply(200 if existed else 201, resource)
        pending: dict[str, Any] | None = None
        if is_endpoint:
            old = st.resources.get(key, {}).get("properties", {})
            props.setdefault("authMode", old.get("authMode", "Key"))
            # real ARM (azure-ai-ml's test_online_deployment recording): a new endpoint has
            # no URIs until its operation succeeds, kind Managed, traffic/mirrorTraffic {}
            if key in st.resources:
                props.setdefault("scoringUri", old.get("scoringUri"))
                props.setdefault("swaggerUri", old.get("swaggerUri"))
            else:
                props["scoringUri"] = props["swaggerUri"] = None
            props.setdefault("traffic", {})
            props.setdefault("mirrorTraffic", {})
            if key in st.resources:
                # the recorded traffic update answered with the traffic it had before ({}), and
                # the GET after the operation showed the new one
                pending = {k: props[k] for k in ("traffic", "mirrorTraffic")}
                props["traffic"] = old.get("traffic") or {}
                props["mirrorTraffic"] = old.get("mirrorTraffic") or {}
            if "compute" not in props:
                resource.setdefault("kind", "Managed")
        else:
            endpoint_key = key.rsplit("/deployments/", 1)[0]
            if endpoint_key not in st.resources:
                return self._not_found(endpoint_key.rsplit("/", 1)[-1])
            props.setdefault("scaleSettings", {"scaleType": "Default"})  # ARM fills defaults
            if props.get("endpointComputeType") == "Kubernetes":
                props.setdefault("containerResourceRequirements", {})
        created = key not in st.resources
        # recorded: a new endpoint starts Creating, a new deployment already Updating
        props["provisioningState"] = "Creating" if created and is_endpoint else "Updating"
        st.resources[key] = resource
        fail = st.fail_deployment if is_deployment else st.fail_endpoint
        op_id = self.server.new_op(key, error=fail)
        st.ops[op_id].pending = pending
        headers = self._poll_headers(op_id=op_id)
        if created or is_endpoint:
            # 201 carries the resource's own URL as Location too, and ARM's timeout; the
            # recorded endpoint update (traffic) answered 201 the same way
            version = parse_qs(urlsplit(self.path).query).get("api-version", ["x"])[0]
            headers["Location"] = f"{ARM}{path}?api-version={version}"
            headers["x-ms-async-operation-timeout"] = "PT30M"
        return self._reply(201 if created or is_endpoint else 200, resource, headers)

    def _action(self, key: str, rest: str, body: Any) -> None:
        st = self.server.state
        target, action = key.rsplit("/", 1)
        resource = st.resources.get(target)
        if resource is None:
            return self._error(404, "ResourceNotFound", "not found")
        if action == "listkeys":
            keys = resource.setdefault(
                "_keys",
                {
                    "primaryKey": "pk-" + uuid.uuid4().hex[:8],
                    "secondaryKey": "sk-" + uuid.uuid4().hex[:8],
                },
            )
            return self._reply(200, keys)
        if action == "token":
            return self._reply(
                200,
                {
                    "accessToken": "aml-token-xyz",
                    "tokenType": "Bearer",
                    "expiryTimeUtc": int(time.time()) + 3600,
                    "refreshAfterTimeUtc": int(time.time()) + 1800,
                },
            )
        if action == "regeneratekeys":
            slot = "primaryKey" if (body or {}).get("keyType") == "Primary" else "secondaryKey"
            resource.setdefault("_keys", {})[slot] = "new-" + uuid.uuid4().hex[:8]
            op_id = self.server.new_op(None)
            return self._reply(202, None, self._poll_headers(op_id=op_id, location=True))
        if action == "listsecrets":  # datastore credentials, seeded by the test (real shape)
            if "_secrets" not in resource:
                return self._error(400, "UserError", "datastore has no stored secrets")
            return self._reply(200, resource["_secrets"])
        if action == "getlogs":
            tail = int((body or {}).get("tail") or 100)
            return self._reply(200, {"content": "\n".join(st.logs.splitlines()[-tail:])})
        return self._error(400, "BadRequest", f"unknown action {action}")

    def _metrics(self, path: str, query: dict[str, str]) -> None:
        """ARM ``Microsoft.Insights/metrics``: one entry per asked metric, one time series per
        stored dimension combination (the shape a ``deployment eq '*'`` filter gets)."""
        st = self.server.state
        resource = path[: -len("/providers/microsoft.insights/metrics")]
        stored = st.metrics.get(resource.lower(), {})
        value = []
        for name in (query.get("metricnames") or "").split(","):
            series = [
                {
                    "metadatavalues": [
                        {"name": {"value": k, "localizedValue": k}, "value": v}
                        for k, v in dims.items()
                    ],
                    "data": points,
                }
                for dims, points in stored.get(name, [])
            ]
            value.append(
                {
                    "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": name, "localizedValue": name},
                    "displayDescription": "",
                    "unit": "Count",
                    "timeseries": series,
                    "errorCode": "Success",
                }
            )
        return self._reply(
            200,
            {
                "cost": 0,
                "timespan": query.get("timespan", ""),
                "interval": query.get("interval", "PT1M"),
                "value": value,
                "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "resourceregion": st.location,
            },
        )

    def _log_query(self, path: str) -> None:
        """``POST /v1/<resource id>/query`` (LogsQueryClient.query_resource): the seeded reply
        bytes as they are; a resource nothing was seeded for answers 404 as the API does."""
        resource = re.sub(r"^/v1/+", "/", path)[: -len("/query")].lower()
        replies = self.server.state.log_queries.get(resource)
        if not path.endswith("/query") or not replies:
            return self._error(404, "ResourceNotFound", f"no logs for {resource}")
        status, headers, data = replies[0] if len(replies) == 1 else replies.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _score(self, host: str, body: Any) -> None:
        st = self.server.state
        if st.scoring_status != 200:
            return self._error(
                st.scoring_status,
                "UserError",
                "Execution failure in 'answer': (ValueError) user asked for an explosion",
            )
        reply = dict(st.scoring_reply)
        reply["echo"] = body
        deployment = self.headers.get("azureml-model-deployment") or "blue"
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("azureml-model-deployment", deployment)
        self.end_headers()
        self.wfile.write(data)

    def _poll_headers(self, *, op_id: str, location: bool = False) -> dict[str, str]:
        st = self.server.state
        sub = self.path.split("/")[2]
        base = f"{ARM}/subscriptions/{sub}{PROVIDER}/locations/{st.location}"
        if location:
            return {
                "Location": f"{base}/mfeOperationResults/{op_id}?api-version=x",
                "retry-after-ms": "20",
            }
        return {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op_id}?api-version=x",
            "retry-after-ms": "20",
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ArmState):
        super().__init__((HOST, 0), _Handler)
        self.state = state

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # handshake later, in the request's own thread (finish_request), not in the accept loop
        return server_context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            return  # a client that does not trust the test CA aborts the handshake: expected
        super().handle_error(request, client_address)

    def new_op(
        self, resource: str | None, *, error: dict[str, str] | None = None, delete: bool = False
    ) -> str:
        op_id = uuid.uuid4().hex
        self.state.ops[op_id] = _Op(time.time() + self.state.op_seconds, resource, error, delete)
        return op_id

    def advance(self, op: _Op) -> None:
        """Finish ``op`` once its time is up and move its resource to the final state."""
        if op.status != "InProgress" or time.time() < op.done_at:
            return
        # error {} = Failed without an error body (real Azure does this)
        op.status = "Failed" if op.error is not None else "Succeeded"
        op.ended = _iso(time.time())
        res = self.state.resources.get(op.resource or "")
        if res is None:
            return
        if op.status == "Succeeded" and re.search(r"/onlineendpoints/[^/]+$", op.resource or ""):
            name = res["name"]
            host = f"https://{name}.{self.state.location}.inference.ml.azure.com"
            res["properties"]["scoringUri"] = f"{host}/score"
            res["properties"]["swaggerUri"] = f"{host}/swagger.json"
        if op.delete:
            for key in [
                k
                for k in self.state.resources
                if k == op.resource or k.startswith(op.resource + "/")
            ]:
                del self.state.resources[key]
        else:
            res["properties"]["provisioningState"] = op.status
            if op.status == "Succeeded" and op.pending:
                res["properties"].update(op.pending)


class ArmServer:
    """Run the fake ARM on https://127.0.0.1 in a thread; ``state`` holds resources and the log.

    While entered, ``AZUREML_DEV_URL_MFE`` names it, so an MLClient made then sends its ARM
    requests here by azure-ai-ml's own base URL."""

    def __init__(self) -> None:
        self.state = ArmState()
        self._server = _Server(self.state)
        self.port = self._server.server_address[1]
        self.url = f"https://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._saved_override: str | None = None

    def __enter__(self) -> ArmServer:
        self._thread.start()
        self._saved_override = os.environ.get(MFE_OVERRIDE)
        os.environ[MFE_OVERRIDE] = self.url
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved_override is None:
            os.environ.pop(MFE_OVERRIDE, None)
        else:
            os.environ[MFE_OVERRIDE] = self._saved_override
        self._server.shutdown()
        self._server.server_close()

    def transport(self, **kw: Any) -> RedirectTransport:
        """A transport that trusts this session's test CA (``connection_verify`` = its bundle);
        ``kw`` overrides, e.g. ``connection_verify=True`` for the default trust store."""
        kw.setdefault("connection_verify", ca_bundle())
        return RedirectTransport(self.port, **kw)

    def seed(self, path: str, resource: dict[str, Any]) -> None:
        """Put a resource in the store directly (``path`` is its ARM id)."""
        resource = dict(resource, id=path, name=path.rsplit("/", 1)[-1])
        resource.setdefault("properties", {})
        self.state.resources[path.lower()] = resource


class RedirectTransport(RequestsTransport):
    """azure-core's RequestsTransport, sending the requests the base-URL override does not reach
    (absolute management.azure.com poll URLs, scoring hosts) to the local server over https, and
    restoring the URL so ARM polling and the bearer-token policy see the real one. Requests
    already addressed to the server pass unchanged."""

    def __init__(self, port: int, **kw: Any):
        super().__init__(**kw)
        self.port = port

    def send(self, request: Any, **kwargs: Any) -> Any:
        original = request.url
        parts = urlsplit(original)
        request.headers["x-original-host"] = parts.netloc
        if parts.netloc == f"{HOST}:{self.port}":
            return super().send(request, **kwargs)
        request.url = f"https://{HOST}:{self.port}{parts.path}" + (
            f"?{parts.query}" if parts.query else ""
        )
        try:
            return super().send(request, **kwargs)
        finally:
            request.url = original


class FakeCredential:
    """A TokenCredential that never talks to Entra ID."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessTokenInfo

        self.scopes.append(scopes)
        return AccessTokenInfo("fake-token", int(time.time()) + 3600)

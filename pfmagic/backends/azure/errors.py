"""azure-ai-ml / azure-core exceptions → one readable ``BackendError`` line with what to do.

Codes follow the troubleshooting guide (how-to-troubleshoot-online-endpoints.md): OutOfQuota,
ImageBuildFailure, ResourceNotReady (probe failures), ResourceNotFound, BadArgument, ... plus
auth (no credential / no role) and the region-wide endpoint name clash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pfmagic.errors import BackendError, NotFound, PfError

ROLES_HINT = (
    "your account needs the Owner or Contributor role on the workspace, or a custom role "
    "allowing Microsoft.MachineLearningServices/workspaces/onlineEndpoints/* "
    "(studio also needs Microsoft.Resources/deployments/write on the resource group)"
)
LOGIN_HINT = (
    "run `az login` (or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), or use "
    "`%pf_backend azure --credential browser`"
)
QUOTA_PAGE = "https://ml.azure.com/quota"
TROUBLESHOOT = "https://aka.ms/troubleshoot-online-endpoints"


def first_line(text: str, limit: int = 300) -> str:
    """The first meaningful line of an SDK message (they often append JSON dumps)."""
    for line in str(text).splitlines():
        line = line.strip()
        if line and not line.startswith(("Code:", "Message:")):
            return line[:limit]
    return str(text).strip()[:limit]


def error_code(exc: BaseException) -> str | None:
    """The ARM error code of an azure-core error (``e.error.code``), if any."""
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    if code:
        return str(code)
    m = re.match(r"\((\w+)\)", str(exc).strip())
    return m.group(1) if m else None


def error_message(exc: BaseException) -> str:
    err = getattr(exc, "error", None)
    message = getattr(err, "message", None) or getattr(exc, "message", None) or str(exc)
    # ARM puts the interesting reason of a validation failure in the details
    for detail in getattr(err, "details", None) or []:
        dmsg = getattr(detail, "message", None)
        if dmsg and dmsg not in message:
            message = f"{message} {dmsg}"
    return str(message)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return int(status) if status is not None else None


def _tail_hint(log_tail: Sequence[str]) -> str:
    last = [line for line in log_tail if line.strip()][-2:]
    return f"; last log lines: {' | '.join(s.strip() for s in last)}" if last else ""


def map_error(
    exc: BaseException,
    *,
    what: str,
    log_tail: Sequence[str] = (),
    quota: str | None = None,
    endpoint: str | None = None,
    region: str | None = None,
    state: str | None = None,
) -> PfError:
    """Translate ``exc`` (raised while doing ``what``) into a ``PfError`` the user can act on.

    ``quota``: the quota calculator's sentence for this deployment (used for OutOfQuota);
    ``log_tail``: the deployment's last log lines (probe/crash failures);
    ``state``: the resource's own provisioning state, read after the failure.
    """
    if isinstance(exc, PfError):
        return exc
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError

    code = error_code(exc)
    status = _status(exc)
    message = error_message(exc)
    line = first_line(message)
    lowered = message.lower()

    def fail(msg: str, hint: str | None, *, code_: str | None = code) -> BackendError:
        err = BackendError(msg, status=status, code=code_, hint=hint)
        err.log_tail = tuple(log_tail)  # type: ignore[attr-defined]
        return err

    if isinstance(exc, ClientAuthenticationError) and status is None:
        return fail(
            f"{what}: no usable Azure credential ({first_line(str(exc), 160)})",
            LOGIN_HINT,
            code_="ClientAuthenticationError",
        )
    if status == 401 or code in ("InvalidAuthenticationToken", "AuthenticationFailed"):
        return fail(f"{what}: Azure rejected the credential (401)", LOGIN_HINT)
    if status == 403 or code in ("AuthorizationFailed", "Forbidden", "LinkedAuthorizationFailed"):
        return fail(f"{what}: not allowed (403, {code or 'AuthorizationFailed'})", ROLES_HINT)
    # status code and ARM code before words: a 404 whose message echoes a workspace named
    # e.g. "pf-probe-ws" is a missing resource, not a failed probe
    if (
        isinstance(exc, ResourceNotFoundError)
        or status == 404
        or code in ("ResourceNotFound", "NotFound", "NoSuchEndpoint")
    ):
        return NotFound(
            f"{what}: not found ({line})",
            code=code or "ResourceNotFound",
            hint="check the name with %pf_endpoints",
        )
    if code == "OutOfQuota" or "not enough quota" in lowered:
        numbers = re.search(r"usage/limit:\s*([\d/]+).*?needed:\s*(\d+)", message, re.I | re.S)
        azure_says = (
            f" (Azure: usage/limit {numbers.group(1)}, additional needed {numbers.group(2)})"
            if numbers
            else ""
        )
        calc = quota.split("; request more", 1)[0] if quota else ""
        return fail(
            f"{what}: out of quota{azure_says}" + (f"; {calc}" if calc else ""),
            f"request more vCPUs at {QUOTA_PAGE} or pick a smaller instance_type / "
            "instance_count (%pf_quota shows the numbers)",
            code_=code or "OutOfQuota",
        )
    if "already an endpoint with this name" in lowered or (
        status == 409 and "exist" in lowered and "updating" not in lowered
    ):
        where = f" in {region}" if region else ""
        return fail(
            f"{what}: endpoint name '{endpoint or ''}' is already taken{where}",
            "endpoint names are unique per Azure region: choose another name",
            code_=code or "Conflict",
        )
    if "updating" in lowered and (
        status == 409 or code in ("Conflict", "ResourceNotReady") or "state" in lowered
    ):
        return fail(
            f"{what}: endpoint '{endpoint or ''}' is still Updating",
            "wait until %pf_status shows Succeeded, then run the cell again",
            code_=code or "Conflict",
        )
    if code == "ImageBuildFailure" or "image build" in lowered:
        return fail(
            f"{what}: the environment image failed to build ({line})",
            "check the image / conda file / Dockerfile of the environment; the build "
            f"log is linked from the deployment in studio ({TROUBLESHOOT})" + _tail_hint(log_tail),
        )
    if code == "ResourceNotReady" or "probe" in lowered or "crashloop" in lowered:
        return fail(
            f"{what}: the container did not pass its liveness/readiness probe ({line})",
            "the flow failed to start: read %pf_logs; check connections, "
            "PROMPTFLOW_RUN_MODE / PRT_CONFIG_OVERRIDE and the endpoint identity's "
            "roles, or raise readiness_probe.initial_delay" + _tail_hint(log_tail),
        )
    if code is None and "invalid status" in lowered:
        # azure-core's words for an LRO that ended Failed/Canceled without an error body
        tail = [s.strip() for s in log_tail if s.strip()][-2:]
        reason = f"; the log says: {' | '.join(tail)}" if tail else ""
        return fail(
            f"{what}: provisioning {state or 'Failed'} (Azure gave no reason){reason}",
            "read %pf_logs (storage-initializer, then inference-server) and %pf_status; "
            f"see {TROUBLESHOOT}",
            code_=f"Provisioning{state or 'Failed'}",
        )
    if type(exc).__name__ in ("ValidationException", "ValidationError"):
        return fail(f"{what}: {line}", None, code_=code or "ValidationError")
    hint = (_tail_hint(log_tail).lstrip("; ") or None) if log_tail else None
    return fail(
        f"{what} failed: " + (f"({code}) " if code else "") + line, hint or f"see {TROUBLESHOOT}"
    )


_SCORE_HINTS = {
    401: "the key or token was refused: %pf_keys shows the current one (regenerated?)",
    403: "the caller may not score this endpoint (aad_token auth needs a data-plane role)",
    404: "no such endpoint or deployment: %pf_endpoints lists them",
    408: "the flow took longer than request_settings.request_timeout_ms",
    424: "the flow failed: %pf_logs shows the deployment's log",
    429: "too many requests: retry later or scale out (instance_count)",
    502: "the container crashed while scoring: %pf_logs shows why",
    503: "the deployment is not ready or overloaded: retry, or check %pf_status",
}


def score_error(exc: BaseException, *, endpoint: str) -> PfError:
    """An endpoint's answer to POST /score that is not a success, as one line."""
    if isinstance(exc, PfError):
        return exc
    status = _status(exc)
    if status is None:  # never reached the endpoint: credential, DNS, ...
        return map_error(exc, what=f"invoke {endpoint}")
    line = first_line(error_message(exc))
    return BackendError(
        f"{endpoint} answered {status}: {line}",
        status=status,
        code=error_code(exc) or str(status),
        hint=_SCORE_HINTS.get(status, f"see {TROUBLESHOOT}"),
    )

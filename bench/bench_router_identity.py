"""Cost of the router identity check (identity.py), side by side with plain httpx.

Starts one router (no deployment) under a temporary home and times ``GET /health``:
a new connection per request (plain httpx vs. the verifying client: one extra round trip
and an HMAC per connection) and keep-alive reuse (the check is paid once per connection).
Run: ``uv run --frozen python bench/bench_router_identity.py``.
"""

from __future__ import annotations

import tempfile
import time

import httpx

from pfmagic.backends.local.backend import LocalBackend
from pfmagic.backends.local.identity import router_client
from pfmagic.backends.local.state import read_json

N = 200


def per_request(make: object, url: str) -> float:
    start = time.perf_counter()
    for _ in range(N):
        with make() as client:  # type: ignore[operator]
            assert client.get(url).status_code == 200
    return (time.perf_counter() - start) / N * 1000


def reused(client: httpx.Client, url: str) -> float:
    client.get(url)
    start = time.perf_counter()
    for _ in range(N):
        assert client.get(url).status_code == 200
    return (time.perf_counter() - start) / N * 1000


def main() -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(home=f"{tmp}/h", prewarm=False)
        try:
            backend.create_endpoint(ManagedOnlineEndpoint(name="ep-bench")).result(60)
            cfg = read_json(backend.home.endpoint_file("ep-bench"))
            url = f"http://127.0.0.1:{cfg['port']}/health"
            secret = cfg["admin_token"]
            plain_new = per_request(lambda: httpx.Client(trust_env=False), url)
            checked_new = per_request(lambda: router_client("ep-bench", secret), url)
            with httpx.Client(trust_env=False) as c:
                plain_kept = reused(c, url)
            with router_client("ep-bench", secret) as c:
                checked_kept = reused(c, url)
        finally:
            backend.shutdown_all()
    print(
        f"new connection : plain {plain_new:.2f} ms, checked {checked_new:.2f} ms "
        f"(x{checked_new / plain_new:.2f})"
    )
    print(
        f"keep-alive     : plain {plain_kept:.2f} ms, checked {checked_kept:.2f} ms "
        f"(x{checked_kept / plain_kept:.2f})"
    )


if __name__ == "__main__":
    main()

"""Baseline: call the flow in-process with promptflow's own API (no HTTP, no server).

Run as a script in a fresh interpreter by ``run.py``; prints one ``RESULT {json}`` line.
``load_flow`` caches its invoker, so after the first call this is the flow's own cost: the
floor any server adds its overhead to. Concurrency uses threads on one flow object, the way
promptflow's serving app runs sync flows.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import percentile  # noqa: E402


def main() -> None:
    flow_dir, single, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    clients = [int(c) for c in sys.argv[4].split(",")]
    t0 = time.perf_counter()
    from promptflow.client import load_flow

    flow = load_flow(flow_dir)
    import_s = time.perf_counter() - t0

    def call(i: int) -> float:
        start = time.perf_counter()
        out = flow(question=f"q{i}", chat_history=[])
        answer = out["answer"] if isinstance(out, dict) else str(out)
        if not isinstance(answer, str):
            answer = "".join(answer)
        if f"q{i} " not in answer:
            raise AssertionError(f"wrong answer {out!r}")
        return (time.perf_counter() - start) * 1000

    t1 = time.perf_counter()
    call(-1)
    first_ms = (time.perf_counter() - t1) * 1000
    for i in range(20):  # warm up
        call(-2 - i)
    lat = [call(i) for i in range(single)]
    result = {
        "import_s": import_s,
        "first_call_ms": first_ms,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "rps_1": 1000 * len(lat) / sum(lat),
        "throughput": {},
    }
    for n in clients:
        total = per_thread * n
        start = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            lats = list(pool.map(call, range(total)))
        elapsed = time.perf_counter() - start
        result["throughput"][str(n)] = {
            "rps": total / elapsed,
            "ok": len(lats),
            "p50_ms": percentile(lats, 50),
            "p95_ms": percentile(lats, 95),
        }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

"""pfmagic benchmarks, each next to its baseline measured in the same run.

    make bench                         # or: uv run --frozen --extra test python bench/run.py
    python bench/run.py --quick        # fewer repeats (smoke run, ~3 min)
    python bench/run.py --only import,score

Prints a table (figure, baseline, ratio) and writes ``bench/results.json`` and
``bench/results.md``. Everything runs on 127.0.0.1 with the connection-free chat-echo flow
(``tests/flows/chat-echo``); cold starts run in fresh interpreters; all servers are stopped at
the end. See ``bench/README.md`` for what each figure means and the latest results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402
import local  # noqa: E402
import scripts  # noqa: E402
from loadgen import run_load  # noqa: E402
from stream import stream_times  # noqa: E402

HERE = Path(__file__).parent
CLIENTS = ["8", "32"]  # client counts of the throughput runs (--clients)


class Report:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.details: dict[str, Any] = {}
        self.notes: list[str] = []

    def add(
        self,
        group: str,
        metric: str,
        value: float | None,
        unit: str,
        baseline: str | None = None,
        base_value: float | None = None,
        better: str = "lower",
        note: str = "",
    ) -> None:
        ratio = None
        if value is not None and base_value:
            ratio = value / base_value
        self.rows.append(
            {
                "group": group,
                "metric": metric,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_value": base_value,
                "ratio": ratio,
                "better": better,
                "note": note,
            }
        )
        print(
            f"  {metric}: {fmt(value, unit)}"
            + (
                f"  | {baseline}: {fmt(base_value, unit)}  ratio {fmt_ratio(ratio)}"
                if baseline
                else ""
            ),
            flush=True,
        )

    def table(self) -> str:
        head = (
            "| Benchmark | pfmagic | Baseline (same run) | Baseline value | Ratio |\n"
            "|---|---:|---|---:|---:|"
        )
        lines = [head]
        for r in self.rows:
            arrow = "lower is better" if r["better"] == "lower" else "higher is better"
            lines.append(
                f"| {r['metric']} | {fmt(r['value'], r['unit'])} | {r['baseline'] or '—'} | "
                f"{fmt(r['baseline_value'], r['unit']) if r['baseline'] else '—'} | "
                f"{fmt_ratio(r['ratio'])}{' (' + arrow + ')' if r['ratio'] else ''} |"
            )
        return "\n".join(lines)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "req/s":
        return f"{value:.0f} req/s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.3g} {unit}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}× (1/{1 / ratio:.0f})"


# -- 1. %load_ext and first cell vs import azure.ai.ml ---------------------------------------
def bench_import(rep: Report, env: dict[str, str], n: int) -> None:
    print("[import] %load_ext pfmagic / first cell vs import azure.ai.ml", flush=True)
    base_code = scripts.IMPORT_AZURE.format(cell=scripts.ENDPOINT_CELL)
    deferred_code = scripts.IMPORT_AZURE_DEFERRED.format(cell=scripts.ENDPOINT_CELL)
    now_code = scripts.LOAD_EXT.format(wait=False, cell=scripts.ENDPOINT_CELL)
    later_code = scripts.LOAD_EXT.format(wait=True, cell=scripts.ENDPOINT_CELL)
    # one untimed run of each so .pyc files exist (a normal install has them)
    for code in (base_code, now_code):
        common.run_script(code, env=env)
    base, deferred, now, later = [], [], [], []
    for _ in range(n):  # interleaved so drifting load hits both sides alike
        base.append(common.run_script(base_code, env=env))
        deferred.append(common.run_script(deferred_code, env=env))
        now.append(common.run_script(now_code, env=env))
        later.append(common.run_script(later_code, env=env))
    bad = [r["error"] for r in now + later if not r["ok"]]
    if bad:
        rep.notes.append(f"first cell failed: {bad[0]}")
    med = common.median
    imp = med([r["import_s"] for r in base])
    imp_parse = med([r["import_and_parse_s"] for r in base])
    rep.details["import"] = {
        "baseline": base,
        "deferred": deferred,
        "cell_at_once": now,
        "cell_after_warmup": later,
    }
    rep.add(
        "import",
        "import azure.ai.ml after lazy_imports.defer()",
        med([r["import_s"] for r in deferred]),
        "s",
        "import azure.ai.ml",
        imp,
    )
    rep.add(
        "import",
        "%load_ext pfmagic",
        med([r["load_ext_s"] for r in now]),
        "s",
        "import azure.ai.ml",
        imp,
    )
    rep.add(
        "import",
        "%load_ext + first %%pf_endpoint cell at once",
        med([r["load_ext_and_cell_s"] for r in now]),
        "s",
        "import azure.ai.ml + load_online_endpoint",
        imp_parse,
        note="" if not bad else "cell failed",
    )
    rep.add(
        "import",
        "first %%pf_endpoint cell after warm-up",
        med([r["cell_s"] for r in later]),
        "s",
        "import azure.ai.ml + load_online_endpoint",
        imp_parse,
    )


# -- servers ----------------------------------------------------------------------------------
class PfServe:
    """Baseline server: ``pf flow serve`` (fastapi engine, what pfmagic instances run)."""

    def __init__(self, env: dict[str, str], logdir: Path, engine: str = "fastapi"):
        self.env, self.logdir, self.engine = env, logdir, engine
        self.proc = None
        self.port = 0

    def start(self) -> float:
        """Start and return seconds from spawn to the first 200 from /score."""
        self.port = common.free_port()
        t0 = time.perf_counter()
        self.proc = common.start_group(
            [
                common.PF,
                "flow",
                "serve",
                "--source",
                str(common.FLOW),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--skip-open-browser",
                "--engine",
                self.engine,
            ],
            log=self.logdir / f"pf-serve-{self.port}.log",
            env=self.env,
        )
        common.wait_http(f"{self.url_base}/health", timeout=180, proc=self.proc)
        local.first_score(self.score_url, {})
        return time.perf_counter() - t0

    @property
    def url_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def score_url(self) -> str:
        return f"{self.url_base}/score"

    def stop(self) -> None:
        if self.proc is not None:
            common.stop_group(self.proc)
            self.proc = None


# -- 2. create-to-first-score vs pf flow serve start ------------------------------------------
def bench_startup(rep: Report, env: dict[str, str], logdir: Path, n: int) -> None:
    print("[startup] local create-to-first-score vs pf flow serve start", flush=True)
    base, ours, errors = [], [], []
    for i in range(n):
        serve = PfServe(env, logdir)
        try:
            base.append(serve.start())
        finally:
            serve.stop()
        try:
            ours.append(local.create_to_first_score(env, f"bench-start-{i}"))
        except Exception as exc:  # reported, the other benchmarks still run
            errors.append(f"{type(exc).__name__}: {exc}")
            break
    rep.details["startup"] = {"pf_flow_serve_s": base, "pfmagic_s": ours, "errors": errors}
    if errors:
        rep.notes.append(f"local create-to-first-score failed: {errors[0]}")
    rep.add(
        "startup",
        "local create (endpoint + deployment) to first score",
        common.median(ours) if ours else None,
        "s",
        "pf flow serve start to first score",
        common.median(base),
    )


# -- 3. /score latency and throughput; 5. memory per instance ---------------------------------
def load_phases(url: str, headers: dict[str, str], quick: bool) -> dict[str, Any]:
    single = run_load(
        url, clients=1, requests=150 if quick else 400, deadline_s=20, headers=headers, warmup=20
    )
    out: dict[str, Any] = {"1": single.summary()}
    for clients in map(int, CLIENTS):
        res = run_load(
            url,
            clients=clients,
            requests=100_000,
            deadline_s=4 if quick else 8,
            headers=headers,
            warmup=clients,
        )
        out[str(clients)] = res.summary()
    return out


def bench_score(
    rep: Report, env: dict[str, str], logdir: Path, quick: bool, ab: bool = False
) -> None:
    print("[score] /score latency and throughput", flush=True)
    results: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    # baseline 1: promptflow in-process (no HTTP)
    per_thread = 30 if quick else 80
    streams = 50 if quick else 200
    results["in-process"] = _inprocess(env, quick, per_thread)
    # baseline 2: pf flow serve
    serve = PfServe(env, logdir)
    try:
        serve.start()
        results["pf flow serve"] = load_phases(serve.score_url, {}, quick)
        results["pf flow serve"]["stream"] = stream_times(serve.score_url, {}, streams)
        memory["pf flow serve"] = common.rss_mb(serve.proc.pid)
    finally:
        serve.stop()
    # pfmagic local endpoint with 1 and 2 instances; with --ab also the same endpoints served
    # the old way (h11 + asyncio, PFMAGIC_PURE_PYTHON_HTTP=1): before/after in one run
    variants = [("", {**env, "PFMAGIC_PURE_PYTHON_HTTP": "0"})]  # the fast pair (the default)
    if ab:
        variants.append((" (h11+asyncio)", {**env, "PFMAGIC_PURE_PYTHON_HTTP": "1"}))
    for (suffix, ep_env), instances in [(v, i) for v in variants for i in (1, 2)]:
        name = f"pfmagic {instances} instance{'s' if instances > 1 else ''}{suffix}"
        tag = "-pure" if suffix else ""
        try:
            with local.endpoint(ep_env, f"bench-score{tag}-{instances}", instances=instances) as ep:
                results[name] = load_phases(ep.scoring_uri, ep.headers, quick)
                memory[name] = ep.memory()
                if instances == 1:
                    results[name]["stream"] = stream_times(ep.scoring_uri, ep.headers, streams)
                    # what a second endpoint of the same flow adds while the first is up
                    with local.endpoint(ep_env, f"bench-second{tag}", instances=1) as second:
                        memory[f"second endpoint{suffix}"] = second.memory()
        except Exception as exc:
            rep.notes.append(f"{name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
    rep.details["score"] = results
    rep.details["memory"] = memory

    inproc, serve_r = results["in-process"], results["pf flow serve"]
    names = ["pfmagic 1 instance", "pfmagic 2 instances"]
    if ab:
        names += [f"{n} (h11+asyncio)" for n in names]
    for name in names:
        r = results.get(name)
        if name.startswith("pfmagic 1 instance"):
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                val = r["1"][q] if r else None
                rep.add(
                    "score",
                    f"/score {q[:3]} at 1 client ({name})",
                    val,
                    "ms",
                    "pf flow serve",
                    serve_r["1"][q],
                )
                rep.add(
                    "score",
                    f"/score {q[:3]} at 1 client ({name})",
                    val,
                    "ms",
                    "in-process call (no HTTP)",
                    inproc[q],
                )
        for clients in CLIENTS:
            val = r[clients]["rps"] if r else None
            rep.add(
                "score",
                f"throughput at {clients} clients ({name})",
                val,
                "req/s",
                "pf flow serve",
                serve_r[clients]["rps"],
                better="higher",
            )
            rep.add(
                "score",
                f"throughput at {clients} clients ({name})",
                val,
                "req/s",
                "in-process, same number of threads",
                inproc["throughput"][clients]["rps"],
                better="higher",
            )
    one = results.get("pfmagic 1 instance", {}).get("stream")
    if one:
        for key, label in (
            ("ttfb_p50_ms", "time to first byte p50"),
            ("end_p50_ms", "to last byte p50"),
        ):
            rep.add(
                "stream",
                f"streamed reply, {label} (pfmagic 1 instance)",
                one[key],
                "ms",
                "pf flow serve",
                serve_r["stream"][key],
            )
    # memory: per instance process vs one pf flow serve process
    base = memory.get("pf flow serve", {})
    second = memory.get("second endpoint")
    if second:
        rep.add(
            "memory",
            "USS a second endpoint of the same flow adds (router + helpers + instance)",
            second["endpoint_total_uss_mb"],
            "MB",
            "pf flow serve process USS",
            base.get("uss_mb"),
        )
    for name in ("pfmagic 1 instance", "pfmagic 2 instances"):
        m = memory.get(name)
        if m:
            rep.add(
                "memory",
                f"RSS per instance ({name})",
                m["per_instance_rss_mb"],
                "MB",
                "pf flow serve process RSS",
                base.get("rss_mb"),
            )
            rep.add(
                "memory",
                f"USS per instance ({name})",
                m["per_instance_uss_mb"],
                "MB",
                "pf flow serve process USS",
                base.get("uss_mb"),
            )
            rep.add(
                "memory",
                f"whole endpoint USS: router + helpers + instances ({name})",
                m["endpoint_total_uss_mb"],
                "MB",
                "pf flow serve process USS",
                base.get("uss_mb"),
            )


def _inprocess(env: dict[str, str], quick: bool, per_thread: int) -> dict[str, Any]:
    import subprocess

    done = subprocess.run(
        [
            common.PYTHON,
            str(HERE / "inprocess.py"),
            str(common.FLOW),
            "150" if quick else "400",
            str(per_thread),
            ",".join(CLIENTS),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"in-process baseline failed: {done.stderr[-3000:]}")


# -- 4. %pf_invoke vs a bare HTTP call ----------------------------------------------------------
def bench_invoke(rep: Report, env: dict[str, str], quick: bool) -> None:
    print("[invoke] %pf_invoke round trip vs bare HTTP", flush=True)
    try:
        res = local.invoke_vs_http(env, "bench-invoke", n=30 if quick else 100)
    except Exception as exc:
        rep.notes.append(f"%pf_invoke benchmark failed: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        rep.add("invoke", "%pf_invoke round trip (p50)", None, "ms", "bare HTTP POST", None)
        return
    rep.details["invoke"] = res
    for q in ("p50", "p95"):
        rep.add(
            "invoke",
            f"%pf_invoke round trip ({q})",
            res[f"magic_{q}_ms"],
            "ms",
            "one-shot httpx.post, same endpoint and body",
            res[f"http_{q}_ms"],
        )
    rep.add(
        "invoke",
        "%pf_invoke round trip (p50)",
        res["magic_p50_ms"],
        "ms",
        "keep-alive httpx.Client, same endpoint and body",
        res["http_keepalive_p50_ms"],
    )
    rep.add(
        "invoke",
        "backend.invoke, no IPython (p50)",
        res["backend_invoke_p50_ms"],
        "ms",
        "one-shot httpx.post, same endpoint and body",
        res["http_p50_ms"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter loads")
    parser.add_argument(
        "--only",
        default="import,startup,score,invoke",
        help="comma-separated: import,startup,score,invoke",
    )
    parser.add_argument("--out", default=str(HERE), help="where results.json/.md go")
    parser.add_argument(
        "--ab", action="store_true", help="also score endpoints served with h11 + asyncio"
    )
    parser.add_argument(
        "--clients", default="8,32", help="client counts of the throughput runs (e.g. 8)"
    )
    parser.add_argument(
        "--startup-reps", type=int, default=0, help="create-to-first-score repeats (default 3/4)"
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    CLIENTS[:] = args.clients.split(",")
    n = 3 if args.quick else 5
    startup_reps = args.startup_reps or (3 if args.quick else 4)
    rep = Report()
    loads: dict[str, tuple[float, float, float]] = {}
    started = time.time()
    mach = common.machine()
    print(
        f"machine: {mach['cpu']}, {mach['nproc']} cores, {mach['mem_gb']} GB, "
        f"Python {mach['python']}; load {mach['load']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="pfmagic-bench-") as tmp:
        tmpdir = Path(tmp)
        env = common.bench_env(tmpdir)
        logdir = tmpdir / "logs"
        try:
            steps = [
                ("import", lambda: bench_import(rep, env, n)),
                ("startup", lambda: bench_startup(rep, env, logdir, startup_reps)),
                ("score", lambda: bench_score(rep, env, logdir, args.quick, args.ab)),
                ("invoke", lambda: bench_invoke(rep, env, args.quick)),
            ]
            for name, step in steps:
                if name in only:
                    loads[name] = common.load()
                    step()
        finally:
            local.stop_all(env)
    load_after = common.load()
    summary = {
        "machine": mach,
        "load_after": load_after,
        "started": time.ctime(started),
        "duration_s": round(time.time() - started, 1),
        "quick": args.quick,
        "load_before": loads,
        "rows": rep.rows,
        "notes": rep.notes,
        "details": rep.details,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    md = [
        f"Machine: {mach['cpu']}, {mach['nproc']} cores, {mach['mem_gb']} GB RAM, "
        f"Python {mach['python']}, {mach['platform']}.",
        f"Load average (1/5/15 min) at start {mach['load']}, at end {load_after}; "
        f"run took {summary['duration_s']:.0f} s on {summary['started']}"
        f"{' (--quick)' if args.quick else ''}.",
        "Load before each group: " + ", ".join(f"{k} {v}" for k, v in loads.items()) + ".",
        "",
        rep.table(),
    ]
    if rep.notes:
        md += ["", "Notes:"] + [f"- {n}" for n in rep.notes]
    (out / "results.md").write_text("\n".join(md) + "\n")
    print()
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

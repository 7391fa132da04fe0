"""Where one ``/score`` request's time goes, in the router and in the instance (py-spy).

    uvx py-spy --version   # py-spy from PyPI (a sampling profiler; not a project dependency)
    uv run --frozen --extra test python bench/profile_request.py --requests 1500 --label before

Starts a real local endpoint (chat-echo flow, 1 instance), attaches ``py-spy record`` to the
router and to the instance while one keep-alive client sends sequential requests, and writes
per process its collapsed stacks (``<proc>.txt``: load into speedscope.app or
flamegraph.pl for a flame graph) and a table (``profile.md``): the share of samples
(inclusive) of the frames that matter, grouped by layer. Idle samples are dropped
(``py-spy --idle`` off), so shares are of the CPU the process spent.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402
import local  # noqa: E402
from loadgen import run_load  # noqa: E402

HERE = Path(__file__).parent

# (label, substring of a collapsed frame "func (file:line)") -- inclusive share per layer
LAYERS = [
    ("uvicorn HTTP protocol: h11_impl", "(uvicorn/protocols/http/h11_impl.py"),
    ("uvicorn HTTP protocol: httptools_impl", "(uvicorn/protocols/http/httptools_impl.py"),
    ("h11 library (pure-Python parser, server and httpcore client)", "(h11/"),
    ("asyncio (pure-Python loop, streams, tasks)", "(asyncio/"),
    ("anyio (httpcore's and starlette's streams)", "(anyio/"),
    ("starlette routing + middleware", "(starlette/"),
    ("pfmagic Guard middleware", "(pfmagic/backends/local/guard.py"),
    ("router.score (auth, choose, read body)", "score (pfmagic/backends/local/server.py"),
    ("router.forward (to the instance)", "forward (pfmagic/backends/local/server.py"),
    ("httpx client", "(httpx/"),
    ("aiohttp client (router -> instance since issue 19)", "(aiohttp/"),
    ("pfmagic upstream.py (wraps the aiohttp client)", "(pfmagic/backends/local/upstream.py"),
    ("httpcore (client HTTP/1.1 over the UNIX socket)", "(httpcore/"),
    ("fastapi", "(fastapi/"),
    ("promptflow serving app (middleware, request, response)", "(promptflow/core/_serving"),
    ("promptflow executor (runs the flow)", "(promptflow/executor/"),
    ("promptflow tracing", "(promptflow/tracing/"),
    ("opentelemetry", "(opentelemetry"),
    ("logging (promptflow INFO lines, access log)", "(logging/"),
]
# leaf frames of a thread that waits (py-spy's idle detection misses them under ptrace on a
# loaded machine): dropped, so shares are of the CPU each process spent
IDLE = (
    "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py",
    "Zygote._read (",
    "EpollSelector.select (",
    "watch (pfmagic/backends/local/instance.py",
    "Thread.start (threading.py",
    "Event.wait (threading.py",
    # with uvloop the loop is C: a leaf Runner.run is uvloop's own code, mostly epoll_wait
    "Runner.run (asyncio/runners.py",
)


def pid_of_instance(ep: local.Endpoint) -> int:
    return ep.instance_pids[0]


def summarize(raw: Path) -> tuple[int, list[tuple[str, float, float]], list[tuple[str, float]]]:
    """(busy samples, [(layer, inclusive share, self share)], [(top self frames, share)])
    from py-spy's collapsed stacks."""
    total = 0
    layer = collections.Counter()
    own = collections.Counter()  # samples whose running frame is in the layer (self time)
    leaf = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if not frames[-1] or any(i in frames[-1] for i in IDLE):
            continue
        total += n
        for label, needle in LAYERS:
            if any(needle in f for f in frames):
                layer[label] += n
            if needle in frames[-1]:
                own[label] += n
        leaf[frames[-1]] += n
    layers = [
        (label, layer[label] / total, own[label] / total) for label, _ in LAYERS if layer[label]
    ]
    top = [(f, n / total) for f, n in leaf.most_common(15)]
    return total, layers, top


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--out", default=str(HERE / "profile"))
    parser.add_argument("--label", default="", help="a heading for this profile in profile.md")
    parser.add_argument(
        "--pure", action="store_true", help="serve with h11 + asyncio (PFMAGIC_PURE_PYTHON_HTTP=1)"
    )
    parser.add_argument("--render", action="store_true", help="only rebuild profile.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        render(out)
        return 0
    pyspy = shutil.which("py-spy")
    cmd_prefix = [pyspy] if pyspy else ["uvx", "py-spy"]
    with tempfile.TemporaryDirectory(prefix="pfmagic-prof-") as tmp:
        env = common.bench_env(Path(tmp))
        env["PFMAGIC_PURE_PYTHON_HTTP"] = "1" if args.pure else "0"
        try:
            with local.endpoint(env, "prof", instances=1) as ep:
                # clean figures first (no profiler attached): 1 client, then 8 clients
                clean1 = run_load(
                    ep.scoring_uri,
                    clients=1,
                    requests=300,
                    deadline_s=30,
                    headers=ep.headers,
                    warmup=20,
                ).summary()
                clean8 = run_load(
                    ep.scoring_uri,
                    clients=8,
                    requests=100_000,
                    deadline_s=4,
                    headers=ep.headers,
                    warmup=8,
                ).summary()
                procs = {"router": ep.router_pid, "instance": pid_of_instance(ep)}
                spies = {}
                for name, pid in procs.items():
                    spies[name] = subprocess.Popen(
                        [
                            *cmd_prefix,
                            "record",
                            "-p",
                            str(pid),
                            "-r",
                            "500",
                            "-f",
                            "raw",
                            "-o",
                            str(out / f"{name}.txt"),
                            "--duration",
                            "600",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                time.sleep(1.5)  # py-spy attached
                res = run_load(
                    ep.scoring_uri,
                    clients=1,
                    requests=args.requests,
                    deadline_s=90,
                    headers=ep.headers,
                    warmup=0,
                )
                for spy in spies.values():
                    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
                for spy in spies.values():
                    spy.wait(timeout=30)
        finally:
            local.stop_all(env)
    stem = args.label.split(":")[0].strip() or "profile"
    info = {
        "label": args.label or stem,
        "when": time.ctime(),
        "load": os.getloadavg()[0],
        "clean1": clean1,
        "clean8": clean8,
        "profiled": res.summary(),
    }
    (out / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    for name in ("router", "instance"):
        (out / f"{stem}-{name}.txt").write_bytes((out / f"{name}.txt").read_bytes())
        (out / f"{name}.txt").unlink()
    render(out)
    return 0


def section(out: Path, stem: str) -> list[str]:
    info = json.loads((out / f"{stem}.json").read_text())
    c1, c8, s = info["clean1"], info["clean8"], info["profiled"]
    lines = [
        f"## {info['label']}",
        "",
        f"Without the profiler: 1 client, {c1['ok']} requests: p50 {c1['p50_ms']:.1f} ms,"
        f" p95 {c1['p95_ms']:.1f} ms, p99 {c1['p99_ms']:.1f} ms; 8 clients for 4 s: "
        f"{c8['rps']:.0f} req/s ({c8['errors']} errors, {c8['lost']} lost).",
        "",
        f"Profiled: {s['ok']} sequential requests, 1 keep-alive client, p50 {s['p50_ms']:.1f} ms, "
        f"p95 {s['p95_ms']:.1f} ms ({info['when']}, load {info['load']:.1f}). "
        "py-spy at 500 Hz; samples of waiting threads dropped (``IDLE``); share of each "
        "process's busy samples: inclusive (the layer is on the stack) and self (running).",
        "",
    ]
    for name in ("router", "instance"):
        stacks = f"{stem}-{name}.txt"
        total, layers, top = summarize(out / stacks)
        lines += [f"### {name} ({total} busy samples; collapsed stacks `{stacks}`)", ""]
        lines += ["| layer | inclusive | self |", "|---|---:|---:|"]
        lines += [f"| {label} | {inc:.0%} | {own:.0%} |" for label, inc, own in layers]
        lines += ["", "| top self frames | share |", "|---|---:|"]
        lines += [f"| `{f[:110]}` | {share:.1%} |" for f, share in top]
        lines.append("")
    return lines


def render(out: Path) -> None:
    """profile.md: one section per recorded run (``<stem>.json`` + its stacks)."""
    lines = ["# One /score request through router and instance (py-spy)", ""]
    for info in sorted(out.glob("*.json"), key=lambda p: p.stem != "before"):
        lines += section(out, info.stem)
    (out / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

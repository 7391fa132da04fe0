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
    ("uvicorn h11 protocol (parse + write)", "h11_impl.py"),
    ("uvicorn httptools protocol (parse + write)", "httptools_impl.py"),
    ("h11 library", "/h11/"),
    ("asyncio event loop (select, callbacks)", "asyncio/"),
    ("starlette routing + middleware", "/starlette/"),
    ("pfmagic Guard middleware", "guard.py"),
    ("router.score (auth, choose, read body)", "score (pfmagic/backends/local/server.py"),
    ("router.forward (to the instance)", "forward (pfmagic/backends/local/server.py"),
    ("httpx client", "/httpx/"),
    ("httpcore (client HTTP/1.1 over UDS)", "/httpcore/"),
    ("fastapi", "/fastapi/"),
    ("promptflow serving app (request, response)", "promptflow/core/_serving"),
    ("promptflow flow invoker / executor", "promptflow/_core/"),
    ("promptflow executor", "promptflow/executor/"),
    ("promptflow tracing", "promptflow/tracing/"),
    ("opentelemetry", "opentelemetry"),
    ("logging (access log etc.)", "logging/__init__.py"),
]


def pid_of_instance(ep: local.Endpoint) -> int:
    return ep.instance_pids[0]


def summarize(raw: Path) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, [(layer, inclusive share)], [(top self frames, share)]) from collapsed stacks."""
    total = 0
    layer = collections.Counter()
    leaf = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for label, needle in LAYERS:
            if any(needle in f for f in frames):
                layer[label] += n
        leaf[frames[-1]] += n
    layers = [(label, layer[label] / total) for label, _ in LAYERS if layer[label]]
    top = [(f, n / total) for f, n in leaf.most_common(12)]
    return total, layers, top


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--out", default=str(HERE / "profile"))
    parser.add_argument("--label", default="", help="a heading for this profile in profile.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pyspy = shutil.which("py-spy")
    cmd_prefix = [pyspy] if pyspy else ["uvx", "py-spy"]
    with tempfile.TemporaryDirectory(prefix="pfmagic-prof-") as tmp:
        env = common.bench_env(Path(tmp))
        try:
            with local.endpoint(env, "prof", instances=1) as ep:
                run_load(ep.scoring_uri, clients=1, requests=50, deadline_s=20, headers=ep.headers)
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
                            str(out / f"{args.label or 'profile'}-{name}.txt"),
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
    s = res.summary()
    lines = [
        f"## {args.label or 'profile'}",
        "",
        f"{s['requests']} sequential requests, 1 keep-alive client, p50 {s['p50_ms']:.1f} ms, "
        f"p95 {s['p95_ms']:.1f} ms ({time.ctime()}, load {os.getloadavg()[0]:.1f}). "
        "py-spy at 500 Hz, idle samples excluded; inclusive share of each process's samples.",
        "",
    ]
    for name in ("router", "instance"):
        stacks = f"{args.label or 'profile'}-{name}.txt"
        total, layers, top = summarize(out / stacks)
        lines += [f"### {name} ({total} samples; collapsed stacks `{stacks}`)", ""]
        lines += ["| layer | share |", "|---|---:|"]
        lines += [f"| {label} | {share:.0%} |" for label, share in layers]
        lines += ["", "| top self frames | share |", "|---|---:|"]
        lines += [f"| `{f[:110]}` | {share:.0%} |" for f, share in top]
        lines.append("")
    text = "\n".join(lines) + "\n"
    with open(out / "profile.md", "a") as md:  # one section per run (before, after)
        md.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

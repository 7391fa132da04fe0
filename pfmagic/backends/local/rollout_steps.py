"""Sub-steps of a local rollout, with their own timings, and the kernel's events for them.

Router side (``RolloutSteps``, in the supervisor's event loop): what the rollout did so far --
the working copy of the model, then per instance its fork (or process start), promptflow's app
created (the instance's ``[pfmagic] instance X app created in N s`` log line) and the readiness
probe passing -- as wall-clock times, plus what each instance waits for right now. It travels
to the kernel as ``status()["deployments"][name]["steps"]`` (plain JSON).

Kernel side (``StepReporter``, in the operation's worker): turns those into "deployment"
``ProgressEvent``s, one per new sub-step ("instance blue-1-0: forked 96 ms, app created 2.3 s,
ready 2.6 s"), and a heartbeat at least every ``HEARTBEAT`` s that says what it waits for
("waiting for readiness probe GET /health on blue-1-0 (4.0 s)"), so the view never sits still.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfmagic.backends.events import HEARTBEAT, span
from pfmagic.backends.local.logs import tail

if TYPE_CHECKING:
    from pfmagic.backends.events import Operation
    from pfmagic.backends.local.supervisor import Supervisor

FORK_SERVER_WAIT = 180.0  # s; past it the spawn itself waits (and falls back to a process)
APP_CREATED = "app created in "


# -- router side ----------------------------------------------------------------------------
class RolloutSteps:
    """The sub-steps of one rollout (one generation); ``to_json`` is what ``status()`` shows."""

    def __init__(self, generation: int):
        self.generation = generation
        self.started = time.time()
        self.steps: list[dict[str, Any]] = []  # rollout-wide: working copy
        self.instances: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, Any] | None = None  # rollout-wide wait (copy, fork server)

    def mark(self, step: str, seconds: float) -> None:
        self.steps.append({"step": step, "at": time.time(), "seconds": round(seconds, 3)})

    def wait(self, what: str | None) -> None:
        self.waiting = {"what": what, "since": time.time()} if what else None

    def instance(self, name: str) -> dict[str, Any]:
        return self.instances.setdefault(
            name, {"name": name, "started": time.time(), "steps": [], "waiting": None}
        )

    def instance_step(self, name: str, step: str, **info: Any) -> None:
        inst = self.instance(name)
        if not any(s["step"] == step for s in inst["steps"]):
            inst["steps"].append({"step": step, "at": time.time(), **info})

    def instance_wait(self, name: str, what: str | None) -> None:
        inst = self.instance(name)
        if (inst["waiting"] or {}).get("what") != what:  # the same wait keeps its start
            inst["waiting"] = {"what": what, "since": time.time()} if what else None

    def watch_app_created(self, name: str, log: Path) -> None:
        """Record "app created" once the instance printed it (its own import + app time)."""
        inst = self.instance(name)
        if any(s["step"] == "app created" for s in inst["steps"]):
            return
        marker = f"instance {name} {APP_CREATED}"
        for line in reversed(tail(log, 40)):
            if marker in line:
                try:
                    reported = float(line.split(marker, 1)[1].split(" ", 1)[0])
                except ValueError:
                    self.instance_step(name, "app created")
                    return
                self.instance_step(name, "app created", reported=reported)
                # seen at the next probe poll; the instance's own clock (from its start) is
                # closer to when it happened
                step, first = inst["steps"][-1], inst["steps"][0]
                if first is not step:
                    step["at"] = min(step["at"], first["at"] + reported)
                return

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "started": self.started,
            "steps": self.steps,
            "waiting": self.waiting,
            "instances": list(self.instances.values()),
        }


async def await_fork_server(sup: Supervisor, steps: RolloutSteps, runtime: dict[str, Any]) -> None:
    """Before the forks: wait, as its own sub-step, for the environment's fork server (zygote)
    to finish pre-importing promptflow -- on a first deployment that is most of the start
    time, and would otherwise read as a 17 s "fork"."""
    from pfmagic.backends.local.executors import executor_for

    variables = runtime.get("environment_variables") or {}
    if executor_for(runtime).kind != "promptflow" or variables.get("PFMAGIC_NO_ZYGOTE"):
        return
    zygote = sup._zygote(runtime.get("python") or sys.executable)
    if zygote is None or zygote.ready.is_set():
        return
    steps.wait("the fork server to pre-import promptflow (once per environment)")
    began = time.monotonic()
    while not zygote.ready.is_set() and zygote.alive():
        if time.monotonic() - began > FORK_SERVER_WAIT:
            break
        await asyncio.sleep(0.05)
    if zygote.ready.is_set():
        steps.mark("fork server ready", time.monotonic() - began)
    steps.wait(None)


# -- kernel side ----------------------------------------------------------------------------
def instance_line(inst: dict[str, Any]) -> str:
    """``instance blue-1-0: forked 96 ms, app created 2.3 s, ready 2.6 s`` (since its start)."""
    steps = ", ".join(f"{s['step']} {span(s['at'] - inst['started'])}" for s in inst["steps"])
    return f"instance {inst['name']}: {steps or 'starting'}"


def step_lines(steps: dict[str, Any]) -> tuple[str, ...]:
    lines = [f"{s['step']} {span(s['seconds'])}" for s in steps.get("steps") or ()]
    lines += [instance_line(i) for i in steps.get("instances") or ()]
    return tuple(lines)


def waiting_for(steps: dict[str, Any] | None, now: float) -> str | None:
    """What the rollout waits for, oldest wait first: "readiness probe GET /health on x (4 s)"."""
    if not steps:
        return None
    waits = [
        (w["since"], f"{w['what']} on {i['name']}")
        for i in steps.get("instances") or ()
        if (w := i.get("waiting")) and w.get("what")
    ]
    if (w := steps.get("waiting")) and w.get("what"):
        waits.append((w["since"], w["what"]))
    if not waits:
        return None
    since, what = min(waits)
    return f"waiting for {what} ({span(now - since)})"


class StepReporter:
    """Emits the rollout's sub-steps and heartbeats as "deployment" events of ``op``.

    The poll loop calls ``update`` with each router status and runs inside
    ``op.heartbeat(reporter.beat_message, HEARTBEAT, stage="deployment")``: a ticker thread
    beats when no event came for ``HEARTBEAT`` s -- also while a status call itself is slow (a
    loaded machine, a router busy forking), which a beat from the poll loop could not cover.
    """

    def __init__(self, op: Operation, count: int, generation: int):
        self.op = op
        self.count = max(1, count)
        self.generation = generation
        self.lines: tuple[str, ...] = ()
        self._steps: dict[str, Any] = {}
        self._provisioning: str | None = None
        self._polled = time.time()  # when the router's status last answered
        self._armed = False
        self._lock = threading.Lock()
        self._begun = False

    def update(self, st: dict[str, Any] | None, *, provisioning_state: str | None) -> None:
        """One event per changed sub-step line (from the router's status ``st``)."""
        steps = (st or {}).get("steps") or {}
        if steps.get("generation") != self.generation:
            steps = {}  # an older rollout's steps: not this one's
        lines = step_lines(steps)
        with self._lock:
            seen, self.lines = self.lines, lines
            self._steps, self._provisioning = steps, provisioning_state
            self._polled = time.time()
        for line in lines:
            if line not in seen:
                self._emit(line)
        if not self._begun:
            self._begun = True
            events = self.op.events
            if not events or events[-1].stage != "deployment":  # the router has not begun
                self._emit(self.waiting(time.time()))

    def _progress(self) -> float:
        ready = sum(
            1
            for i in self._steps.get("instances") or ()
            if any(s["step"] == "ready" for s in i["steps"])
        )
        return ready / self.count

    def _emit(self, message: str) -> None:
        self.op.emit(
            "deployment",
            "Running",
            message,
            provisioning_state=self._provisioning,
            progress=self._progress(),
            substeps=self.lines,
        )

    def waiting(self, now: float) -> str:
        with self._lock:
            steps, polled = self._steps, self._polled
        if not steps:
            what = f"waiting for the router to start generation {self.generation}"
        else:
            what = waiting_for(steps, now) or (
                f"waiting for the router: {round(self._progress() * self.count)}/{self.count} "
                "instances ready"
            )
        if now - polled > HEARTBEAT:  # the router is slow to answer: what it last said
            return f"waiting for the router's status ({span(now - polled)}); last: {what}"
        return what

    def beat_message(self, _seconds: float) -> str:
        """For ``Operation.heartbeat``: what the rollout waits for now."""
        return self.waiting(time.time())

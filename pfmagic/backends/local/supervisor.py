"""Deployment instances of one endpoint, run and watched by the endpoint's router process.

Each deployment has ``instance_count`` instance processes (``instance.py``), each on its own
UNIX socket in the user-only state directory (``<home>/sock/<endpoint>/``, 0700, socket
0600): no other user and no web page can reach an instance, only the router (which checks
keys) can. A *rollout* (create or update) starts all new instances, waits until each
passes its readiness probe, switches routing to them, then drains (waits for in-flight
requests) and stops the old ones -- so an update never fails a request. If a new instance
exits or never gets ready the deployment is ``Failed`` (reason + log tail) and the old
instances, if any, keep serving.

After startup every instance is watched: a process that exits, or fails its liveness probe
``failure_threshold`` times in a row, is replaced (the restart is logged); a failing
readiness probe only takes it out of routing.

Probe settings: a probe block in the YAML is honoured with Azure's defaults for its missing
fields (initial_delay 10, period 10, timeout 2, failure_threshold 30); without a block the
local defaults below apply (fast start, 180 s startup limit). ``port`` in ``inference_config``
is informational: every instance gets its own socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfmagic.backends.local.executors import executor_for
from pfmagic.backends.local.logs import log_event, open_append, rotate, tail
from pfmagic.backends.local.rollout_steps import RolloutSteps, await_fork_server
from pfmagic.backends.local.state import Home, ensure_dir, read_json
from pfmagic.backends.local.upstream import InstanceClient, UpstreamError
from pfmagic.backends.local.zygote_client import ForkedProcess, Zygote, become_subreaper

AZURE_PROBE = {"initial_delay": 10.0, "period": 10.0, "timeout": 2.0, "failure_threshold": 30}
LOCAL_READINESS = {"initial_delay": 0.0, "period": 1.0, "timeout": 2.0, "failure_threshold": 3}
LOCAL_LIVENESS = {"initial_delay": 0.0, "period": 2.0, "timeout": 2.0, "failure_threshold": 3}
STARTUP_TIMEOUT = float(os.environ.get("PFMAGIC_STARTUP_TIMEOUT", "180"))
STARTUP_POLL = 0.2
DRAIN_TIMEOUT = 60.0
LOG_TAIL = 20
ZYGOTE_CHECK = 0.25  # how often the router looks for a dead zygote to restart


@dataclass
class Probe:
    path: str
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int
    explicit: bool

    @classmethod
    def of(cls, spec: dict[str, Any] | None, path: str, local: dict[str, Any]) -> Probe:
        if spec:
            merged = {
                k: (spec.get(k) if spec.get(k) is not None else v) for k, v in AZURE_PROBE.items()
            }
            return cls(
                path,
                float(merged["initial_delay"]),
                float(merged["period"]),
                float(merged["timeout"]),
                int(merged["failure_threshold"]),
                True,
            )
        return cls(
            path,
            local["initial_delay"],
            local["period"],
            local["timeout"],
            local["failure_threshold"],
            False,
        )

    def startup_deadline(self) -> float:
        if self.explicit:
            return self.initial_delay + self.period * self.failure_threshold + self.timeout
        return STARTUP_TIMEOUT


@dataclass(eq=False)
class Instance:
    name: str
    deployment: str
    slot: int
    generation: int
    proc: Any  # subprocess.Popen or zygote_client.ForkedProcess
    socket_path: str
    client: InstanceClient  # talks to this instance's UNIX socket only
    started: float = field(default_factory=time.time)
    ready: bool = False
    ready_at: float | None = None
    inflight: int = 0
    served: int = 0
    restarts: int = 0
    stopping: bool = False

    def url(self, path: str) -> str:
        return f"http://localhost{path}"  # the host is nominal: the client's transport is uds

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.proc.pid,
            "socket": self.socket_path,
            "ready": self.ready,
            "alive": self.alive(),
            "restarts": self.restarts,
            "inflight": self.inflight,
            "served": self.served,
            "generation": self.generation,
            "start_seconds": round(self.ready_at - self.started, 2) if self.ready_at else None,
        }


@dataclass(eq=False)
class Deployment:
    name: str
    spec: dict[str, Any] = field(default_factory=dict)  # runtime spec of the serving generation
    target: int = 0  # generation asked for by deployment.json
    applied: int = 0  # generation now serving (0: none)
    state: str = "Creating"
    reason: str | None = None
    log_tail: list[str] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    pending: list[Instance] = field(default_factory=list)  # a rollout's new instances
    rollout: asyncio.Task[None] | None = None
    watchers: set[asyncio.Task[None]] = field(default_factory=set)
    requests: int = 0
    mirrored: int = 0
    build: dict[str, Any] | None = None  # the environment build of the latest rollout
    restarting: int = 0  # instances being replaced by their watcher right now
    steps: RolloutSteps | None = None  # sub-steps of the latest rollout (the kernel's events)
    _rr: itertools.count[int] = field(default_factory=itertools.count)

    def ready_instances(self) -> list[Instance]:
        return [i for i in self.instances if i.ready and not i.stopping and i.alive()]

    def pick(self, exclude: Collection[Instance] = ()) -> Instance | None:
        """Least in-flight ready instance (not one of ``exclude``); ties broken round robin."""
        ready = [i for i in self.ready_instances() if i not in exclude]
        if not ready:
            return None
        start = next(self._rr) % len(ready)
        ordered = ready[start:] + ready[:start]
        return min(ordered, key=lambda i: i.inflight)

    def starting(self) -> bool:
        """Instances are on their way (rollout, restart): worth waiting for."""
        if self.state in ("Creating", "Updating") or self.pending or self.restarting:
            return True
        return any(i.alive() and not i.stopping and not i.ready for i in self.instances)

    def routes(self) -> dict[str, str]:
        return self.spec.get("routes") or {}


class Supervisor:
    """All deployments of one endpoint (runs inside the router's event loop)."""

    def __init__(self, home: Home, endpoint: str):
        self.home = home
        self.endpoint = endpoint
        self.deployments: dict[str, Deployment] = {}
        self._lock = asyncio.Lock()
        self._closing = False
        # pre-imported fork servers, one per environment (interpreter): the first starts with
        # the first instance, or prewarm()
        self._zygs: dict[str, Zygote] = {}
        self._rechecks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        # instances outlive a crashed zygote: they are re-parented to us, not to init
        self.subreaper = become_subreaper()

    def prewarm(self) -> None:
        """Start the zygote's imports now rather than with the first instance."""
        self._zygote()

    # -- reconcile desired state (deployment.json files) with running instances ------------
    async def reconcile(self) -> None:
        async with self._lock:
            wanted: dict[str, dict[str, Any]] = {}
            for name in self.home.deployment_names(self.endpoint):
                data = read_json(self.home.deployment_file(self.endpoint, name))
                if data:
                    wanted[name] = data
            for name, data in wanted.items():
                dep = self.deployments.get(name)
                if data.get("deleting"):
                    if dep is not None and dep.state != "Deleting":
                        self._start(dep, self._delete(dep))
                    continue
                gen = int(data["generation"])
                if dep is None:
                    dep = self.deployments[name] = Deployment(name=name)
                if dep.state == "Deleting":
                    continue
                if gen != dep.target:
                    dep.target = gen
                    self._start(dep, self._rollout(dep, gen, data["runtime"]))
            for name, dep in list(self.deployments.items()):
                if name not in wanted and dep.state != "Deleting":
                    self._start(dep, self._delete(dep))

    def _start(self, dep: Deployment, coro: Any) -> None:
        if dep.rollout is not None and not dep.rollout.done():
            dep.rollout.cancel()  # a newer generation (or a delete) supersedes it
        dep.rollout = asyncio.get_running_loop().create_task(coro)

    # -- rollout ------------------------------------------------------------------------
    async def _rollout(self, dep: Deployment, gen: int, runtime: dict[str, Any]) -> None:
        log = self.home.deployment_log(self.endpoint, dep.name)
        dep.state = "Updating" if dep.instances else "Creating"
        dep.reason, dep.log_tail, dep.build = None, [], None
        dep.steps = steps = RolloutSteps(gen)
        count = int(runtime.get("instance_count") or 1)
        new: list[Instance] = []
        try:  # everything inside: an exception must end in Failed, never in "Creating" forever
            rotate(log)
            log_event(
                log,
                f"{dep.state.lower()} deployment {dep.name} (generation {gen}, "
                f"model {runtime.get('model')}, {count} instance(s))",
            )
            if runtime.get("environment"):
                built = await self._build(dep, gen, runtime)
                if built is None:
                    return  # Failed (ImageBuildFailure); the old generation keeps serving
                runtime = {**runtime, "python": built}
            steps.wait("the working copy of the model")
            copying = time.monotonic()
            flow_dir = await asyncio.to_thread(self._working_copy, dep.name, gen, runtime)
            steps.mark("working copy", time.monotonic() - copying)
            steps.wait(None)
            await await_fork_server(self, steps, runtime)
            readiness = Probe.of(
                runtime.get("readiness_probe"), runtime["routes"]["readiness"], LOCAL_READINESS
            )
            spawned = await asyncio.gather(
                *(
                    self._spawn(dep.name, slot, gen, runtime, flow_dir, steps=steps)
                    for slot in range(count)
                ),
                return_exceptions=True,
            )
            new = [i for i in spawned if isinstance(i, Instance)]  # stopped below on failure
            for problem in spawned:
                if isinstance(problem, BaseException):
                    raise problem
            dep.pending = new
            errors = await asyncio.gather(*(self._wait_ready(i, readiness, steps) for i in new))
            failed = [e for e in errors if e]
            dep.pending = []
            if failed:
                await asyncio.gather(*(self._stop(i, drain=False) for i in new))
                dep.state, dep.reason = "Failed", failed[0]
                dep.log_tail = tail(log, LOG_TAIL)
                log_event(log, f"deployment {dep.name} failed: {failed[0]}")
                return  # the old generation, if any, keeps serving
            for inst in new:
                inst.ready = True
            old, dep.instances, dep.spec, dep.applied = dep.instances, new, runtime, gen
            for watcher in dep.watchers:
                watcher.cancel()
            dep.watchers = {
                asyncio.get_running_loop().create_task(self._watch(dep, i)) for i in new
            }
            dep.state = "Succeeded"
            times = ", ".join(f"{i.ready_at - i.started:.1f}" for i in new if i.ready_at)
            log_event(log, f"deployment {dep.name} generation {gen} ready ({times} s)")
            await asyncio.gather(*(self._stop(i, drain=True) for i in old))
            await asyncio.to_thread(self._drop_old_copies, dep.name, gen)
        except asyncio.CancelledError:
            dep.pending = []
            await asyncio.gather(
                *(self._stop(i, drain=False) for i in new if i not in dep.instances)
            )
            raise
        except Exception as exc:  # a bug or an OS error must still end in a state
            dep.pending = []
            await asyncio.gather(
                *(self._stop(i, drain=False) for i in new if i not in dep.instances)
            )
            dep.state, dep.reason = "Failed", f"{type(exc).__name__}: {exc}"
            dep.log_tail = tail(log, LOG_TAIL)
            with contextlib.suppress(Exception):  # the log itself may be what failed
                log_event(
                    self.home.router_log(self.endpoint),
                    f"rollout of {dep.name} failed: {traceback.format_exc()}",
                )
                log_event(log, f"deployment {dep.name} failed: {dep.reason}")

    async def _build(self, dep: Deployment, gen: int, runtime: dict[str, Any]) -> str | None:
        """The deployment's environment (``environments/build.py``, in a thread: uv runs for
        seconds): its interpreter, or None when it cannot be built (``dep`` is then Failed).
        Progress goes to ``dep.build`` (the kernel's "environment" stage) and the build log."""
        from pfmagic.environments import build, resolve

        path = self.home.deployment_log(self.endpoint, dep.name, "build")
        rotate(path)
        state: dict[str, Any] = {
            "state": "Running",
            "generation": gen,
            "started": time.time(),
            "lines": [],
        }
        dep.build = state

        def log(line: str) -> None:
            if line:
                log_event(path, line)
                state["lines"] = [*state["lines"][-4:], line]

        resolved = resolve.Resolved.from_json(runtime["environment"])
        try:
            done = await asyncio.to_thread(
                build.ensure, resolved, build.envs_root(self.home.root), log
            )
        except build.BuildFailure as exc:
            log(f"build failed: {exc}")
            state.update(state="Failed", elapsed=time.time() - state["started"])
            dep.state, dep.reason = "Failed", f"ImageBuildFailure: {exc.message}"
            dep.log_tail = tail(path, LOG_TAIL)
            log_event(
                self.home.deployment_log(self.endpoint, dep.name),
                f"deployment {dep.name} failed: {dep.reason}",
            )
            return None
        state.update(
            state="Succeeded",
            key=done.key,
            cached=done.cached,
            elapsed=time.time() - state["started"],
        )
        return done.python

    def _working_copy(self, dep: str, gen: int, runtime: dict[str, Any]) -> Path:
        """A private copy of the model's flow per generation: the serving app writes into
        its flow folder (``.promptflow/``), and the registered version must stay untouched."""
        src = Path(runtime["flow_dir"])
        dst = self.home.deployment_dir(self.endpoint, dep) / f"g{gen}" / runtime["flow_name"]
        if not dst.exists():
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            os.replace(tmp, dst)
        return dst

    def _drop_old_copies(self, dep: str, keep: int) -> None:
        base = self.home.deployment_dir(self.endpoint, dep)
        for path in base.glob("g*"):
            if path.is_dir() and path.name != f"g{keep}":
                shutil.rmtree(path, ignore_errors=True)

    def _zygote(self, python: str | None = None) -> Zygote | None:
        """The pre-imported fork server of an environment (``python``: its interpreter;
        started at most once per crash), shared by every deployment using it."""
        if os.environ.get("PFMAGIC_NO_ZYGOTE"):
            return None
        python = python or sys.executable
        zyg = self._zygs.get(python)
        if zyg is None or not zyg.alive():
            if zyg is not None:
                log_event(self.home.router_log(self.endpoint), "zygote exited; starting a new one")
            log_fd = open_append(self.home.router_log(self.endpoint))
            try:
                zyg = self._zygs[python] = Zygote(self._base_env(), log_fd, python)
            finally:
                os.close(log_fd)
        self._keep_zygote()
        return zyg

    def _keep_zygote(self) -> None:
        """Restart a dead zygote in the background (its imports take seconds), never on the
        path of a request or of the next instance start."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._keeper is None or self._keeper.done():
            self._keeper = loop.create_task(self._zygote_keeper())

    async def _zygote_keeper(self) -> None:
        while not self._closing:
            await asyncio.sleep(ZYGOTE_CHECK)
            for python, zyg in list(self._zygs.items()):
                if not zyg.alive() and not self._closing:
                    self._zygote(python)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PF_HOME_DIRECTORY": str(self.home.promptflow_home),
                "PFMAGIC_CONNECTIONS_FILE": str(self.home.connections_file),
                "PFMAGIC_PARENT_PID": str(os.getpid()),
                "PFMAGIC_ENDPOINT": self.endpoint,  # for the instances' process titles
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    async def _spawn(
        self,
        dep: str,
        slot: int,
        gen: int,
        runtime: dict[str, Any],
        flow_dir: Path,
        restarts: int = 0,
        steps: RolloutSteps | None = None,
    ) -> Instance:
        path = self._socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o600)  # the folder is 0700 already; the socket itself user-only too
        sock.listen(128)
        name = f"{dep}-{gen}-{slot}"
        env = self._base_env()
        env.update(runtime.get("connection_env") or {})
        if "connection_names" in runtime:  # the instance decodes only these (instance.py)
            env["PFMAGIC_CONNECTION_NAMES"] = json.dumps(runtime["connection_names"])
        variables = runtime.get("environment_variables") or {}
        env.update({str(k): str(v) for k, v in variables.items()})
        log_fd = open_append(self.home.deployment_log(self.endpoint, dep))
        if steps is not None:
            steps.instance(name)  # its clock starts here
            steps.instance_wait(name, "process start")
        try:
            # promptflow or a scoring script (executors/): the contract stays the router's
            proc = await executor_for(runtime).start(
                self, name, env, runtime, flow_dir, sock, log_fd
            )
        finally:
            os.close(log_fd)
            sock.close()  # the instance holds its own copy
        if steps is not None:
            forked = isinstance(proc, ForkedProcess)
            steps.instance_step(name, "forked" if forked else "process started", pid=proc.pid)
        return Instance(
            name=name,
            deployment=dep,
            slot=slot,
            generation=gen,
            proc=proc,
            socket_path=path,
            client=InstanceClient(path),  # its pool over the UNIX socket (upstream.py)
            restarts=restarts,
        )

    def _socket_path(self) -> str:
        """A fresh socket path under ``<home>/sock`` (AF_UNIX paths are limited to 107 bytes:
        a deep home is addressed relative to the router's working directory, the home)."""
        folder = ensure_dir(self.home.socket_dir(self.endpoint))
        path = folder / f"{secrets.token_hex(6)}.sock"
        if len(str(path)) < 100:
            return str(path)
        if Path.cwd().resolve() == self.home.root:
            return str(path.relative_to(self.home.root))
        raise OSError(f"socket path too long for AF_UNIX: {path}")

    async def _probe(self, inst: Instance, path: str, timeout: float) -> str | None:
        """None when ``GET path`` answers 2xx in time, else what went wrong."""
        try:
            resp = await inst.client.get(inst.url(path), timeout=timeout)
        except UpstreamError as exc:
            return exc.cause
        return None if resp.status_code < 300 else f"HTTP {resp.status_code}"

    async def _wait_ready(
        self, inst: Instance, probe: Probe, steps: RolloutSteps | None = None
    ) -> str | None:
        """None when ``inst`` passes its readiness probe, else the reason it never will
        (with ``steps``: its "app created" and "ready" sub-steps, and what it waits for)."""
        deadline = time.monotonic() + probe.startup_deadline()
        log = self.home.deployment_log(self.endpoint, inst.deployment)
        if steps is not None:
            steps.instance_wait(inst.name, f"app start and readiness probe GET {probe.path}")
        await self._sleep_unless_exit(inst, probe.initial_delay)
        poll = probe.period if probe.explicit else STARTUP_POLL
        failures, last = 0, "no answer"
        while True:
            code = inst.proc.poll()
            if code is not None:
                return (
                    f"instance {inst.name} exited with code {code} during startup"
                    + self._error_hint(inst)
                )
            if steps is not None:
                steps.watch_app_created(inst.name, log)
                if any(s["step"] == "app created" for s in steps.instance(inst.name)["steps"]):
                    steps.instance_wait(inst.name, f"readiness probe GET {probe.path}")
            problem = await self._probe(inst, probe.path, probe.timeout)
            if problem is None:
                inst.ready_at = time.time()
                if steps is not None:
                    steps.watch_app_created(inst.name, log)  # printed just before serving
                    steps.instance_step(inst.name, "ready")
                    steps.instance_wait(inst.name, None)
                return None
            failures, last = failures + 1, problem
            if (
                probe.explicit
                and failures >= probe.failure_threshold
                or time.monotonic() > deadline
            ):
                return (
                    f"instance {inst.name} not ready: readiness probe GET {probe.path} "
                    f"failed {failures} times (last: {last})"
                )
            await self._sleep_unless_exit(inst, poll)

    def _error_hint(self, inst: Instance) -> str:
        """The instance's own one-line failure from the log, if it printed one."""
        marker = f"instance {inst.name} failed to start: "
        for line in reversed(tail(self.home.deployment_log(self.endpoint, inst.deployment), 300)):
            if marker in line:
                return ": " + line.split(marker, 1)[1]
        return ""

    async def _sleep_unless_exit(self, inst: Instance, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and inst.proc.poll() is None:
            await asyncio.sleep(min(0.1, max(0.0, end - time.monotonic())))

    # -- after startup: liveness, readiness, restarts ------------------------------------
    async def _watch(self, dep: Deployment, inst: Instance) -> None:
        log = self.home.deployment_log(self.endpoint, dep.name)
        runtime = dep.spec
        routes = dep.routes()
        live = Probe.of(runtime.get("liveness_probe"), routes["liveness"], LOCAL_LIVENESS)
        ready = Probe.of(runtime.get("readiness_probe"), routes["readiness"], LOCAL_READINESS)
        while not inst.stopping:
            reason = await self._watch_one(inst, live, ready)
            if inst.stopping or reason is None:
                return
            log_event(
                log, f"instance {inst.name} {reason}; restarting (restart {inst.restarts + 1})"
            )
            dep.restarting += 1  # requests wait for the replacement rather than fail (503)
            try:
                await self._stop(inst, drain=False)
                backoff = min(30.0, 0.5 * 2**inst.restarts)
                await asyncio.sleep(backoff if inst.restarts else 0)
                flow_dir = (
                    self.home.deployment_dir(self.endpoint, dep.name)
                    / f"g{inst.generation}"
                    / runtime["flow_name"]
                )
                new = await self._spawn(
                    dep.name,
                    inst.slot,
                    inst.generation,
                    runtime,
                    flow_dir,
                    restarts=inst.restarts + 1,
                )
                if inst in dep.instances:
                    dep.instances[dep.instances.index(inst)] = new
                else:
                    await self._stop(new, drain=False)
                    return
                problem = await self._wait_ready(new, ready)
            finally:
                dep.restarting -= 1
            if problem:
                log_event(log, problem)
            else:
                new.ready = True
                log_event(
                    log,
                    f"instance {new.name} restarted and ready ({new.ready_at - new.started:.1f} s)",
                )
            inst = new

    async def _watch_one(self, inst: Instance, live: Probe, ready: Probe) -> str | None:
        """Watch until the instance must be restarted (returns why) or is being stopped."""
        now = time.monotonic()
        next_live, next_ready = now + live.initial_delay, now + ready.period
        live_fail = ready_fail = 0
        while not inst.stopping:
            code = inst.proc.poll()
            if code is not None:
                return f"exited with code {code}"
            now = time.monotonic()
            if now >= next_live:
                next_live = now + live.period
                problem = await self._probe(inst, live.path, live.timeout)
                live_fail = 0 if problem is None else live_fail + 1
                if live_fail >= live.failure_threshold:
                    return (
                        f"failed its liveness probe GET {live.path} {live_fail} times "
                        f"(last: {problem})"
                    )
            if now >= next_ready:
                next_ready = now + ready.period
                problem = await self._probe(inst, ready.path, ready.timeout)
                ready_fail = 0 if problem is None else ready_fail + 1
                if problem is None and not inst.ready:
                    inst.ready, inst.ready_at = True, inst.ready_at or time.time()
                elif ready_fail >= ready.failure_threshold and inst.ready:
                    inst.ready = False  # out of routing until it passes again
            await asyncio.sleep(0.2)
        return None

    def suspect(self, dep: Deployment, inst: Instance, problem: str) -> None:
        """The router could not talk to ``inst`` (connection refused, reset or closed): out
        of routing at once. The watcher restarts a dead process; a live one (e.g. a pooled
        keep-alive connection it had just closed) is re-admitted by one readiness probe now
        rather than after a whole probe period."""
        if not inst.ready or inst.stopping:
            return  # already out of routing: one log line and one re-check per incident
        inst.ready = False
        log_event(
            self.home.deployment_log(self.endpoint, dep.name),
            f"instance {inst.name} dropped a request ({problem}); out of routing until "
            f"its readiness probe passes",
        )
        task = asyncio.get_running_loop().create_task(self._recheck(dep, inst))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _recheck(self, dep: Deployment, inst: Instance) -> None:
        routes = dep.routes()
        probe = Probe.of(
            dep.spec.get("readiness_probe"), routes.get("readiness", "/health"), LOCAL_READINESS
        )
        await asyncio.sleep(0.05)  # a killed process needs a moment to be reported as exited
        if not inst.alive() or inst.stopping:
            return
        if (
            await self._probe(inst, probe.path, probe.timeout) is None
            and inst.alive()
            and not inst.stopping
            and not inst.ready
        ):
            inst.ready = True
            log_event(
                self.home.deployment_log(self.endpoint, dep.name),
                f"instance {inst.name} passed its readiness probe; back in routing",
            )

    # -- stopping -------------------------------------------------------------------------
    async def _stop(self, inst: Instance, *, drain: bool) -> None:
        inst.stopping = True
        if drain:
            end = time.monotonic() + DRAIN_TIMEOUT
            while inst.inflight > 0 and time.monotonic() < end:
                await asyncio.sleep(0.05)
        inst.ready = False
        if inst.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                inst.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + 10
            while inst.proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.05)
            if inst.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    inst.proc.kill()
                await asyncio.to_thread(inst.proc.wait)
        if inst.inflight <= 0 or inst.proc.poll() is not None:
            with contextlib.suppress(Exception):
                await inst.client.aclose()
            with contextlib.suppress(OSError):
                os.unlink(inst.socket_path)

    async def _delete(self, dep: Deployment) -> None:
        dep.state = "Deleting"
        for watcher in dep.watchers:
            watcher.cancel()
        await asyncio.gather(*(self._stop(i, drain=True) for i in dep.instances))
        dep.instances = []
        log_event(
            self.home.deployment_log(self.endpoint, dep.name), f"deployment {dep.name} deleted"
        )
        self.deployments.pop(dep.name, None)

    async def close(self) -> None:
        self._closing = True
        tasks = []
        for dep in self.deployments.values():
            if dep.rollout is not None:
                dep.rollout.cancel()
            for watcher in dep.watchers:
                watcher.cancel()
            tasks += [self._stop(i, drain=False) for i in dep.instances]
        for task in self._rechecks:
            task.cancel()
        if self._keeper is not None:
            self._keeper.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(z.close) for z in self._zygs.values()))

    # -- reporting ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, dep in self.deployments.items():
            wanted = int(dep.spec.get("instance_count") or 0)
            ready = len(dep.ready_instances())
            state = dep.state
            if state == "Succeeded" and wanted and ready < wanted:
                # never "Succeeded" while instances are missing: what really answers
                state = "Unavailable" if ready == 0 else "Degraded"
            out[name] = {
                "provisioning_state": state,
                "generation": dep.target,
                "applied_generation": dep.applied,
                "reason": dep.reason,
                "log_tail": dep.log_tail,
                "build": dep.build,
                "steps": dep.steps.to_json() if dep.steps else None,
                "requests": dep.requests,
                "mirrored": dep.mirrored,
                "instances": [i.status() for i in dep.instances],
                "starting": [i.status() for i in dep.pending],
                "ready": ready,
                "instance_count": wanted,
            }
        return out

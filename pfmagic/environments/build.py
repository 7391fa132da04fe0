"""Build a resolved environment with uv: one venv per distinct requirement list.

The venv sits under ``<home>/envs/<key>`` (or ``$PFMAGIC_ENVS_DIR``), keyed by the hash of the
requirements and of pfmagic's own environment. It is *layered*: a ``.pth`` file adds pfmagic's
site-packages after the venv's own, so promptflow is not reinstalled while the deployment's
packages come first on ``sys.path``; nothing is installed into the kernel's environment.
Requirements pfmagic's environment already satisfies are not installed again; the versions
installed there are constraints for everything else (an installed dependency of promptflow
is not silently replaced for it).

Network: uv is asked with few retries; when the index cannot be reached the build is retried
with ``--offline`` (uv's cache), and fails with "needs network to install X" otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pfmagic.backends.local.state import Home, ensure_dir
from pfmagic.environments import uv
from pfmagic.environments.resolve import Requirement, Resolved
from pfmagic.environments.uv import LAST_USED, META, envs_root, key_lock, lock_path
from pfmagic.errors import PfError

BASE = "base"  # the key of "pfmagic's own environment": nothing to build
NETWORK = re.compile(
    r"Failed to fetch|error sending request|Connection refused|dns error|tcp connect|"
    r"network was disabled|not found in the cache|timed out|Could not connect|tunnel error",
    re.I,
)


class BuildFailure(PfError):
    """The environment cannot be built (Azure: ``ImageBuildFailure``)."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message, hint=hint, code="ImageBuildFailure")


@dataclass(frozen=True)
class Built:
    key: str
    path: Path
    python: str
    cached: bool
    installed: tuple[str, ...]


def base_fingerprint() -> str:
    """What a layered venv depends on: this interpreter, its site-packages, promptflow."""
    try:
        pf = metadata.version("promptflow")
    except metadata.PackageNotFoundError:
        pf = "none"
    return f"{sys.prefix}|{sys.version_info[0]}.{sys.version_info[1]}|promptflow=={pf}"


def _base_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            out.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return out


def plan(resolved: Resolved) -> tuple[list[Requirement], list[str]]:
    """(to install, already satisfied by pfmagic's environment as 'name==version')."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    base = _base_versions()
    todo: list[Requirement] = []
    satisfied: list[str] = []
    for req in resolved.requirements:
        try:
            parsed = Parsed(req.spec)
        except InvalidRequirement:
            todo.append(req)  # a path or URL: uv decides
            continue
        name = re.sub(r"[-_.]+", "-", parsed.name).lower()
        have = base.get(name)
        ok = (
            have is not None
            and not parsed.extras
            and not parsed.url
            and (not parsed.specifier or parsed.specifier.contains(have, prereleases=True))
        )
        if ok:
            satisfied.append(f"{name}=={have}")
        else:
            todo.append(req)
    return todo, satisfied


def _constraints(requested: set[str]) -> str:
    skip = requested | {"pfmagic", "pip", "setuptools", "wheel"}
    lines = [f"{n}=={v}" for n, v in sorted(_base_versions().items()) if n not in skip]
    return "\n".join(lines) + "\n"


def _layer(venv: Path) -> None:
    """pfmagic's site-packages after the venv's own (``addsitedir`` also runs its .pth files,
    e.g. an editable pfmagic)."""
    purelib = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    text = "".join(f"import site; site.addsitedir({d!r})\n" for d in sorted(dirs))
    (purelib / "zz-pfmagic-base.pth").write_text(text, encoding="utf-8")


def _culprit(output: str, todo: list[Requirement]) -> Requirement | None:
    """The requirement uv's message is about (the first named, by normalized name)."""
    text = re.sub(r"[-_.]+", "-", output.lower())
    best: tuple[int, Requirement] | None = None
    for req in todo:
        name = re.sub(r"[-_.]+", "-", req.name)
        match = re.search(rf"(?<![a-z0-9-]){re.escape(name)}(?![a-z0-9-])", text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), req)
    return best[1] if best else (todo[0] if len(todo) == 1 else None)


def _reason(output: str) -> str:
    for line in output.splitlines():
        line = line.strip().removeprefix("cause:").strip()
        if line.startswith("Because") or line.startswith("×") or "error:" in line[:8]:
            if line.startswith("Because"):
                return line.rstrip(".")
    tail = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return tail[-1] if tail else "uv failed"


def _failure(output: str, todo: list[Requirement], offline: bool) -> BuildFailure:
    culprit = _culprit(output, todo)
    where = f" ({culprit.where})" if culprit else ""
    what = culprit.spec if culprit else ", ".join(r.spec for r in todo)
    if offline or NETWORK.search(output):
        return BuildFailure(
            f"environment needs network to install {what}{where}: no package index reachable "
            "and not in uv's cache",
            hint="connect, or install it once while online (it is cached then)",
        )
    return BuildFailure(
        f"cannot install {what}{where}: {_reason(output)}",
        hint="fix the requirement; the resolver's message: %pf_logs ENDPOINT DEPLOYMENT --build",
    )


def ensure(
    resolved: Resolved,
    root: Path,
    log: Callable[[str], None],
    *,
    offline: bool | None = None,
) -> Built:
    """The venv for ``resolved`` (built when missing). ``log`` gets progress lines."""
    todo, satisfied = plan(resolved)
    if not todo:  # nothing beyond pfmagic's environment: its interpreter, its zygote
        log(f"all requirements are in pfmagic's environment: {', '.join(satisfied) or '-'}")
        return Built(BASE, Path(sys.prefix), sys.executable, True, ())
    root = ensure_dir(root)
    key = resolved.key(base_fingerprint())
    final = root / key
    python = final / "bin" / "python"
    if offline is None:
        offline = os.environ.get("PFMAGIC_OFFLINE", "").lower() in ("1", "true", "yes")
    with key_lock(root, key):
        if python.is_file() and (final / META).is_file():
            uv.touch(final)
            meta = json.loads((final / META).read_text())
            log(f"environment {key} is cached ({', '.join(meta.get('installed') or []) or '-'})")
            return Built(key, final, str(python), True, tuple(meta.get("installed") or ()))
        if satisfied:
            log(f"already in pfmagic's environment: {', '.join(satisfied)}")
        log(f"building environment {key} with uv: {', '.join(r.spec for r in todo) or '-'}")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            venv = tmp / key  # built under its final name's sibling, then moved
            code, out = uv.run(["venv", "-q", "--python", sys.executable, str(venv)], log)
            if code != 0:
                raise BuildFailure(f"uv venv failed: {_reason(out)}")
            _layer(venv)
            if todo:
                _install(venv, resolved, todo, log, offline)
            (venv / META).write_text(
                json.dumps(
                    {
                        "key": key,
                        "installed": [r.spec for r in todo],
                        "satisfied": satisfied,
                        "requirements": [{"spec": r.spec, "where": r.where} for r in todo],
                        "base": base_fingerprint(),
                        "created": time.time(),
                    },
                    indent=1,
                )
            )
            uv.touch(venv)
            os.replace(venv, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Built(key, final, str(python), False, tuple(r.spec for r in todo))


def _install(
    venv: Path,
    resolved: Resolved,
    todo: list[Requirement],
    log: Callable[[str], None],
    offline: bool,
) -> None:
    (venv / "requirements.txt").write_text(
        "".join(
            f"{r.spec}  # {r.where}\n" if not r.spec.startswith("/") else f"{r.spec}\n"
            for r in todo
        )
    )
    (venv / "constraints.txt").write_text(_constraints({r.name for r in todo}))
    cmd = [
        "pip",
        "install",
        "--python",
        str(venv / "bin" / "python"),
        "-r",
        str(venv / "requirements.txt"),
        "-c",
        str(venv / "constraints.txt"),
        *resolved.index_options,
    ]
    env = dict(os.environ)
    env.setdefault("UV_HTTP_RETRIES", "1")  # an unreachable index fails in a second, not 10
    env.setdefault("UV_HTTP_TIMEOUT", "15")
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    code, out = uv.run([*cmd, "--offline"] if offline else cmd, log, env)
    if code != 0 and not offline and NETWORK.search(out):
        log("package index not reachable: trying uv's cache (--offline)")
        code, out2 = uv.run([*cmd, "--offline"], log, env)
        if code != 0:
            raise _failure(out + "\n" + out2, todo, True)
    elif code != 0:
        raise _failure(out, todo, offline)
    log(f"installed in {time.monotonic() - started:.1f} s")


# -- cache listing and prune ------------------------------------------------------------------
def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def list_envs(root: Path) -> list[dict[str, Any]]:
    """Every built environment: key, size (bytes), last use, what was installed."""
    out = []
    if not root.is_dir():
        return out
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not (path / META).is_file():
            continue
        meta = json.loads((path / META).read_text())
        used = path / LAST_USED
        out.append(
            {
                "key": path.name,
                "path": str(path),
                "size": _size(path),
                "last_used": used.stat().st_mtime if used.exists() else path.stat().st_mtime,
                "packages": meta.get("installed") or meta.get("pip") or [],
            }
        )
    return out


def prune(root: Path, in_use: set[str]) -> list[str]:
    """Remove the environments no deployment refers to; returns their keys."""
    removed = []
    for env in list_envs(root):
        if env["key"] in in_use:
            continue
        with key_lock(root, env["key"]):
            shutil.rmtree(env["path"], ignore_errors=True)
        lock_path(root, env["key"]).unlink(missing_ok=True)
        removed.append(env["key"])
    return removed


def in_use(home: Home) -> set[str]:
    """Keys of the environments some deployment of ``home`` runs in (or will): a flow's
    (``runtime['environment']``) or a scoring script's (``runtime['scoring_environment']``)."""
    from pfmagic.backends.local.state import read_json
    from pfmagic.environments import scoring

    keys: set[str] = set()
    base = base_fingerprint()
    root = envs_root(home.root)
    for endpoint in home.endpoint_names():
        for name in home.deployment_names(endpoint):
            runtime = (read_json(home.deployment_file(endpoint, name)) or {}).get("runtime") or {}
            if runtime.get("environment"):
                keys.add(Resolved.from_json(runtime["environment"]).key(base))
            if runtime.get("scoring_environment"):
                keys.add(scoring.key_of(runtime["scoring_environment"]))
            python = Path(str(runtime.get("python") or ""))
            if python.is_relative_to(root):  # its interpreter (a deployment file from before)
                keys.add(python.relative_to(root).parts[0])
    return keys

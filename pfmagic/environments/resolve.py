"""A deployment's declared environment -> requirement list with provenance (file:line).

Sources, in this order (as Azure builds them):
1. ``environment.build`` -- the Dockerfile of the build context: ``FROM`` the promptflow runtime
   image stands for promptflow + promptflow-tools at the versions pfmagic pins; ``COPY``/``ADD``
   map files of the context into the image; ``RUN pip install -r FILE`` / ``RUN pip install
   PKG...`` become requirements; every other instruction is a "not reproduced locally" warning.
2. ``environment.conda_file`` -- its ``pip:`` list (``-r FILE`` included) and python version;
   conda packages are reported (pip cannot install them here).
3. the flow folder's ``environment.python_requirements_txt`` (``flow.dag.yaml``), else its
   ``requirements.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pfmagic.errors import PfError

RUNTIME_IMAGE = re.compile(r"(^|/)promptflow(/|-)?runtime", re.I)
RUNTIME_PACKAGES = ("promptflow", "promptflow-tools")
SKIP_CONDA = {"python", "pip", "setuptools", "wheel"}
# pip options that take a value (``-i URL``); their values are not requirements
VALUED = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-c",
    "--constraint",
    "--trusted-host",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--cache-dir",
    "--timeout",
    "--retries",
    "--platform",
    "--python-version",
}
IGNORED_FLAGS = {"--no-cache-dir", "-q", "--quiet", "-U", "--upgrade", "--user", "--no-deps"}


@dataclass(frozen=True)
class Requirement:
    spec: str  # one pip requirement, e.g. "six==1.16.0" or an absolute local path
    source: str  # the file it came from ("" for the runtime image)
    line: int = 0

    @property
    def where(self) -> str:
        if not self.source:
            return "runtime image"
        return f"{_short(self.source)}:{self.line}" if self.line else _short(self.source)

    @property
    def name(self) -> str:
        return _name(self.spec)


@dataclass
class Resolved:
    requirements: list[Requirement] = field(default_factory=list)
    python: str | None = None  # the version asked for (conda_file), if any
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # files read, in order
    runtime_image: bool = False
    index_options: list[str] = field(default_factory=list)  # --index-url ... from the files

    def declares_anything(self) -> bool:
        return bool(self.requirements or self.sources)

    def install_specs(self) -> list[str]:
        return [r.spec for r in self.requirements]

    def key(self, base: str = "") -> str:
        """Same requirements (and base environment) -> same key -> same venv."""
        payload = {
            "pip": sorted(set(self.install_specs())),
            "index": self.index_options,
            "base": base,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def requirement_file(self) -> str:
        """Where a missing module should be declared (the last file the user controls)."""
        for path in reversed(self.sources):
            if Path(path).name != "Dockerfile" and not path.endswith((".yml", ".yaml")):
                return path
        return self.sources[-1] if self.sources else "requirements.txt"

    def to_json(self) -> dict[str, Any]:
        """File names as the user wrote them (relative to the kernel's working directory when
        below it): the router, in another directory, names them in its build errors."""
        return {
            "requirements": [
                asdict(Requirement(r.spec, _short(r.source) if r.source else "", r.line))
                for r in self.requirements
            ],
            "python": self.python,
            "warnings": list(self.warnings),
            "sources": [_short(s) for s in self.sources],
            "runtime_image": self.runtime_image,
            "index_options": list(self.index_options),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Resolved:
        return cls(
            requirements=[Requirement(**r) for r in data.get("requirements") or []],
            python=data.get("python"),
            warnings=list(data.get("warnings") or []),
            sources=list(data.get("sources") or []),
            runtime_image=bool(data.get("runtime_image")),
            index_options=list(data.get("index_options") or []),
        )


def _short(path: str) -> str:
    """A path as the user wrote it: relative to the working directory when below it."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else path
    except (OSError, ValueError):
        return path


def _name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return match.group(1).lower().replace("_", "-") if match else spec


def pinned_runtime() -> list[str]:
    """promptflow + promptflow-tools at the versions installed with pfmagic (its pins)."""
    from importlib import metadata

    out = []
    for dist in RUNTIME_PACKAGES:
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


# -- requirements.txt ---------------------------------------------------------------------
def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = number
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        out.append((start, buf + raw))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _local_path(spec: str, base: Path) -> str:
    """A local path requirement (``./pkg``, ``../x.whl``), made absolute (built elsewhere)."""
    if spec.startswith(("./", "../", "/")) or spec.endswith((".whl", ".tar.gz", ".zip")):
        path = (base / spec).resolve() if not spec.startswith("/") else Path(spec)
        if not path.exists():
            raise PfError(f"requirement '{spec}': {path} does not exist")
        return str(path)
    return spec


def read_requirements(
    path: Path, resolved: Resolved, *, seen: set[Path] | None = None
) -> list[Requirement]:
    """A pip requirements file, ``-r`` includes followed; options other than an index are
    reported as warnings."""
    path = path.resolve()
    seen = seen if seen is not None else set()
    if path in seen:
        return []
    seen.add(path)
    if not path.is_file():
        raise PfError(f"requirements file {_short(str(path))} does not exist")
    resolved.sources.append(str(path))
    out: list[Requirement] = []
    for number, text in _logical_lines(path.read_text(encoding="utf-8")):
        line = re.sub(r"(^|\s)#.*$", "", text).strip()
        if not line:
            continue
        where = f"{_short(str(path))}:{number}"
        if line.startswith(("-r ", "--requirement ", "-r", "--requirement=")):
            target = re.sub(r"^(-r|--requirement)[= ]?", "", line).strip()
            out += read_requirements(path.parent / target, resolved, seen=seen)
        elif line.startswith(("-i", "--index-url", "--extra-index-url")):
            resolved.index_options += shlex.split(line.replace("=", " ", 1))
        elif line.startswith(("-e ", "--editable")):
            target = re.sub(r"^(-e|--editable)[= ]?", "", line).strip()
            out.append(Requirement(_local_path(target, path.parent), str(path), number))
        elif line.startswith("-"):
            resolved.warnings.append(f"{where}: option '{line}' is not used locally")
        else:
            out.append(Requirement(_local_path(line, path.parent), str(path), number))
    return out


# -- Dockerfile -----------------------------------------------------------------------------
def _pip_install(words: list[str]) -> list[str] | None:
    """The arguments after ``pip install`` when ``words`` is a pip install, else None."""
    for i, word in enumerate(words):
        base = word.rsplit("/", 1)[-1]
        if re.fullmatch(r"pip[0-9.]*", base) and words[i + 1 : i + 2] == ["install"]:
            return words[i + 2 :]
        if re.fullmatch(r"python[0-9.]*", base) and words[i + 1 : i + 4] == [
            "-m",
            "pip",
            "install",
        ]:
            return words[i + 4 :]
        if base == "uv" and words[i + 1 : i + 3] == ["pip", "install"]:
            return words[i + 3 :]
    return None


class _Image:
    """The image's file system as far as COPY/ADD/WORKDIR tell: image path -> context path."""

    def __init__(self, context: Path):
        self.context = context
        self.workdir = PurePosixPath("/")
        self.files: dict[PurePosixPath, Path] = {}

    def at(self, path: str) -> PurePosixPath:
        p = PurePosixPath(path)
        return p if p.is_absolute() else self.workdir / p

    def copy(self, args: list[str]) -> None:
        args = [a for a in args if not a.startswith("--")]
        if len(args) < 2:
            return
        *srcs, dst = args
        into_dir = dst.endswith("/") or dst in (".", "./") or len(srcs) > 1
        target = self.at(dst)
        for src in srcs:
            local = (self.context / src).resolve()
            if into_dir and not local.is_dir():
                self.files[target / PurePosixPath(src).name] = local
            else:
                self.files[target] = local

    def local(self, path: str) -> Path | None:
        """The context file an image path came from (a copied folder counts)."""
        wanted = self.at(path)
        for image_path in (wanted, *wanted.parents):
            if image_path in self.files:
                return self.files[image_path] / wanted.relative_to(image_path)
        return None


def read_dockerfile(context: Path, dockerfile: str, resolved: Resolved) -> list[Requirement]:
    path = (context / (dockerfile or "Dockerfile")).resolve()
    if not path.is_file():
        raise PfError(f"environment.build: Dockerfile {_short(str(path))} does not exist")
    resolved.sources.append(str(path))
    image = _Image(context)
    out: list[Requirement] = []
    for number, text in _logical_lines(path.read_text(encoding="utf-8")):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{_short(str(path))}:{number}"
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            ref = rest.split()[0] if rest else ""
            if RUNTIME_IMAGE.search(ref):
                resolved.runtime_image = True
            else:
                resolved.warnings.append(
                    f"{where}: FROM {ref} is not reproduced locally: instances run on "
                    "pfmagic's promptflow environment"
                )
        elif instruction in ("COPY", "ADD"):
            image.copy(shlex.split(rest))
        elif instruction == "WORKDIR":
            image.workdir = image.at(rest)
        elif instruction == "RUN":
            out += _run(rest, image, resolved, where, path, number)
        else:
            resolved.warnings.append(f"{where}: {instruction} is not reproduced locally")
    return out


def _run(
    rest: str, image: _Image, resolved: Resolved, where: str, path: Path, number: int
) -> list[Requirement]:
    out: list[Requirement] = []
    for command in re.split(r"&&|;|\|\|", rest):
        words = shlex.split(command)
        if not words:
            continue
        args = _pip_install(words)
        if args is None:
            resolved.warnings.append(f"{where}: RUN {command.strip()} is not reproduced locally")
            continue
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("-r", "--requirement") or arg.startswith("--requirement="):
                target = arg.split("=", 1)[1] if "=" in arg else args[i + 1]
                i += 1 if "=" in arg else 2
                local = image.local(target)
                if local is None:
                    raise PfError(
                        f"{where}: pip install -r {target}: the file is not COPY'd into the "
                        "image before this line",
                        hint="COPY ./requirements.txt . before the RUN",
                    )
                out += read_requirements(local, resolved)
                continue
            if arg in ("-i", "--index-url", "--extra-index-url"):
                resolved.index_options += [arg, args[i + 1]]
                i += 2
                continue
            if arg in VALUED:
                resolved.warnings.append(f"{where}: pip option {arg} is not used locally")
                i += 2
                continue
            if arg.startswith("-"):
                if arg not in IGNORED_FLAGS and "=" not in arg:
                    resolved.warnings.append(f"{where}: pip option {arg} is not used locally")
                i += 1
                continue
            local = image.local(arg) if arg.startswith(("./", "/", "../")) else None
            out.append(Requirement(str(local) if local else arg, str(path), number))
            i += 1
    return out


# -- conda file -----------------------------------------------------------------------------
def _conda_lines(path: Path) -> dict[tuple[int, ...], int]:
    """Line of each ``dependencies`` entry (and of each ``pip:`` entry) in a conda file."""
    import yaml

    lines: dict[tuple[int, ...], int] = {}
    node = yaml.compose(path.read_text(encoding="utf-8"))
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        if key.value == "dependencies" and isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                lines[(i,)] = item.start_mark.line + 1
                if isinstance(item, yaml.MappingNode):
                    for sub_key, sub in item.value:
                        if sub_key.value == "pip" and isinstance(sub, yaml.SequenceNode):
                            for j, entry in enumerate(sub.value):
                                lines[(i, j)] = entry.start_mark.line + 1
    return lines


def read_conda(conda: Any, path: Path | None, resolved: Resolved) -> list[Requirement]:
    """A conda file (its dict, and its path when known for line numbers)."""
    if path is not None and path.is_file():
        import yaml

        conda = yaml.safe_load(path.read_text(encoding="utf-8"))
        lines = _conda_lines(path)
        source = str(path.resolve())
        resolved.sources.append(source)
    else:
        lines, source = {}, "conda_file"
    if not isinstance(conda, dict):
        return []
    out: list[Requirement] = []
    where = _short(source)
    conda_only: list[str] = []
    for i, dep in enumerate(conda.get("dependencies") or []):
        if isinstance(dep, dict):
            for j, entry in enumerate(dep.get("pip") or []):
                text, number = str(entry).strip(), lines.get((i, j), 0)
                if text.startswith(("-r ", "--requirement")):
                    target = re.sub(r"^(-r|--requirement)[= ]?", "", text).strip()
                    base = path.parent if path is not None else Path.cwd()
                    out += read_requirements(base / target, resolved)
                elif text.startswith(("-i", "--index-url", "--extra-index-url")):
                    resolved.index_options += shlex.split(text.replace("=", " ", 1))
                elif text.startswith("-"):
                    resolved.warnings.append(f"{where}:{number}: pip option '{text}' is not used")
                else:
                    base = path.parent if path is not None else Path.cwd()
                    out.append(Requirement(_local_path(text, base), source, number))
        elif isinstance(dep, str):
            name = re.split(r"[=<>! ]", dep.split("::")[-1], maxsplit=1)[0].lower()
            if name == "python":
                version = re.sub(r"^python\s*[=<>!]*", "", dep.split("::")[-1]).strip()
                resolved.python = version.lstrip("=") or None
            elif name not in SKIP_CONDA:
                conda_only.append(f"{dep} (line {lines.get((i,), '?')})")
    if conda_only:
        resolved.warnings.append(
            f"{where}: conda packages are not installed locally: {', '.join(conda_only)}; "
            "list them under pip: if the flow imports them"
        )
    return out


# -- flow folder ----------------------------------------------------------------------------
def flow_requirements_file(flow_dir: Path) -> Path | None:
    """``environment.python_requirements_txt`` of ``flow.dag.yaml``, else ``requirements.txt``."""
    import yaml

    for name in ("flow.dag.yaml", "flow.dag.yml", "flow.flex.yaml", "flow.flex.yml"):
        dag = flow_dir / name
        if dag.is_file():
            try:
                data = yaml.safe_load(dag.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                data = {}
            env = data.get("environment") if isinstance(data, dict) else None
            declared = env.get("python_requirements_txt") if isinstance(env, dict) else None
            if declared:
                path = flow_dir / str(declared)
                if not path.is_file():
                    raise PfError(
                        f"{_short(str(dag))}: environment.python_requirements_txt "
                        f"'{declared}' does not exist"
                    )
                return path
            break
    default = flow_dir / "requirements.txt"
    return default if default.is_file() else None


# -- the whole environment ------------------------------------------------------------------
def resolve(environment: Any, flow_dir: Path | None = None) -> Resolved:
    """What a deployment declares: its azure-ai-ml ``Environment`` (or None / a name) and the
    flow folder. Raises ``PfError`` (one line, file named) for a missing file."""
    resolved = Resolved()
    reqs: list[Requirement] = []
    if isinstance(environment, str):
        if environment and not RUNTIME_IMAGE.search(environment):
            resolved.warnings.append(
                f"environment '{environment}' is not available locally: the flow's own "
                "requirements only"
            )
    elif environment is not None:
        base = Path(str(getattr(environment, "base_path", None) or Path.cwd()))
        build = getattr(environment, "build", None)
        if build is not None and getattr(build, "path", None):
            context = Path(str(build.path))
            context = context if context.is_absolute() else base / context
            if str(build.path).startswith(("http://", "https://", "git+")):
                resolved.warnings.append(
                    f"environment.build.path {build.path} is remote: not reproduced locally"
                )
            elif not context.is_dir():
                raise PfError(f"environment.build.path: folder {_short(str(context))} not found")
            else:
                reqs += read_dockerfile(context, build.dockerfile_path or "Dockerfile", resolved)
        image = getattr(environment, "image", None)
        if image and RUNTIME_IMAGE.search(str(image)):
            resolved.runtime_image = True
        elif image:
            resolved.warnings.append(
                f"environment.image {image} is not reproduced locally: instances run on "
                "pfmagic's promptflow environment"
            )
        conda = getattr(environment, "conda_file", None)
        conda_path = getattr(environment, "_conda_file_path", None)
        if isinstance(conda, (str, os.PathLike)):
            conda_path = Path(conda) if Path(conda).is_absolute() else base / str(conda)
            conda = None
        if conda is not None or conda_path is not None:
            reqs += read_conda(conda, Path(conda_path) if conda_path else None, resolved)
    if flow_dir is not None:
        found = flow_requirements_file(flow_dir)
        if found is not None:
            reqs += read_requirements(found, resolved)
    if resolved.runtime_image:
        reqs = [Requirement(spec, "") for spec in pinned_runtime()] + reqs
    # the seed's build context copies the flow's requirements.txt: the same line twice is
    # listed (and named in errors) once, where it came first
    first: dict[str, Requirement] = {}
    for req in reqs:
        first.setdefault(req.spec, req)
    resolved.requirements = list(first.values())
    return resolved

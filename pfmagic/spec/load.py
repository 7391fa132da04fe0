"""Cell text → validated azure-ai-ml entity, with errors that name the field and the line.

Python API (no IPython needed)::

    from pfmagic.spec.load import parse_deployment
    parsed = parse_deployment(text, base_dir="notebooks/", namespace={"sku": "Standard_F4s_v2"})
    parsed.entity     # ManagedOnlineDeployment / KubernetesOnlineDeployment
    parsed.warnings   # list[Problem] (field path, message, line)

The entity classes are azure-ai-ml's own, chosen by its own loaders (``compute:`` → Kubernetes
endpoint; ``type: kubernetes`` in the YAML → Kubernetes deployment). Text goes in as a stream,
with ``relative_origin=<base_dir>/cell.yml``: a *file-like* path, since azure-ai-ml resolves
relative paths against ``Path(relative_origin).parent`` (azure-ai-ml notes §1).

azure.ai.ml is imported inside the functions: ``%load_ext pfmagic`` must stay light, and
``warm_up()`` pays the import in a background thread.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pfmagic.errors import SpecError
from pfmagic.spec import checks
from pfmagic.spec.diagnose import Problem, schema_problems, shape_problems
from pfmagic.spec.flowinfo import FlowInfo
from pfmagic.spec.interpolate import interpolate
from pfmagic.spec.positions import Positions

Kind = Literal["model", "endpoint", "deployment"]
MAX_LISTED = 5  # problems listed in one error; the rest are counted


@dataclass
class Parsed:
    """A parsed cell: the azure-ai-ml entity, its warnings (with cell lines) and the flow."""

    entity: Any
    kind: Kind
    warnings: list[Problem] = field(default_factory=list)
    flow: FlowInfo | None = None
    text: str = ""

    @property
    def name(self) -> str:
        return str(getattr(self.entity, "name", ""))


@dataclass
class _Source:
    """The text being parsed and how its lines map back to what the user sees."""

    text: str
    line_map: list[int]
    offset: int  # lines before the YAML (1 in a cell: the %%magic line)
    overrides: Sequence[tuple[str, Any]] = ()

    def user_line(self, line: int | None) -> int | None:
        if line is None:
            return None
        original = self.line_map[line - 1] if 0 < line <= len(self.line_map) else line
        return original + self.offset


def warm_up() -> None:
    """Import azure.ai.ml and run each loader once (2-5 s), so the first cell is fast."""
    from azure.ai.ml import load_online_endpoint

    _quiet_experimental()
    load_online_endpoint(io.StringIO("name: warm-up\n"), relative_origin="./cell.yml")
    checks.suggest("warm", ["warm"])


def parse_model(text: str, **kw: Any) -> Parsed:
    """Parse a ``%%pf_model`` YAML (see ``parse``)."""
    return parse("model", text, **kw)


def parse_endpoint(text: str, **kw: Any) -> Parsed:
    """Parse a ``%%pf_endpoint`` YAML (see ``parse``)."""
    return parse("endpoint", text, **kw)


def parse_deployment(text: str, **kw: Any) -> Parsed:
    """Parse a ``%%pf_deployment`` YAML (see ``parse``)."""
    return parse("deployment", text, **kw)


def parse(
    kind: Kind,
    text: str,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    namespace: Mapping[str, Any] | None = None,
    overrides: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None,
    backend_name: str = "local",
    models: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Any] | None = None,
    line_offset: int = 0,
    fill_prt_config: bool = False,
) -> Parsed:
    """Parse ``text`` into an azure-ai-ml entity and run pfmagic's prompt-flow checks.

    - ``base_dir``: folder relative paths are resolved against (default: cwd).
    - ``namespace``: fills ``{{name}}`` placeholders; None leaves the text as is.
    - ``overrides``: ``[("instance_count", 3), ...]``, like ``az ml ... --set``.
    - ``backend_name``: ``"azure"`` turns target-dependent warnings into errors.
    - ``models`` / ``endpoints``: entities parsed earlier (for ``azureml:NAME:VERSION`` models).
    - ``line_offset``: added to every reported line (1 in a cell, below the ``%%`` line).
    - ``fill_prt_config``: the target fills PRT_CONFIG_OVERRIDE placeholders (warning, no error).

    Raises ``SpecError`` (one line per problem, first problem's field and line on the error).
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or ())
    if namespace is not None:
        expanded, line_map = interpolate(text, namespace, line_offset=line_offset)
    else:
        expanded, line_map = text, list(range(1, text.count("\n") + 2))
    src = _Source(expanded, line_map, line_offset, pairs)
    raw = _safe_load(src)
    entity = _load(kind, src, raw, base)
    positions = Positions(src.text)
    ctx = checks.Context(
        raw=_overridden(raw, pairs),  # checks see what is deployed: the YAML after --set
        backend_name=backend_name,
        base_dir=base,
        models=models or {},
        endpoints=endpoints or {},
        fill_prt_config=fill_prt_config,
    )
    {
        "model": checks.check_model,
        "endpoint": checks.check_endpoint,
        "deployment": checks.check_deployment,
    }[kind](entity, ctx)
    checks.check_duplicates(ctx, list(positions.duplicate_keys()))
    for problem in ctx.out:
        problem.line = src.user_line(positions.line(problem.path))
    errors = [p for p in ctx.out if p.level == "error"]
    if errors:
        raise _error(errors, src)
    return Parsed(entity=entity, kind=kind, warnings=ctx.out, flow=ctx.flow, text=src.text)


def _safe_load(src: _Source) -> dict[str, Any]:
    """The YAML as written (checks and error messages need it); syntax errors with lines."""
    try:
        raw = yaml.safe_load(src.text)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, src) from None
    if raw is None:
        raise SpecError("the cell is empty: expected YAML fields such as 'name: ...'", line=None)
    if not isinstance(raw, dict):
        raise SpecError(
            f"expected YAML fields (key: value lines), got a {type(raw).__name__}",
            line=src.user_line(1),
        )
    return raw


def _overridden(raw: dict[str, Any], pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """``raw`` with the ``--set`` pairs applied the way azure-ai-ml applies them (pydash paths:
    ``a.b.c``, ``a[0].b``)."""
    if not pairs:
        return raw
    import copy

    import pydash  # azure-ai-ml's own dependency, loaded by now

    out = copy.deepcopy(raw)
    for key, value in pairs:
        pydash.set_(out, key, value)
    return out


def _syntax_error(exc: yaml.YAMLError, src: _Source) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if mark is not None and context_mark is not None and "<stream end>" in problem:
        mark = context_mark  # an unclosed bracket: point at where it opened
    line = src.user_line(mark.line + 1) if mark is not None else None
    message = f"YAML syntax: {context + ': ' if context else ''}{problem}"
    hint = "indent with spaces, not tabs" if "'\\t'" in problem else None
    return SpecError(message, line=line, hint=hint)


def _quiet_experimental() -> None:
    """azure-ai-ml logs "Class X: This is an experimental class..." for data_collector and
    friends; with no logging set up Python prints it under the cell. Not the user's concern."""
    import logging

    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)


def _loader(kind: Kind) -> Callable[..., Any]:
    from azure.ai.ml import load_model, load_online_deployment, load_online_endpoint

    _quiet_experimental()
    return {
        "model": load_model,
        "endpoint": load_online_endpoint,
        "deployment": load_online_deployment,
    }[kind]


def _load(kind: Kind, src: _Source, raw: dict[str, Any], base: Path) -> Any:
    import marshmallow

    origin = str(base / "cell.yml")
    params = [{key: value} for key, value in src.overrides]
    try:
        return _loader(kind)(io.StringIO(src.text), relative_origin=origin, params_override=params)
    except marshmallow.ValidationError as exc:
        problems = schema_problems(exc, raw)
    except Exception as exc:  # azure-ai-ml's ValidationException and friends
        crashed = kind == "deployment" and isinstance(exc, (AttributeError, TypeError))
        problems = shape_problems(raw) if crashed else []
        if not problems:  # a loader's own message; a crash on a wrong shape is named below
            message = getattr(exc, "message", None) or str(exc)
            raise SpecError(message.strip().splitlines()[0]) from None
    positions = Positions(src.text)
    overridden = {key for key, _ in src.overrides}
    for p in problems:
        if p.field in overridden:
            p.message += " (from --set)"
        p.line = src.user_line(positions.line(p.path))
    raise _error(problems or [Problem((), "invalid YAML")], src)


def _error(problems: list[Problem], src: _Source) -> SpecError:
    """One SpecError: the first problem (by line) carries field/line, others follow, one a line."""
    problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0, p.field))
    first, rest = problems[0], problems[1:MAX_LISTED]
    lines = [first.message]
    for p in rest:
        lines.append(str(SpecError(p.message, field=p.field or None, line=p.line)))
    if len(problems) > MAX_LISTED:
        lines.append(f"... and {len(problems) - MAX_LISTED} more")
    return SpecError("\n".join(lines), field=first.field or None, line=first.line)

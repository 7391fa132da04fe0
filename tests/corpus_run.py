"""Real azureml-examples YAML (tests/corpus/azureml-examples/SOURCES.md) through azure-ai-ml's own
loaders (the oracle, computed here, never stored) and through pfmagic's cells on a backend.

A case is one endpoint / deployment / model YAML with the values a user would pass: each
``<PLACEHOLDER>`` becomes a ``--set path=value`` (as the azureml-examples scripts pass
``--set endpoint_name=$ENDPOINT_NAME``), each ``{{NAME}}`` (the scripts ``sed`` them) a notebook
variable. Two ways to give the YAML: in the cell (notebook next to the file) and ``--file``
relative to ``cli/`` (where the azureml-examples scripts run ``az ml``).

Verdicts: ok (both accept), both-reject, false-reject (azure-ai-ml accepts, the cell refuses),
false-accept, crash (the cell raised something other than a one-line UsageError).

Also a script: ``python tests/corpus_run.py`` prints the figure lines for the pfmagic on sys.path.
"""

from __future__ import annotations

import io
import logging
import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CORPUS = HERE / "corpus" / "azureml-examples"
CLI = CORPUS / "cli"
VERDICTS = ("ok", "both-reject", "false-reject", "false-accept", "crash")
PLACEHOLDER = re.compile(r"<([^<>\s'][^<>]*)>|(place_?holder)", re.I)
TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# Warnings that only make sense for a prompt flow deployment.
PF_WARNING = re.compile(
    r"PROMPTFLOW_|PRT_CONFIG_OVERRIDE|flow\.dag\.yaml|inference_config|for a flow|prompt ?flow",
    re.I,
)


@dataclass
class Case:
    path: Path
    kind: str  # model / endpoint / deployment
    sets: list[tuple[str, str]] = field(default_factory=list)
    namespace: dict[str, str] = field(default_factory=dict)

    @property
    def rel(self) -> str:
        return self.path.relative_to(CLI).as_posix()

    @property
    def prompt_flow(self) -> bool:
        return "promptflow" in self.path.read_text(encoding="utf-8").lower()


def slug(text: str) -> str:
    """A value a user would type for a placeholder: name-like (valid endpoint names)."""
    if "version" in text.lower():
        return "1"
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "value"
    return value if value[0].isalpha() else f"x{value}"


def _kind(text: str, raw: Any) -> str | None:
    schema = str(raw.get("$schema", "")) if isinstance(raw, dict) else ""
    if "OnlineDeployment" in schema:
        return "deployment"
    if "OnlineEndpoint" in schema:
        return "endpoint"
    if schema.endswith("/model.schema.json"):
        return "model"
    if not schema and isinstance(raw, dict) and "endpoint_name" in raw:
        return "deployment"
    return None


def _placeholder_sets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _placeholder_sets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _placeholder_sets(value, f"{path}[{i}]")
    elif isinstance(node, str) and PLACEHOLDER.search(node):
        yield path, PLACEHOLDER.sub(lambda m: "real" if m.group(2) else slug(m.group(1)), node)


def cases() -> list[Case]:
    out = []
    for path in sorted(p for p in CLI.rglob("*") if p.suffix.lower() in (".yml", ".yaml")):
        text = path.read_text(encoding="utf-8")
        namespace = {name: slug(name) for name in TEMPLATE.findall(text)}
        try:
            raw = yaml.safe_load(TEMPLATE.sub(lambda m, ns=namespace: ns[m.group(1)], text))
        except yaml.YAMLError:
            continue
        kind = _kind(text, raw)
        if kind is None:
            continue
        sets = list(_placeholder_sets(raw))
        if kind == "deployment" and "endpoint_name" not in raw:  # az ml ... --endpoint-name EP
            sets.append(("endpoint_name", "my-endpoint"))
        out.append(Case(path, kind, sets, namespace))
    return out


def oracle(case: Case) -> bool:
    """azure-ai-ml's verdict, as ``az ml ... -f FILE --set ...`` after the scripts' sed."""
    from azure.ai.ml import load_model, load_online_deployment, load_online_endpoint

    loader = {
        "model": load_model,
        "endpoint": load_online_endpoint,
        "deployment": load_online_deployment,
    }[case.kind]
    text = TEMPLATE.sub(lambda m: case.namespace[m.group(1)], case.path.read_text("utf-8"))
    params = [{key: yaml.safe_load(value)} for key, value in case.sets]
    from azure.ai.ml.entities._endpoint._endpoint_helpers import (
        validate_endpoint_or_deployment_name,
    )

    try:
        entity = loader(io.StringIO(text), relative_origin=str(case.path), params_override=params)
        if case.kind != "model":  # az ml create checks the name before any request
            validate_endpoint_or_deployment_name(entity.name, case.kind == "deployment")
    except Exception:
        return False
    return True


@dataclass
class Outcome:
    case: Case
    verdict: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    output: str = ""


@contextmanager
def shell(home: Path, azure: Any = None) -> Iterator[Any]:
    """A fresh InteractiveShell with pfmagic loaded (local backend, or ``azure``'s backend)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.PfMagics.widgets = False
    config.PfMagics.home = str(home)
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "pfmagic")
    from pfmagic.magics import session_of

    session = session_of(ip)
    if azure is not None:
        session.use_backend(azure)
    try:
        yield ip
    finally:
        if session.active_backend is not None:
            session.active_backend.close()
        ip.run_line_magic("unload_ext", "pfmagic")
        import atexit

        atexit.unregister(ip.atexit_operations)
        InteractiveShell.clear_instance()


def run_case(ip: Any, case: Case, mode: str, expected: bool) -> Outcome:
    from IPython.core.error import UsageError
    from IPython.utils.capture import capture_output

    from pfmagic.magics import session_of

    session = session_of(ip)
    session.models.clear()  # each file stands alone, as one az ml command does
    session.endpoints.clear()
    ip.user_ns.update(case.namespace)
    sets = " ".join(shlex.quote(f"{k}={v}") for k, v in case.sets)
    line = f"--set {sets}" if sets else ""
    magic = f"pf_{case.kind}"
    text = case.path.read_text(encoding="utf-8")
    from azure.ai.ml._utils import _experimental

    _experimental._warning_cache.clear()  # azure-ai-ml warns once per class per process
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    try:
        with capture_output() as cap:
            if mode == "file":
                ip.user_ns["__vsc_ipynb_file__"] = str(CLI / "nb.ipynb")
                result = ip.run_line_magic(magic, f"--file {shlex.quote(case.rel)} {line}")
            else:
                ip.user_ns["__vsc_ipynb_file__"] = str(case.path.parent / "nb.ipynb")
                result = ip.run_cell_magic(magic, line, text)
        accepted, message = True, ""
    except UsageError as exc:
        accepted, message = False, str(exc)
    except Exception as exc:  # a traceback in the notebook
        return Outcome(case, "crash", f"{type(exc).__name__}: {exc}")
    finally:
        logging.getLogger().removeHandler(handler)
    output = log.getvalue() + (cap.stdout + cap.stderr if accepted else "")
    warnings = [p.message for p in getattr(result, "warnings", [])] if accepted else []
    verdict = {
        (True, True): "ok",
        (False, False): "both-reject",
        (True, False): "false-reject",
        (False, True): "false-accept",
    }[(expected, accepted)]
    return Outcome(case, verdict, message, warnings, output)


def run_all(backend: str, home: Path, mode: str, azure: Any = None) -> list[Outcome]:
    with shell(home, azure) as ip:
        return [run_case(ip, case, mode, oracle(case)) for case in cases()]


def figure(backend: str, mode: str, outcomes: list[Outcome]) -> str:
    counts = Counter(o.verdict for o in outcomes)
    pf_warned = sum(
        1
        for o in outcomes
        if not o.case.prompt_flow and any(PF_WARNING.search(w) for w in o.warnings)
    )
    leaked = sum(1 for o in outcomes if "experimental class" in o.output)
    return (
        f"corpus {backend:5} {mode:4} ({len(outcomes)} files): "
        + " / ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS)
        + f" | non-flow files with pf warnings {pf_warned}"
        + f" | experimental-class lines {leaked}"
    )


def main() -> None:
    import tempfile

    sys.path.insert(0, str(HERE))
    from arm_server import ArmServer
    from test_azure_backend import make_backend

    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("cell", "file"):
            outcomes = run_all("local", Path(tmp) / "l", mode)
            print(figure("local", mode, outcomes), flush=True)
            _details(outcomes)
            with ArmServer() as arm:
                outcomes = run_all("azure", Path(tmp) / "a", mode, make_backend(arm))
                calls = len(arm.state.log)
            print(figure("azure", mode, outcomes) + f" | ARM calls {calls}", flush=True)
            _details(outcomes)


def _details(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if "-vv" in sys.argv or ("-v" in sys.argv and o.verdict not in ("ok", "both-reject")):
            print(f"  {o.verdict}: {o.case.rel}: {o.message[:300]}")
            for w in o.warnings if "-vv" in sys.argv else ():
                print(f"      warning: {w[:200]}")


if __name__ == "__main__":
    main()

"""Deployment environments (issue 13): resolution on real files, real uv builds.

Resolution: the seed's build context (``Deploy with a custom environment``), the
azureml-examples conda file, flow requirements. Builds: a real uv venv with a small pure-Python
package from the registry (text-unidecode), cached per test run under a session temp dir; a
broken requirement; an unreachable index (UV_INDEX_URL on a closed local port).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import load_online_deployment
from azure.ai.ml.entities import BuildContext, Environment

from pfmagic.environments import build
from pfmagic.environments.resolve import Resolved, pinned_runtime, resolve
from pfmagic.errors import PfError

HERE = Path(__file__).parent
FLOWS = HERE / "flows"
CONDA = HERE / "corpus" / "azureml-examples" / "model-1" / "environment" / "conda.yaml"
SEED_DOCKERFILE = (
    "FROM mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
    "COPY ./requirements.txt .\n"
    "RUN pip install -r requirements.txt\n"
)


def _context(tmp: Path, dockerfile: str, requirements: str = "text-unidecode==1.3\n") -> Path:
    ctx = tmp / "image_build_with_reqirements"  # the seed's folder name, typo included
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "requirements.txt").write_text(requirements)
    return ctx


def test_seed_build_context_from_the_deployment_yaml(tmp_path: Path) -> None:
    _context(tmp_path, SEED_DOCKERFILE, "# from the flow\ntext-unidecode==1.3\n")
    (tmp_path / "dep.yaml").write_text(
        "name: blue\nendpoint_name: ep\nmodel: azureml:m:1\ninstance_type: Standard_DS3_v2\n"
        "environment:\n  build:\n    path: image_build_with_reqirements\n"
        "    dockerfile_path: Dockerfile\n"
    )
    env = load_online_deployment(str(tmp_path / "dep.yaml")).environment
    resolved = resolve(env)
    assert resolved.runtime_image and resolved.warnings == []
    specs = [(r.spec, Path(r.source).name, r.line) for r in resolved.requirements]
    # the runtime image stands for promptflow + promptflow-tools at pfmagic's pins
    assert [r.spec for r in resolved.requirements[:2]] == pinned_runtime()
    assert resolved.requirements[0].where == "runtime image"
    assert pinned_runtime()[0].startswith("promptflow==1.18.")
    assert specs[2] == ("text-unidecode==1.3", "requirements.txt", 2)
    assert resolved.requirements[2].where.endswith("requirements.txt:2")
    assert [Path(s).name for s in resolved.sources] == ["Dockerfile", "requirements.txt"]


def test_inherited_requirements_listed_once_and_named_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's context holds a copy of the flow's requirements.txt: each line once, named by
    the file it came first from, relative to the notebook's folder even in the router."""
    flow = tmp_path / "flow"
    shutil.copytree(FLOWS / "needs-pkg", flow)
    _context(tmp_path, SEED_DOCKERFILE, (flow / "requirements.txt").read_text() + "six\n")
    monkeypatch.chdir(tmp_path)
    env = Environment(build=BuildContext(path="image_build_with_reqirements"))
    resolved = resolve(env, flow)
    mine = [(r.spec, r.where) for r in resolved.requirements[2:]]
    assert mine == [
        ("text-unidecode==1.3", "image_build_with_reqirements/requirements.txt:2"),
        ("six", "image_build_with_reqirements/requirements.txt:3"),
    ]
    stored = resolved.to_json()  # kernel side, in the notebook's folder
    monkeypatch.chdir("/")  # the router's directory
    routed = Resolved.from_json(stored)
    assert [r.where for r in routed.requirements[2:]] == [w for _, w in mine]
    assert routed.key("x") == resolved.key("x")


def test_dockerfile_instructions_not_reproduced_are_warnings(tmp_path: Path) -> None:
    ctx = _context(
        tmp_path,
        "FROM python:3.11-slim\n"
        "WORKDIR /app\n"
        "COPY requirements.txt extra/ /app/deps/\n"
        "ENV FOO=bar\n"
        "RUN apt-get update && pip install --no-cache-dir -r deps/requirements.txt "
        "'tomli-w>=1' \\\n    six\n"
        "EXPOSE 8080\n",
    )
    (ctx / "extra").mkdir()
    resolved = resolve(Environment(build=BuildContext(path=str(ctx))))
    assert not resolved.runtime_image
    text = "\n".join(resolved.warnings)
    assert "Dockerfile:1: FROM python:3.11-slim is not reproduced locally" in text
    assert "Dockerfile:4: ENV is not reproduced locally" in text
    assert "Dockerfile:5: RUN apt-get update is not reproduced locally" in text
    assert "Dockerfile:7: EXPOSE is not reproduced locally" in text
    got = [(r.spec, Path(r.source).name, r.line) for r in resolved.requirements]
    assert got == [
        ("text-unidecode==1.3", "requirements.txt", 1),
        ("tomli-w>=1", "Dockerfile", 5),  # the continued RUN keeps its first line
        ("six", "Dockerfile", 5),
    ]


def test_pip_install_of_a_file_never_copied_names_the_line(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "FROM promptflow-runtime\nRUN pip install -r requirements.txt\n")
    with pytest.raises(PfError, match=r"Dockerfile:2: pip install -r requirements.txt: .*COPY"):
        resolve(Environment(build=BuildContext(path=str(ctx))))


def test_azureml_examples_conda_file() -> None:
    resolved = resolve(Environment(conda_file=str(CONDA)))
    assert resolved.python == "3.12"
    got = [(r.spec, r.line) for r in resolved.requirements]
    assert got == [
        ("azureml-inference-server-http==1.4.1", 11),
        ("inference-schema[numpy-support]", 12),
        ("joblib", 13),
    ]
    (warning,) = resolved.warnings
    assert "conda packages are not installed locally" in warning
    assert "numpy=2.3.1 (line 6)" in warning and "scipy=1.16.0 (line 9)" in warning
    assert "pip=" not in warning  # pip itself is not a package the flow needs


def test_conda_file_loaded_by_azure_ai_ml_keeps_its_lines(tmp_path: Path) -> None:
    shutil.copy(CONDA, tmp_path / "conda.yaml")
    (tmp_path / "dep.yaml").write_text(
        "name: blue\nendpoint_name: ep\nmodel: azureml:m:1\ninstance_type: Standard_DS3_v2\n"
        "environment:\n  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n"
        "  conda_file: conda.yaml\n"
    )
    env = load_online_deployment(str(tmp_path / "dep.yaml")).environment
    assert isinstance(env.conda_file, dict)  # azure-ai-ml inlines it; the path is kept aside
    resolved = resolve(env)
    assert resolved.runtime_image
    joblib = [r for r in resolved.requirements if r.spec == "joblib"][0]
    assert joblib.where.endswith("conda.yaml:13")


def test_flow_requirements(tmp_path: Path) -> None:
    resolved = resolve(None, FLOWS / "needs-pkg")
    (req,) = resolved.requirements
    assert req.spec == "text-unidecode==1.3" and req.line == 2
    assert resolved.requirement_file().endswith("needs-pkg/requirements.txt")
    flow = tmp_path / "flow"
    shutil.copytree(FLOWS / "needs-pkg", flow)
    (flow / "requirements.txt").unlink()
    with pytest.raises(PfError, match="python_requirements_txt 'requirements.txt' does not exist"):
        resolve(None, flow)
    # existing flows declare promptflow only: everything is in pfmagic's environment
    todo, satisfied = build.plan(resolve(None, HERE.parent / "notebooks/flows/basic-chat"))
    assert todo == [] and {s.split("==")[0] for s in satisfied} == {
        "promptflow",
        "promptflow-tools",
    }


def test_key_is_order_independent_and_follows_the_requirements() -> None:
    a = resolve(None, FLOWS / "needs-pkg")
    b = Resolved.from_json(a.to_json())
    assert a.key("x") == b.key("x")
    b.requirements.reverse()
    assert a.key("x") == b.key("x")
    b.requirements = b.requirements[:0]
    assert a.key("x") != b.key("x")


# -- real uv builds -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pfenvs")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed: connection refused


def test_build_layers_on_pfmagic_and_is_cached(envs: Path) -> None:
    resolved = resolve(None, FLOWS / "needs-pkg")
    lines: list[str] = []
    started = time.monotonic()
    first = build.ensure(resolved, envs, lines.append)
    assert first.installed == ("text-unidecode==1.3",) and time.monotonic() - started < 60
    assert any("text-unidecode==1.3" in line for line in lines)  # uv's own output
    probe = (
        "import text_unidecode, promptflow, pfmagic, sys;"
        "print(text_unidecode.__file__); print(promptflow.__file__); print(sys.prefix)"
    )
    out = subprocess.run([first.python, "-c", probe], capture_output=True, text=True, check=True)
    pkg, pf, prefix = out.stdout.split()
    assert pkg.startswith(str(first.path))  # the deployment's package, in its venv
    assert not pf.startswith(str(first.path))  # promptflow from pfmagic's environment
    assert prefix == str(first.path)
    # never in the kernel's environment
    with pytest.raises(ImportError):
        __import__("text_unidecode")
    again = build.ensure(Resolved.from_json(resolved.to_json()), envs, lines.append)
    assert again.cached and again.path == first.path
    listed = {e["key"]: e for e in build.list_envs(envs)}
    assert listed[first.key]["size"] > 10_000 and listed[first.key]["last_used"] > 0
    assert listed[first.key]["packages"] == ["text-unidecode==1.3"]


def test_broken_requirement_names_package_file_and_line(
    envs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as a Jupyter kernel may have it: no escapes
    req = tmp_path / "requirements.txt"
    req.write_text("text-unidecode==1.3\npfmagic-no-such-package-zz==0.1\n")
    resolved = Resolved()
    from pfmagic.environments.resolve import read_requirements

    resolved.requirements = read_requirements(req, resolved)
    log: list[str] = []
    started = time.monotonic()
    with pytest.raises(build.BuildFailure) as info:
        build.ensure(resolved, envs, log.append)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "\n" not in message and info.value.code == "ImageBuildFailure"
    assert "pfmagic-no-such-package-zz==0.1 (" in message and "requirements.txt:2)" in message
    assert "not found in the package registry" in "\n".join(log)  # the resolver's message
    assert "\x1b[" not in message + "".join(log)
    assert not [p for p in envs.iterdir() if p.name.startswith(f".{resolved.key()[:4]}")]


def test_offline_cached_builds_uncached_needs_network(
    envs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build.ensure(resolve(None, FLOWS / "needs-pkg"), envs, lambda _: None)  # in uv's cache now
    # no network: every connection (through a proxy on a closed port) is refused; uv's cache
    # is per index, so the index stays the same here
    closed = f"http://127.0.0.1:{_closed_port()}"
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, closed)
    monkeypatch.delenv("NO_PROXY", raising=False)
    fresh = tmp_path / "envs"  # no venv built yet: only uv's package cache can help
    log: list[str] = []
    built = build.ensure(resolve(None, FLOWS / "needs-pkg"), fresh, log.append)
    assert not built.cached and any("--offline" in line for line in log)
    assert "Connection refused" in "\n".join(log)  # it really had no network
    # a registry on a closed local port, and a package it never served: fails fast
    monkeypatch.setenv("UV_INDEX_URL", f"{closed}/simple")
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    req = tmp_path / "requirements.txt"
    req.write_text("pfmagic-never-downloaded-zz\n")
    resolved = Resolved()
    from pfmagic.environments.resolve import read_requirements

    resolved.requirements = read_requirements(req, resolved)
    started = time.monotonic()
    with pytest.raises(build.BuildFailure, match="needs network to install pfmagic-never"):
        build.ensure(resolved, fresh, lambda _: None)
    assert time.monotonic() - started < 20  # not a hang


def test_prune_keeps_what_is_in_use(envs: Path, tmp_path: Path) -> None:
    # its own environments, whatever ran before: one in use, one a stale copy under another key
    built = build.ensure(resolve(None, FLOWS / "needs-pkg"), envs, lambda _: None)
    root = tmp_path / "envs"
    shutil.copytree(envs, root, symlinks=True)
    stale = "0" * len(built.key)
    shutil.copytree(root / built.key, root / stale, symlinks=True)
    keys = [e["key"] for e in build.list_envs(root)]
    assert built.key in keys and stale in keys
    removed = build.prune(root, {built.key})
    assert stale in removed and built.key not in removed
    assert [e["key"] for e in build.list_envs(root)] == [built.key]
    assert not (root / stale).exists() and (root / built.key / "bin").is_dir()


# -- magics: --check-env before an Azure create, %pf_envs, %pf_logs --build -----------------
def test_check_env_stops_an_azure_create_in_seconds(ip: Any, arm: Any, tmp_path: Path) -> None:
    from IPython.core.error import UsageError
    from IPython.utils.capture import capture_output
    from test_azure_backend import DEPLOYMENT_YAML, ENDPOINT_YAML, make_backend

    from pfmagic.magics import session_of

    session_of(ip).use_backend(make_backend(arm, fill_prt_config=True))
    with capture_output():
        ip.run_cell_magic("pf_endpoint", "--create", ENDPOINT_YAML)
    ctx = _context(tmp_path, SEED_DOCKERFILE + "EXPOSE 8080\n", "pfmagic-no-such-package-zz\n")
    body = DEPLOYMENT_YAML.replace(
        "  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest\n",
        f"  build:\n    path: {ctx.name}\n    dockerfile_path: Dockerfile\n",
    )
    before = len(arm.state.log)
    started = time.monotonic()
    with capture_output() as out, pytest.raises(UsageError) as info:
        ip.run_cell_magic("pf_deployment", "--check-env --create", body)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "\n" not in message.strip() and "Traceback" not in message
    assert "pfmagic-no-such-package-zz" in message and "requirements.txt:1" in message
    assert "Dockerfile:4: EXPOSE is not reproduced locally" in out.stdout
    assert len(arm.state.log) == before  # Azure never heard of it
    # fixed: the check passes and the create goes to Azure with the build context
    (ctx / "requirements.txt").write_text("text-unidecode==1.3\n")
    # (the local ARM server has no datastore for azure-ai-ml's upload of the build context)
    with capture_output() as out, pytest.raises(UsageError, match="workspaceblobstore"):
        ip.run_cell_magic("pf_deployment", "--check-env --create", body)
    assert "environment check passed (built" in out.stdout
    assert len(arm.state.log) > before  # this time the create went on to Azure

    listing = ip.run_line_magic("pf_envs", "")
    assert "text-unidecode==1.3" in repr(listing) and "unused" in repr(listing)
    assert "<table>" in listing._repr_html_()
    pruned = ip.run_line_magic("pf_envs", "--prune")
    assert len(pruned.removed) == 1 and pruned.envs == []
    with pytest.raises(UsageError, match="--build: Azure keeps the image build log"):
        ip.run_line_magic("pf_logs", "ep blue --build")

"""Skips are only for what cannot exist here, each with a listed reason (tests/skip_policy.py).

The policy is enforced in every run by hooks in conftest.py; these tests check the hooks work
(in a fresh pytest run) and that no test module skips on a missing project module.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import skip_policy

TESTS = Path(__file__).parent

INNER = """
import pytest

def test_allowed():
    pytest.skip("needs root to act as another user")

@pytest.mark.skipif(True, reason="no Azure ML workspace/credential configured (see doc)")
def test_allowed_mark():
    pass

def test_unexplained():
    pytest.skip("flaky, skip for now")

@pytest.mark.skipif(True, reason="some new excuse")
def test_unexplained_mark():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_xfail_is_not_a_skip():
    assert False

def test_passes():
    pass
"""


def run_inner(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "skip_policy",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-rA",
            "-q",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(TESTS)},
    )


def test_unexplained_skips_fail_listed_ones_do_not(tmp_path: Path) -> None:
    done = run_inner(tmp_path, {"test_inner.py": INNER})
    out = done.stdout
    assert done.returncode == 1, out
    assert re.search(r"1 failed, 1 passed, 2 skipped, 1 xfailed, 1 error", out), out
    assert "FAILED test_inner.py::test_unexplained" in out
    assert "unexplained skip (add it to tests/skip_policy.py ALLOWED?): flaky, skip for now" in out
    assert "ERROR test_inner.py::test_unexplained_mark" in out and "some new excuse" in out
    assert re.search(r"SKIPPED \[1\] test_inner.py:\d+: needs root to act as another user", out)


def test_a_module_skipped_at_import_fails_collection(tmp_path: Path) -> None:
    module = 'import pytest\npytest.importorskip("pfmagic.no_such_module")\ndef test_x(): pass\n'
    done = run_inner(tmp_path, {"test_gone.py": module})
    assert done.returncode != 0 and "1 error" in done.stdout, done.stdout
    assert "unexplained skip" in done.stdout and "pfmagic.no_such_module" in done.stdout


def test_reasons_are_matched_by_prefix() -> None:
    assert skip_policy.allowed("needs root to act as another user")
    assert skip_policy.allowed("/usr/bin/chromium is missing: run .ci/browser-setup.sh")
    assert not skip_policy.allowed("could not import 'pfmagic.widgets.quota'")
    assert not skip_policy.allowed("")
    assert all(why for why in skip_policy.ALLOWED.values())  # each with its reason


def test_no_importorskip_of_the_project_or_its_required_dependencies() -> None:
    """A deleted pfmagic module (or ipywidgets, azure.ai.ml) must fail the run, not skip it."""
    offenders = []
    # every module, not only test_*.py: fixtures (tests/browser/lab_session.py) skip too.
    # playwright is in the test extra like the rest: only Chromium, a system binary, may skip
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == Path(__file__).name:  # its inner run skips on purpose
            continue
        for name in re.findall(r"importorskip\(\s*['\"]([^'\"]+)", path.read_text()):
            offenders.append(f"{path.relative_to(TESTS)}: {name}")
    assert not offenders

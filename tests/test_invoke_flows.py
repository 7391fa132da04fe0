"""Standard (non-chat) prompt flows from microsoft/promptflow's examples (tests/flows/
promptflow-examples/SOURCES.md), deployed on the local backend and invoked as a user types it:
the answer equals promptflow's own in-process run of the same flow on the same inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from pfmagic.chat import ChatNames, request_body

EXAMPLES = Path(__file__).parent / "flows" / "promptflow-examples"
FLOWS = {
    "ep-entity": "eval-entity-match-rate",
    "ep-grade": "eval-classification-accuracy",
    "ep-ifelse": "conditional-flow-for-if-else",
}

# three real deployments (promptflow start-up each): minutes on a loaded 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def in_process(runs: list[tuple[str, dict[str, Any], bool | None]]) -> list[Any]:
    """promptflow's own answers: ``load_flow(path)(**inputs)`` for each (flow, inputs, branch),
    in one child process (process-wide state; one promptflow import). ``branch`` fixes
    ``random.choice`` (the if-else flow's stand-in safety check) when not None."""
    code = (
        "import json, random, sys\nfrom promptflow.client import load_flow\nout = []\n"
        "for flow, inputs, branch in json.loads(sys.argv[1]):\n"
        "    if branch is not None:\n"
        "        random.choice = lambda seq, b=branch: b\n"
        "    out.append(dict(load_flow(flow)(**inputs)))\n"
        "print(json.dumps(out))\n"
    )
    spec = [(str(EXAMPLES / flow), inputs, branch) for flow, inputs, branch in runs]
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    from traitlets.config import Config

    from pfmagic.backends.local.control import shutdown_all
    from pfmagic.magics import session_of

    home = tmp_path_factory.mktemp("pfhome")
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.PfMagics.widgets = False
    config.PfMagics.home = str(home)
    ip = InteractiveShell.instance(config=config)
    ip.user_ns["__vsc_ipynb_file__"] = str(EXAMPLES / "nb.ipynb")
    ip.run_line_magic("load_ext", "pfmagic")
    try:
        for ep, flow in FLOWS.items():
            ip.run_cell_magic("pf_model", "--register", f"name: {flow}\npath: {flow}\n")
            ip.run_cell_magic("pf_endpoint", "--create", f"name: {ep}\nauth_mode: key\n")
            ip.run_cell_magic(
                "pf_deployment",
                "--create --all-traffic",
                f"name: blue\nendpoint_name: {ep}\nmodel: azureml:{flow}:1\n"
                "instance_type: Standard_DS3_v2\ninstance_count: 1\n",
            )
        yield ip
    finally:
        backend = session_of(ip).active_backend
        if backend is not None:
            backend.close()
        shutdown_all(home)
        ip.run_line_magic("unload_ext", "pfmagic")
        InteractiveShell.clear_instance()


CASES = [
    """ep-entity --input 'entities=["Finance Manager", "CEO", "Software Engineer"]'""",
    """ep-entity --input entities='["Finance Manager"]'""",
    'ep-entity -i entities=\'["cfo"]\' -i ground_truth="CFO, CEO"',
    "ep-entity",  # all defaults: what promptflow would use
    "ep-grade --input groundtruth=APP --input prediction=Channel",
    "ep-grade --input prediction=APP",
]


def _inputs(line: str) -> dict[str, Any]:
    """The inputs as a shell user means them (shlex words, JSON values), for the oracle."""
    import shlex

    words = shlex.split(line)[1:]
    out: dict[str, Any] = {}
    for i, word in enumerate(words):
        if i and words[i - 1] in ("--input", "-i"):
            name, _, value = word.partition("=")
            try:
                out[name] = json.loads(value)
            except ValueError:
                out[name] = value
    return out


def test_standard_flows_answer_as_promptflow(deployed: InteractiveShell) -> None:
    from pfmagic.magics import session_of

    expected = in_process([(FLOWS[line.split()[0]], _inputs(line), None) for line in CASES])
    for line, want in zip(CASES, expected, strict=True):
        reply = deployed.run_line_magic("pf_invoke", line)
        assert reply is not None, line
        assert reply.outputs == want, line
        assert session_of(deployed).histories.get(line.split()[0], []) == []  # no conversation


def test_entity_match_is_exact_with_the_list_given(deployed: InteractiveShell) -> None:
    reply = deployed.run_line_magic(
        "pf_invoke",
        """ep-entity --input 'entities=["Finance Manager", "CEO", "Software Engineer"]'""",
    )
    assert reply.outputs["match_cnt"]["exact_match"] == 1  # not the flow's defaults (0)


def test_free_text_goes_to_the_one_string_input(deployed: InteractiveShell) -> None:
    reply = deployed.run_line_magic("pf_invoke", "ep-ifelse What is Prompt flow?  # my note")
    runs = [(FLOWS["ep-ifelse"], {"question": "What is Prompt flow?"}, b) for b in (True, False)]
    answers = {out["answer"] for out in in_process(runs)}
    assert reply.outputs["answer"] in answers  # the flow picks a branch at random


def test_unknown_and_ambiguous_inputs_are_one_line_errors(deployed: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r"^the flow has no input 'entity' \(its inputs: "):
        deployed.run_line_magic("pf_invoke", "ep-entity --input entity=CEO")
    with pytest.raises(UsageError, match="^not a chat flow: give its inputs with --input"):
        deployed.run_line_magic("pf_invoke", "ep-grade is this right?")


def test_missing_required_input_is_named() -> None:
    names = ChatNames(
        declared={"text": {"type": "string"}, "n": {"type": "int", "default": 2}},
        chat=False,
        defaults_known=True,
    )
    assert request_body(names, None, [], 5, {"text": "hi"}) == {"text": "hi", "n": 2}
    with pytest.raises(Exception, match=r"^missing required input 'text' \(give it with --input"):
        request_body(names, None, [], 5, {"n": 3})

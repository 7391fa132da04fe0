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

pytestmark = pytest.mark.slow  # three real deployments (promptflow start-up each)


def in_process(flow: str, inputs: dict[str, Any], patch_random: bool | None = None) -> Any:
    """promptflow's own answer: ``load_flow(path)(**inputs)``, in a child (process-wide state)."""
    patch = (
        f"import random; random.choice = lambda seq: {patch_random!r}\n"
        if patch_random is not None
        else ""
    )
    code = (
        patch + "import json, sys\nfrom promptflow.client import load_flow\n"
        f"out = load_flow({str(EXAMPLES / flow)!r})(**json.loads(sys.argv[1]))\n"
        "print(json.dumps(dict(out)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
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
        session_of(ip)._backend.close()
        shutdown_all(home)
        ip.run_line_magic("unload_ext", "pfmagic")
        InteractiveShell.clear_instance()


@pytest.mark.parametrize(
    "line, inputs",
    [
        (
            """ep-entity --input 'entities=["Finance Manager", "CEO", "Software Engineer"]'""",
            {"entities": ["Finance Manager", "CEO", "Software Engineer"]},
        ),
        ("""ep-entity --input entities='["Finance Manager"]'""", {"entities": ["Finance Manager"]}),
        ('ep-entity -i entities=\'["cfo"]\' -i ground_truth="CFO, CEO"', None),
        ("ep-entity", None),  # all defaults: what promptflow would use
        ("ep-grade --input groundtruth=APP --input prediction=Channel", None),
        ("ep-grade --input prediction=APP", None),
    ],
)
def test_standard_flow_answers_as_promptflow(
    deployed: InteractiveShell, line: str, inputs: dict[str, Any] | None
) -> None:
    reply = deployed.run_line_magic("pf_invoke", line)
    if reply is None:  # "%pf_invoke ep-entity" alone is a history request on a chat flow
        pytest.fail("an inputs-only call returned nothing")
    endpoint = line.split()[0]
    sent = {k: v for k, v in (inputs or {}).items()}
    if inputs is None:  # the values pfmagic parsed are the ones promptflow must run on
        from pfmagic.chat import parse_inputs

        words = __import__("shlex").split(line)[1:]
        pairs = [w for i, w in enumerate(words) if i and words[i - 1] in ("--input", "-i")]
        sent = parse_inputs(pairs)
    assert reply.outputs == in_process(FLOWS[endpoint], sent)
    from pfmagic.magics import session_of

    assert session_of(deployed).histories.get(endpoint, []) == []  # not a conversation


def test_entity_match_is_exact_with_the_list_given(deployed: InteractiveShell) -> None:
    reply = deployed.run_line_magic(
        "pf_invoke",
        """ep-entity --input 'entities=["Finance Manager", "CEO", "Software Engineer"]'""",
    )
    assert reply.outputs["match_cnt"]["exact_match"] == 1  # not the flow's defaults (0)


def test_free_text_goes_to_the_one_string_input(deployed: InteractiveShell) -> None:
    reply = deployed.run_line_magic("pf_invoke", "ep-ifelse What is Prompt flow?  # my note")
    answers = {
        in_process(FLOWS["ep-ifelse"], {"question": "What is Prompt flow?"}, branch)["answer"]
        for branch in (True, False)
    }
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

"""JupyterLab 4 in Debian's Chromium, driven by Playwright: 01-deploy-local.ipynb, Run All once.

The server, browser and page helpers are ``conftest.py``'s. Checks on the run notebook: the
quota calculator renders and its vCPU count follows the slider, the deployment's progress view
reaches Succeeded, ``%pf_invoke --history`` shows the three turns; in the light and the dark
theme (JupyterLab's ``apputils:change-theme``), no visible text of pfmagic's outputs reads below
WCAG AA (4.5:1, computed colours against the effective background) and no label, button or
cell cuts its text (scrollWidth > clientWidth); the notebook as JupyterLab saves it, reopened
(trusted, a fresh kernel: no live widgets), shows no broken image and no widget placeholder, and
passes the same contrast and clipping checks in both themes.

Screenshots (``test-artifacts/browser/``, git-ignored): ``live-light.png``, ``live-dark.png``,
``reopened-light.png``, ``reopened-dark.png`` (the whole notebook each), and
``quota-after-slider.png``, ``deployment-progress.png`` (elements).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lab_session import ARTIFACTS, NOTEBOOKS, Lab, cell, lab_command, open_notebook, set_theme, shot
from page_checks import broken, clipped, contrast_failures, report, with_probe

NOTEBOOK = "01-deploy-local.ipynb"
SAVED = "01-deploy-local-saved.ipynb"
QUESTIONS = [
    "How do I create the blue deployment?",
    "And how long does it take?",
    "How much quota do I need for 10 instances?",
]
RUN_ALL_TIMEOUT_S = 150

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ran(lab: Lab, browser: Any) -> Iterator[Any]:
    """The notebook's page after Run All: every code cell ran, none failed."""
    # (screenshots are overwritten by name: the folder is shared with other browser modules)
    page = open_notebook(browser, lab, NOTEBOOK)
    set_theme(page, "light")
    started = time.monotonic()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    nb = json.loads((NOTEBOOKS / NOTEBOOK).read_text())
    count = sum(1 for c in nb["cells"] if c["cell_type"] == "code")
    assert page.locator(".jp-Notebook .jp-CodeCell").count() == count
    while True:
        texts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        done = sum(1 for t in texts if re.search(r"\[\d+\]", t))
        errors = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).filter(has_text=re.compile(r"^(Traceback|[A-Z]\w*(Error|Exception)\b)", re.M))
        if errors.count():
            shot(page, "99-error")
            pytest.fail("a cell failed in JupyterLab:\n" + errors.first.inner_text())
        if done == count and not any("*" in t for t in texts):
            break
        if time.monotonic() - started > RUN_ALL_TIMEOUT_S:
            shot(page, "99-timeout")
            pytest.fail(f"Run All did not finish in {RUN_ALL_TIMEOUT_S} s ({done}/{count} ran)")
        time.sleep(1)
    print(f"Run All took {time.monotonic() - started:.0f} s")
    yield page


def _vcpus(calc: Any) -> int:
    match = re.search(r"(\d+) vCPUs needed", calc.inner_text())
    assert match, calc.inner_text()
    return int(match.group(1))


def test_notebook_runs_in_jupyterlab(ran: Any) -> None:
    page = ran
    # 1. the deployment cell's quota calculator renders and follows its slider
    deploy = cell(page, "%%pf_deployment blue")
    deploy.scroll_into_view_if_needed()
    calc = (
        deploy.locator(".jp-OutputArea-output .widget-vbox")
        .filter(has=page.locator(".widget-slider"))
        .first
    )
    calc.wait_for()
    before = _vcpus(calc)
    slider = calc.locator(".widget-slider .widget-readout").first
    start = int(slider.inner_text())
    handle = calc.locator(".widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(4):
        handle.press("ArrowRight")
    instances = int(slider.inner_text())
    assert instances == start + 4, (start, instances)
    # the kernel recomputed the rule for the new count and redrew the calculator
    page.wait_for_function(
        "([el, n]) => el.innerText.includes(`ceil(1.2 × ${n})`)",
        arg=[calc.element_handle(), instances],
        timeout=15_000,
    )
    after = _vcpus(calc)
    assert after > before, (before, after)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    calc.screenshot(path=str(ARTIFACTS / "quota-after-slider.png"))

    # 2. the progress view reached Succeeded
    progress = deploy.locator(".jp-OutputArea").filter(has_text="Succeeded")
    assert progress.count(), deploy.inner_text()[-2000:]
    deploy.screenshot(path=str(ARTIFACTS / "deployment-progress.png"))

    # 3. the transcript shows three turns, each with its answer
    history = cell(page, "%pf_invoke --history")
    history.scroll_into_view_if_needed()
    text = history.locator(".jp-OutputArea").inner_text()
    for q in QUESTIONS:
        assert q in text, text
    assert "15 minutes" in text and "48 cores" in text, text
    print(f"vCPUs {before} -> {after}")


def _appearance(page: Any, name: str) -> list[str]:
    """Contrast and clipping in both themes, a whole-notebook screenshot each; the failures."""
    failures = []
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"{name}-{theme}", whole_notebook=True)
        low, cut = contrast_failures(page), clipped(page)
        assert low["checked"] > 50, low  # the checks saw the outputs
        print(f"{name}-{theme}: {low['checked']} texts, {cut['checked']} boxes checked")
        if low["bad"]:
            failures.append(f"{name}, {theme}: text below 4.5:1\n" + report(low["bad"]))
        if cut["bad"]:
            failures.append(f"{name}, {theme}: clipped text\n" + report(cut["bad"]))
    return failures


def test_checks_see_low_contrast_and_cut_labels(ran: Any) -> None:
    """The page checks report what they are for (so a clean result means something)."""
    grey = with_probe(
        ran, "<span style='color:#aaa;background:#fff'>faint text</span>", contrast_failures
    )
    assert [b["text"] for b in grey["bad"]] == ["faint text"], grey
    cut = with_probe(
        ran,
        "<label style='display:inline-block;width:40px;overflow:hidden;white-space:nowrap'>"
        "a label much wider than its box</label>",
        clipped,
    )
    assert [b["text"] for b in cut["bad"]] == ["a label much wider than its box"], cut


def test_outputs_read_in_light_and_dark(ran: Any) -> None:
    failures = _appearance(ran, "live")
    assert not failures, "\n\n".join(failures)


def test_saved_notebook_reopens_clean(lab: Lab, browser: Any, ran: Any) -> None:
    lab_command(ran, "docmanager:save")
    ran.locator(".jp-mod-dirty").first.wait_for(state="detached", timeout=15_000)
    shutil.copyfile(lab.root / NOTEBOOK, lab.root / SAVED)  # same content: still trusted
    page = open_notebook(browser, lab, SAVED)
    try:
        page.wait_for_timeout(2_000)  # the widget manager gives up on the missing models
        trusted = page.evaluate(
            "() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;"
            " return Array.from({length: cells.length}, (_, i) => cells.get(i))"
            ".filter(c => c.type === 'code').every(c => c.trusted); }"
        )
        assert trusted, "the saved notebook did not reopen as trusted"
        found = broken(page)
        problems = []
        if found["broken"]:
            problems.append("broken images:\n" + "\n".join(found["broken"]))
        # A finished progress view was swapped for its HTML face; only the interactive
        # widgets (quota calculators: slider, SKU list, Apply/Deploy) remain, and JupyterLab
        # shows ipywidgets' placeholder for them (no widget model without the kernel). Each
        # must carry its text/html face in the saved file (nbconvert, GitHub, nbviewer).
        saved = json.loads((lab.root / SAVED).read_text())
        widget_outputs = [
            {k: "".join(v) if isinstance(v, list) else v for k, v in o["data"].items()}
            for c in saved["cells"]
            for o in c.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        faceless = [d["text/plain"][:60] for d in widget_outputs if "text/html" not in d]
        if faceless:
            problems.append("widget outputs without a text/html face:\n" + "\n".join(faceless))
        not_interactive = [
            d["text/plain"][:60] for d in widget_outputs if not d["text/plain"].startswith("Quota")
        ]
        if not_interactive:
            problems.append("finished views left as widgets:\n" + "\n".join(not_interactive))
        if len(found["placeholders"]) != len(widget_outputs):
            problems.append("widget placeholders:\n" + "\n".join(found["placeholders"]))
        problems += _appearance(page, "reopened")
        assert not problems, "\n\n".join(problems)
    finally:
        page.close()

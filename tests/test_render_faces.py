"""Every rich output in its faces — widget (where one exists), text/html, text/plain — shows
the same facts; and every colour pfmagic emits reads at WCAG AA (4.5:1) in JupyterLab's light
and dark themes (the themes' own CSS variables, read from the installed JupyterLab).

Entities are azure-ai-ml's own; operations are real ``Operation``s whose workers emit events.
"""

from __future__ import annotations

import html
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml.entities import (
    EndpointAuthKeys,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
)

from pfmagic.backends.events import Operation
from pfmagic.render.chat import ChatReply, Transcript
from pfmagic.render.status import EndpointTable, deployment_status, endpoint_status
from pfmagic.render.style import BADGE_FG, NEUTRAL_BG, PAGES, STATE_BG, contrast
from pfmagic.skus import check_quota
from pfmagic.widgets import track
from pfmagic.widgets.progress import ProgressView
from pfmagic.widgets.quota import QuotaCalculator
from pfmagic.widgets.text import elapsed, quota_text

URI = "http://127.0.0.1:5123/score"
THEMES = Path(sys.prefix) / "share/jupyter/lab/themes/@jupyterlab"


def shown(markup: str) -> str:
    """What a reader sees of an HTML face: tags dropped, entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def folded(text: str) -> str:
    return " ".join(text.split())


def both(facts: list[str], text: str, markup: str) -> None:
    for fact in facts:
        assert fact in folded(text), (fact, text)
        assert fact in shown(markup), (fact, shown(markup))


def endpoint(traffic: dict[str, int], state: str = "Succeeded") -> ManagedOnlineEndpoint:
    ep = ManagedOnlineEndpoint(name="chat-ep", traffic=traffic)
    ep._provisioning_state = state  # read-only property; backends set the field
    ep._scoring_uri = URI
    return ep


def deployment(name: str, state: str) -> ManagedOnlineDeployment:
    dep = ManagedOnlineDeployment(
        name=name, endpoint_name="chat-ep", instance_type="Standard_DS3_v2", instance_count=2
    )
    dep._provisioning_state = state
    return dep


# -- the three faces ------------------------------------------------------------------------
def test_status_and_traffic_faces_match() -> None:
    ep = endpoint_status(endpoint({"blue": 90, "green": 10}), before={"blue": 100, "green": 0})
    markup = ep._repr_html_()
    both(["chat-ep", "Succeeded", URI, "blue=100% → 90%, green=0% → 10%"], repr(ep), markup)
    assert "split        [██████████████████▓▓]" in repr(ep)  # the text bar: 18 + 2 cells
    assert "width:90%" in markup and "width:10%" in markup and "<script" not in markup
    assert "text-align:right" not in markup and markup.count("text-align:left") >= 10
    assert f"background:{STATE_BG['succeeded']};color:{BADGE_FG}" in markup

    unchanged = endpoint_status(endpoint({"blue": 100}))
    assert "→" not in repr(unchanged) + unchanged._repr_html_() and "split" not in repr(unchanged)

    dep = deployment_status(deployment("green", "Failed"), {"blue": 90, "green": 10})
    both(["chat-ep/green", "Failed", "2 × Standard_DS3_v2", "10%"], repr(dep), dep._repr_html_())
    assert f"background:{STATE_BG['failed']}" in dep._repr_html_()


def test_endpoints_table_shows_a_failed_deployment() -> None:
    table = EndpointTable(
        [endpoint({"blue": 100}, "Updating")],
        {"chat-ep": [deployment("blue", "Succeeded"), deployment("green", "Failed")]},
    )
    markup = table._repr_html_()
    both(["chat-ep", "Updating", URI, "blue=100%"], repr(table), markup)
    assert "blue (Succeeded), green (Failed)" in repr(table)
    assert "blue Succeeded green Failed" in shown(markup)
    for state in ("failed", "succeeded", "updating"):
        assert f"background:{STATE_BG[state]}" in markup
    assert "text-align:right" not in markup


def test_chat_keeps_markdown_and_non_ascii() -> None:
    answer = "Two sizes fit:\n• 2 × DS3 — 8 vCPUs\n• 1 × E16 (16 vCPUs)\nfirst line\nsecond line"
    reply = ChatReply(
        endpoint="chat-ep",
        question="Which size? ×",
        outputs={"answer": answer},
        status=200,
        deployment="blue",
        latency_ms=420,
        chat_output="answer",
    )
    markup = reply._repr_html_()
    both(
        ["2 × DS3 — 8 vCPUs", "1 × E16 (16 vCPUs)", "Which size? ×", "blue", "420 ms"],
        repr(reply),
        markup,
    )
    assert "<li>2 × DS3 — 8 vCPUs</li>" in markup and "<li>1 × E16 (16 vCPUs)" in markup
    assert re.search(r"first line<br\s*/?>\s*second line", markup)  # not merged into one line
    assert "2 × DS3 — 8 vCPUs\n• 1 × E16" in repr(reply)  # the text face keeps the answer as is
    transcript = Transcript(
        "chat-ep",
        [{"inputs": {"q": "Which size? ×"}, "outputs": {"a": answer}, "meta": reply.meta}],
    )
    both(["2 × DS3", "Which size? ×"], repr(transcript), transcript._repr_html_())


class Backend:
    """The three reads a progress view makes after an operation."""

    def __init__(self) -> None:
        self.logs = "booting\nloading flow\nready"

    def get_endpoint(self, name: str) -> ManagedOnlineEndpoint:
        return endpoint({"blue": 100})

    def get_keys(self, name: str) -> EndpointAuthKeys:
        return EndpointAuthKeys(primary_key="k" * 44, secondary_key="s" * 44)

    def get_logs(self, endpoint: str, deployment: str, lines: int = 100, **_: Any) -> str:
        return self.logs


def test_progress_final_state_faces_match() -> None:
    gate, reached = threading.Event(), threading.Event()

    def work(op: Operation) -> Any:
        op.emit("endpoint", "Running", "starting")
        op.emit("endpoint", "Succeeded", f"listening on {URI}")
        op.emit(
            "deployment",
            "Running",
            "starting 1 instance",
            provisioning_state="Creating",
            log_tail=("booting", "loading flow"),
        )
        reached.set()
        gate.wait(10)
        op.emit("deployment", "Succeeded", "1/1 instances ready", provisioning_state="Succeeded")
        return deployment("blue", "Succeeded")

    op = Operation("deploy chat-ep/blue", ("endpoint", "deployment"), work, start=False)
    op.target = ("chat-ep", "blue")
    view = ProgressView(op, backend=Backend(), tick=0.05, log_every=60)
    op.start()
    assert reached.wait(5)
    # while it waits, both faces say for what
    assert "waiting for deployment: starting 1 instance" in view.text()
    assert "waiting for deployment: starting 1 instance" in shown(view.title.value)
    assert "[Creating]" in shown(view.stages_box.value) and "loading flow" in view.logs_box.value
    gate.set()
    assert view.wait(5) and view.state == "Succeeded"

    widget = shown(view.title.value + view.stages_box.value + view.result_box.value)
    text = view.text()
    plain = track.summary(op, view.tracker, Backend())  # the printer's final block
    for face in (widget, folded(text), folded(plain)):
        assert "Succeeded" in face and "1/1 instances ready" in face and "chat-ep/blue" in face
        assert face.count(URI) == 1, face  # once: the endpoint stage already says it
        assert not re.search(r"(?<![\d.])0s\b", face), face  # sub-second: 0.0s, not 0s
    assert re.search(r"endpoint\s+Succeeded\s+0\.\d+s", text)
    assert view.logs_box.value == "" and "booting" not in text  # no stale log tail


def test_delete_does_not_read_succeeded_deleting() -> None:
    def work(op: Operation) -> None:
        op.emit("delete", "Running", "deleting chat-ep", provisioning_state="Deleting")
        op.emit("delete", "Succeeded", "deleted", provisioning_state="Deleting")

    op = Operation("delete endpoint chat-ep", ("delete",), work, start=False)
    view = ProgressView(op, tick=0.05)
    lines: list[str] = []
    printer = track.TextProgress(op, write=lines.append)
    printer.begin()
    op.start()
    assert view.wait(5) and printer.pump(timeout=5)
    faces = [shown(view.stages_box.value), view.text(), "\n".join(lines)]
    assert "[Deleting]" in "\n".join(lines)  # while running, the state is worth saying
    assert all("Succeeded [Deleting]" not in face for face in faces), faces


def test_elapsed_shows_tenths_below_ten_seconds() -> None:
    assert [elapsed(s) for s in (0.04, 0.4, 9.94, 12.7, 125)] == [
        "0.0s",
        "0.4s",
        "9.9s",
        "12s",
        "125s",
    ]


def test_quota_faces_match() -> None:
    dep = deployment("blue", "Succeeded")
    calc = QuotaCalculator(dep)
    calc.picker.value = "Standard_E16s_v3"
    calc.slider.value = 3
    widget = shown(calc.sku_box.value + calc.formula_box.value + calc.result_box.value)
    text = calc.text()
    check = check_quota("Standard_E16s_v3", 3)
    plain = quota_text(check, title="Quota for blue")
    assert text == plain  # the widget's text/plain is the text block
    for fact in [f"{check.needed} vCPUs", "16 vCPU", check.formula, check.message]:
        assert fact in widget and fact in text, fact


# -- contrast ----------------------------------------------------------------------------------
def _theme(name: str) -> dict[str, str]:
    css = (THEMES / f"theme-{name}-extension" / "index.css").read_text()
    return dict(re.findall(r"(--[\w-]+):([^;}]+)", css))


def _rgb(value: str, theme: dict[str, str], under: tuple[float, ...] | None = None) -> str:
    """A CSS colour (var() with fallback, #hex, white, rgba over ``under``) as #rrggbb."""
    value = value.strip()
    m = re.fullmatch(r"var\((--[\w-]+)(?:,(.*))?\)", value)
    if m:
        return _rgb(theme.get(m[1]) or m[2], theme, under)
    if value in ("white", "black"):
        return "#ffffff" if value == "white" else "#000000"
    m = re.fullmatch(r"rgba?\(([\d.]+),([\d.]+),([\d.]+)(?:,([\d.]+))?\)", value.replace(" ", ""))
    if m:
        alpha = float(m[4] or 1)
        base = under or (255, 255, 255)
        mixed = [round(float(m[i + 1]) * alpha + base[i] * (1 - alpha)) for i in range(3)]
        return "#" + "".join(f"{c:02x}" for c in mixed)
    if len(value) == 4:
        value = "#" + "".join(ch * 2 for ch in value[1:])
    return value.lower()


def _outputs() -> str:
    ep = endpoint_status(endpoint({"blue": 90, "green": 10}), before={"blue": 100, "green": 0})
    table = EndpointTable(
        [endpoint({"blue": 100}, "Creating")], {"chat-ep": [deployment("g", "Failed")]}
    )
    reply = ChatReply("chat-ep", "q", {"a": "• x"}, 200, "blue", 5.0, chat_output="a")
    calc = QuotaCalculator(deployment("blue", "Succeeded"))
    return ep._repr_html_() + table._repr_html_() + reply._repr_html_() + calc.result_box.value


def test_state_badges_read_in_any_theme() -> None:
    for bg in [*STATE_BG.values(), NEUTRAL_BG]:
        assert contrast(BADGE_FG, bg) >= 4.5, bg
    markup = _outputs()
    pairs = re.findall(r"background:(#[0-9a-f]{6});color:(#[0-9a-f]{6})", markup)
    assert len(pairs) >= 4
    for bg, fg in pairs:
        assert contrast(fg, bg) >= 4.5, (fg, bg)
    # no text colour of its own on the page's background (none reaches 4.5:1 on both #fff and #111)
    styles = re.findall(r"style='([^']*)'|style=\"([^\"]*)\"", markup)
    for style in ("".join(s) for s in styles):
        if re.search(r"(^|;)color:", style) and "background:" not in style:
            color = re.search(r"(?:^|;)color:([^;]+)", style)[1]
            for page in PAGES.values():
                assert contrast(_rgb(color, {}), page) >= 4.5, (style, page)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_chat_bubbles_read_and_stand_out(theme: str) -> None:
    from pfmagic.render import chat

    variables = _theme(theme)
    page = _rgb("var(--jp-layout-color0)", variables)
    assert page == PAGES[theme]
    for variables_here in (variables, {}):  # JupyterLab, then GitHub / nbviewer fallbacks
        style = dict(
            part.split(":", 1) for part in chat._BOT.split(";") if part.startswith(("bac", "col"))
        )
        bg = _rgb(style["background"], variables_here)
        rgb = tuple(int(bg[i : i + 2], 16) for i in (1, 3, 5))
        fg = _rgb(style["color"], variables_here, rgb)
        assert contrast(fg, bg) >= 4.5, (theme, fg, bg)
    bubble = _rgb("var(--jp-layout-color2)", variables)
    # the bubble is not the page colour (#eee on #fff, #424242 on #111), and has a border
    assert contrast(bubble, page) >= 1.15, (bubble, page)
    assert "border:1px solid" in chat._BOT


def test_paths_are_shown_relative_to_pfmagic_home_or_the_user_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved notebook shows `$PFMAGIC_HOME/...` or `~/...`, not the /tmp folder of its run."""
    from pfmagic.backends.local.backend import LocalBackend
    from pfmagic.render.paths import shown

    home = tmp_path / "pfhome"
    monkeypatch.setenv("PFMAGIC_HOME", str(home))
    assert shown(home) == "$PFMAGIC_HOME"
    assert shown(home / "envs") == "$PFMAGIC_HOME/envs"
    assert shown(str(home) + "-other") == str(home) + "-other"  # a sibling is not inside
    assert shown(Path.home() / "x" / "y") == "~/x/y"
    assert "state in $PFMAGIC_HOME" in LocalBackend(home=str(home), prewarm=False).describe()
    monkeypatch.delenv("PFMAGIC_HOME")
    assert shown(home) == str(home)

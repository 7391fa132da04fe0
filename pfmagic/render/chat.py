"""Chat display objects: one reply, the live view of a streaming reply, a whole transcript.

Each has ``_repr_html_`` (answers rendered as Markdown with raw HTML escaped) and a plain-text
``__repr__`` for terminals and saved notebooks. Nothing here holds a key or token.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

# Answer bubbles take JupyterLab's --jp-layout-color2 (#eee light, #424242 dark: distinct from
# the page in both) with its text colour; the pair falls back together (#eee / #1f1f1f) where
# JupyterLab's variables are missing (GitHub, nbviewer), so a dark page still reads. Questions
# sit on the page itself, marked by a blue border. The tag is not greyed: #777 is 4.48:1 on
# white and lower on dark.
_BOX = "font-family:var(--jp-content-font-family,sans-serif);line-height:1.45;max-width:60em"
_BUBBLE = "margin:4px 0;padding:6px 10px;border-radius:8px;border:1px solid "
_USER = _BUBBLE + "var(--jp-brand-color2,#64b5f6)"
_BOT = (
    _BUBBLE + "var(--jp-border-color1,#bdbdbd);background:var(--jp-layout-color2,#eeeeee);"
    "color:var(--jp-content-font-color1,#1f1f1f)"
)
_TAG = "font-size:85%;font-style:italic"
# "•" / "·" / "–" bullets (common in model answers) are not Markdown list markers
_BULLET = re.compile(r"(?m)^(\s*)[•·●▪–] ")


def markdown_html(text: str) -> str:
    """Markdown → HTML with raw HTML escaped and harmful links dropped (mistune, else <pre>)."""
    try:
        import mistune
    except ImportError:  # mistune ships with nbconvert; without it show the text as is
        return f'<div style="white-space:pre-wrap">{html.escape(text)}</div>'
    # hard_wrap: a single newline in an answer is a line break, not a space
    render = mistune.create_markdown(
        escape=True, hard_wrap=True, plugins=["strikethrough", "table"]
    )
    return str(render(_BULLET.sub(r"\1* ", text)))


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "?"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _text(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, indent=2, default=str)
    )


def _tag(meta: dict[str, Any]) -> str:
    parts = [meta.get("deployment") or "?", format_ms(meta.get("latency_ms"))]
    if meta.get("streamed"):
        parts.append("streamed")
    return " · ".join(parts)


def _turn_html(
    question: str | None, answer: Any, meta: dict[str, Any], others: dict[str, Any] | None = None
) -> str:
    parts = []
    if question is not None:
        parts.append(
            f'<div style="{_USER}"><b>You</b><div style="white-space:pre-wrap">'
            f"{html.escape(question)}</div></div>"
        )
    body = (
        markdown_html(answer)
        if isinstance(answer, str)
        else (f"<pre>{html.escape(_text(answer))}</pre>")
    )
    parts.append(
        f'<div style="{_BOT}"><b>Assistant</b> <span style="{_TAG}">'
        f"{html.escape(_tag(meta))}</span>{body}</div>"
    )
    if others:
        names = ", ".join(others)
        parts.append(
            f'<details style="margin:0 10px"><summary style="{_TAG}">other outputs '
            f"({html.escape(names)})</summary><pre>"
            f"{html.escape(_text(others))}</pre></details>"
        )
    return "".join(parts)


def _turn_text(
    question: str | None, answer: Any, meta: dict[str, Any], others: dict[str, Any] | None = None
) -> str:
    lines = []
    if question is not None:
        lines.append("You: " + question)
    lines.append(f"Assistant [{_tag(meta)}]: " + _text(answer))
    for name, value in (others or {}).items():
        lines.append(f"  {name}: " + _text(value).replace("\n", "\n    "))
    return "\n".join(lines)


@dataclass
class ChatReply:
    """What ``r = %pf_invoke …`` returns: the reply of one turn and how it was served."""

    endpoint: str
    question: str | None
    outputs: Any
    status: int
    deployment: str | None = None
    latency_ms: float = 0.0
    request_id: str | None = None
    streamed: bool = False
    first_chunk_ms: float | None = None
    chat_output: str | None = None
    raw: bool = False
    chunks: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def answer(self) -> Any:
        """The chat output's value (None when the flow has no such output)."""
        if isinstance(self.outputs, dict) and self.chat_output in self.outputs:
            return self.outputs[self.chat_output]
        return None

    @property
    def other_outputs(self) -> dict[str, Any]:
        if not isinstance(self.outputs, dict):
            return {}
        return {k: v for k, v in self.outputs.items() if k != self.chat_output}

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "latency_ms": self.latency_ms,
            "streamed": self.streamed,
            "status": self.status,
            "request_id": self.request_id,
        }

    def _shows_raw(self) -> bool:
        return self.raw or self.answer is None

    def _raw_header(self) -> str:
        return f"{self.endpoint} → {self.status} [{_tag(self.meta)}]"

    def __repr__(self) -> str:
        if self._shows_raw():
            return self._raw_header() + "\n" + _text(self.outputs)
        return _turn_text(self.question, self.answer, self.meta, self.other_outputs)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        if self._shows_raw():
            return (
                f'<div style="{_BOX}"><span style="{_TAG}">'
                f"{html.escape(self._raw_header())}</span>"
                f"<pre>{html.escape(_text(self.outputs))}</pre></div>"
            )
        return (
            f'<div style="{_BOX}">'
            + _turn_html(self.question, self.answer, self.meta, self.other_outputs)
            + "</div>"
        )


@dataclass
class StreamingView:
    """Live view of a reply while its chunks arrive (updated through a display handle)."""

    question: str | None
    chat_output: str | None
    text: str = ""
    others: dict[str, Any] = field(default_factory=dict)

    def add(self, event: dict[str, Any]) -> str:
        """Record one SSE event; returns the new answer text it carried."""
        piece = ""
        for name, value in event.items():
            if name == self.chat_output and isinstance(value, str):
                piece += value
            elif name not in self.others:
                self.others[name] = value
        self.text += piece
        return piece

    def __repr__(self) -> str:
        return _turn_text(self.question, self.text + " …", {"deployment": "streaming"})

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return (
            f'<div style="{_BOX}">'
            + _turn_html(
                self.question, self.text + " …", {"deployment": "streaming", "latency_ms": None}
            )
            + "</div>"
        )


@dataclass
class Transcript:
    """The conversation with one endpoint (``%pf_invoke --history``)."""

    endpoint: str
    turns: list[dict[str, Any]]

    def _parts(self, turn: dict[str, Any]) -> tuple[str | None, Any, dict[str, Any]]:
        question = next(iter(turn["inputs"].values()), None)
        answer = next(iter(turn["outputs"].values()), None)
        return question, answer, turn.get("meta", {})

    def __repr__(self) -> str:
        if not self.turns:
            return f"{self.endpoint}: no conversation yet"
        head = f"{self.endpoint}: {len(self.turns)} turn(s)"
        return "\n\n".join([head] + [_turn_text(*self._parts(t)) for t in self.turns])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        head = f'<div style="{_TAG}">{html.escape(self.endpoint)}: {len(self.turns)} turn(s)</div>'
        return (
            f'<div style="{_BOX}">'
            + head
            + "".join(_turn_html(*self._parts(t)) for t in self.turns)
            + "</div>"
        )

    def __len__(self) -> int:
        return len(self.turns)

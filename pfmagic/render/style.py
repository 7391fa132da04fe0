"""State colours shared by the status tables and the chat view, and the WCAG contrast check.

A state is drawn as a badge: white text on a saturated background, so its contrast does not
depend on the theme (no single text colour reaches 4.5:1 on both #fff and JupyterLab dark's
#111). Inline styles only: the HTML must read the same in a saved notebook, on GitHub and in
nbconvert, where no JavaScript or notebook CSS runs.
"""

from __future__ import annotations

import html

# studio's families: green succeeded, red failed, blue in progress, grey the rest
STATE_BG = {
    "succeeded": "#107c10",
    "failed": "#c50f1f",
    "canceled": "#8a5a00",
    "creating": "#0f6cbd",
    "updating": "#0f6cbd",
    "deleting": "#0f6cbd",
    "running": "#0f6cbd",
    "inprogress": "#0f6cbd",
    # quota verdicts
    "fits": "#107c10",
    "short": "#c50f1f",
    "unknown": "#8a5a00",
}
NEUTRAL_BG = "#666666"
BADGE_FG = "#ffffff"
# JupyterLab's page backgrounds (light: --jp-layout-color0 #fff, dark: #111)
PAGES = {"light": "#ffffff", "dark": "#111111"}


def state_bg(state: str | None) -> str:
    return STATE_BG.get(str(state or "").lower(), NEUTRAL_BG)


def badge(state: str | None, label: str | None = None) -> str:
    """``label`` (default ``state``) as an inline HTML badge: white on the state's colour."""
    text = label if label is not None else str(state or "?")
    return (
        f"<span style='background:{state_bg(state)};color:{BADGE_FG};padding:0 .45em;"
        f"border-radius:3px;white-space:nowrap'>{html.escape(text)}</span>"
    )


def _luminance(color: str) -> float:
    c = color.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    channels = [int(c[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [ch / 12.92 if ch <= 0.04045 else ((ch + 0.055) / 1.055) ** 2.4 for ch in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1..21)."""
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)

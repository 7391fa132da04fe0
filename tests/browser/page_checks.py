"""Checks measured in the page: WCAG contrast, clipped labels, broken images and widget
placeholders in a notebook's rich outputs (pfmagic's widgets and HTML outputs).

Each check runs in Chromium over the rendered DOM and returns the offending elements with their
text, so an assertion message says what to fix.
"""

from __future__ import annotations

from typing import Any

# The outputs pfmagic draws: HTML (tables, badges, chat) and widgets.
# (ipywidgets' renderer sets no data-mime-type: a widget output is one holding a widget view)
OUTPUTS = (
    ".jp-OutputArea-output[data-mime-type='text/html'],"
    ".jp-OutputArea-output:has(> .jupyter-widgets), .jp-OutputArea-output.jupyter-widgets"
)
AA = 4.5

_CONTRAST_JS = r"""
([selector, minimum]) => {
  const ctx = document.createElement('canvas').getContext('2d');
  const rgba = (css) => {  // any computed colour -> [r, g, b, a] (canvas normalises it)
    ctx.fillStyle = '#000'; ctx.fillStyle = css;
    const v = ctx.fillStyle;
    if (v.startsWith('#')) return [1, 3, 5].map(i => parseInt(v.slice(i, i + 2), 16)).concat([1]);
    const m = v.match(/rgba?\(([^)]+)\)/);
    const p = m[1].split(',').map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]))
    .concat([1]);
  const lum = (c) => {
    const lin = c.slice(0, 3).map(v => {
      v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  // effective background: composite the ancestors' background colours from the element up
  // to the first opaque one (the page's colour under all of them)
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage && s.backgroundImage !== 'none') return null;  // gradient: unknown
      const c = rgba(s.backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const seen = new Set();
  const bad = [];
  let checked = 0;
  const check = (el, text) => {
    if (seen.has(el)) return;
    seen.add(el);
    if (el.closest(':disabled, [aria-disabled="true"], .mod-disabled')) return;  // WCAG: exempt
    const s = getComputedStyle(el);
    if (s.visibility !== 'visible' || !el.getClientRects().length) return;
    const bg = background(el);
    if (!bg) return;
    const fg = over(rgba(s.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    checked += 1;
    if (ratio < minimum) bad.push({
      text: text.trim().slice(0, 60), ratio: Math.round(ratio * 100) / 100,
      color: s.color, background: 'rgb(' + bg.slice(0, 3).map(Math.round).join(', ') + ')',
      element: el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
        ? '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : ''),
    });
  };
  for (const out of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.textContent.trim() && n.parentElement) check(n.parentElement, n.textContent);
    }
    // form controls draw their value, not a text node
    for (const el of out.querySelectorAll('select, input[type=text], input[type=number], textarea'))
      if (el.value) check(el, el.value);
  }
  return {checked, bad};
}
"""

_CLIPPED_JS = r"""
(selector) => {
  // labels, buttons, readouts and table cells, and any box that hides its overflow
  const named = 'label, button, select, td, th, summary, .widget-label, .widget-readout, '
    + '.widget-html-content, .widget-inline-hbox';
  const bad = [];
  let checked = 0;
  for (const out of document.querySelectorAll(selector)) {
    for (const el of out.querySelectorAll('*')) {
      if (!el.getClientRects().length || !(el.value || el.textContent).trim()) continue;
      if (!el.clientWidth) continue;  // inline: sized by its text
      const s = getComputedStyle(el);
      if (['auto', 'scroll'].includes(s.overflowX)) continue;  // scrolls: shows all of it
      const hides = ['hidden', 'clip'].includes(s.overflowX) || s.textOverflow === 'ellipsis';
      if (!hides && !el.matches(named)) continue;
      checked += 1;
      if (el.scrollWidth > el.clientWidth + 1) bad.push({
        text: (el.value || el.textContent).trim().slice(0, 60),
        scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
        element: el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className
          ? '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : ''),
      });
    }
  }
  return {checked, bad};
}
"""

_BROKEN_JS = r"""
() => {
  const outputs = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')];
  const images = outputs.flatMap(o => [...o.querySelectorAll('img')]);
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => (i.getAttribute('src') || '').slice(0, 80));
  const placeholders = outputs.filter(o => /^(Loading widget\.\.\.|Error displaying widget)/
    .test(o.textContent.trim())).map(o => {
      const c = o.closest('.jp-CodeCell');
      const src = c && c.querySelector('.jp-InputArea .cm-content');
      return (src ? src.textContent.slice(0, 50) : '?') + ' -> ' + o.textContent.trim();
    });
  const widgets = document.querySelectorAll('.jp-Notebook .jp-OutputArea-output .jupyter-widgets')
    .length;
  return {images: images.length, broken, placeholders, widgets};
}
"""


def contrast_failures(page: Any, minimum: float = AA) -> dict[str, Any]:
    """Visible text in pfmagic outputs below ``minimum``: foreground vs effective background."""
    return page.evaluate(_CONTRAST_JS, [OUTPUTS, minimum])


def clipped(page: Any) -> dict[str, Any]:
    """Elements in pfmagic outputs that cut their text: scrollWidth > clientWidth + 1 px."""
    return page.evaluate(_CLIPPED_JS, OUTPUTS)


def broken(page: Any) -> dict[str, Any]:
    """Images that did not load and widget placeholders left in the notebook's outputs."""
    return page.evaluate(_BROKEN_JS)


_PROBE_JS = r"""
(html) => {
  const probe = document.createElement('div');
  probe.className = 'jp-OutputArea-output pfm-probe';
  probe.dataset.mimeType = 'text/html';
  probe.innerHTML = html;
  (document.querySelector('.jp-Notebook') || document.body).appendChild(probe);
}
"""


def with_probe(page: Any, markup: str, check: Any) -> dict[str, Any]:
    """``check(page)`` with ``markup`` added as one more HTML output (then removed): shows
    that a check reports what it should (e.g. grey on white, a cut label)."""
    page.evaluate(_PROBE_JS, markup)
    try:
        return check(page)
    finally:
        page.evaluate("() => document.querySelectorAll('.pfm-probe').forEach(e => e.remove())")


def report(items: list[dict[str, Any]], limit: int = 25) -> str:
    lines = [", ".join(f"{k}={v!r}" for k, v in item.items()) for item in items[:limit]]
    more = f"\n… and {len(items) - limit} more" if len(items) > limit else ""
    return "\n".join(lines) + more

"""Widgets that carry their own plain-text and HTML renderings.

A widget's default ``text/plain`` is a truncated ``VBox(children=…)`` repr; saved notebooks,
nbval and terminals show that. Boxes here put their ``text()`` there instead (tqdm does the
same with its text meter), and their ``html()`` in ``text/html`` for nbconvert, GitHub and
nbviewer. JupyterLab always prefers the widget view, and a reopened notebook has no widget
model for it ("Loading widget..."), so a view whose work is over is swapped for its
``static_bundle()`` (``widgets.run``): the saved notebook then shows HTML, not a placeholder.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w


class TextTwinBox(w.VBox):
    """A ``VBox`` whose ``repr`` and ``text/plain`` are ``self.text()``, ``text/html``
    ``self.html()`` (when it has one)."""

    def text(self) -> str:
        raise NotImplementedError

    def html(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) or data
        data["text/plain"] = self.text()
        face = self.html()
        if face is not None:
            data["text/html"] = face
        return bundle

    def static_bundle(self) -> dict[str, str]:
        """The faces without the widget: what a finished view leaves in the notebook."""
        face = self.html()
        if face is None:
            face = f"<pre>{html.escape(self.text())}</pre>"
        return {"text/html": face, "text/plain": self.text()}

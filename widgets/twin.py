"""Widgets that carry their own plain-text rendering.

A widget's default ``text/plain`` is a truncated ``VBox(children=…)`` repr; saved notebooks,
nbval and terminals show that. Boxes here put their ``text()`` there instead (tqdm does the
same with its text meter).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w


class TextTwinBox(w.VBox):
    """A ``VBox`` whose ``repr`` and ``text/plain`` are ``self.text()``."""

    def text(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) or data
        data["text/plain"] = self.text()
        return bundle

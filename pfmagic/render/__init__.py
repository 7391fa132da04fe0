"""Display objects: each has ``_repr_html_`` for notebooks and a plain-text ``__repr__``.

Secrets are masked everywhere (``pfmagic.render.mask``). Modules are imported where used, so
``%load_ext pfmagic`` stays light.
"""

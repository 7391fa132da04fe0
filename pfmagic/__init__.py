"""pfmagic: deploy and try prompt flows on online endpoints from Jupyter cells.

``%load_ext pfmagic`` registers the magics. Nothing heavy (azure.ai.ml, promptflow) is
imported here: a background thread warms azure.ai.ml up so the first YAML cell is fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own signature
    from pfmagic import lazy_imports
    from pfmagic.magics import register

    lazy_imports.defer()  # before the warm-up imports azure.ai.ml: ~4 s of its import
    lazy_imports.defer_package_init()  # its MLClient half (~1.3 s) waits for the first use

    register(ipython)


def unload_ipython_extension(ipython) -> None:  # noqa: ANN001
    from pfmagic.magics import unregister

    unregister(ipython)

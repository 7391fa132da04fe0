"""IPython wiring: one module per family of magics, all sharing one ``Session``.

- ``cells``: ``%%pf_model``, ``%%pf_endpoint``, ``%%pf_deployment``, ``%%pf_connection``
- ``ops``: ``%pf_backend``, ``%pf_status``, ``%pf_logs``, ``%pf_traffic``, ``%pf_keys``,
  ``%pf_delete``, ``%pf_endpoints``, ``%pf_stop``, ``%pf_start``
- ``invoke``: ``%pf_invoke`` / ``%%pf_invoke``
- ``quota``: ``%pf_quota``
- ``metrics``: ``%pf_metrics``
"""

from __future__ import annotations

import importlib
from typing import Any

from pfmagic.config import PfMagics
from pfmagic.session import Session

FAMILIES = ("cells", "ops", "invoke", "quota", "export", "envs", "metrics")
_STATE_KEY = "_pfmagic_session"


def register(shell: Any) -> Session:
    settings = PfMagics(config=shell.config)
    from pfmagic.config import load_file_settings
    from pfmagic.errors import PfError

    try:
        loaded = load_file_settings(settings)
    except PfError as exc:  # a typo in pyproject.toml must not stop the extension loading
        print(f"pfmagic: {exc}")
        loaded = None
    if loaded:
        print(f"pfmagic: {loaded[1]} setting(s) from {loaded[0]}")
    if settings not in shell.configurables:
        shell.configurables.append(settings)  # so %config PfMagics lists the options
    session = Session(settings=settings)
    setattr(shell, _STATE_KEY, session)
    for family in FAMILIES:
        module = importlib.import_module(f"pfmagic.magics.{family}")
        shell.register_magics(module.MAGICS(shell, session))
        for transformer in getattr(module, "TRANSFORMERS", ()):
            if transformer not in shell.input_transformers_cleanup:
                shell.input_transformers_cleanup.append(transformer)
    if settings.warmup:
        from pfmagic import warmup

        warmup.start()  # azure.ai.ml's import, off the main thread (pfmagic/warmup.py)
    return session


def unregister(shell: Any) -> None:
    session: Session | None = getattr(shell, _STATE_KEY, None)
    if session is None:
        return
    for family in FAMILIES:
        module = importlib.import_module(f"pfmagic.magics.{family}")
        for kind, names in module.MAGICS.magics.items():
            for name in names:
                shell.magics_manager.magics[kind].pop(name, None)
        for transformer in getattr(module, "TRANSFORMERS", ()):
            if transformer in shell.input_transformers_cleanup:
                shell.input_transformers_cleanup.remove(transformer)
    shell.configurables[:] = [c for c in shell.configurables if c is not session.settings]
    delattr(shell, _STATE_KEY)


def session_of(shell: Any) -> Session:
    """The session of a shell with pfmagic loaded (for tests and the Python API)."""
    return getattr(shell, _STATE_KEY)

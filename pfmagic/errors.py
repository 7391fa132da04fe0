"""Expected failures and how they reach the user.

Everything pfmagic expects to go wrong (bad YAML, a missing endpoint, a 401, no quota) is a
``PfError``: one readable line, optionally with a hint. Magics turn it into IPython's
``UsageError`` so the user sees that line and no traceback (jupysql's approach).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class PfError(Exception):
    """An expected failure, shown as one line (plus an optional hint)."""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class SpecError(PfError):
    """A cell's YAML is wrong: names the field path and the line in the cell."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ):
        where = []
        if field:
            where.append(f"field '{field}'")
        if line:
            where.append(f"line {line}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message, hint=hint, code="SpecError")
        self.field = field
        self.line = line


class NotFound(PfError):
    """An endpoint, deployment, model or connection that does not exist."""


class BackendError(PfError):
    """A backend refused or failed an operation (HTTP status, provisioning failure, ...)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint, code=code)
        self.status = status


def usage_errors(func: F) -> F:
    """Turn ``PfError`` into a one-line ``UsageError`` inside a magic method.

    Honours ``PfMagics.errors_are_fatal`` / ``short_errors`` (read from ``self.settings``).
    """

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        from IPython.core.error import UsageError

        from pfmagic import warmup

        warmup.wait()  # never import azure.* beside the warm-up thread (pfmagic/warmup.py)
        # A failed cell changes nothing: entities parsed earlier and the default endpoint stay.
        session = getattr(self, "session", None)
        before = session.snapshot() if session is not None else None
        try:
            return func(self, *args, **kwargs)
        except BaseException as exc:
            if before is not None:
                session.restore(before)
            if not isinstance(exc, PfError):
                raise
            settings = getattr(self, "settings", None)
            if settings is not None and (settings.errors_are_fatal or not settings.short_errors):
                raise
            raise UsageError(str(exc)) from None

    return wrapper  # type: ignore[return-value]

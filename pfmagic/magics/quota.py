"""Placeholder family 'quota' (being written)."""

from IPython.core.magic import magics_class

from pfmagic.magics.base import SessionMagics


@magics_class
class QuotaMagics(SessionMagics):
    pass


MAGICS = QuotaMagics

"""Placeholder family 'invoke' (being written)."""

from IPython.core.magic import magics_class

from pfmagic.magics.base import SessionMagics


@magics_class
class InvokeMagics(SessionMagics):
    pass


MAGICS = InvokeMagics

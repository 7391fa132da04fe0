"""Placeholder family 'ops' (being written)."""

from IPython.core.magic import magics_class

from pfmagic.magics.base import SessionMagics


@magics_class
class OpsMagics(SessionMagics):
    pass


MAGICS = OpsMagics

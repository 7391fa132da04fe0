"""Placeholder family 'cells' (being written)."""

from IPython.core.magic import magics_class

from pfmagic.magics.base import SessionMagics


@magics_class
class CellsMagics(SessionMagics):
    pass


MAGICS = CellsMagics

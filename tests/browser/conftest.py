"""The browser tests' fixtures; they live in ``lab_session`` with the helpers the tests import.

Nothing is imported *from* this module: every folder's conftest is ``conftest`` in
``sys.modules``, so ``from conftest import …`` would reach whichever was loaded last.
"""

from lab_session import browser, lab  # noqa: F401  (fixtures: pytest finds them here)

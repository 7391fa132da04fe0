"""Helpers and data for ``tests/test_reliability_*.py`` (real local endpoints on 127.0.0.1)."""

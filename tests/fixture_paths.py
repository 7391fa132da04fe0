"""Paths of the test data folders (imported by name: ``from conftest import`` is ambiguous once
two folders have a conftest.py)."""

from pathlib import Path

FIXTURES_YAML = Path(__file__).parent / "fixtures_yaml"

"""Map a YAML field path (``environment.inference_config.scoring_route``) to its line.

azure-ai-ml reports schema errors by field path only; ``yaml.compose`` keeps the marks of every
node, so the path can be walked back to the line the user wrote.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import yaml

PathPart = str | int


class Positions:
    """Line numbers of the fields of one YAML document (1-based, in the document's own lines)."""

    def __init__(self, text: str):
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def line(self, path: Sequence[PathPart] | str) -> int | None:
        """Line of the deepest node on ``path`` that exists (a key's line for mapping entries).

        For a missing field this is its parent's line, which is where it should be added.
        """
        parts = path.split(".") if isinstance(path, str) else list(path)
        node, line = self.root, None
        for part in parts:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            line = (key_node or node).start_mark.line + 1
        return line

    def exists(self, path: Sequence[PathPart] | str) -> bool:
        parts = path.split(".") if isinstance(path, str) else list(path)
        node = self.root
        for part in parts:
            found = _child(node, part)
            if found is None:
                return False
            node = found[1]
        return True

    def duplicate_keys(self) -> Iterator[tuple[str, int]]:
        """``(dotted path, line)`` of keys given twice in one mapping (YAML keeps the last)."""
        yield from _duplicates(self.root, "")


def _child(node: yaml.Node | None, part: PathPart) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in reversed(node.value):  # the last duplicate wins, as in safe_load
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode):
        try:
            index = int(part)
        except ValueError:
            return None
        if 0 <= index < len(node.value):
            return None, node.value[index]
    return None


def _duplicates(node: yaml.Node | None, prefix: str) -> Iterator[tuple[str, int]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            path = f"{prefix}{name}"
            if name in seen:
                yield path, key.start_mark.line + 1
            seen.add(name)
            yield from _duplicates(value, path + ".")
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, f"{prefix}{i}.")

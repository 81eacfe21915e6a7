"""Reading policy YAML safely: the one loader for policy files and the shipped packs.

Policy files may come from anyone who can put a file where a scan reads its config, so reading one must
stay bounded: YAML aliases are refused (an anchor referenced many times in nested lists expands to
billions of nodes once anything walks the value, the "billion laughs"), nesting is capped, and so is the
file's size. The document is composed once; `line_at` finds error lines in that node tree, so a file
with thousands of errors is not parsed again for each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from scanner.errors import UsageError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "PolicyYaml", "line_at", "read_policy_yaml"]

MAX_BYTES = 1024 * 1024  # the shipped packs are a few KiB each
MAX_DEPTH = 64  # nested collections; `and`/`or`/`not` filters need a few levels each


@dataclass(frozen=True)
class PolicyYaml:
    """A policy file's text, its composed node tree (None for an empty file) and the data built from it."""

    text: str
    node: yaml.Node | None
    data: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and collections nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(
                None, None,
                f"YAML aliases (*{event.anchor}) are not allowed in policy files; write the value out",
                event.start_mark,
            )
        if self.check_event(yaml.CollectionStartEvent) and self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_policy_yaml(path: Path) -> PolicyYaml:
    """Read and parse one policy file; UsageError naming the file (and line) for anything it refuses."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise UsageError(f"{path}: policy files are limited to {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    except ValueError as exc:  # a scalar Python refuses to build, such as an integer of 5,000 digits
        raise UsageError(f"{path}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return PolicyYaml(text, node, data)


def line_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest part of a field path found in a node tree (None if not even the first)."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line

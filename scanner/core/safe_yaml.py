"""YAML that anyone who can write a file or a results store may have written: the one bounded loader for
configs, price overrides and policy files.

An anchor referenced many times in nested lists expands to billions of nodes once anything walks the value
(the "billion laughs"): policy files may not use aliases at all, and in configs (where anchors share bucket
settings) the document expanded must stay under MAX_NODES. Collections nest at most MAX_DEPTH levels, files
are read up to a size their caller sets, and the text must be UTF-8. The document is composed once; `line_at` finds
error lines in that node tree, so a file with many errors is not parsed again for each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from tierscan.scanner.core.errors import UsageError

__all__ = ["MAX_DEPTH", "YamlDocument", "line_at", "parse_yaml", "read_bounded", "read_text",
           "read_yaml_file"]

MAX_DEPTH = 64  # nested collections; policy filters (`and`/`or`/`not`) need a few levels each
MAX_NODES = 1_000_000  # nodes of a document with its aliases expanded


@dataclass(frozen=True)
class YamlDocument:
    """A file's text, its composed node tree (None for an empty document) and the data built from it."""

    text: str
    node: yaml.Node | None
    data: Any


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type information here
    """SafeLoader that refuses aliases and collections nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str, kind: str, aliases: bool) -> None:
        super().__init__(stream)
        self._depth = 0
        self._kind = kind
        self._aliases = aliases

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent) and not self._aliases:
            event = self.peek_event()
            raise ComposerError(None, None, f"YAML aliases (*{event.anchor}) are not allowed in {self._kind}; "
                                "write the value out", event.start_mark)
        if self.check_event(yaml.CollectionStartEvent) and self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for with every alias expanded (each distinct node counted once per use)."""
    if id(node) not in sizes:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(_expanded(child, sizes) for child in children))
    return sizes[id(node)]


def parse_yaml(text: str, name: str, kind: str = "tierscan files", *, aliases: bool = False) -> YamlDocument:
    """Parse `text` (named `name` in messages); UsageError `name:line: not valid YAML: ...` for anything refused.
    `aliases`: allow them, as long as the document expanded stays under MAX_NODES."""
    loader = _BoundedLoader(text, kind, aliases)
    try:
        node = loader.get_single_node()
        if node is not None and aliases and _expanded(node, {}) > MAX_NODES:
            raise UsageError(f"{name}: its YAML aliases expand to more than {MAX_NODES:,} values; write it out "
                             "without them")
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise UsageError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    except ValueError as exc:  # a scalar Python refuses to build, such as an integer of 5,000 digits
        raise UsageError(f"{name}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return YamlDocument(text, node, data)


def read_bounded(path: Path, max_bytes: int, kind: str) -> bytes:
    """A user's file of at most `max_bytes` (`kind` names such files in messages); UsageError naming the file
    when it cannot be read or is larger."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(max_bytes + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise UsageError(f"{path}: {kind} are limited to {max_bytes // 1024} KiB")
    return raw


def read_yaml_file(path: Path, max_bytes: int, kind: str = "tierscan files", *, aliases: bool = False
                   ) -> YamlDocument:
    """Read and parse one file of at most `max_bytes`; UsageError naming the file (and line) otherwise."""
    return parse_yaml(read_text(path, max_bytes, kind), str(path), kind, aliases=aliases)


def read_text(path: Path, max_bytes: int, kind: str) -> str:
    """A user's UTF-8 text file of at most `max_bytes`, unparsed; UsageError naming the file otherwise."""
    raw = read_bounded(path, max_bytes, kind)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


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

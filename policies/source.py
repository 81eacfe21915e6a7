"""Reading policy YAML safely: policy files and the shipped packs go through the one bounded loader
(`tierscan.scanner.core.safe_yaml`: no aliases, nesting and size capped), since a policy file may come from anyone who
can
put a file where a scan reads its config."""

from __future__ import annotations

from pathlib import Path

from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.safe_yaml import MAX_DEPTH, YamlDocument, line_at, parse_yaml, read_text, read_yaml_file

__all__ = ["MAX_BYTES", "MAX_DEPTH", "PolicyYaml", "line_at", "parse_policy_yaml", "read_policy_text",
           "read_policy_yaml"]

MAX_BYTES = 1024 * 1024  # the shipped packs are a few KiB each
PolicyYaml = YamlDocument


def read_policy_yaml(path: Path) -> PolicyYaml:
    """Read and parse one policy file; UsageError naming the file (and line) for anything it refuses."""
    return read_yaml_file(path, MAX_BYTES, "policy files")


def read_policy_text(path: Path) -> str:
    """A policy file's text, unparsed (for a scan to store, once its policies have been loaded)."""
    return read_text(path, MAX_BYTES, "policy files")


def parse_policy_yaml(text: str, path: Path) -> PolicyYaml:
    """Parse a policy file's text read earlier (stored with a scan) as `read_policy_yaml` parses the file."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise UsageError(f"{path}: policy files are limited to {MAX_BYTES // 1024} KiB")
    return parse_yaml(text, str(path), "policy files")

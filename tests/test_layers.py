"""The rooms depend on each other one way (docs/architecture.md): read every module's imports of tierscan's
own packages and check each against the rooms it may use."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# room -> rooms it may import (besides itself). A room is `connectors`, `policies`, or `scanner.<room>`.
ALLOWED = {
    "scanner.core": set(),
    "scanner.pricing": {"scanner.core"},
    "connectors": {"scanner.core", "scanner.pricing"},
    "policies": {"scanner.core", "scanner.pricing"},
    "scanner.fingerprint": {"scanner.core"},
    "scanner.group": {"scanner.core", "scanner.fingerprint"},
    "scanner.scan": {"scanner.core", "scanner.pricing", "scanner.fingerprint", "scanner.group", "connectors",
                     "policies"},
    "scanner.report": {"scanner.core", "scanner.pricing", "scanner.scan", "connectors"},
    "scanner.remediate": {"scanner.core", "scanner.scan", "connectors"},
}


def _room(parts: tuple[str, ...]) -> str:
    """The room of a module, from its path or dotted name below `tierscan`."""
    if parts[0] != "scanner":
        return parts[0]
    return f"scanner.{parts[1].removesuffix('.py')}" if len(parts) > 1 else "scanner"


def _imported(node: ast.AST, package: tuple[str, ...]) -> list[str]:
    """The dotted names an import statement imports, relative ones resolved against `package`."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        return [node.module or ""]
    base = ("tierscan", *package[: len(package) - node.level + 1])
    return [".".join((*base, node.module)) if node.module else ".".join((*base, a.name)) for a in node.names]


def _imports(path: Path, package: tuple[str, ...] = ()) -> set[str]:
    """The rooms of tierscan's own that a module imports (anywhere in it, type-checking imports too);
    `package` is the module's package below `tierscan`, for relative imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        for name in _imported(node, package):
            parts = tuple(name.split("."))
            if parts[0] == "tierscan" and len(parts) > 1:
                found.add(_room(parts[1:]))
    return found


def test_every_module_imports_only_the_rooms_below_its_own():
    wrong = []
    for folder in ("scanner", "connectors", "policies"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            room = _room(path.relative_to(ROOT).parts)
            if room not in ALLOWED:
                continue  # the command line (cli.py, __main__.py) and the package's own __init__ use any room
            # Any room may read the package's own `__init__` (its version).
            used_rooms = _imports(path, path.relative_to(ROOT).parent.parts) - ALLOWED[room] - {room, "scanner"}
            for used in sorted(used_rooms):
                wrong.append(f"{path.relative_to(ROOT)} ({room}) imports {used}")
    assert wrong == []


def test_the_rule_sees_an_import_that_breaks_it(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from tierscan.scanner.scan.catalog import Catalog\nimport tierscan.policies as p\n"
                      "from ..pricing import savings\n")
    assert _imports(module, ("scanner", "report")) == {"scanner.scan", "policies", "scanner.pricing"}

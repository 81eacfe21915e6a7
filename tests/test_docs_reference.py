"""The generated reference pages (docs/reference/) match the code they are generated from."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _gen_ref():
    spec = importlib.util.spec_from_file_location("gen_ref", ROOT / "docs" / "gen_ref.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_are_current() -> None:
    gen = _gen_ref()
    for name, page in gen.PAGES.items():
        written = (gen.OUT / name).read_text(encoding="utf-8").splitlines()
        diff = "\n".join(difflib.unified_diff(written, page().splitlines(), f"docs/reference/{name}", "now",
                                               lineterm="", n=1))
        assert not diff, f"stale: run `python docs/gen_ref.py`\n{diff[:3000]}"


def test_reference_pages_name_every_command_key_and_element() -> None:
    from tierscan.policies import ACTIONS, FILTERS
    from tierscan.scanner.core.config import ScanSettings

    gen = _gen_ref()
    cli, config, policies = gen.cli_page(), gen.config_page(), gen.policies_page()
    assert "## tierscan near ignore" in cli and "`--no-signatures`" in cli
    assert all(f"| `{key}` |" in config for key in ScanSettings.model_fields)
    assert all(f"### `{name}`" in policies for name in [*FILTERS.names(), *ACTIONS.names()])

"""Scan progress: silent off a terminal; on one, objects listed, objects and bytes read, with rates."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from tierscan.scanner.scan.progress import RichProgress


def drive(progress: RichProgress) -> None:
    with progress:
        progress.listed(10)
        progress.listed(5)
        progress.planned(3, 3 * 1024)
        for _ in range(3):
            progress.read(1024)
        if progress.enabled:
            progress._bars.refresh()


def test_quiet_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = RichProgress(Console(file=out))
    drive(progress)
    assert not progress.enabled and out.getvalue() == ""


def test_shows_objects_bytes_and_rates_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out = io.StringIO()
    drive(RichProgress(Console(file=out, force_terminal=True, width=140)))
    text = out.getvalue()
    assert "15 objects" in text and "objects/s" in text  # listing
    assert "3/3 objects" in text and "3.0 KiB/3.0 KiB" in text and "/s" in text  # reading

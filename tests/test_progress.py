"""Scan progress: silent off a terminal; on one, every phase with its count, true totals, rates and ETA; and
a real scan's counts never pass their totals."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tierscan.scanner.core.config import Config
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan
from tierscan.scanner.scan.progress import Progress, RichProgress

REPO = Path(__file__).resolve().parents[1]


def drive(progress: RichProgress) -> None:
    with progress:
        progress.listed(15)  # one batch: rich has one sample, the rate still shows
        progress.listing_done()
        progress.planned(2)
        progress.planned(1)
        for _ in range(3):
            progress.read(1024)
        progress.settled(3)
        progress.step("exact groups")
        progress.advance(4)
        progress.step("object policies", total=10)
        progress.advance(5)
        if progress.enabled:
            progress._bars.refresh()


def test_quiet_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = RichProgress(Console(file=out))
    drive(progress)
    assert not progress.enabled and out.getvalue() == ""


def test_shows_every_phase_with_counts_rates_and_eta_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out = io.StringIO()
    drive(RichProgress(Console(file=out, force_terminal=True, width=200)))
    text = out.getvalue()
    rates = re.findall(r"15/15 objects\s+([\d,]+) objects/s", text)
    assert rates and int(rates[-1].replace(",", "")) > 0  # listing, with a rate from one batch
    assert "3/3 objects" in text and "3.0 KiB" in text  # reading: objects of the planned, bytes read
    assert "exact groups" in text and "4 items" in text  # a step without a known total: its count
    assert "5/10 items" in text and "ETA" in text  # a step with one


class Recording(Progress):
    """The counts a scan reports, checked as they come: settled never passes planned."""

    def __init__(self) -> None:
        self.planned_objects = self.settled_objects = self.listed_objects = 0
        self.steps: list[str] = []

    def listed(self, n: int) -> None:
        self.listed_objects += n

    def planned(self, objects: int) -> None:
        self.planned_objects += objects

    def settled(self, objects: int) -> None:
        self.settled_objects += objects
        assert self.settled_objects <= self.planned_objects

    def step(self, name: str, total: int | None = None) -> None:
        self.steps.append(name)


@pytest.mark.parametrize("perceptual", [True, False])
def test_a_scans_counts_meet_their_totals(tmp_path: Path, perceptual: bool) -> None:
    """The sample estate: ranged reads, copies, narrowing, skips; every planned object is settled once."""
    estate = tmp_path / "estate"
    shutil.copytree(REPO / "examples" / "estate", estate)
    config = Config.model_validate({"scan": {"perceptual": perceptual}})
    progress = Recording()
    with Catalog(tmp_path / "t.db") as catalog:
        stats = asyncio.run(run_scan(config, catalog, [str(estate)], progress))
    assert progress.listed_objects == stats.listed > 0
    assert progress.settled_objects == progress.planned_objects > 0
    assert progress.steps == ["exact groups", "near index", "object policies", "near groups"]

"""A scan that is stopping (Ctrl-C cancels its tasks) stops: a listing cancelled while the early-read queue
is full, and nothing left to read it, still ends at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tierscan.scanner.core.config import Config
from tierscan.scanner.scan import pipeline
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.progress import Progress


def test_a_listing_cancelled_with_a_full_early_read_queue_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    bucket = tmp_path / "estate" / "b"
    bucket.mkdir(parents=True)
    for i in range(40):
        (bucket / f"{i:02}.jpg").write_bytes(b"\xff\xd8\xff\xd9" + bytes([i]))
    monkeypatch.setattr(pipeline._EarlyReads, "_QUEUE", 2)  # full after two objects, and no reader takes any
    monkeypatch.setattr(pipeline, "_FIRST_BATCH", 4)
    config, targets = Config(), [str(tmp_path / "estate")]

    async def scenario() -> None:
        with Catalog(tmp_path / "t.db") as catalog:
            scan_id, counters, _, connectors, _ = pipeline._begin(config, catalog, targets, datetime.now(UTC), None)
            early = pipeline._EarlyReads(lambda ref: True)
            listing = asyncio.create_task(pipeline._list_all(config, catalog, targets, scan_id, connectors, counters,
                                                             Progress(), early))
            while early.queue.qsize() < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the listing now waits for room in the queue
            assert not listing.done()
            listing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(listing, timeout=10)  # a hang here was Ctrl-C's

    asyncio.run(scenario())

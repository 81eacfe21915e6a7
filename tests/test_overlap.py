"""Listing and reading overlap: objects free to retrieve are read while the listing goes on, each content
once; objects with retrieval fees wait for the listing to end and are not read when a free copy was.
A small in-memory connector (a unit-test fake) records the order of what it was asked."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from PIL import Image

from tierscan.connectors import register_connector
from tierscan.connectors.base import Capabilities, Connector, Target
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import ObjectRef, Tier
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (i % 256, i // 256 % 256, 7)).save(buf, "JPEG")
    return buf.getvalue() + i.to_bytes(4, "big") * 6000  # ~24 KB: past the 16 KiB head, sizes all differ


HOT = {f"hot/{i:04d}.jpg": (_jpeg(i), "STANDARD") for i in range(400)}
COLD = {
    "cold/copy-of-0001.jpg": (HOT["hot/0001.jpg"][0], "GLACIER_IR"),  # a free copy exists: never read
    "cold/only.jpg": (_jpeg(5000), "GLACIER_IR"),  # no free copy: read once the listing has ended
}


class Recorded(Connector):
    scheme = "mem"
    capabilities = Capabilities(name="mem", checksums={"md5": "listing"}, tier_table="s3")
    events: ClassVar[list[str]] = []  # one log for every instance, read by the test

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        for n, (key, (data, cls)) in enumerate({**HOT, **COLD}.items()):
            if n % 100 == 0:
                await asyncio.sleep(0.05)  # pages take time to come
            self.events.append(f"list {key}")
            yield self.make_ref(uri=f"mem://{target.location}/{key}", bucket=target.location, key=key, size=len(data),
                                modified=T0, storage_class=cls, region="ap-east-1",
                                checksums={"md5": hashlib.md5(data).hexdigest()})

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        self.events.append(f"read {ref.key}")
        await asyncio.sleep(0)
        return {**HOT, **COLD}[ref.key][0][start:end]


def test_free_objects_are_read_while_listing_and_fee_tiers_after(tmp_path: Path) -> None:
    register_connector("mem", Recorded, clobber=True)
    Recorded.events.clear()
    config = Config.model_validate({"buckets": {"estate": {"price_as": "s3"}}, "scan": {"perceptual": False}})
    with Catalog(tmp_path / "c.db") as catalog:
        stats = asyncio.run(run_scan(config, catalog, ["mem://estate"]))
        records = {r.key: r for r in catalog.records()}
    events = Recorded.events
    last_listed = max(i for i, e in enumerate(events) if e.startswith("list "))
    first_read = min(i for i, e in enumerate(events) if e.startswith("read "))
    assert first_read < last_listed  # reading began before the listing ended
    reads = [e.removeprefix("read ") for e in events if e.startswith("read ")]
    assert "cold/copy-of-0001.jpg" not in reads
    assert min(i for i, e in enumerate(events) if e == "read cold/only.jpg") > last_listed
    assert records["cold/copy-of-0001.jpg"].status == "fingerprinted"
    assert records["cold/copy-of-0001.jpg"].exif == records["hot/0001.jpg"].exif
    assert stats.listed == len(HOT) + len(COLD) and stats.fingerprinted == len(HOT) + len(COLD)
    assert stats.bytes_read_by_tier.get("cold", 0) < 2 * 20 * 1024  # cold/only.jpg's head and tail


def test_the_kernels_load_before_the_workers_fork_so_that_every_worker_starts_with_them(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    # numba's set-up is most of what loading kernels costs: done once in the scanning process, before
    # any worker forks, the workers inherit it rather than each paying it.
    import multiprocessing
    import threading

    import tierscan.scanner.fingerprint.image as image
    import tierscan.scanner.group.hamming_index as hamming_index
    loaded: list[tuple[str, str, int]] = []

    def recorder(kernels: str):
        def record() -> None:
            workers = [p for p in multiprocessing.active_children() if p.name == "tierscan-fingerprint"]
            loaded.append((kernels, threading.current_thread().name, len(workers)))
        return record

    monkeypatch.setattr(hamming_index, "ensure_loaded", recorder("index"))
    monkeypatch.setattr(image, "warm_up", recorder("hashing"))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.jpg").write_bytes(_jpeg(i))
    config = Config()
    assert config.scan.perceptual  # the default
    with Catalog(tmp_path / "c.db") as catalog:
        stats = asyncio.run(run_scan(config, catalog, [str(images)]))
    assert stats.fingerprinted == 3
    assert loaded == [("index", "MainThread", 0), ("hashing", "MainThread", 0)]


def test_grouping_pauses_the_cycle_collector_and_restores_it(tmp_path: Path, monkeypatch) -> None:
    # Full collections walk every live object; grouping builds hundreds of thousands that live on.
    import gc

    import pytest
    from catalog_results import record_fingerprints

    import tierscan.scanner.group.cluster as cluster
    import tierscan.scanner.scan.pipeline as pipeline
    during: list[bool] = []
    real = cluster.start_near_groups

    def recording(*args, **kwargs):
        during.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "start_near_groups", recording)
    with Catalog(tmp_path / "c.db") as catalog:
        image = ObjectRef(uri="s3://b/a.jpg", provider="s3", bucket="b", key="a.jpg", size=10, tier=Tier.hot,
                          storage_class="STANDARD", region="us-east-1", jurisdiction="US", modified=T0)
        catalog.record_listing([image], "s3://b", 1)  # an image with perceptual hashes: near grouping runs
        record_fingerprints(catalog, [(image.uri, {"status": "fingerprinted", "phash": "0" * 16, "dhash": "0" * 16})])
        pipeline.evaluate_results(Config(), catalog, T0)
        assert during == [False] and gc.isenabled()

        def failing(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(cluster, "start_near_groups", failing)
        with pytest.raises(RuntimeError):
            pipeline.evaluate_results(Config(), catalog, T0)
        assert gc.isenabled()  # back on after a failure too
        gc.disable()
        try:
            monkeypatch.setattr(cluster, "start_near_groups", recording)
            pipeline.evaluate_results(Config(), catalog, T0)
            assert not gc.isenabled()  # a caller's own choice is left as it was
        finally:
            gc.enable()

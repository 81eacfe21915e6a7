"""Whole reads that the fingerprint workers make themselves (`Capabilities.worker_reads`), a batch of objects
a message: the per-object deadline still holds inside a batch, a worker's read keeps every check of the
local connector's, and a scan gives what reading each object in the scanning process gives."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import tierscan.scanner.fingerprint.pool as fp
from tierscan.connectors import local, parse_target
from tierscan.connectors.local import LocalConnector
from tierscan.scanner.core.config import Config, ScanSettings
from tierscan.scanner.fingerprint.pool import BatchBroken, FingerprintPool
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan
from tierscan.scanner.scan.read_session import _DONE, _FAILED, _read_whole

REPO = Path(__file__).resolve().parents[1]
STALL = "stall"  # an item the job below never finishes


@pytest.fixture(params=["openat2", "by component"])
def opens(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Worker reads with the one-call open where the kernel has it, and as where it has not (the workers
    fork after this, so they inherit it)."""
    if request.param == "by component":
        monkeypatch.setattr(local, "_openat2", None)
        monkeypatch.setattr(local, "_openat2_missing", True)
    return str(request.param)


def _slow_echo(item: tuple[str, float]) -> str:
    name, seconds = item
    fp.note(f"on {name}".encode())
    if name == STALL:
        time.sleep(3600)
    time.sleep(seconds)
    return name


def test_a_batch_item_past_the_deadline_fails_the_batch_naming_it_and_the_pool_goes_on() -> None:
    items = [("a", 0.0), ("b", 0.0), (STALL, 0.0), ("d", 0.0)]
    with FingerprintPool(workers=1, timeout=2) as pool:
        async def run() -> tuple[BaseException | list[Any], list[Any]]:
            first = await asyncio.gather(pool.submit_batch(_slow_echo, items), return_exceptions=True)
            return first[0], await pool.submit_batch(_slow_echo, [("e", 0.0)])

        broken, after = asyncio.run(asyncio.wait_for(run(), 120))
    assert isinstance(broken, BatchBroken)
    assert broken.index == 2 and broken.note == b"on stall"
    assert str(broken).startswith("parse timeout")
    assert after == ["e"]  # a new worker took the stopped one's place


def test_each_item_of_a_batch_has_the_whole_deadline() -> None:
    """Four items of 0.8 s each, 3.2 s together, under a 2 s deadline: none overruns its own."""
    items = [(name, 0.8) for name in "abcd"]
    with FingerprintPool(workers=1, timeout=2) as pool:
        async def run() -> list[Any]:
            return await pool.submit_batch(_slow_echo, items)

        assert asyncio.run(asyncio.wait_for(run(), 120)) == ["a", "b", "c", "d"]


def test_a_worker_read_refuses_a_file_swapped_for_a_link_out_after_listing(tmp_path: Path, opens: str) -> None:
    root = tmp_path / "estate"
    (root / "b").mkdir(parents=True)
    plain, kept = root / "b" / "plain.jpg", root / "b" / "kept.jpg"
    plain.write_bytes(b"pain")
    kept.write_bytes(b"kept")
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECR")  # same size and modified time as the listed file: only the path differs
    os.utime(secret, ns=(plain.stat().st_mtime_ns, plain.stat().st_mtime_ns))
    conn = LocalConnector(Config())

    async def go() -> list[Any]:
        refs = {r.key: r async for r in conn.list_objects(parse_target(str(root)))}
        plain.unlink()
        plain.symlink_to(secret)
        reads = [conn.worker_read(refs[key]) for key in ("plain.jpg", "kept.jpg")]
        assert all(read is not None for read in reads)
        with FingerprintPool(workers=1, timeout=30) as pool:
            return await pool.submit_batch(_read_whole, [(*read, 4, True, False, False, False, False) for read in reads
                                                         if read is not None])

    refused, read = asyncio.run(asyncio.wait_for(go(), 120))
    assert refused[0] == _FAILED and "outside the scanned folder" in refused[1]
    assert read[0] == _DONE and read[1] == 4  # the other file of the batch is read


def test_a_worker_read_refuses_a_folder_swapped_for_a_link_out_and_reads_through_links_inside(
        tmp_path: Path, opens: str) -> None:
    root = tmp_path / "estate"
    (root / "b" / "sub").mkdir(parents=True)
    (root / "b" / "real").mkdir()
    listed, inside = root / "b" / "sub" / "a.jpg", root / "b" / "real" / "c.jpg"
    listed.write_bytes(b"list")
    inside.write_bytes(b"real")
    outside = tmp_path / "out"
    outside.mkdir()
    (outside / "a.jpg").write_bytes(b"SECR")
    stamp = listed.stat().st_mtime_ns
    os.utime(outside / "a.jpg", ns=(stamp, stamp))
    conn = LocalConnector(Config())

    async def go() -> list[Any]:
        refs = {r.key: r async for r in conn.list_objects(parse_target(str(root)))}
        (root / "b" / "sub").rename(tmp_path / "moved")
        (root / "b" / "sub").symlink_to(outside)  # the folder on the way now leads out
        (root / "b" / "real").rename(root / "b" / "real2")
        (root / "b" / "real").symlink_to(root / "b" / "real2")  # a link that stays inside: still read
        reads = [conn.worker_read(refs[key]) for key in ("sub/a.jpg", "real/c.jpg")]
        with FingerprintPool(workers=1, timeout=30) as pool:
            return await pool.submit_batch(_read_whole, [(*read, 4, True, False, False, False, False) for read in reads
                                                         if read is not None])

    refused, read = asyncio.run(asyncio.wait_for(go(), 120))
    assert refused[0] == _FAILED and "outside the scanned folder" in refused[1]
    assert read[0] == _DONE and read[1] == 4


def test_storage_where_reads_may_hang_is_never_read_by_a_worker(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tierscan.connectors.local as local

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.jpg").write_bytes(b"x")
    monkeypatch.setattr(local, "_local_disk", lambda path: False)  # a network or FUSE mount
    conn = LocalConnector(Config())

    async def go() -> list[Any]:
        refs = [r async for r in conn.list_objects(parse_target(str(tmp_path)))]
        return [conn.worker_read(ref) for ref in refs]

    assert asyncio.run(go()) == [None]


_ROWS = ("SELECT uri, status, reason, sha256, headtail, phash, dhash, near_sig, format, width, height, exif "
         "FROM objects ORDER BY uri")


def _scan(estate: Path, db: Path, perceptual: bool) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    config = Config(scan=ScanSettings(workers=2, perceptual=perceptual))
    with Catalog(db) as catalog:
        stats = asyncio.run(asyncio.wait_for(run_scan(config, catalog, [str(estate)]), 300))
    rows = sqlite3.connect(db).execute(_ROWS).fetchall()
    return rows, (stats.listed, stats.fingerprinted, stats.requests, stats.bytes_read, stats.bytes_read_by_tier,
                  stats.requests_by_tier, stats.cost_usd)


@pytest.mark.parametrize("perceptual", [True, False])
def test_a_scan_with_worker_reads_gives_what_reads_in_the_scanning_process_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, perceptual: bool) -> None:
    estate = tmp_path / "estate"
    shutil.copytree(REPO / "examples" / "estate", estate, symlinks=True)
    batched = _scan(estate, tmp_path / "batched.db", perceptual)
    monkeypatch.setattr(LocalConnector, "worker_read", lambda self, ref: None)
    one_by_one = _scan(estate, tmp_path / "one.db", perceptual)
    assert batched == one_by_one
    assert sum(1 for row in batched[0] if row[1] == "fingerprinted") >= 10  # the comparison saw real work

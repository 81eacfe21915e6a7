"""A hostile local folder, scanned end to end: FIFOs, sockets, symlink loops, broken links, links out of
the scanned folder, an I/O error mid-read, a folder that cannot be listed. The scan finishes, reads every
regular file inside the folder, lists the rest as skipped with a reason, and reads nothing outside."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from failing_os import deny, fail_reads

from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

DATA = Path(__file__).parent / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
GPS_PHOTO = (DATA / "exifpy__DSCN0010.jpg").read_bytes()  # GPS, camera and capture time in its EXIF
OUT = "symlink points outside the scanned folder: not followed"


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    outside = tmp_path / "private"
    (outside / "album").mkdir(parents=True)
    (outside / "home.jpg").write_bytes(GPS_PHOTO)
    (outside / "album" / "trip.jpg").write_bytes(GPS_PHOTO)
    root = tmp_path / "estate"
    b = root / "b"
    b.mkdir(parents=True)
    (b / "photo.jpg").write_bytes(PHOTO)
    (b / "copy.jpg").write_bytes(PHOTO + b"\0")
    os.mkfifo(b / "x.jpg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(b / "s.jpg"))
    (b / "loop.jpg").symlink_to(b / "loop.jpg")
    (b / "broken.jpg").symlink_to(b / "missing.jpg")
    (b / "home.jpg").symlink_to(outside / "home.jpg")
    (b / "album").symlink_to(outside / "album")
    return root


def _records(db: Path) -> dict[str, InventoryRecord]:
    with Catalog(db) as catalog:
        return {r.key: r for r in catalog.records()}


@pytest.mark.slow
def test_a_hostile_folder_scans_to_the_end_and_reads_nothing_outside(hostile: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    # The guard bounds a scan that blocks on the FIFO; the assertions are about the outcome.
    done = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", str(hostile), "--db", str(db), "--format",
                           "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    skipped = {item["uri"].rsplit("/", 1)[-1]: item["reason"] for item in json.loads(done.stdout)["skipped"]}
    assert skipped == {
        "x.jpg": "a FIFO (named pipe), not a regular file: not read",
        "s.jpg": "a socket, not a regular file: not read",
        "loop.jpg": "symlink loop: not followed",
        "broken.jpg": "broken symlink: its target does not exist",
        "home.jpg": OUT,
        "album": OUT,
    }
    records = _records(db)
    assert {k: r.status for k, r in records.items() if r.status != "skipped"} == {
        "photo.jpg": "fingerprinted", "copy.jpg": "fingerprinted"}
    # The outside photo's GPS, camera and capture time never reach the inventory.
    assert all(r.exif is None and r.sha256 is None for r in records.values() if r.status == "skipped")
    inventory = subprocess.run([sys.executable, "-m", "tierscan.scanner", "inventory", "--db", str(db)],
                               capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in inventory.stdout.splitlines()]
    assert not [line for line in lines if "gps" in line["personal_data"]]
    assert {line["key"]: line["reason"] for line in lines if line["status"] == "skipped"}["home.jpg"] == OUT


def test_links_out_are_read_when_the_config_allows_them(hostile: Path, tmp_path: Path) -> None:
    for name in ("x.jpg", "s.jpg", "loop.jpg", "broken.jpg"):
        (hostile / "b" / name).unlink()
    config = Config.model_validate({"local": {"follow_symlinks_out": True}})
    with Catalog(tmp_path / "t.db") as catalog:
        asyncio.run(run_scan(config, catalog, [str(hostile)]))
    records = _records(tmp_path / "t.db")
    assert {k: r.status for k, r in records.items()} == {
        "photo.jpg": "fingerprinted", "copy.jpg": "fingerprinted", "home.jpg": "fingerprinted",
        "album/trip.jpg": "fingerprinted"}
    assert records["home.jpg"].exif is not None and records["home.jpg"].exif.gps is not None


def test_an_io_error_mid_read_skips_that_object_and_the_scan_goes_on(hostile: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inode = (hostile / "b" / "copy.jpg").stat().st_ino
    fail_reads(monkeypatch, inode, errno.EIO)
    with Catalog(tmp_path / "t.db") as catalog:
        asyncio.run(asyncio.wait_for(run_scan(Config(), catalog, [str(hostile)]), 300))
    records = _records(tmp_path / "t.db")
    assert records["photo.jpg"].status == "fingerprinted"
    assert records["copy.jpg"].status == "failed"
    assert records["copy.jpg"].reason is not None and "(EIO)" in records["copy.jpg"].reason


def test_a_folder_that_cannot_be_listed_is_reported_and_its_files_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "estate"
    (root / "b" / "sub").mkdir(parents=True)
    (root / "b" / "photo.jpg").write_bytes(PHOTO)
    (root / "b" / "sub" / "old.jpg").write_bytes(PHOTO + b"\0")
    db = tmp_path / "t.db"
    with Catalog(db) as catalog:
        asyncio.run(run_scan(Config(), catalog, [str(root)]))
    deny(monkeypatch, {str(root / "b" / "sub")}, errno.EIO)
    with Catalog(db) as catalog:
        stats = asyncio.run(run_scan(Config(), catalog, [str(root)]))
    records = _records(db)
    assert stats.gone == 0
    assert records["sub/old.jpg"].status == "fingerprinted"  # what the first scan found, kept
    assert (records["sub/"].status, records["sub/"].reason) == (
        "skipped", "folder cannot be listed: Input/output error (EIO); its files were not scanned")

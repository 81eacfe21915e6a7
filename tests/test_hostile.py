"""Hostile files: malformed EXIF (offsets outside the file, loops between IFDs, absurd counts), absurd image
dimensions, polyglots, a multi-GB sparse file (read by ranges only, never whole), symlink loops in local
folders, and a bounded fuzz of the whole fingerprint path (EXIF walkers and Pillow decoding together).
Each must end as a result or a reason: never an exception, a hang or a large allocation."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scanner.catalog import Catalog
from scanner.config import Config
from scanner.exif import read_metadata
from scanner.fingerprint import fingerprint_bytes
from scanner.pipeline import run_scan

DATA = Path(__file__).parent / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
SEEDS = [(DATA / name).read_bytes() for name in (
    "exifpy__Canon_40D.jpg", "pillow__exif.png", "pillow__flower.webp", "exifpy__Arbitro.tiff",
)]


def _ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
    """A little-endian IFD: (tag, type, count, value/offset) entries and the next IFD's offset."""
    out = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        out += struct.pack("<HHII", tag, kind, count, value)
    return out + struct.pack("<I", next_ifd)


def _tiff(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
    return b"II*\x00" + struct.pack("<I", 8) + _ifd(entries, next_ifd) + b"\x00" * 64


def _in_jpeg(tiff: bytes) -> bytes:
    app1 = b"Exif\x00\x00" + tiff
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + PHOTO[2:]


HOSTILE_TIFFS = {
    "ifd-loops-to-itself": _tiff([(0x010F, 2, 4, 0x0041_4141)], next_ifd=8),
    "exif-ifd-points-back-to-ifd0": _tiff([(0x8769, 4, 1, 8), (0x8825, 4, 1, 8)], next_ifd=8),
    "offsets-outside-the-file": _tiff([(0x010F, 2, 4096, 0xFFFF_FF00), (0x8825, 4, 1, 0x7FFF_FFFF),
                                       (0x8769, 4, 1, 0xFFFF_FFF0)], next_ifd=0xFFFF_FFFF),
    "absurd-counts": _tiff([(0x0110, 2, 0xFFFF_FFFF, 20), (0x927C, 7, 0x7FFF_FFFF, 30),
                            (0xA431, 2, 0x1000_0000, 8)], next_ifd=0),
    "gps-rationals-of-zero": _tiff([(0x8825, 4, 1, 26)], next_ifd=0) + _ifd(
        [(0x0001, 2, 2, 0x4E), (0x0002, 5, 3, 0xFFFF_FF00), (0x0004, 5, 3, 200)], 26),
}


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = fn(*args, **kwargs)
    assert time.monotonic() - start < 5, "took too long: a loop or a large allocation"
    return result


@pytest.mark.parametrize("name", list(HOSTILE_TIFFS))
@pytest.mark.parametrize("wrap", ["tiff", "jpeg-app1"])
def test_malformed_exif_is_survived(name: str, wrap: str) -> None:
    tiff = HOSTILE_TIFFS[name]
    data = tiff if wrap == "tiff" else _in_jpeg(tiff)
    meta = _timed(read_metadata, data)
    assert meta is not None
    result = _timed(fingerprint_bytes, data, want_sha256=True, want_perceptual=True)
    assert result.sha256  # a result either way; decoding failures are reasons, not exceptions


def _jpeg_header(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def _png_header(width: int, height: int) -> bytes:
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 32


ABSURD = {
    "jpeg-65500x65500": _jpeg_header(65500, 65500),
    "png-2^31x2^31": _png_header(2**31 - 1, 2**31 - 1),
    "png-1x2^30": _png_header(1, 2**30),
    "gif-65535x65535": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00;",
    "bmp-negative": b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHH", 40, 100000, -100000, 1, 24)
                    + b"\0" * 24,
}


@pytest.mark.parametrize("name", list(ABSURD))
def test_absurd_dimensions_are_a_reason(name: str) -> None:
    result = _timed(fingerprint_bytes, ABSURD[name], want_sha256=False, want_perceptual=True)
    assert result.error, f"{name}: expected a reason (bomb, corrupt), got {result}"
    assert result.phash is None


def test_decompression_bomb_png_is_a_finding_reason() -> None:
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG")  # 900 MP of zeros in about 100 KB
    result = _timed(fingerprint_bytes, buf.getvalue(), want_sha256=False, want_perceptual=True)
    assert result.error and result.error.startswith("decompression bomb")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("payload.txt", "hello" * 100)
    return buf.getvalue()


POLYGLOTS = {
    "jpeg+zip": (PHOTO + _zip(), "jpeg"),
    "png+html": (SEEDS[1] + b"<html><script>alert(1)</script></html>", "png"),
    "jpeg-with-php-comment": (b"\xff\xd8\xff\xfe\x00\x13<?php system(); ?>" + PHOTO[2:], "jpeg"),
    "gif-magic-then-jpeg": (b"GIF89a" + PHOTO, "gif"),
}


@pytest.mark.parametrize("name", list(POLYGLOTS))
def test_polyglots(name: str) -> None:
    data, fmt = POLYGLOTS[name]
    result = _timed(fingerprint_bytes, data, want_sha256=True, want_perceptual=True)
    assert result.sha256
    assert (result.format or "").lower() in (fmt, "") or result.error  # by its first magic, never a trailer


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 8191), st.integers(0, 255)), max_size=16),
       st.integers(64, 200_000))
def test_fuzz_whole_fingerprint_path(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed[:cut])
    for index, value in flips:
        if index < len(data):
            data[index] = value
    result = fingerprint_bytes(bytes(data), want_sha256=True, want_perceptual=True)
    assert result.sha256 and (result.error is None or isinstance(result.error, str))


def _scan(root: Path, db: Path, config: Config | None = None):  # type: ignore[no-untyped-def]
    with Catalog(db) as catalog:
        stats = asyncio.run(asyncio.wait_for(run_scan(config or Config(), catalog, [str(root)]), 120))
        return stats, {r.key: r for r in catalog.records()}


def test_multi_gb_sparse_file_is_never_read_whole(tmp_path: Path) -> None:
    root = tmp_path / "estate"
    (root / "b").mkdir(parents=True)
    huge = root / "b" / "huge.jpg"
    with open(huge, "wb") as fh:
        fh.write(PHOTO)
        fh.truncate(5 * 1024**3)  # 5 GiB, sparse: costs no disk
    (root / "b" / "small.jpg").write_bytes(PHOTO)
    stats, records = _scan(root, tmp_path / "t.db")
    assert records["huge.jpg"].size == 5 * 1024**3
    assert stats.bytes_read < 64 * 1024**2, stats  # ranges at most, never the 5 GiB
    assert records["huge.jpg"].status in ("fingerprinted", "skipped", "failed")
    assert records["huge.jpg"].status == "fingerprinted" or records["huge.jpg"].reason
    assert records["small.jpg"].status == "fingerprinted"


def test_symlink_loops_in_local_folders(tmp_path: Path) -> None:
    root = tmp_path / "estate"
    b = root / "b"
    (b / "deep").mkdir(parents=True)
    (b / "photo.jpg").write_bytes(PHOTO)
    os.symlink(b, b / "deep" / "loop")  # a folder that contains itself
    os.symlink(root, b / "up")
    os.symlink(b / "self", b / "self")  # a file symlink that resolves to itself (ELOOP)
    os.symlink(b / "a", b / "b-link")
    os.symlink(b / "b-link", b / "a")  # two links pointing at each other
    os.symlink(tmp_path / "nowhere", b / "dangling")
    stats, records = _scan(root, tmp_path / "t.db")
    # Loops and links that cannot be followed are listed as skipped with their reason, never read; symlinked
    # folders inside the scanned folder are not walked (their files are listed where they are).
    assert {key: (r.status, r.reason) for key, r in records.items() if key != "photo.jpg"} == {
        "self": ("skipped", "symlink loop: not followed"),
        "a": ("skipped", "symlink loop: not followed"),
        "b-link": ("skipped", "symlink loop: not followed"),
        "dangling": ("skipped", "symlink points outside the scanned folder: not followed"),
    }
    assert records["photo.jpg"].status == "fingerprinted"

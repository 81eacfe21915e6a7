"""Hostile files: malformed EXIF (offsets outside the file, loops between IFDs, absurd counts), absurd image
dimensions, polyglots, a multi-GB sparse file (read by ranges only, never whole), symlink loops in local
folders, and a bounded fuzz of the whole fingerprint path (EXIF walkers and Pillow decoding together).
Each must end as a result or a reason: never an exception, a hang or a large allocation."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tierscan.scanner.core.config import Config
from tierscan.scanner.fingerprint.exif import read_metadata
from tierscan.scanner.fingerprint.image import fingerprint_bytes
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

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
    """Run `fn` under a hang guard (not a speed check: the parsers' speed is the benchmarks' business)."""

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("no answer within 120 s: a loop in a parser")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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


@pytest.mark.slow
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


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 8191), st.integers(0, 255)), max_size=16),
       st.integers(64, 200_000))
def test_fuzz_whole_fingerprint_path(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed[:cut])
    for index, value in flips:
        if index < len(data):
            data[index] = value
    # As a scan asks by default: the thumbnail and the faces from the same decode.
    result = fingerprint_bytes(bytes(data), want_sha256=True, want_perceptual=True, want_thumbnail=True,
                               want_faces=True)
    assert result.sha256 and (result.error is None or isinstance(result.error, str))
    # A count only where the pixels were hashed; a failed count says why and keeps the fingerprint.
    assert result.faces is None or (result.phash is not None and result.faces >= 0)
    assert result.faces_error is None or (result.faces is None and result.error is None)


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
    _, records = _scan(root, tmp_path / "t.db")
    # Loops and links that cannot be followed are listed as skipped with their reason, never read; symlinked
    # folders inside the scanned folder are not walked (their files are listed where they are).
    assert {key: (r.status, r.reason) for key, r in records.items() if key != "photo.jpg"} == {
        "self": ("skipped", "symlink loop: not followed"),
        "a": ("skipped", "symlink loop: not followed"),
        "b-link": ("skipped", "symlink loop: not followed"),
        "dangling": ("skipped", "symlink points outside the scanned folder: not followed"),
    }
    assert records["photo.jpg"].status == "fingerprinted"


# Metadata packets that make a parser slow rather than crash it: each must be read up to its documented cap
# only, and in time linear in what is read.
_XMP_HEAD = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description '
             b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"')
# Repeated property names whose value never ends: a regex that looks for the end from each name rescans
# the rest of the packet every time.
_XMP_FLOODS = [b" tiff:Make", b' tiff:Make="', b" tiff:Model>", b" exif:GPSLatitude = "]


def _xmp_flood(unit: bytes, size: int) -> bytes:
    return _XMP_HEAD + unit * ((size - len(_XMP_HEAD)) // len(unit))


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png_with_text(*chunks: bytes) -> bytes:
    """A 1x1 PNG with `chunks` (whole chunks) after its IHDR."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    png = buf.getvalue()
    ihdr_end = 8 + 25
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _xmp_text_chunk(ctype: str, packet: bytes) -> bytes:
    import zlib

    deflated = zlib.compress(packet, 9)
    if ctype == "zTXt":
        return _png_chunk(b"zTXt", b"XML:com.adobe.xmp\x00\x00" + deflated)
    return _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + deflated)


@pytest.mark.parametrize("ctype", ["zTXt", "iTXt"])
def test_png_text_xmp_reaches_the_xmp_reader_only_up_to_its_cap(ctype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.scanner.fingerprint.exif import reader
    from tierscan.scanner.fingerprint.exif.xmp import MAX_PACKET

    seen: list[int] = []
    monkeypatch.setattr(reader, "read_xmp", lambda packet, sink: seen.append(len(packet)))
    packet = _xmp_flood(b" tiff:Make", 4 << 20)
    png = _png_with_text(_xmp_text_chunk(ctype, packet))
    assert len(png) < 64 << 10  # a few KB on disk, MiBs once inflated
    read_metadata(png)
    assert seen and max(seen) <= MAX_PACKET < len(packet)


def test_a_tiff_xmp_tag_reaches_the_xmp_reader_only_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.scanner.fingerprint.exif import reader
    from tierscan.scanner.fingerprint.exif.xmp import MAX_PACKET

    seen: list[int] = []
    monkeypatch.setattr(reader, "read_xmp", lambda packet, sink: seen.append(len(packet)))
    packet = _xmp_flood(b" tiff:Make", 3 << 20)
    tiff = _tiff([(0x02BC, 1, len(packet), 8 + 18)], next_ifd=0)[:8 + 18] + packet  # XMLPacket (700), BYTE
    read_metadata(tiff)
    assert seen and max(seen) <= MAX_PACKET < len(packet)


def test_png_text_chunks_that_fail_to_inflate_still_count_against_the_chunk_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    import tierscan.scanner.fingerprint.exif.png as png_walker

    inflated: list[int] = []
    real = png_walker._inflate
    monkeypatch.setattr(png_walker, "_inflate", lambda raw: inflated.append(1) or real(raw))
    broken = zlib.compress(b" tiff:Make" * 50_000, 9)[:-4] + b"\x00" * 4  # inflates whole, then fails its check
    chunk = _png_chunk(b"zTXt", b"XML:com.adobe.xmp\x00\x00" + broken)
    read_metadata(_png_with_text(*[chunk] * 200))
    assert 0 < len(inflated) <= png_walker.MAX_TEXT_CHUNKS


_GUARD = 240  # seconds: generous; the quadratic code this guards against takes hours on these inputs


def _in_subprocess(code: str) -> str:
    """Run `code` in a fresh interpreter (so that a hang is killed, not the test run) and return its output."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=_GUARD,
                          cwd=Path(__file__).parent.parent, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_4_mib_hostile_xmp_packet_is_parsed_to_an_answer() -> None:
    out = _in_subprocess(f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_hostile import _XMP_FLOODS, _png_with_text, _xmp_flood, _xmp_text_chunk
from tierscan.scanner.fingerprint.exif.xmp import _properties
from tierscan.scanner.fingerprint.image import fingerprint_bytes
for unit in _XMP_FLOODS:
    print(len(_properties(_xmp_flood(unit, 4 << 20))))  # the whole packet, past the cap
    result = fingerprint_bytes(_png_with_text(_xmp_text_chunk("zTXt", _xmp_flood(unit, 4 << 20))),
                               want_sha256=True, want_perceptual=True)
    print(result.format, result.error)
""")
    lines = out.splitlines()
    assert len(lines) == 2 * len(_XMP_FLOODS)
    assert all(line.startswith("PNG") for line in lines[1::2])  # a result (or a reason), never a hang


@pytest.mark.slow
def test_a_jpeg_of_a_million_exif_continuation_segments_is_walked_to_an_answer() -> None:
    out = _in_subprocess("""
import struct
from tierscan.scanner.fingerprint.exif import read_metadata
from tierscan.scanner.fingerprint.exif.jpeg import MAX_JOINED
tiff = b"II*\\x00\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
first = b"Exif\\x00\\x00" + tiff
more = b"Exif\\x00\\x00" + b"\\x00"  # no TIFF header of its own: joined onto the one before
segment = lambda body: b"\\xff\\xe1" + struct.pack(">H", len(body) + 2) + body
data = b"\\xff\\xd8" + segment(first) + segment(more) * (MAX_JOINED - len(tiff)) + b"\\xff\\xd9"
meta = read_metadata(data)
print(meta.format, meta.error)
""")
    assert out.startswith("JPEG")


def _box(btype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + btype + body


def test_heif_items_sharing_one_large_extent_are_located_only_while_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.scanner.fingerprint.exif import bmff
    from tierscan.scanner.fingerprint.exif.blocks import MAX_BLOCKS

    located: list[int] = []
    real = bmff._Meta.item_bytes
    monkeypatch.setattr(bmff._Meta, "item_bytes", lambda self, data, item, blocks: located.append(item) or real(
        self, data, item, blocks))
    items, extent = 200, 256 << 10
    ftyp = _box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
    infe = b"".join(_box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", i, 0) + b"Exif\x00") for i in range(items))
    iinf = _box(b"iinf", b"\x00\x00\x00\x00" + struct.pack(">H", items) + infe)

    def iloc(payload_at: int) -> bytes:
        # version 1, 4-byte offsets and lengths; each item two extents over the same payload: joined per item
        entries = b"".join(struct.pack(">HHHH", i, 0, 0, 2) + struct.pack(">IIII", payload_at, extent,
                                                                         payload_at, extent)
                           for i in range(items))
        return _box(b"iloc", b"\x01\x00\x00\x00\x44\x00" + struct.pack(">H", items) + entries)

    def meta(payload_at: int) -> bytes:
        return _box(b"meta", b"\x00\x00\x00\x00" + iinf + iloc(payload_at))

    payload_at = len(ftyp) + len(meta(0)) + 8
    data = ftyp + meta(payload_at) + _box(b"mdat", b"\x00\x00\x00\x06" + b"\x00" * extent)
    read_metadata(data)
    assert 0 < len(located) <= MAX_BLOCKS

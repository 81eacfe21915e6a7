"""detect_format: magic numbers from the first 64 bytes, and how read_metadata refines them."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import pytest

from tierscan.scanner.fingerprint.exif import detect_format, read_metadata

DATA = Path(__file__).parent / "data" / "exif"
with open(DATA / "MANIFEST.csv", newline="", encoding="utf-8") as _fh:
    ROWS = list(csv.DictReader(_fh))

# What the first 64 bytes can tell, given exiftool's file type: the MPF segment of these MPOs follows a
# long APP1, and a DNG has a plain TIFF header (read_metadata refines both, see test_exif).
FROM_HEAD = {"MPO": "JPEG", "DNG": "TIFF", "Extended WEBP": "WEBP"}


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_real_files(row: dict[str, str]) -> None:
    head = (DATA / row["file"]).read_bytes()[:64]
    assert detect_format(head) == FROM_HEAD.get(row["file_type"], row["file_type"])


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0" * 32


BMP_HEAD = b"BM" + struct.pack("<IHHII", 1000, 0, 0, 54, 40) + struct.pack("<ii", 4, 4) + b"\0" * 30


@pytest.mark.parametrize(("head", "expected"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\0", "JPEG"),
    (b"\xff\xd8\xff\xe2\x00\x20MPF\0MM\x00*\x00\x00\x00\x08" + b"\0" * 20, "MPO"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG"),
    (b"GIF89a\x01\x00\x01\x00", "GIF"),
    (b"GIF87a\x01\x00\x01\x00", "GIF"),
    (BMP_HEAD, "BMP"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WEBP"),
    (ftyp(b"heic", b"mif1", b"heic"), "HEIC"),
    (ftyp(b"mif1", b"mif1", b"heic"), "HEIC"),
    (ftyp(b"mif1", b"mif1", b"miaf"), "HEIF"),
    (ftyp(b"avif", b"mif1", b"avif"), "AVIF"),
    (ftyp(b"mif1", b"avif", b"mif1"), "AVIF"),
    (ftyp(b"crx ", b"crx ", b"isom"), "CR3"),
    (b"II*\x00\x08\x00\x00\x00", "TIFF"),
    (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
    (b"II+\x00\x08\x00\x00\x00", "TIFF"),
    (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "CR2"),
    (b"IIRO\x08\x00\x00\x00", "ORF"),
    (b"MMOR\x00\x00\x00\x08", "ORF"),
    (b"IIU\x00\x18\x00\x00\x00", "RW2"),
    (b"FUJIFILMCCD-RAW 0201FF383501", "RAF"),
    (b"\xff\x0a\xfa\x7f", "JXL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JXL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JP2"),
])
def test_magic_numbers(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


@pytest.mark.parametrize("head", [
    b"", b"\0" * 64, b"%PDF-1.7\n", b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"<svg xmlns=", b"hello world",
    ftyp(b"isom", b"isom", b"mp41"), ftyp(b"qt  ", b"qt  "), b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"BM" + b"\xff" * 40,  # "BM" alone is too weak a magic
    b"\xff\xd8",  # two bytes of JPEG are not a JPEG yet
    b"MM\x00", b"II*",
], ids=repr)
def test_not_images(head: bytes) -> None:
    assert detect_format(head) is None


def test_mpf_with_a_bad_header_is_jpeg() -> None:
    assert detect_format(b"\xff\xd8\xff\xe2\x00\x20MPF\0 M\x00*\x00\x00\x00\x08" + b"\0" * 20) == "JPEG"


def test_read_metadata_refines_tiff_and_jpeg() -> None:
    dng = DATA / "exifpy__nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng"
    assert read_metadata(dng.read_bytes()).format == "DNG"
    assert read_metadata((DATA / "exifpy__Arbitro.tiff").read_bytes()).format == "TIFF"
    assert read_metadata((DATA / "pillow__sugarshack.mpo").read_bytes()).format == "MPO"
    assert read_metadata((DATA / "pillow__sugarshack_bad_mpo_header.jpg").read_bytes()).format == "JPEG"


def test_gif_and_bmp_sizes() -> None:
    meta = read_metadata(b"GIF89a\x20\x00\x10\x00" + b"\0" * 20)
    assert (meta.format, meta.width, meta.height) == ("GIF", 32, 16)
    meta = read_metadata(BMP_HEAD)
    assert (meta.format, meta.width, meta.height) == ("BMP", 4, 4)

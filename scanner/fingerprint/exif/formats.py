"""Format detection from the first bytes of an object (magic numbers), before any metadata is parsed.

The planner decides how much of an object to read from this; 64 bytes are enough for every format here.
Formats that share the plain TIFF header (DNG, NEF, ARW, PEF, SRW) are only told apart by their IFD0
tags, so ``detect_format`` says "TIFF" for them and :func:`tierscan.scanner.fingerprint.exif.read_metadata` refines it.
"""

from __future__ import annotations

__all__ = ["FTYP_BRANDS", "MAGICS", "detect_format"]

# (offset, magic, format), checked in order; specific magics come before their generic prefixes.
MAGICS: list[tuple[int, bytes, str]] = [
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"FUJIFILMCCD-RAW ", "RAF"),
    (0, b"IIRO\x08\x00\x00\x00", "ORF"),
    (0, b"IIRS\x08\x00\x00\x00", "ORF"),
    (0, b"MMOR\x00\x00\x00\x08", "ORF"),
    (0, b"IIU\x00", "RW2"),
    (6, b"HEAPCCDR", "CRW"),
    (0, b"\x00MRM", "MRW"),
    (0, b"FOVb", "X3F"),
    (8, b"CR\x02\x00", "CR2"),  # with a TIFF header at 0, checked in _tiff
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),  # BigTIFF
    (0, b"MM\x00+", "TIFF"),
    (0, b"\xff\x0a", "JXL"),
    (4, b"JXL \r\n\x87\n", "JXL"),
    (4, b"jP  \r\n\x87\n", "JP2"),
]

# ftyp brands of ISO BMFF images; anything else in an ftyp box (mp4, mov, ...) is not an image.
FTYP_BRANDS: dict[bytes, str] = {
    b"avif": "AVIF", b"avis": "AVIF",
    b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
    b"hevc": "HEIC", b"hevx": "HEIC", b"hevm": "HEIC", b"hevs": "HEIC",
    b"crx ": "CR3",
    b"mif1": "HEIF", b"msf1": "HEIF",
}
_BRAND_PRIORITY = ("AVIF", "CR3", "HEIC", "HEIF")
_BMP_HEADER_SIZES = frozenset((12, 40, 52, 56, 64, 108, 124))


def _ftyp(head: bytes) -> str | None:
    size = int.from_bytes(head[0:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    found = {FTYP_BRANDS[b] for b in brands if b in FTYP_BRANDS}
    major = FTYP_BRANDS.get(head[8:12])
    if major in ("AVIF", "CR3", "HEIC"):
        return major
    return next((fmt for fmt in _BRAND_PRIORITY if fmt in found), None)


def _bmp(head: bytes) -> bool:
    """'BM' is a weak magic: also require a known DIB header size and reserved fields of zero."""
    return (len(head) >= 18 and head[6:10] == b"\x00\x00\x00\x00"
            and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES)


def _jpeg(head: bytes) -> str:
    """JPEG, or MPO when an APP2 "MPF" segment with a valid header shows up within the bytes given."""
    pos = 2
    while pos + 12 <= len(head) and head[pos] == 0xFF and 0xE0 <= head[pos + 1] <= 0xEF:
        if head[pos + 1] == 0xE2 and head[pos + 4 : pos + 8] == b"MPF\x00" and head[pos + 8 : pos + 12] in (
            b"II*\x00", b"MM\x00*"
        ):
            return "MPO"
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return "JPEG"


def detect_format(head: bytes) -> str | None:
    """The image format of a file from its first bytes (about 64), or ``None`` if it is not an image."""
    if head[4:8] == b"ftyp":
        return _ftyp(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP" if _bmp(head) else None
    for offset, magic, fmt in MAGICS:
        if head[offset : offset + len(magic)] == magic:
            if fmt == "CR2" and head[:4] != b"II*\x00":
                continue
            return _jpeg(head) if fmt == "JPEG" else fmt
    return None

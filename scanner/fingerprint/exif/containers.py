"""Dispatch from a detected format to the container walker that locates its metadata blocks."""

from __future__ import annotations

import struct
from collections.abc import Callable

from tierscan.scanner.fingerprint.exif.blocks import Blocks, ExifBlock
from tierscan.scanner.fingerprint.exif.bmff import scan_bmff
from tierscan.scanner.fingerprint.exif.formats import detect_format
from tierscan.scanner.fingerprint.exif.jpeg import scan_jpeg
from tierscan.scanner.fingerprint.exif.png import scan_png
from tierscan.scanner.fingerprint.exif.webp import scan_webp

__all__ = ["TIFF_FORMATS", "locate_blocks"]

# Formats whose file is itself a TIFF structure (the walker refines TIFF into DNG/NEF/ARW/...).
TIFF_FORMATS = frozenset(("TIFF", "CR2", "ORF", "RW2", "DNG", "NEF", "ARW", "PEF", "SRW"))


def _raf(data: bytes, blocks: Blocks) -> None:
    """Fujifilm RAF: the header points at an embedded JPEG that carries the EXIF."""
    if len(data) < 92:
        blocks.need(0, 92)
        return
    offset, length = struct.unpack_from(">II", data, 84)
    if offset + length > len(data) or data[offset : offset + 2] != b"\xff\xd8":
        blocks.need(offset, length, "bad RAF JPEG pointer")
        return
    scan_jpeg(data, blocks, offset)
    blocks.width = blocks.height = None  # the preview's size, not the sensor's


def _gif(data: bytes, blocks: Blocks) -> None:
    if len(data) >= 10:
        blocks.width, blocks.height = struct.unpack_from("<HH", data, 6)


def _bmp(data: bytes, blocks: Blocks) -> None:
    if len(data) >= 26:
        header = int.from_bytes(data[14:18], "little")
        fmt = "<HH" if header == 12 else "<ii"
        w, h = struct.unpack_from(fmt, data, 18)
        blocks.width, blocks.height = abs(w), abs(h)


def _tiff(data: bytes, blocks: Blocks) -> None:
    blocks.add_exif(ExifBlock(data, 0, len(data)))


_WALKERS: dict[str, Callable[[bytes, Blocks], None]] = {
    "JPEG": scan_jpeg, "MPO": scan_jpeg, "PNG": scan_png, "WEBP": scan_webp,
    "HEIC": scan_bmff, "HEIF": scan_bmff, "AVIF": scan_bmff, "CR3": scan_bmff,
    "RAF": _raf, "GIF": _gif, "BMP": _bmp,
    **{fmt: _tiff for fmt in TIFF_FORMATS},
}


def locate_blocks(data: bytes) -> Blocks:
    """Detect the format of ``data`` (the file or a prefix of it) and locate its metadata blocks."""
    blocks = Blocks(detect_format(data[:64]))
    walker = _WALKERS.get(blocks.format or "")
    if walker is not None:
        walker(data, blocks)
    return blocks

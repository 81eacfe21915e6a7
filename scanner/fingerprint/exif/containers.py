"""Dispatch from a detected format to the container walker that locates its metadata blocks.

Besides the generic walkers (jpeg.py, png.py, webp.py, bmff.py), the RAW containers that wrap a TIFF or a
JPEG are walked here: RAF (a JPEG at a header pointer), RW2 (a JPEG in IFD0's JpgFromRaw), MRW (a TIFF
block among Minolta's blocks), X3F (a directory of sections at the end of the file, with a property list
and an embedded JPEG) and CRW (a CIFF heap, read whole by records.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tierscan.scanner.fingerprint.exif.blocks import Blocks, ExifBlock, Record
from tierscan.scanner.fingerprint.exif.bmff import scan_bmff
from tierscan.scanner.fingerprint.exif.formats import detect_format
from tierscan.scanner.fingerprint.exif.jpeg import scan_jpeg
from tierscan.scanner.fingerprint.exif.png import scan_png
from tierscan.scanner.fingerprint.exif.tiff import parse_header
from tierscan.scanner.fingerprint.exif.webp import scan_webp

__all__ = ["TIFF_FORMATS", "locate_blocks"]

# Formats whose file is itself a TIFF structure (the walker refines TIFF into DNG/NEF/ARW/...).
TIFF_FORMATS = frozenset(("TIFF", "CR2", "ORF", "RW2", "DNG", "NEF", "ARW", "PEF", "SRW", "IIQ"))


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


RW2_JPG_FROM_RAW = 0x002E


def _rw2(data: bytes, blocks: Blocks) -> None:
    """Panasonic RW2: a TIFF whose IFD0 tag 0x002E holds a whole JPEG, with the maker notes in its EXIF."""
    _tiff(data, blocks)
    header = parse_header(data, 0)
    parsed = None if header is None else header[0].entries(header[1], {RW2_JPG_FROM_RAW})
    for e in (parsed[0] if parsed else [])[:1]:  # one JPEG: a repeated tag must not mean repeated walks
        if e.size > 4 and data[e.pos : e.pos + 2] == b"\xff\xd8":
            _embedded_jpeg(data, blocks, e.pos)
        elif e.size > 4 and e.pos + 2 > len(data):
            blocks.need(e.pos, min(e.size, 1 << 20))


def _embedded_jpeg(data: bytes, blocks: Blocks, offset: int) -> None:
    """Scan a JPEG inside a RAW file for its metadata; its size is the preview's, not the image's."""
    width, height = blocks.width, blocks.height
    scan_jpeg(data, blocks, offset)
    blocks.width, blocks.height = width, height


MAX_MRW_BLOCKS = 64


def _mrw(data: bytes, blocks: Blocks) -> None:
    """Minolta MRW: "\\0MRM", the header length, then blocks (4-byte name, big-endian length): "\\0PRD"
    holds the image size, "\\0TTW" is a TIFF with the EXIF and maker notes."""
    if len(data) < 8:
        blocks.need(0, 8)
        return
    end = min(8 + int.from_bytes(data[4:8], "big"), len(data))
    pos = 8
    for _ in range(MAX_MRW_BLOCKS):
        if pos + 8 > end:
            break
        name, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        if name == b"\x00PRD" and length >= 16 and pos + 24 <= len(data):
            blocks.height, blocks.width = struct.unpack_from(">HH", data, pos + 8 + 12)  # ImageHeight, ImageWidth
        if name == b"\x00TTW":
            if pos + 8 + length > len(data):
                blocks.need(pos, length + 8)
            else:
                blocks.add_exif(ExifBlock(data, pos + 8, pos + 8 + length))
            return
        pos += 8 + length


MAX_X3F_SECTIONS = 256
MAX_X3F_PROPERTIES = 1 << 20  # bytes of a PROP section read: its name/value pairs take a few KB
_JPEG_METADATA = 4 + 65_536  # SOI, then an APP1 segment of at most 64 KiB
_X3F_JPEG_HEADER = b"SECi\0\0\x02\0\x02\0\0\0\x12\0\0\0"


def _x3f(data: bytes, blocks: Blocks) -> None:
    """Sigma X3F: the last 4 bytes point at the "SECd" directory of (offset, length, name) sections.
    PROP holds the properties (make, model, serial, time); an IMA2 section holding a JPEG (after its
    28-byte "SECi" header) carries EXIF and Sigma maker notes. Every range read is declared
    (`Blocks.uses`): a ranged reader holds the head and the end of the file, and fetches the rest."""
    n = len(data)
    if n >= 36:
        blocks.width, blocks.height = struct.unpack_from("<II", data, 28)
    if n < 40:
        return
    blocks.uses(n - 4, 4)
    where = int.from_bytes(data[n - 4 :], "little")
    blocks.uses(where, 12)
    if where + 12 > n or data[where : where + 4] != b"SECd":
        blocks.fail("bad X3F directory")
        return
    count = min(int.from_bytes(data[where + 8 : where + 12], "little"), MAX_X3F_SECTIONS)
    blocks.uses(where + 12, 12 * count)
    jpeg_done = False  # the first embedded JPEG only: sections pointing at one JPEG must not repeat its walk
    for at in range(where + 12, min(where + 12 + 12 * count, n - 11), 12):
        offset, length = struct.unpack_from("<II", data, at)
        name = data[at + 8 : at + 12]
        if offset + length > n:
            continue
        if name == b"PROP":
            blocks.uses(offset, min(length, MAX_X3F_PROPERTIES))
            blocks.add_record(Record("X3FProperties", data, offset, offset + min(length, MAX_X3F_PROPERTIES)))
        elif name == b"IMA2" and not jpeg_done:
            # The SECi header, then a JPEG whose EXIF (APP1, at most 64 KiB) comes first.
            blocks.uses(offset, min(length, 28 + _JPEG_METADATA))
            if data.startswith(_X3F_JPEG_HEADER, offset) and data.startswith(b"\xff\xd8\xff\xe1", offset + 28):
                _embedded_jpeg(data, blocks, offset + 28)
                jpeg_done = True


def _crw(data: bytes, blocks: Blocks) -> None:
    blocks.add_record(Record("CIFF", data, 0, len(data)))


_WALKERS: dict[str, Callable[[bytes, Blocks], None]] = {
    "JPEG": scan_jpeg, "MPO": scan_jpeg, "PNG": scan_png, "WEBP": scan_webp,
    "HEIC": scan_bmff, "HEIF": scan_bmff, "AVIF": scan_bmff, "CR3": scan_bmff,
    "RAF": _raf, "GIF": _gif, "BMP": _bmp,
    **{fmt: _tiff for fmt in TIFF_FORMATS},
    "RW2": _rw2, "MRW": _mrw, "X3F": _x3f, "CRW": _crw,
}


def locate_blocks(data: bytes) -> Blocks:
    """Detect the format of ``data`` (the file or a prefix of it) and locate its metadata blocks."""
    blocks = Blocks(detect_format(data[:64]))
    walker = _WALKERS.get(blocks.format or "")
    if walker is not None:
        walker(data, blocks)
    return blocks

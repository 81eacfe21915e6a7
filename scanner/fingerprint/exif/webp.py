"""WebP: walk the RIFF chunks for the canvas size and the EXIF and XMP chunks, which follow the pixels."""

from __future__ import annotations

import struct

from tierscan.scanner.fingerprint.exif.blocks import Blocks, ExifBlock

__all__ = ["scan_webp"]

MAX_CHUNKS = 10_000


def _size(ctype: bytes, data: bytes, body: int, length: int) -> tuple[int, int] | None:
    """Canvas size from VP8X, or the frame size of a simple lossy (VP8) or lossless (VP8L) file."""
    if ctype == b"VP8X" and length >= 10:
        w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
        h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
        return w, h
    if ctype == b"VP8 " and length >= 10 and data[body + 3 : body + 6] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, body + 6)
        return w & 0x3FFF, h & 0x3FFF
    if ctype == b"VP8L" and length >= 5 and data[body] == 0x2F:
        bits = int.from_bytes(data[body + 1 : body + 5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def scan_webp(data: bytes, blocks: Blocks) -> None:
    """Walk the chunks of the RIFF/WEBP file ``data`` and record its metadata blocks into ``blocks``."""
    pos, n = 12, len(data)
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            if pos < n:  # a partial chunk header; a clean end of file needs nothing more
                blocks.need(pos, 8)
            return
        ctype, length = struct.unpack_from("<4sI", data, pos)
        body, end = pos + 8, pos + 8 + length
        if ctype in (b"VP8X", b"VP8 ", b"VP8L", b"EXIF", b"XMP ") and end > n:
            blocks.need(pos, length + 8)
            return
        size = _size(ctype, data, body, length) if blocks.width is None else None
        if size is not None:
            blocks.width, blocks.height = size
        elif ctype == b"EXIF":
            # Some writers keep the JPEG "Exif\0\0" prefix ("improper header" to exiftool): skip it.
            start = body + 6 if data.startswith(b"Exif\x00\x00", body) else body
            blocks.add_exif(ExifBlock(data, start, end))
        elif ctype == b"XMP ":
            blocks.add_xmp(data[body:end])
        pos = end + (length & 1)
    blocks.fail("too many WebP chunks")

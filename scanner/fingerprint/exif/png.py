"""PNG: walk the chunks for IHDR, eXIf (before or after IDAT), XMP and ImageMagick's raw EXIF profiles.

Each chunk is stepped over by its length, so with a prefix the walk reports the next chunk header it
needs. Compressed text is inflated with a hard output limit so a zip bomb cannot allocate much.

Hostile files: a text chunk gives at most ``MAX_TEXT`` bytes (1 MiB, the XMP reader's own cap): that much of
a tEXt/iTXt text, or of a zTXt/iTXt text once inflated. Only the first ``MAX_TEXT_CHUNKS`` text chunks with
a keyword we read are looked at, whether or not they inflate, so many small chunks that each inflate to the
cap and then fail cannot add up.
"""

from __future__ import annotations

import struct
import zlib

from tierscan.scanner.fingerprint.exif.blocks import Blocks, ExifBlock
from tierscan.scanner.fingerprint.exif.xmp import MAX_PACKET

__all__ = ["PNG_SIGNATURE", "scan_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CHUNKS = 100_000
MAX_TEXT = MAX_PACKET  # text (inflated) read of a chunk; the rest is not metadata we want
MAX_TEXT_CHUNKS = 8
_XMP_KEY = b"XML:com.adobe.xmp"
_EXIF_KEYS = (b"Raw profile type exif", b"Raw profile type APP1")


def _inflate(raw: bytes) -> bytes | None:
    try:
        return zlib.decompressobj().decompress(raw, MAX_TEXT)
    except zlib.error:
        return None


def _text(ctype: bytes, data: bytes, body: int, end: int) -> tuple[bytes, bytes | None]:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk; the text only for keywords we read.

    The keyword (at most 79 bytes) is looked at before anything is copied or inflated, so large text
    chunks of no interest cost nothing.
    """
    nul = data.find(b"\x00", body, min(end, body + 80))
    if nul < 0:
        return b"", None
    keyword = data[body:nul]
    if keyword != _XMP_KEY and keyword not in _EXIF_KEYS:
        return keyword, None
    rest = data[nul + 1 : min(end, nul + 1 + MAX_TEXT)]
    if ctype == b"tEXt":
        return keyword, rest
    if ctype == b"zTXt":
        return keyword, _inflate(rest[1:]) if rest[:1] == b"\x00" else None
    # iTXt: compression flag, method, language tag NUL, translated keyword NUL, text
    if len(rest) < 2:
        return keyword, None
    flag, tail = rest[0], rest[2:]
    parts = tail.split(b"\x00", 2)
    if len(parts) < 3:
        return keyword, None
    return keyword, (_inflate(parts[2]) if flag else parts[2])


def _raw_profile(text: bytes) -> bytes | None:
    """ImageMagick's "Raw profile type exif": a name line, a length line, then hex digits."""
    lines = text.lstrip(b"\n").split(b"\n", 2)
    if len(lines) < 3:
        return None
    try:
        length = int(lines[1].strip())
        raw = bytes.fromhex(b"".join(lines[2].split())[: 2 * length].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return raw[6:] if raw.startswith(b"Exif\x00\x00") else raw


def scan_png(data: bytes, blocks: Blocks) -> None:
    """Walk the PNG chunks of ``data`` and record its metadata blocks into ``blocks``."""
    pos, n = 8, len(data)
    texts = 0  # metadata text chunks looked at: each may inflate up to MAX_TEXT, so their number is bounded
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            blocks.need(pos, 8)
            return
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body, end = pos + 8, pos + 8 + length
        if ctype == b"IEND":
            return
        if ctype in (b"IHDR", b"eXIf", b"tEXt", b"zTXt", b"iTXt") and end > n:
            blocks.need(pos, length + 12)
            return
        if ctype == b"IHDR" and length >= 8:
            blocks.width, blocks.height = struct.unpack_from(">II", data, body)
        elif ctype == b"eXIf":
            start = body + 6 if data.startswith(b"Exif\x00\x00", body) else body
            blocks.add_exif(ExifBlock(data, start, end))
        elif ctype in (b"tEXt", b"zTXt", b"iTXt") and texts < MAX_TEXT_CHUNKS:
            keyword, text = _text(ctype, data, body, end)
            texts += keyword == _XMP_KEY or keyword in _EXIF_KEYS
            if text is not None and keyword == _XMP_KEY:
                blocks.add_xmp(text)
            elif text is not None and keyword in _EXIF_KEYS and (raw := _raw_profile(text)) is not None:
                blocks.add_exif(ExifBlock(raw, 0, len(raw), None))
        pos = end + 4  # skip the CRC
    blocks.fail("too many PNG chunks")

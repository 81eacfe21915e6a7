"""GoPro's GPMF metadata (JPEG APP6 "GoPro\\0"): key-length-value records, nested when the type is 0.

Only the camera serial (key ``CASN``) is read, up to ``MAX_TEXT`` bytes. Nesting depth and the number of
records are bounded.
"""

from __future__ import annotations

import struct

from tierscan.scanner.fingerprint.exif.model import Collector
from tierscan.scanner.fingerprint.exif.text import decode_text
from tierscan.scanner.fingerprint.exif.tiff import MAX_TEXT

__all__ = ["read_gpmf"]

_KEYS = {b"CASN": "CameraSerialNumber"}
MAX_RECORDS = 4096
MAX_DEPTH = 8


def read_gpmf(buf: bytes, sink: Collector) -> None:
    """Offer the serial numbers found in the GPMF stream ``buf``."""
    stack = [(0, len(buf), 0)]
    records = 0
    while stack and records < MAX_RECORDS:
        pos, end, depth = stack.pop()
        while pos + 8 <= end and records < MAX_RECORDS:
            records += 1
            key, typ, size, repeat = struct.unpack_from(">4sBBH", buf, pos)
            length = size * repeat
            body = pos + 8
            if body + length > end:
                sink.error("truncated GPMF record")
                break
            if typ == 0 and depth < MAX_DEPTH:
                stack.append((body, body + length, depth + 1))
            elif key in _KEYS and typ == ord("c"):
                sink.serial(_KEYS[key], decode_text(buf[body : body + min(length, MAX_TEXT)]))
            pos = body + ((length + 3) & ~3)

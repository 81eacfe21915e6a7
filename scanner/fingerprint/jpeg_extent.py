"""Where the primary image of a JPEG ends, so that perceptual hashing reads its pixels and not what follows.

Bytes after the primary image's EOI are not part of it: MPF previews and Ultra HDR gain maps (MPO), motion
photo videos, vendor trailers. Decoders ignore them, and they can be most of the object. The walk follows
marker segments by their lengths and scans entropy-coded data for the next marker (`FF` followed by
anything but `00`, a restart marker or fill), so an EXIF thumbnail inside APP1, which has its own EOI, is
stepped over with its segment.

The walk runs in the event loop, so it is bounded: past MAX_STEPS markers (fill bytes included) it gives up
and answers None, as for a file it cannot follow, and the caller decodes what it read (in the workers, under
their time limit). Real JPEGs have tens of markers before their EOI, a progressive one a few hundred.
"""

from __future__ import annotations

import re

__all__ = ["primary_end"]

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM and RST0-7 carry no length
# In entropy-coded data, the next marker: FF then anything but a stuffed 00, RST0-7 or another fill FF.
# Searched in C: stuffed FF 00 pairs come every few hundred bytes, too many to step over in Python.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
MAX_STEPS = 100_000


def primary_end(data: bytes) -> int | None:
    """The offset just past the EOI that ends the first image in `data`, or None when `data` is not a JPEG
    or stops before that EOI (read more, or decode what there is), or holds more than MAX_STEPS markers."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, size = 2, len(data)
    for _ in range(MAX_STEPS):
        if pos + 2 > size:
            return None
        if data[pos] != 0xFF:
            return None  # not at a marker: a damaged file, decoded as it is
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            return pos + 2
        if marker in _STANDALONE or marker == _SOI:
            pos += 2
            continue
        if pos + 4 > size:
            return None
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker != _SOS:
            continue
        found = _NEXT_MARKER.search(data, pos)  # entropy-coded data up to the next marker
        if found is None:
            return None
        pos = found.start()
    return None

"""IPTC-IIM inside Photoshop image resources (JPEG APP13, PSD): the datasets the inventory records.

The resource block is a run of "8BIM" resources (id, padded Pascal name, size, padded data); resource
0x0404 holds IPTC datasets (0x1C, record, dataset, size). Only tagged datasets of the tables below are
decoded. Both walks step forward by each item's size and stop at the first malformed one, and at most
``MAX_ITEMS`` items are read, so a hostile block costs time linear in its size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tierscan.scanner.fingerprint.exif.model import Collector, Rank

__all__ = ["IPTC_DATASETS", "read_photoshop"]

MAX_ITEMS = 4096
_IPTC_RESOURCE = 0x0404

# (record, dataset) -> exiftool's tag name, for the datasets read.
IPTC_DATASETS: dict[tuple[int, int], str] = {
    (2, 55): "DateCreated",
    (2, 60): "TimeCreated",
}


def _resources(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(id, data start, data end) of the 8BIM resources in ``buf[start:end]``."""
    pos = start
    for _ in range(MAX_ITEMS):
        if pos + 12 > end or buf[pos : pos + 4] != b"8BIM":
            break
        rid = int.from_bytes(buf[pos + 4 : pos + 6], "big")
        name_len = buf[pos + 6]
        at = pos + 6 + ((name_len + 2) & ~1)  # the Pascal name, length byte included, padded to even
        if at + 4 > end:
            break
        size = int.from_bytes(buf[at : at + 4], "big")
        data = at + 4
        if data + size > end:
            break
        yield rid, data, data + size
        pos = data + size + (size & 1)


def _datasets(buf: bytes, start: int, end: int) -> dict[str, bytes]:
    """The first value of each dataset of ``IPTC_DATASETS`` in the IPTC stream ``buf[start:end]``."""
    found: dict[str, bytes] = {}
    pos = start
    for _ in range(MAX_ITEMS):
        if pos + 5 > end or buf[pos] != 0x1C:
            break
        record, dataset = buf[pos + 1], buf[pos + 2]
        size = int.from_bytes(buf[pos + 3 : pos + 5], "big")
        pos += 5
        if size & 0x8000:  # extended dataset: the next (size & 0x7fff) bytes hold the length
            width = size & 0x7FFF
            if width > 4 or pos + width > end:
                break
            size = int.from_bytes(buf[pos : pos + width], "big")
            pos += width
        if pos + size > end:
            break
        name = IPTC_DATASETS.get((record, dataset))
        if name is not None and name not in found:
            found[name] = buf[pos : pos + size]
        pos += size
    return found


def _date(raw: bytes) -> str | None:
    """exiftool's ExifDate: "YYYYMMDD" (any separators) to "YYYY:MM:DD"."""
    m = re.fullmatch(rb"(\d{4})\D*(\d{2})\D*(\d{2})\x00?", raw)
    return None if m is None else b":".join(m.groups()).decode()


def _time(raw: bytes) -> str | None:
    """exiftool's ExifTime: "HHMMSS+HHMM" to "HH:MM:SS+HH:MM"."""
    m = re.fullmatch(rb"(\d{2}):?(\d{2}):?(\d{2})(?:([+-]\d{2}):?(\d{2}))?\x00?", raw)
    if m is None:
        return None
    h, mi, s, zh, zm = (g.decode() if g else "" for g in m.groups())
    return f"{h}:{mi}:{s}" + (f"{zh}:{zm}" if zh else "")


def read_photoshop(buf: bytes, start: int, end: int, sink: Collector) -> None:
    """Read the IPTC datasets of a Photoshop resource block (after its "Photoshop 3.0" signature, if any).

    Capture time: exiftool's Composite DateTimeOriginal, DateCreated and TimeCreated joined, which counts
    only when no DateTimeOriginal was read elsewhere (its rank is below EXIF, maker notes and XMP).
    """
    sig = buf.find(b"8BIM", start, min(end, start + 32))
    if sig < 0:
        return
    for rid, data, data_end in _resources(buf, sig, end):
        if rid != _IPTC_RESOURCE:
            continue
        found = _datasets(buf, data, data_end)
        date = _date(found["DateCreated"]) if "DateCreated" in found else None
        clock = _time(found["TimeCreated"]) if "TimeCreated" in found else None
        if date and clock:
            sink.offer("datetime_original", f"{date} {clock}", Rank.COMPOSITE)
        return

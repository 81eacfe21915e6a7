"""IPTC-IIM inside Photoshop image resources (JPEG APP13, PSD) or a TIFF IPTC-NAA tag: the datasets the
inventory records.

The resource block is a run of "8BIM" resources (id, padded Pascal name, size, padded data); resource
0x0404 holds IPTC datasets (0x1C, record, dataset, size). Only tagged datasets of the tables below are
decoded. Both walks step forward by each item's size and stop at the first malformed one, and at most
``MAX_ITEMS`` items are read, so a hostile block costs time linear in its size.

Text is in the character set that dataset 1:90 (CodedCharacterSet) names by its ISO 2022 escape: UTF-8
(ESC % G) or Latin-1 (ESC - A, ESC . A). Without one, IIM says ASCII, but writers put UTF-8 or Windows
Latin 1 there: UTF-8 is tried first (it rejects Latin text reliably), then cp1252, exiftool's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tierscan.scanner.fingerprint.exif.model import MAX_CAPTION, MAX_NAME, MAX_PLACE_PART, Collector, Rank

__all__ = ["IPTC_DATASETS", "read_iptc", "read_photoshop"]

MAX_ITEMS = 4096
_IPTC_RESOURCE = 0x0404

# (record, dataset) -> exiftool's tag name, for the datasets read.
IPTC_DATASETS: dict[tuple[int, int], str] = {
    (1, 90): "CodedCharacterSet",
    (2, 55): "DateCreated",
    (2, 60): "TimeCreated",
    (2, 80): "By-line",  # repeatable: each creator's name
    (2, 90): "City",
    (2, 92): "Sub-location",
    (2, 95): "Province-State",
    (2, 101): "Country-PrimaryLocationName",
    (2, 118): "Contact",  # repeatable: who can say more about the picture
    (2, 120): "Caption-Abstract",
    (2, 122): "Writer-Editor",  # repeatable: who wrote the caption
}
# Datasets naming people, and the location datasets by `Collector` place part.
_PEOPLE = ("By-line", "Contact", "Writer-Editor")
_PLACE = {"Sub-location": "sublocation", "City": "city", "Province-State": "state",
          "Country-PrimaryLocationName": "country"}
_CHARSETS = {b"\x1b%G": "utf-8", b"\x1b-A": "latin-1", b"\x1b.A": "latin-1"}
MAX_VALUES = 64  # values kept of one repeatable dataset


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


def _datasets(buf: bytes, start: int, end: int) -> dict[str, list[bytes]]:
    """The values (the first ``MAX_VALUES``) of each dataset of ``IPTC_DATASETS`` in the IPTC stream
    ``buf[start:end]``, in stream order."""
    found: dict[str, list[bytes]] = {}
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
        if name is not None and len(values := found.setdefault(name, [])) < MAX_VALUES:
            values.append(buf[pos : pos + size])
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


def _text(raw: bytes, charset: str | None, chars: int) -> str:
    """A dataset's text in the stream's character set (see the module's docstring), cut before it is
    decoded to the bytes ``chars`` characters can take; never fails."""
    raw = raw[: chars * 4].split(b"\0", 1)[0]
    if charset is not None:
        return raw.decode(charset, errors="replace").strip()
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace").strip()


def read_iptc(buf: bytes, start: int, end: int, sink: Collector) -> None:
    """Read the IPTC stream ``buf[start:end]`` (the datasets themselves: a Photoshop 0x0404 resource, a
    TIFF IPTC-NAA tag).

    Capture time: exiftool's Composite DateTimeOriginal, DateCreated and TimeCreated joined, which counts
    only when no DateTimeOriginal was read elsewhere (its rank is below EXIF, maker notes and XMP). Every
    By-line, Contact and Writer-Editor is a person named; the caption and location parts rank after XMP's.
    """
    found = _datasets(buf, start, end)
    date = _date(found["DateCreated"][0]) if "DateCreated" in found else None
    clock = _time(found["TimeCreated"][0]) if "TimeCreated" in found else None
    if date and clock:
        sink.offer("datetime_original", f"{date} {clock}", Rank.COMPOSITE)
    coded = found.get("CodedCharacterSet")
    charset = _CHARSETS.get(coded[0].strip(b"\0")) if coded else None
    for name in _PEOPLE:
        for raw in found.get(name, ()):
            sink.person(_text(raw, charset, MAX_NAME))
    if "Caption-Abstract" in found:
        sink.offer("caption", _text(found["Caption-Abstract"][0], charset, MAX_CAPTION), Rank.IPTC)
    for name, part in _PLACE.items():
        if name in found:
            sink.offer(part, _text(found[name][0], charset, MAX_PLACE_PART), Rank.IPTC)


def read_photoshop(buf: bytes, start: int, end: int, sink: Collector) -> None:
    """Read the IPTC datasets of a Photoshop resource block (after its "Photoshop 3.0" signature, if any)."""
    sig = buf.find(b"8BIM", start, min(end, start + 32))
    if sig < 0:
        return
    for rid, data, data_end in _resources(buf, sig, end):
        if rid == _IPTC_RESOURCE:
            read_iptc(buf, data, data_end, sink)
            return

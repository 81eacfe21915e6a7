"""XMP packets: the few properties the inventory needs, found by namespace URI without an XML parser.

A full XML parse is slow and, on hostile input, exposed to entity expansion; the properties we read are
simple values written as attributes or as element text, so a linear scan suffices. Prefixes are resolved
through the packet's own ``xmlns`` declarations, so non-standard prefixes still match.

Hostile packets: only the first ``MAX_PACKET`` bytes (1 MiB) of a packet are read, and the scan is linear
in them: property names are found by a bounded pattern (at most ``MAX_BINDINGS`` prefixes of at most
``MAX_PREFIX`` bytes), and each value's closing quote or bracket by a forward search that resumes where the
last one stopped, so a packet of repeated unterminated attributes cannot make it quadratic.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from tierscan.scanner.fingerprint.exif.gps import parse_xmp_coordinate
from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.people import read_people
from tierscan.scanner.fingerprint.exif.text import small_int
from tierscan.scanner.fingerprint.exif.tiff import Tag

__all__ = ["XMP_TAGS", "read_xmp", "xmp_date"]

_NAMESPACES = {
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/xap/1.0/": "xmp",
}

# (namespace key, property) -> what it feeds; exiftool's XMP tag names.
XMP_TAGS: dict[tuple[str, str], Tag] = {
    ("tiff", "Make"): Tag("make", "Make"),
    ("tiff", "Model"): Tag("model", "Model"),
    ("tiff", "Orientation"): Tag("orientation", "Orientation"),
    ("tiff", "Software"): Tag("software", "Software"),
    ("tiff", "Artist"): Tag("owner", "Artist"),
    ("exif", "DateTimeOriginal"): Tag("datetime_original", "DateTimeOriginal", fmt="date"),
    ("xmp", "CreateDate"): Tag("datetime_original", "CreateDate", Rank.CREATE_DATE, fmt="date"),
    ("exif", "ImageUniqueID"): Tag("image_unique_id", "ImageUniqueID"),
    ("aux", "SerialNumber"): Tag("serial", "SerialNumber"),
    ("exif", "SerialNumber"): Tag("serial", "SerialNumber"),  # written by Adobe Camera Raw 15.1
    ("exif", "LensSerialNumber"): Tag("serial", "LensSerialNumber"),
    ("aux", "LensSerialNumber"): Tag("serial", "LensSerialNumber"),
    ("aux", "OwnerName"): Tag("owner", "OwnerName"),
    ("exifEX", "BodySerialNumber"): Tag("serial", "SerialNumber"),
    ("exifEX", "LensSerialNumber"): Tag("serial", "LensSerialNumber"),
    ("exifEX", "CameraOwnerName"): Tag("owner", "OwnerName"),
}
_GPS = {("exif", "GPSLatitude"): ("S", 90.0), ("exif", "GPSLongitude"): ("W", 180.0)}

MAX_PACKET = 1 << 20  # bytes of a packet read; the properties wanted sit in its first kilobytes
MAX_PREFIX = 64  # a namespace prefix longer than this is not one a writer chose
MAX_BINDINGS = 16  # prefixes bound to the wanted namespaces, first declared first
_XMLNS = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']([^"']*)["']""")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:\d{2})?(\S*)$")


def xmp_date(value: str) -> str:
    """exiftool's ConvertXMPDate: ISO 8601 to EXIF style, keeping fractions and the zone offset."""
    m = _DATE.match(value)
    if m:
        y, mo, d, h, mi, s, rest = m.groups()
        return f"{y}:{mo}:{d} {h}:{mi}{s or ''}{rest}"
    if re.match(r"^\d{4}(-\d{2}){0,2}", value):
        return value.replace("-", ":")
    return value


@lru_cache(maxsize=32)
def _pattern(prefixes: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """One regex finding the name of every wanted property (``prefix:Name``), attribute or element.

    Compiled per set of prefixes (nearly always the standard ones, so the cache hits). It matches a
    bounded number of bytes at each position; values are found by `_value`, not by the regex, whose
    backtracking over an unterminated value would rescan the rest of the packet for every name.
    """
    names = sorted({prop for _, prop in (*XMP_TAGS, *_GPS)})
    return re.compile(
        rb"[\s<](" + b"|".join(map(re.escape, prefixes)) + rb"):(" + "|".join(names).encode() + rb")(?![\w.-])"
    )


_SPACE = re.compile(rb"\s*")


class _Ahead:
    """``data.find(byte, pos)`` for positions that move forward: a search answers every later one up to
    the position it found (or, having found none, every later one), so all the searches for a byte
    together read the packet about once."""

    __slots__ = ("_data", "_last")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._last: dict[bytes, tuple[int, int]] = {}  # byte -> (searched from, found at or -1)

    def find(self, byte: bytes, pos: int) -> int:
        last = self._last.get(byte)
        if last is not None and last[0] <= pos and (last[1] < 0 or last[1] >= pos):
            return last[1]
        found = self._data.find(byte, pos)
        self._last[byte] = (pos, found)
        return found


def _value(packet: bytes, end: int, ahead: _Ahead) -> tuple[bytes, int] | None:
    """The value after a property name ending at ``end``, and where the scan goes on; None if none.

    An attribute, ``name = "value"`` (or single quotes); else element text, ``name ...>value<``.
    """
    eq = _SPACE.match(packet, end).end()  # type: ignore[union-attr]
    if packet[eq:eq + 1] == b"=":
        quote_at = _SPACE.match(packet, eq + 1).end()  # type: ignore[union-attr]
        quote = packet[quote_at:quote_at + 1]
        if quote in (b'"', b"'"):
            close = ahead.find(quote, quote_at + 1)
            if close >= 0:
                return packet[quote_at + 1:close], close + 1
    after = packet[end:end + 1]
    if after == b">":
        gt = end
    elif after.isspace():
        gt = ahead.find(b">", end + 1)
    else:
        return None
    lt = ahead.find(b"<", gt + 1) if gt >= 0 else -1
    return (packet[gt + 1:lt], lt + 1) if lt >= 0 else None


def _properties(packet: bytes) -> dict[tuple[str, str], str]:
    """The first non-empty value of each wanted (namespace key, property) in ``packet``."""
    bindings: dict[bytes, str] = {}
    for prefix, uri in _XMLNS.findall(packet):
        key = _NAMESPACES.get(uri.decode("latin-1"))
        if key is not None and len(prefix) <= MAX_PREFIX and (prefix in bindings or len(bindings) < MAX_BINDINGS):
            bindings[prefix] = key
    found: dict[tuple[str, str], str] = {}
    if not bindings:
        return found
    pattern = _pattern(tuple(sorted(bindings)))
    ahead = _Ahead(packet)
    pos = 0
    while (m := pattern.search(packet, pos)) is not None:
        located = _value(packet, m.end(), ahead)
        if located is None:
            pos = m.start() + 1
            continue
        raw, pos = located
        prop = (bindings[m[1]], m[2].decode())
        value = html.unescape(raw.decode("utf-8", errors="replace")).strip()
        if value and prop not in found:
            found[prop] = value
    return found


def read_xmp(packet: bytes, sink: Collector) -> None:
    """Offer the XMP properties of ``packet`` to the collector at XMP rank, and the people it names."""
    packet = packet[:MAX_PACKET]
    found = _properties(packet)
    read_people(packet, sink)
    for prop, value in found.items():
        tag = XMP_TAGS.get(prop)
        if tag is None:
            continue
        if tag.field == "serial":
            sink.serial(tag.name, value)
        elif tag.field == "orientation":
            sink.offer("orientation", small_int(value), Rank.XMP)
        else:
            sink.offer(tag.field, xmp_date(value) if tag.fmt == "date" else value, Rank.XMP + tag.rank_bonus)
    coords = [
        parse_xmp_coordinate(found[prop], negative, limit) if prop in found else None
        for prop, (negative, limit) in _GPS.items()
    ]
    if coords[0] is not None and coords[1] is not None:
        sink.gps(coords[0], coords[1], Rank.XMP)

"""XMP packets: the few properties the inventory needs, found by namespace URI without an XML parser.

A full XML parse is slow and, on hostile input, exposed to entity expansion; the properties we read are
simple values written as attributes or as element text, so a linear scan suffices. Prefixes are resolved
through the packet's own ``xmlns`` declarations, so non-standard prefixes still match.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from scanner.exif.gps import parse_xmp_coordinate
from scanner.exif.model import Collector, Rank
from scanner.exif.tiff import Tag

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
    ("aux", "LensSerialNumber"): Tag("serial", "LensSerialNumber"),
    ("aux", "OwnerName"): Tag("owner", "OwnerName"),
    ("exifEX", "BodySerialNumber"): Tag("serial", "SerialNumber"),
    ("exifEX", "LensSerialNumber"): Tag("serial", "LensSerialNumber"),
    ("exifEX", "CameraOwnerName"): Tag("owner", "OwnerName"),
}
_GPS = {("exif", "GPSLatitude"): ("S", 90.0), ("exif", "GPSLongitude"): ("W", 180.0)}

MAX_PACKET = 4 << 20
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
    """One regex finding every wanted property, as an attribute or as simple element text.

    Compiled per set of prefixes (nearly always the standard ones, so the cache hits) so that a packet
    is scanned once, whatever its size.
    """
    names = sorted({prop for _, prop in (*XMP_TAGS, *_GPS)})
    return re.compile(
        rb"[\s<](" + b"|".join(map(re.escape, prefixes)) + rb"):("
        + "|".join(names).encode() + rb")(?![\w.-])"
        + rb"""(?:\s*=\s*(?:"([^"]*)"|'([^']*)')|(?:\s[^>]*)?>([^<]*)<)"""
    )


def _properties(packet: bytes) -> dict[tuple[str, str], str]:
    """The first non-empty value of each wanted (namespace key, property) in ``packet``."""
    bindings: dict[bytes, str] = {}
    for prefix, uri in _XMLNS.findall(packet):
        key = _NAMESPACES.get(uri.decode("latin-1"))
        if key is not None:
            bindings[prefix] = key
    found: dict[tuple[str, str], str] = {}
    if not bindings:
        return found
    for m in _pattern(tuple(sorted(bindings))).finditer(packet):
        prop = (bindings[m[1]], m[2].decode())
        raw = next((g for g in m.groups()[2:] if g is not None), b"")
        value = html.unescape(raw.decode("utf-8", errors="replace")).strip()
        if value and prop not in found:
            found[prop] = value
    return found


def read_xmp(packet: bytes, sink: Collector) -> None:
    """Offer the XMP properties of ``packet`` to the collector at XMP rank."""
    found = _properties(packet[:MAX_PACKET])
    for prop, value in found.items():
        tag = XMP_TAGS.get(prop)
        if tag is None:
            continue
        if tag.field == "serial":
            sink.serial(tag.name, value)
        elif tag.field == "orientation":
            sink.offer("orientation", int(value) if value.isdigit() else None, Rank.XMP)
        else:
            sink.offer(tag.field, xmp_date(value) if tag.fmt == "date" else value, Rank.XMP + tag.rank_bonus)
    coords = [
        parse_xmp_coordinate(found[prop], negative, limit) if prop in found else None
        for prop, (negative, limit) in _GPS.items()
    ]
    if coords[0] is not None and coords[1] is not None:
        sink.gps(coords[0], coords[1], Rank.XMP)

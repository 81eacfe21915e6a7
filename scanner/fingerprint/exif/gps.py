"""GPS coordinates: degree/minute/second values plus a reference letter, validated like exiftool does.

exiftool only builds a position when both the coordinate and its reference tag exist, and a rational with
a zero denominator makes the coordinate undefined; out-of-range values are rejected here as well, so a
garbage GPS IFD never reports a position.
"""

from __future__ import annotations

import math
import re

from tierscan.scanner.fingerprint.exif.tiff import Entry, Tiff

__all__ = ["gps_position", "parse_xmp_coordinate", "signed", "to_degrees"]

_NUMERIC_TYPES = frozenset((3, 4, 5, 8, 9, 10, 11, 12))


def to_degrees(values: list[float | None]) -> float | None:
    """Degrees from up to three values (degrees, minutes, seconds); ``None`` if any is undefined."""
    parts = values[:3]
    if not parts or any(v is None or not math.isfinite(v) for v in parts):
        return None
    d, m, s = [*parts, 0.0, 0.0][:3]
    return d + m / 60.0 + s / 3600.0  # type: ignore[operator]


def signed(degrees: float | None, ref: str | None, negative: str, limit: float) -> float | None:
    """Apply the reference letter and the range check; ``None`` for anything unusable."""
    if degrees is None or not ref:
        return None
    value = -degrees if ref[:1].upper() == negative else degrees
    return value if -limit <= value <= limit else None


def _coordinate(tiff: Tiff, by_tag: dict[int, Entry], value_tag: int, ref_tag: int, negative: str,
                limit: float) -> float | None:
    entry, ref_entry = by_tag.get(value_tag), by_tag.get(ref_tag)
    if entry is None or ref_entry is None or entry.type not in _NUMERIC_TYPES or entry.num == 0:
        return None
    ref = tiff.text(ref_entry) if ref_entry.type == 2 else None
    return signed(to_degrees(tiff.numbers(entry, 3)), ref, negative, limit)


def gps_position(tiff: Tiff, entries: list[Entry]) -> tuple[float, float] | None:
    """The signed (lat, lon) of a GPS IFD, or ``None`` unless both are present, defined and in range."""
    by_tag = {e.tag: e for e in entries}
    lat = _coordinate(tiff, by_tag, 2, 1, "S", 90.0)
    lon = _coordinate(tiff, by_tag, 4, 3, "W", 180.0)
    return None if lat is None or lon is None else (lat, lon)


_XMP_COORD = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEW])?\s*$",
                        re.IGNORECASE)


def parse_xmp_coordinate(text: str, negative: str, limit: float) -> float | None:
    """An XMP GPS coordinate: ``"DDD,MM.mmk"``, ``"DDD,MM,SSk"`` or signed decimal degrees."""
    m = _XMP_COORD.match(text)
    if m is None:
        return None
    d, mins, secs, ref = m.groups()
    degrees = to_degrees([float(d), float(mins or 0), float(secs or 0)])
    if degrees is None:
        return None
    if ref is None:
        return degrees if -limit <= degrees <= limit else None
    return signed(abs(degrees), ref, negative, limit)

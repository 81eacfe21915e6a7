"""Fixed-layout binary records: values at known offsets of a maker-note tag's value or of a vendor segment.

exiftool reads these with ProcessBinaryData tables (an offset, a format, a tag); the tables below are the
same data for the fields the inventory records. Each field is read only when it lies wholly inside the
record, so a short or hostile record yields fewer values, never an error.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from typing import NamedTuple

from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.text import decode_text, decode_utf16
from tierscan.scanner.fingerprint.exif.tiff import Tag

__all__ = ["BINARY", "BinField", "offer_binary", "unix_time"]


class BinField(NamedTuple):
    """A value at a fixed offset of a binary record."""

    offset: int
    kind: str  # a key of DECODERS
    size: int
    tag: Tag


def unix_time(seconds: int) -> str | None:
    """exiftool's ConvertUnixTime: seconds since 1970 as UTC "YYYY:MM:DD HH:MM:SS"; zero means unset."""
    if not 0 < seconds < 1 << 32:
        return None
    return time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(seconds))


def _clock(y: int, mo: int, d: int, h: int, mi: int, s: int) -> str | None:
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    return f"{y:04d}:{mo:02d}:{d:02d} {h:02d}:{mi:02d}:{s:02d}"


def _reconyx_time(raw: bytes, little: bool) -> str | None:
    # int16u[6] seconds, minutes, hours, month, day, year (exiftool Reconyx DateTimeOriginal)
    s, mi, h, mo, d, y = struct.unpack("<6H" if little else ">6H", raw)
    return _clock(y, mo, d, h, mi, s)


def _reconyx3_time(raw: bytes, little: bool) -> str | None:
    # HyperFire 2: int16u[6] seconds, minutes, hours, day, month, year
    s, mi, h, d, mo, y = struct.unpack("<6H" if little else ">6H", raw)
    return _clock(y, mo, d, h, mi, s)


def _reconyx2_time(raw: bytes, little: bool) -> str | None:
    # UltraFire: int8u[7] seconds, minutes, hours, day, month, year low byte, year high byte
    s, mi, h, d, mo, y, y_high = raw
    return _clock(y + 256 * y_high, mo, d, h, mi, s)


def _u32(raw: bytes, little: bool) -> int:
    value: int = struct.unpack("<I" if little else ">I", raw)[0]
    return value


def _qvci_time(raw: bytes, little: bool) -> str | None:
    """Casio QVCI "YYYY.MM.DD HH:MM:SS" style text, converted as exiftool's ValueConv does."""
    text = decode_text(raw).replace(".", ":")
    return re.sub(r"(\d+:\d+:\d+):", r"\1 ", text, count=1) or None


# Sony's 0x9050 and 0x94xx records are enciphered byte by byte: c = b**3 % 249 for b in 2..247, the other
# byte values unchanged (exiftool's Decipher).
_SONY_PLAIN = bytes(range(2, 248))
_SONY_DECIPHER = bytes.maketrans(bytes(pow(b, 3, 249) for b in _SONY_PLAIN), _SONY_PLAIN)


def _sony_bytes(raw: bytes, little: bool) -> str:
    """Deciphered bytes, space-separated as exiftool -n prints an int8u[n] value."""
    return " ".join(map(str, raw.translate(_SONY_DECIPHER)))


DECODERS: dict[str, Callable[[bytes, bool], str | None]] = {
    "hex32": lambda raw, little: f"0x{_u32(raw, little):08x}",
    "u32": lambda raw, little: str(_u32(raw, little)),
    "unix_time": lambda raw, little: unix_time(_u32(raw, little)),
    "string": lambda raw, little: decode_text(raw) or None,
    "utf16": decode_utf16,
    "reconyx_time": _reconyx_time,
    "reconyx2_time": _reconyx2_time,
    "reconyx3_time": _reconyx3_time,
    "utf16le": lambda raw, little: decode_utf16(raw, True) or None,
    "qvci_time": _qvci_time,
    "sony_bytes": _sony_bytes,
    # HP PhotoSmart: "SERIAL NUMBER:" then the serial; anything else is not one (exiftool's RawConv).
    "hp_serial": lambda raw, little: (
        text.removeprefix("SERIAL NUMBER:").strip() or None
        if (text := decode_text(raw)).startswith("SERIAL NUMBER:") else None),
    # Canon LensInfo: 5 raw bytes shown as hex; leading zeros mean the body did not record it.
    "hex_set": lambda raw, little: None if raw.startswith(b"\0\0\0\0") else raw.hex(),
}

# Binary records: a whole maker note ("ReconyxHyperFire"), the value of a maker-note tag (see
# makernotes.BINARY_TAGS), or a vendor segment of a JPEG (InfiRay APP9, Casio QVCI APP1).
BINARY: dict[str, list[BinField]] = {
    "ReconyxHyperFire": [
        BinField(0x0B * 2, "reconyx_time", 12, Tag("datetime_original", "DateTimeOriginal")),
        BinField(0x15 * 2, "utf16", 30, Tag("serial", "SerialNumber")),
    ],
    "ReconyxUltraFire": [
        BinField(0x3B, "reconyx2_time", 7, Tag("datetime_original", "DateTimeOriginal")),
        BinField(0x4B, "string", 15, Tag("serial", "SerialNumber")),
    ],
    "ReconyxHyperFire2": [
        BinField(0x3E, "reconyx3_time", 12, Tag("datetime_original", "DateTimeOriginal")),
        BinField(0x7E, "utf16le", 30, Tag("serial", "SerialNumber")),
    ],
    "NintendoCameraInfo": [BinField(0x18, "hex32", 4, Tag("serial", "InternalSerialNumber"))],
    # Canon SerialInfo (maker-note tag 0x0096 of the EOS 5D series): text from offset 9.
    "CanonSerialInfo": [BinField(9, "string", 16, Tag("serial", "InternalSerialNumber"))],
    # Canon LensInfo (maker-note tag 0x4019): the lens's internal serial.
    "CanonLensInfo": [BinField(0, "hex_set", 5, Tag("serial", "LensSerialNumber"))],
    # Sony Tag9050 (enciphered): where the internal serial is depends on the model, see makernotes.py.
    "Sony9050a_7c": [BinField(0x7C, "sony_bytes", 4, Tag("serial", "InternalSerialNumber"))],
    "Sony9050a_f0": [BinField(0xF0, "sony_bytes", 5, Tag("serial", "InternalSerialNumber"))],
    "Sony9050_88": [BinField(0x88, "sony_bytes", 6, Tag("serial", "InternalSerialNumber"))],
    "Sony9050c_8a": [BinField(0x8A, "sony_bytes", 6, Tag("serial", "InternalSerialNumber"))],
    # Pentax CameraInfo (maker-note tag 0x0215), int32u[]: index 4 is the internal serial.
    "PentaxCameraInfo": [BinField(4 * 4, "u32", 4, Tag("serial", "InternalSerialNumber"))],
    # Ricoh GXR SerialInfo (tag 0x002c of the "[Ricoh Camera Info]" sub-IFD): body and lens unit.
    "RicohSerialInfo": [
        BinField(16, "string", 16, Tag("serial", "BodySerialNumber")),
        BinField(48, "string", 16, Tag("serial", "LensSerialNumber")),
    ],
    # HP PhotoSmart binary maker notes (the whole note, "IIII\x04\0" or "IIII\x06\0").
    "HPType4": [BinField(0x5C, "hp_serial", 26, Tag("serial", "SerialNumber"))],
    "HPType6": [BinField(0x58, "hp_serial", 26, Tag("serial", "SerialNumber"))],
    # InfiRay IJPEG APP9 sensor block: the thermal and the visible-light sensor serials.
    "InfiRaySensor": [
        BinField(0x0C0, "string", 32, Tag("serial", "IRSensorSerialNumber")),
        BinField(0x240, "string", 32, Tag("serial", "VisibleSensorSerialNumber")),
    ],
    # Casio QV-7000SX APP1 "QVCI" segment.
    "CasioQVCI": [BinField(0x4D, "qvci_time", 20, Tag("datetime_original", "DateTimeOriginal"))],
    # FLIR FFF CameraInfo record (byte order from its own header, see records.py).
    "FLIRCameraInfo": [
        BinField(0x104, "string", 16, Tag("serial", "CameraSerialNumber")),
        BinField(0x1A0, "string", 16, Tag("serial", "LensSerialNumber")),
        BinField(0x21C, "string", 32, Tag("serial", "FilterSerialNumber")),
    ],
}


def offer_binary(record: str, buf: bytes, start: int, end: int, little: bool, sink: Collector,
                 rank: int = Rank.MAKERNOTE) -> None:
    """Offer the fields of the binary ``record`` table found in ``buf[start:end]``."""
    for f in BINARY[record]:
        at = start + f.offset
        if at < start or at + f.size > min(end, len(buf)):
            continue
        value = DECODERS[f.kind](buf[at : at + f.size], little)
        if not value:
            continue
        if f.tag.field == "serial":
            sink.serial(f.tag.name, value)
        else:
            sink.offer(f.tag.field, value, rank + f.tag.rank_bonus)

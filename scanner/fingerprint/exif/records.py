"""Readers of vendor records that are not TIFF structures, by the kind their container walker gave them.

- CIFF: the heap of Canon CRW files (exiftool CanonRaw.pm): a directory at the end of each heap block
  lists 10-byte entries; some entries are heaps of their own. Make, model, owner, serial, time, size.
- X3FProperties: the PROP section of Sigma X3F files (SigmaRaw.pm): UTF-16 name/value pairs.
- PictureInfo: the APP12 "[picture info]" text segment of older Agfa, Olympus and Polaroid cameras.
- FLIR: the FFF record directory of FLIR thermal cameras (APP1 "FLIR" chunks, joined).
- Photoshop: image resources holding IPTC (iptc.py); IPTC: an IPTC stream itself (an AFCP trailer's).
- Binary records located whole (InfiRay APP9, Casio QVCI): fixed offsets, see binary.py.

Every walk is bounded: heaps nest at most ``MAX_DEPTH`` deep and ``MAX_DIRS`` directories are read in
all, entry counts are capped, and every offset is checked against the record before it is used.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from tierscan.scanner.fingerprint.exif.binary import offer_binary, unix_time
from tierscan.scanner.fingerprint.exif.blocks import Record
from tierscan.scanner.fingerprint.exif.iptc import read_iptc, read_photoshop
from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.text import decode_text, small_int

__all__ = ["READERS", "read_record"]

MAX_DEPTH = 8
MAX_DIRS = 64
MAX_ENTRIES = 1024
MAX_TEXT = 256  # characters of a property name or value


# ---------------------------------------------------------------------------------------------------
# Canon CRW (CIFF heap)
# ---------------------------------------------------------------------------------------------------

_CIFF_SUBDIR_TYPES = frozenset((0x28, 0x30))
CIFF_MAKE_MODEL = 0x080A
CIFF_OWNER = 0x0810
CIFF_SERIAL = 0x180B
CIFF_TIME = 0x180E
CIFF_IMAGE_INFO = 0x1810  # int32u width, height, ...
_CIFF_WANTED = frozenset((CIFF_MAKE_MODEL, CIFF_OWNER, CIFF_SERIAL, CIFF_TIME, CIFF_IMAGE_INFO))


def _ciff(rec: Record, sink: Collector) -> None:
    """A CIFF file: byte order, header length, "HEAPCCDR", then the root heap up to the end. Each heap's
    directory is at its end, so every range read is declared (as `Blocks.uses` does): a ranged reader
    holds the head and the end of the file, and fetches the rest."""
    buf = rec.buf
    uses = sink.uses
    little = buf[rec.start : rec.start + 2] == b"II"
    fmt = "<" if little else ">"
    if rec.start + 14 > rec.end:
        return
    header = struct.unpack_from(fmt + "I", buf, rec.start + 2)[0]
    values: dict[int, bytes] = {}
    pending = [(rec.start + header, rec.end, 0)]
    seen: set[int] = set()
    while pending and len(seen) < MAX_DIRS:
        start, end, depth = pending.pop()
        if not rec.start <= start < end - 4 or end > rec.end:
            continue
        uses(end - 4, 4)
        directory = start + struct.unpack_from(fmt + "I", buf, end - 4)[0]
        if directory in seen or directory + 2 > end:
            continue
        seen.add(directory)
        uses(directory, 2)
        count = min(struct.unpack_from(fmt + "H", buf, directory)[0], MAX_ENTRIES, (end - directory - 2) // 10)
        uses(directory + 2, 10 * count)
        for at in range(directory + 2, directory + 2 + 10 * count, 10):
            tag, size, offset = struct.unpack_from(fmt + "HII", buf, at)
            if tag & 0x8000:
                break  # exiftool: a bad entry ends the directory
            in_entry = bool(tag & 0x4000)
            tid, kind = tag & 0x3FFF, (tag >> 8) & 0x38
            if kind in _CIFF_SUBDIR_TYPES and not in_entry:
                if depth < MAX_DEPTH and offset <= end - start and size <= end - start - offset:
                    pending.append((start + offset, start + offset + size, depth + 1))
            elif tid in _CIFF_WANTED and tid not in values:
                if in_entry:
                    values[tid] = buf[at + 2 : at + 10]
                elif offset <= end - start and size <= end - start - offset:
                    uses(start + offset, min(size, MAX_TEXT))
                    values[tid] = buf[start + offset : start + offset + min(size, MAX_TEXT)]
    _ciff_values(values, little, sink)


def _ciff_values(values: dict[int, bytes], little: bool, sink: Collector) -> None:
    fmt = "<I" if little else ">I"
    model = ""
    if CIFF_MAKE_MODEL in values:
        make, _, rest = values[CIFF_MAKE_MODEL].partition(b"\0")
        model = decode_text(rest)
        sink.offer("make", decode_text(make), Rank.MAKERNOTE)
        sink.offer("model", model, Rank.MAKERNOTE)
    if CIFF_OWNER in values:
        sink.offer("owner", decode_text(values[CIFF_OWNER]), Rank.MAKERNOTE)
    raw = values.get(CIFF_TIME, b"")
    if len(raw) >= 4:
        sink.offer("datetime_original", unix_time(struct.unpack_from(fmt, raw)[0]), Rank.MAKERNOTE)
    raw = values.get(CIFF_IMAGE_INFO, b"")
    if len(raw) >= 8:
        width, height = struct.unpack_from(fmt[0] + "II", raw)
        if width and height:
            sink.size = (width, height)
    raw = values.get(CIFF_SERIAL, b"")
    if len(raw) >= 4 and "EOS" in model:  # exiftool: for PowerShots this number is not the serial
        sink.serial("SerialNumber", str(struct.unpack_from(fmt, raw)[0]))


# ---------------------------------------------------------------------------------------------------
# Sigma X3F properties
# ---------------------------------------------------------------------------------------------------

X3F_PROPERTIES: dict[str, tuple[str, str]] = {
    "CAMMANUF": ("make", "Make"),
    "CAMMODEL": ("model", "Model"),
    "CAMSERIAL": ("serial", "SerialNumber"),
    "TIME": ("datetime_original", "DateTimeOriginal"),
}
# The names as stored (UTF-16LE with their NUL), compared in place: most properties are not wanted.
_X3F_NAMES = {(name + "\0").encode("utf-16-le"): known for name, known in X3F_PROPERTIES.items()}
_X3F_NAME_MAX = max(map(len, _X3F_NAMES))


def _x3f_properties(rec: Record, sink: Collector) -> None:
    """"SECp", entry count at 8, character format at 12 (0: UTF-16LE), character count at 20; then the
    entries (name and value positions, in characters) and the character pool."""
    buf, start, end = rec.buf, rec.start, rec.end
    if end - start < 24 or buf[start : start + 4] != b"SECp":
        return
    entries, char_format = struct.unpack_from("<II", buf, start + 8)
    chars = struct.unpack_from("<I", buf, start + 20)[0]
    pool = start + 24 + 8 * min(entries, MAX_ENTRIES)
    if char_format != 0 or entries > MAX_ENTRIES or pool + 2 * chars > end:
        return
    wanted = len(X3F_PROPERTIES)
    for at in range(start + 24, pool, 8):
        name_at, value_at = struct.unpack_from("<II", buf, at)
        if name_at >= chars or value_at >= chars:
            return
        name = buf[pool + 2 * name_at : pool + 2 * name_at + _X3F_NAME_MAX]
        known = next((k for encoded, k in _X3F_NAMES.items() if name.startswith(encoded)), None)
        if known is None:
            continue
        value = _utf16z(buf, pool + 2 * value_at, pool + 2 * chars)
        field, tag = known
        if field == "serial":
            sink.serial(tag, value)
        elif field == "datetime_original":
            seconds = small_int(value)
            if seconds is not None:
                sink.offer(field, unix_time(seconds), Rank.MAKERNOTE)
        else:
            sink.offer(field, value, Rank.MAKERNOTE)
        wanted -= 1
        if not wanted:
            return


def _utf16z(buf: bytes, pos: int, end: int) -> str:
    raw = buf[pos : min(end, pos + 2 * MAX_TEXT)]
    return raw[: len(raw) & ~1].decode("utf-16-le", errors="replace").split("\0", 1)[0].strip()


# ---------------------------------------------------------------------------------------------------
# APP12 "[picture info]"
# ---------------------------------------------------------------------------------------------------

# A "key=" pair; keys are short, so the pattern scans a bounded span at each position.
_PAIR = re.compile(rb"[\w#-]{1,32}=")
_BREAK = re.compile(rb"[\r\n\0\[]")
_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_#-")
PICTURE_INFO: dict[bytes, tuple[str, str]] = {
    b"Serial#": ("serial", "SerialNumber"),
    b"TimeDate": ("datetime_original", "DateTimeOriginal"),
}
MAX_PICTURE_INFO_HITS = 16  # occurrences of one key looked at


def _picture_info(rec: Record, sink: Collector) -> None:
    """Text lines of "key=value" pairs under "[section]" headings, several pairs to a line at times: a
    value runs to the end of its line or to the next "key=" (exiftool's APP12 tokenizer)."""
    buf, end = rec.buf, rec.end
    for key, (field, tag) in PICTURE_INFO.items():
        pos = rec.start
        for _ in range(MAX_PICTURE_INFO_HITS):
            at = buf.find(key + b"=", pos, end)
            if at < 0:
                break
            pos = at + len(key) + 1
            if at > rec.start and buf[at - 1] in _KEY_CHARS:
                continue  # the end of a longer key
            stop = _BREAK.search(buf, pos, end)
            line = buf[pos : stop.start() if stop else end]
            following = _PAIR.search(line)
            raw = (line[: following.start()] if following else line).strip()
            if raw and re.fullmatch(rb"[\x20-\x7e]+", raw):
                _offer_picture_info(field, tag, raw.decode("ascii"), sink)
                break


def _offer_picture_info(field: str, tag: str, value: str, sink: Collector) -> None:
    if field == "serial":
        sink.serial(tag, value)
    elif value.isdigit():  # exiftool: a number is Unix time, anything else is kept as written
        seconds = small_int(value)
        sink.offer(field, None if seconds is None else unix_time(seconds), Rank.MAKERNOTE)
    else:
        sink.offer(field, value, Rank.MAKERNOTE)


# ---------------------------------------------------------------------------------------------------
# FLIR FFF
# ---------------------------------------------------------------------------------------------------

FLIR_CAMERA_INFO = 0x20
MAX_FLIR_RECORDS = 256


def _flir(rec: Record, sink: Collector) -> None:
    """FFF header ("FFF\\0" or "AFF\\0"): version at 0x14 tells the byte order; the record directory at
    the offset at 0x18 holds 0x20-byte entries (type, ..., offset at 0x0C, length at 0x10)."""
    buf, start, end = rec.buf, rec.start, rec.end
    if end - start < 0x40 or buf[start + 1 : start + 4] != b"FF\0" or buf[start] not in b"AF":
        return
    for fmt in ("<", ">"):
        if 100 <= struct.unpack_from(fmt + "I", buf, start + 0x14)[0] < 200:
            break
    else:
        return
    where, count = struct.unpack_from(fmt + "II", buf, start + 0x18)
    table = start + where
    for at in range(table, table + 0x20 * min(count, MAX_FLIR_RECORDS), 0x20):
        if at + 0x20 > end:
            return
        kind = struct.unpack_from(fmt + "H", buf, at)[0]
        offset, length = struct.unpack_from(fmt + "II", buf, at + 0x0C)
        if kind != FLIR_CAMERA_INFO or length < 2 or offset > end - start or length > end - start - offset:
            continue
        info = start + offset
        little = fmt == "<"
        if struct.unpack_from(fmt + "H", buf, info)[0] >= 0x0100:  # exiftool: 2 in the record's order
            little = not little
        offer_binary("FLIRCameraInfo", buf, info, info + length, little, sink)
        sink.offer("datetime_original", _flir_time(buf, info, info + length, little), Rank.MAKERNOTE)
        return


def _flir_time(buf: bytes, info: int, end: int, little: bool) -> str | None:
    """CameraInfo 0x384: Unix time, milliseconds and time-zone minutes, printed as exiftool does."""
    at = info + 0x384
    if at + 10 > end:
        return None
    seconds, fraction, zone = struct.unpack_from("<IIh" if little else ">IIh", buf, at)
    local = unix_time(seconds - zone * 60)
    if local is None:
        return None
    offset = -zone
    sign = "+" if offset >= 0 else "-"
    return f"{local}.{fraction & 0xFFFF:03d}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


# ---------------------------------------------------------------------------------------------------

def _binary(rec: Record, sink: Collector) -> None:
    offer_binary(rec.kind, rec.buf, rec.start, rec.end, True, sink)


READERS: dict[str, Callable[[Record, Collector], None]] = {
    "CIFF": _ciff,
    "X3FProperties": _x3f_properties,
    "PictureInfo": _picture_info,
    "FLIR": _flir,
    "Photoshop": lambda rec, sink: read_photoshop(rec.buf, rec.start, rec.end, sink),
    "IPTC": lambda rec, sink: read_iptc(rec.buf, rec.start, rec.end, sink),
    **{kind: _binary for kind in ("InfiRaySensor", "CasioQVCI")},
}


def read_record(rec: Record, sink: Collector) -> None:
    """Read one located record into ``sink``."""
    READERS[rec.kind](rec, sink)

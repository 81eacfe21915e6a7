"""Vendor maker notes: where each vendor's IFD starts, what its offsets count from, and its serial tags.

Maker notes are undocumented and vary by vendor; the layouts below follow exiftool's MakerNotes.pm. The
vendor is recognised by the note's signature, else by the Make tag. Vendors whose offsets count from the
parent TIFF header break when an editor moves the note, so their base is checked and repaired (Canon's
footer, then a search for the shift that puts the values right after the IFD, as exiftool's FixBase does).

Hostile notes: a note is walked in place, never copied, so its size costs nothing; the walk visits at most
``MAX_NOTE_IFDS`` IFDs of at most ``MAX_ENTRIES`` entries, and values are decoded within the TIFF limits.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import NamedTuple

from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.text import decode_utf16
from tierscan.scanner.fingerprint.exif.tiff import MAX_ENTRIES, Entry, Tag, Tiff, offer_entries, parse_header

__all__ = ["BY_MAKE", "SIGNATURES", "TABLES", "Layout", "parse_makernote", "walk_note"]


class Layout(NamedTuple):
    """Where a vendor's maker-note IFD is and how to read it.

    ``start``: offset of the IFD (or of an embedded TIFF header when ``base`` is "tiff") from the note.
    ``base``: what IFD offsets count from: "parent" (the enclosing TIFF header), "note" (the note start),
    "tiff" (an embedded TIFF header at ``start``), or "binary" (not an IFD: a fixed record).
    ``order``: "parent", "II"/"MM", or an offset inside the note holding a byte-order mark.
    ``pointer_at``: the IFD offset is a little-endian u32 stored at this offset (Fujifilm).
    """

    vendor: str
    start: int = 0
    base: str = "parent"
    order: str | int = "parent"
    pointer_at: int | None = None


# Signature prefix of the note -> layout; first match wins, so longer prefixes come first.
_PREFIXES: list[tuple[bytes, Layout]] = [
    (b"Nikon\x00\x02", Layout("Nikon", 10, "tiff")),
    (b"Nikon\x00\x01", Layout("Nikon", 8)),
    (b"OLYMPUS\x00", Layout("Olympus", 12, "note", 8)),
    (b"OM SYSTEM\x00", Layout("Olympus", 16, "note", 12)),
    (b"OLYMP\x00", Layout("Olympus", 8)),
    (b"Panasonic\x00", Layout("Panasonic", 12)),
    (b"FUJIFILM", Layout("Fujifilm", 0, "note", "II", pointer_at=8)),
    (b"GENERALE", Layout("Fujifilm", 0, "note", "II", pointer_at=8)),
    (b"AOC\x00", Layout("Pentax", 6, "parent", 4)),
    (b"PENTAX \x00", Layout("Pentax", 10, "note", 8)),
    (b"SONY DSC \x00", Layout("Sony", 12)),
    (b"SONY CAM \x00", Layout("Sony", 12)),
    (b"SONY MOBILE\x00", Layout("Sony", 12)),
    (b"MOT\x00", Layout("Motorola", 8, "note")),
    (b"SIGMA\x00\x00\x00", Layout("Sigma", 10)),
    (b"FOVEON\x00\x00", Layout("Sigma", 10)),
    (b"\x01\xf1", Layout("ReconyxHyperFire", 0, "binary", "II")),
]

# Signature of the note (a regex matched at its start) -> layout; first match wins.
SIGNATURES: list[tuple[re.Pattern[bytes], Layout]] = [
    *((re.compile(re.escape(prefix)), layout) for prefix, layout in _PREFIXES),
    # Samsung's EXIF-format notes have no header: recognised by their first entry, MakerNoteVersion "0100"
    # (in either byte order). Offsets are absolute for some models and note-relative for others, which
    # the base check sorts out.
    (re.compile(rb"(?s)(\x00.\x00\x01\x00\x07\x00{3}\x04|.\x00\x01\x00\x07\x00\x04\x00{3})0100"),
     Layout("Samsung")),
]

# Make prefix (upper case) -> layout, for notes without a signature.
BY_MAKE: list[tuple[str, Layout]] = [
    ("CANON", Layout("Canon")),
    ("NIKON", Layout("Nikon")),
    ("NINTENDO", Layout("Nintendo")),
    ("SONY", Layout("Sony")),
]

TABLES: dict[str, dict[int, Tag]] = {
    "Canon": {
        0x0009: Tag("owner", "OwnerName"),
        0x000C: Tag("serial", "SerialNumber"),
        0x0028: Tag("image_unique_id", "ImageUniqueID", fmt="hex"),
        0x0096: Tag("serial", "InternalSerialNumber", fmt="strip_ff"),
    },
    "Nikon": {0x001D: Tag("serial", "SerialNumber"), 0x00A0: Tag("serial", "SerialNumber")},
    "Olympus": {0x0404: Tag("serial", "SerialNumber")},
    "OlympusEquipment": {
        0x0101: Tag("serial", "SerialNumber"),
        0x0102: Tag("serial", "InternalSerialNumber"),
        0x0202: Tag("serial", "LensSerialNumber"),
        0x0302: Tag("serial", "ExtenderSerialNumber"),
        0x1003: Tag("serial", "FlashSerialNumber"),
    },
    "Panasonic": {
        0x0025: Tag("serial", "InternalSerialNumber"),
        0x0052: Tag("serial", "LensSerialNumber"),
        0x0054: Tag("serial", "AccessorySerialNumber"),
    },
    "Fujifilm": {0x0010: Tag("serial", "InternalSerialNumber")},
    "Pentax": {0x0229: Tag("serial", "SerialNumber")},
    "Sony": {0x2031: Tag("serial", "SerialNumber", fmt="sony_serial")},
    "Motorola": {0x5501: Tag("serial", "SerialNumber")},
    "Sigma": {0x0002: Tag("serial", "SerialNumber")},
    "Samsung": {
        0xA002: Tag("serial", "SerialNumber", fmt="word5"),
        0xA005: Tag("serial", "InternalLensSerialNumber"),
    },
    "Nintendo": {},  # its serial is in a binary record, see BINARY_TAGS
}

MAX_NOTE_IFDS = 8  # a note's own IFD plus its sub-IFDs (Olympus has a handful)

# Maker-note tags that hold another IFD (same base and byte order) and the table for it.
SUBDIRS: dict[str, dict[int, str]] = {"Olympus": {0x2010: "OlympusEquipment"}}


class BinField(NamedTuple):
    """A value at a fixed offset of a binary maker-note record."""

    offset: int
    kind: str  # a key of _BIN_DECODERS
    size: int
    tag: Tag


def _reconyx_time(raw: bytes, little: bool) -> str | None:
    # int16u[6] seconds, minutes, hours, month, day, year (exiftool Reconyx DateTimeOriginal)
    s, mi, h, mo, d, y = struct.unpack("<6H" if little else ">6H", raw)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    return f"{y:04d}:{mo:02d}:{d:02d} {h:02d}:{mi:02d}:{s:02d}"


_BIN_DECODERS: dict[str, Callable[[bytes, bool], str | None]] = {
    "hex32": lambda raw, little: f"0x{struct.unpack('<I' if little else '>I', raw)[0]:08x}",
    "utf16": decode_utf16,
    "reconyx_time": _reconyx_time,
}

# Binary records: the whole note ("ReconyxHyperFire") or the value of a maker-note tag ("Nintendo" 0x1101).
BINARY: dict[str, list[BinField]] = {
    "ReconyxHyperFire": [
        BinField(0x0B * 2, "reconyx_time", 12, Tag("datetime_original", "DateTimeOriginal")),
        BinField(0x15 * 2, "utf16", 30, Tag("serial", "SerialNumber")),
    ],
    "NintendoCameraInfo": [BinField(0x18, "hex32", 4, Tag("serial", "InternalSerialNumber"))],
}
BINARY_TAGS: dict[str, dict[int, str]] = {"Nintendo": {0x1101: "NintendoCameraInfo"}}


def _offer_binary(record: str, buf: bytes, start: int, end: int, little: bool, sink: Collector) -> None:
    for f in BINARY[record]:
        at = start + f.offset
        if at + f.size > end:
            continue
        value = _BIN_DECODERS[f.kind](buf[at : at + f.size], little)
        if not value:
            continue
        if f.tag.field == "serial":
            sink.serial(f.tag.name, value)
        else:
            sink.offer(f.tag.field, value, Rank.MAKERNOTE + f.tag.rank_bonus)


def _layout(note: bytes, make: str) -> Layout | None:
    for signature, layout in SIGNATURES:
        if signature.match(note):
            return layout
    upper = make.upper()
    for make_prefix, layout in BY_MAKE:
        if upper.startswith(make_prefix):
            return layout
    return None


def _order(layout: Layout, buf: bytes, start: int, parent: Tiff) -> bool:
    """Byte order of the note (True: little-endian); an unreadable mark falls back to the parent's."""
    if layout.order == "parent":
        return parent.little
    if isinstance(layout.order, int):
        mark = buf[start + layout.order : start + layout.order + 2]
        return {b"II": True, b"MM": False}.get(mark, parent.little)
    return layout.order == "II"


def _plausible(tiff: Tiff, pos: int, end: int) -> bool:
    """Whether an IFD entry count at ``pos`` is sane and the table fits inside the note."""
    count = tiff.u16(pos)
    return count is not None and 0 < count <= MAX_ENTRIES and pos + 2 + 12 * count <= end


def _values_fit(entries: list[Entry], start: int, end: int) -> bool:
    return all(e.inline or (start <= e.pos and e.pos + e.size <= end) for e in entries)


def _fix_base(tiff: Tiff, ifd: int, start: int, end: int, canon: bool) -> Tiff:
    """Repair a parent-relative base after an editor moved the note (exiftool's FixBase, simplified)."""
    parsed = tiff.entries(ifd)
    if parsed is None:
        return tiff
    entries, table_end = parsed
    if _values_fit(entries, start, end):
        return tiff
    candidates: list[int] = []
    if canon and end - start >= 8 and tiff.buf[end - 8 : end - 4] in (b"II*\x00", b"MM\x00*"):
        original = tiff.u32(end - 4)  # Canon footer: where the note started in the original file
        if original is not None:
            candidates.append(start - tiff.base - original)
    out_of_line = [e.pointer for e in entries if not e.inline]
    if out_of_line:
        lowest = min(out_of_line)
        candidates += [table_end + extra - tiff.base - lowest for extra in (4, 0, 2, 6)]
    for shift in candidates:
        moved = tiff.rebased(tiff.base + shift)
        parsed = moved.entries(ifd)
        if parsed is not None and _values_fit(parsed[0], start, end):
            return moved
    return tiff


def parse_makernote(parent: Tiff, start: int, size: int, make: str, sink: Collector) -> None:
    """Read the serials, owner and capture time of the maker note at ``parent.buf[start:start+size]``."""
    buf = parent.buf
    end = min(start + size, parent.end)
    if end - start < 8:
        return
    layout = _layout(buf[start : start + 16], make)
    if layout is None:
        return
    little = _order(layout, buf, start, parent)
    if layout.base == "binary":
        _offer_binary(layout.vendor, buf, start, end, little, sink)
        return
    if layout.base == "tiff":
        header = parse_header(buf, start + layout.start, parent.origin, end)
        if header is None:
            sink.error("bad maker note header")
            return
        tiff, ifd = header
    else:
        base = start if layout.base == "note" else parent.base
        tiff = parent.rebased(base, little)
        if layout.pointer_at is not None:
            pointer = tiff.u32(start + layout.pointer_at)
            if pointer is None:
                return
            ifd = start + pointer
        else:
            ifd = start + layout.start
        if not _plausible(tiff, ifd, end):
            tiff = tiff.rebased(base, not tiff.little)  # byte order unknown to exiftool too: try both
            if not _plausible(tiff, ifd, end):
                sink.error("bad maker note IFD")
                return
        if layout.base == "parent":
            tiff = _fix_base(tiff, ifd, start, end, layout.vendor == "Canon")
    walk_note(tiff, ifd, layout.vendor, sink)


def walk_note(tiff: Tiff, ifd: int, vendor: str, sink: Collector) -> None:
    """Walk the note's IFD and its sub-IFDs (each visited once, depth bounded by the table)."""
    pending = [(ifd, vendor)]
    visited: set[int] = set()
    while pending:
        pos, table = pending.pop()
        if pos in visited or len(visited) >= MAX_NOTE_IFDS:
            continue
        visited.add(pos)
        tags = TABLES.get(table, {})
        subdirs = SUBDIRS.get(table, {})
        binaries = BINARY_TAGS.get(table, {})
        parsed = tiff.entries(pos, {*tags, *subdirs, *binaries})
        if parsed is None:
            sink.error("bad maker note IFD")
            continue
        entries = parsed[0]
        offer_entries(tiff, entries, tags, sink, Rank.MAKERNOTE)
        for e in entries:
            if e.tag in subdirs and e.num:
                # Olympus writes the Equipment IFD as type IFD/LONG (an offset) or UNDEFINED (inline data).
                target = e.pos if e.type == 7 else tiff.base + e.pointer
                pending.append((target, subdirs[e.tag]))
            elif e.tag in binaries and tiff.has(e.pos, e.size):
                _offer_binary(binaries[e.tag], tiff.buf, e.pos, e.pos + e.size, tiff.little, sink)

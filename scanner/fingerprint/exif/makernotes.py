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
from typing import NamedTuple

from tierscan.scanner.fingerprint.exif.binary import DECODERS, offer_binary
from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.tiff import MAX_ENTRIES, Entry, Tag, Tiff, offer_entries, parse_header

__all__ = ["BY_MAKE", "PREFIXES", "SIGNATURES", "TABLES", "Layout", "parse_makernote", "walk_note"]


class Layout(NamedTuple):
    """Where a vendor's maker-note IFD is and how to read it.

    ``start``: offset of the IFD (or of an embedded TIFF header when ``base`` is "tiff") from the note.
    ``base``: what IFD offsets count from: "parent" (the enclosing TIFF header), "note" (the note start),
    "tiff" (an embedded TIFF header at ``start``), "binary" (not an IFD: a fixed record), or "phaseone"
    (Phase One's own directory of 16-byte entries, offsets from the note start).
    ``order``: "parent", "II"/"MM", or an offset inside the note holding a byte-order mark.
    ``pointer_at``: the IFD offset is a little-endian u32 stored at this offset (Fujifilm).
    """

    vendor: str
    start: int = 0
    base: str = "parent"
    order: str | int = "parent"
    pointer_at: int | None = None


# Signature prefix of the note -> layout; first match wins, so longer prefixes come first.
PREFIXES: list[tuple[bytes, Layout]] = [
    (b"Nikon\x00\x02", Layout("Nikon", 10, "tiff")),
    (b"Nikon\x00\x01", Layout("Nikon", 8)),
    (b"OLYMPUS\x00", Layout("Olympus", 12, "note", 8)),
    (b"OM SYSTEM\x00", Layout("Olympus", 16, "note", 12)),
    (b"OLYMP\x00", Layout("Olympus", 8)),
    (b"Panasonic\x00", Layout("Panasonic", 12)),
    (b"FUJIFILM", Layout("Fujifilm", 0, "note", "II", pointer_at=8)),
    (b"GENERALE", Layout("Fujifilm", 0, "note", "II", pointer_at=8)),
    (b"AOC\x00", Layout("Pentax", 6, "parent", 4)),
    (b"RICOH\x00II", Layout("Pentax", 8, "note", 6)),  # Ricoh GR III and later write Pentax notes
    (b"RICOH\x00MM", Layout("Pentax", 8, "note", 6)),
    (b"Ricoh", Layout("Ricoh", 8)),
    (b"RICOH", Layout("Ricoh", 8)),
    (b"PENTAX \x00", Layout("Pentax", 10, "note", 8)),
    (b"SONY DSC \x00", Layout("Sony", 12)),
    (b"SONY CAM \x00", Layout("Sony", 12)),
    (b"SONY MOBILE\x00", Layout("Sony", 12)),
    (b"MOT\x00", Layout("Motorola", 8, "note")),
    (b"SIGMA\x00\x00\x00", Layout("Sigma", 10)),
    (b"FOVEON\x00\x00", Layout("Sigma", 10)),
    (b"\x01\xf1", Layout("ReconyxHyperFire", 0, "binary", "II")),
    (b"RECONYXUF\x00", Layout("ReconyxUltraFire", 0, "binary", "II")),
    (b"RECONYXH2\x00", Layout("ReconyxHyperFire2", 0, "binary", "II")),
    (b"IIII\x04\x00", Layout("HPType4", 0, "binary", "II")),
    (b"IIII\x06\x00", Layout("HPType6", 0, "binary", "II")),
]

# Signatures that are patterns rather than fixed prefixes (a regex matched at the note's start), tried
# after the prefixes; first match wins.
SIGNATURES: list[tuple[re.Pattern[bytes], Layout]] = [
    (re.compile(rb"(?s)IIII.waR|MMMMRaw."), Layout("PhaseOne", 0, "phaseone")),
    # Leica X/T/Q and D-Lux: Panasonic-style IFDs after a "LEICA" header (exiftool MakerNoteLeica5/8/10).
    (re.compile(rb"LEICA\x00[\x01\x04\x05\x06\x07\x10\x1a]\x00"), Layout("Leica5", 8, "note")),
    (re.compile(rb"LEICA\x00[\x08\x09]\x00"), Layout("Leica5", 8)),
    (re.compile(rb"LEICA CAMERA AG\x00"), Layout("Panasonic", 18)),
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
    ("RICOH", Layout("Ricoh", 8)),  # notes starting with spaces or a bare TIFF mark
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
    "Olympus": {0x0404: Tag("serial", "SerialNumber"), 0x101A: Tag("serial", "SerialNumber")},
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
    "Leica5": {0x0305: Tag("serial", "SerialNumber"), 0x0500: Tag("serial", "InternalSerialNumber")},
    "Fujifilm": {0x0010: Tag("serial", "InternalSerialNumber")},
    "Pentax": {0x0229: Tag("serial", "SerialNumber")},
    # 0x0005 is SerialNumber when printable (GXR), else InternalSerialNumber shown as hex.
    "Ricoh": {0x0005: Tag("serial", "SerialNumber", fmt="word_only",
                          alt=Tag("serial", "InternalSerialNumber", fmt="hex_raw"))},
    "RicohSubdir": {},  # its serials are in a binary record, see BINARY_TAGS
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


class SubDir(NamedTuple):
    """A maker-note tag holding another IFD: its table, the header the IFD follows, its own byte order."""

    table: str
    header: bytes = b""
    order: str | None = None  # "II"/"MM", or None for the note's own


# Maker-note tags that hold another IFD (same offset base) and how to read it.
SUBDIRS: dict[str, dict[int, SubDir]] = {
    "Olympus": {0x2010: SubDir("OlympusEquipment")},
    "Ricoh": {0x2001: SubDir("RicohSubdir", b"[Ricoh Camera Info]\0", "MM")},
}

# Maker-note tags that are a binary record only for some models (exiftool's conditional tags): (table,
# Model pattern, tag, record); for each tag the first pattern that matches wins. Canon's 0x0096 is text
# for most bodies, a SerialInfo record for the 5D series. Sony's 0x9050 holds the internal serial at an
# offset that changed with the models (Tag9050a for NEX/SLT/ILCA and early ILCE, 9050b from mid-2015,
# 9050c from 2020); compact cameras (DSC-, ZV-) have none.
_SONY_9050_LATER = (r"DSC-|Stellar|ILCE-(1|6100|6300|6400|6500|6600|7C|7M3|7M4|7RM2|7RM3A?|7RM4A?|7RM5|7SM2|7SM3"
                    r"|9|9M2)|ILCA-99M2|ILME-FX3|ZV-")
MODEL_BINARY_TAGS: list[tuple[str, re.Pattern[str], int, str]] = [
    ("Canon", re.compile(r"EOS 5D"), 0x0096, "CanonSerialInfo"),
    ("Sony", re.compile(rf"^(?!{_SONY_9050_LATER})(SLT-|HV|ILCA-)"), 0x9050, "Sony9050a_f0"),
    ("Sony", re.compile(rf"^(?!{_SONY_9050_LATER}|Lunar|NEX-(5N|7|VG20E))"), 0x9050, "Sony9050a_7c"),
    ("Sony", re.compile(r"^(ILCE-(6100|6300|6400|6500|6600|7C|7M3|7RM2|7RM3A?|7RM4A?|7SM2|9|9M2)|ILCA-99M2|ZV-E10)"),
     0x9050, "Sony9050_88"),
    ("Sony", re.compile(r"^(ILCE-(7M4|7RM5|7SM3)|ILME-FX3)"), 0x9050, "Sony9050_88"),
    ("Sony", re.compile(r"^ILCE-1"), 0x9050, "Sony9050c_8a"),
]

# Maker-note tags whose value is a binary record (tables in binary.BINARY).
BINARY_TAGS: dict[str, dict[int, str]] = {
    "Canon": {0x4019: "CanonLensInfo"},
    "Nintendo": {0x1101: "NintendoCameraInfo"},
    "Pentax": {0x0215: "PentaxCameraInfo"},
    "RicohSubdir": {0x002C: "RicohSerialInfo"},
}


# Phase One directory entries: tag -> (binary decoder, tag). Values are 4 bytes inline or at an offset.
PHASE_ONE: dict[int, tuple[str, Tag]] = {
    0x0102: ("string", Tag("serial", "SerialNumber")),
    0x0112: ("unix_time", Tag("datetime_original", "DateTimeOriginal")),
}
MAX_PHASE_ONE_ENTRIES = 300  # exiftool's own bound for this directory
MAX_PHASE_ONE_TEXT = 256


def _phase_one(buf: bytes, start: int, end: int, sink: Collector) -> None:
    """Phase One / Leaf IIQ maker note: header, u32 directory offset at 8, then u32 count, 4 unused bytes
    and 16-byte entries (tag, format size, value size, value or offset), all offsets from the note."""
    little = buf[start : start + 2] == b"II"
    fmt = "<I" if little else ">I"

    def u32(at: int) -> int | None:
        return struct.unpack_from(fmt, buf, at)[0] if start <= at and at + 4 <= end else None

    first = u32(start + 8)
    count = None if first is None else u32(start + first)
    if first is None or count is None or not 2 <= count <= MAX_PHASE_ONE_ENTRIES:
        sink.error("bad maker note IFD")
        return
    table = start + first + 8
    if table + 16 * count > end:
        sink.error("bad maker note IFD")
        return
    for at in range(table, table + 16 * count, 16):
        tag, _, size, value = struct.unpack_from(fmt[0] + "4I", buf, at)
        known = PHASE_ONE.get(tag)
        if known is None:
            continue
        pos = at + 12 if size <= 4 else start + value
        if size > 4 and (value > end - start or size > end - pos):
            continue
        kind, info = known
        width = 4 if kind == "unix_time" else min(size, MAX_PHASE_ONE_TEXT)
        decoded = DECODERS[kind](buf[pos : pos + width], little) if size >= width else None
        if not decoded:
            continue
        if info.field == "serial":
            sink.serial(info.name, decoded)
        else:
            sink.offer(info.field, decoded, Rank.MAKERNOTE)


def _layout(note: bytes, make: str) -> Layout | None:
    for prefix, layout in PREFIXES:
        if note.startswith(prefix):
            return layout
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
    if layout.base == "phaseone":
        _phase_one(buf, start, end, sink)
        return
    if layout.base == "binary":
        offer_binary(layout.vendor, buf, start, end, little, sink)
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
    pending = [(tiff, ifd, vendor)]
    visited: set[int] = set()
    while pending:
        view, pos, table = pending.pop()
        if pos in visited or len(visited) >= MAX_NOTE_IFDS:
            continue
        visited.add(pos)
        tags = TABLES.get(table, {})
        subdirs = SUBDIRS.get(table, {})
        binaries = BINARY_TAGS.get(table, {})
        model = str(sink.value("model") or "")
        for vendor_table, models, tag_id, record in MODEL_BINARY_TAGS:
            if vendor_table == table and tag_id not in binaries and models.search(model):
                tags = {k: v for k, v in tags.items() if k != tag_id}
                binaries = {**binaries, tag_id: record}
        parsed = view.entries(pos, {*tags, *subdirs, *binaries})
        if parsed is None:
            sink.error("bad maker note IFD")
            continue
        entries = parsed[0]
        offer_entries(view, entries, tags, sink, Rank.MAKERNOTE)
        for e in entries:
            if e.tag in subdirs and e.num:
                sub = subdirs[e.tag]
                # Olympus writes the Equipment IFD as type IFD/LONG (an offset) or UNDEFINED (inline data).
                target = e.pos if e.type == 7 else view.base + e.pointer
                if view.buf[target : target + len(sub.header)] != sub.header:
                    continue
                order = None if sub.order is None else sub.order == "II"
                pending.append((view.rebased(view.base, order), target + len(sub.header), sub.table))
            elif e.tag in binaries and view.has(e.pos, e.size):
                offer_binary(binaries[e.tag], view.buf, e.pos, e.pos + e.size, view.little, sink)

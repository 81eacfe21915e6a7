"""The TIFF structure shared by EXIF, maker notes and TIFF-based RAW files: headers, IFDs, typed values.

Everything here is bounds-checked against the buffer: an offset outside it yields ``None`` (and the caller
records the range it would have needed), counts are capped before anything is unpacked, and no value is
copied larger than the buffer itself. Nothing here raises on hostile input.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Set as AbstractSet
from typing import NamedTuple

from tierscan.scanner.fingerprint.exif.model import Collector
from tierscan.scanner.fingerprint.exif.text import decode_text

__all__ = [
    "FORMATTERS",
    "MAX_ENTRIES",
    "TYPE_SIZES",
    "Entry",
    "Tag",
    "Tiff",
    "offer_entries",
    "parse_header",
]

# Bytes per value of each TIFF field type (6.0 types plus 13 = IFD).
TYPE_SIZES: dict[int, int] = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
}
_INT_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I"}
_TEXT_TYPES = frozenset((1, 2, 6, 7))
# Real IFDs hold a few hundred entries at most; beyond this the "IFD" is garbage.
MAX_ENTRIES = 1000
# Numbers decoded from one entry: enough for GPS triplets and pointer arrays, small for hostile counts.
MAX_VALUES = 64
# Text values longer than this are not names or serials; decoding stops here.
MAX_TEXT = 4096
# A hostile count must not turn into a request for gigabytes: no metadata value is larger than this.
MAX_NEED = 16 << 20
# Magic numbers after the byte-order mark: TIFF 42, Olympus ORF "RO"/"RS", Panasonic RW2 0x55.
_MAGICS = frozenset((42, 0x4F52, 0x5352, 0x55))


class Entry(NamedTuple):
    """One IFD entry; ``pos`` is where its value lies in the buffer (inline or at its offset)."""

    tag: int
    type: int
    num: int  # number of values (TIFF "count"; the name would shadow tuple.count)
    pos: int
    size: int
    pointer: int  # the raw 4-byte value/offset field, for pointer tags and base fixing

    @property
    def inline(self) -> bool:
        """Values of up to 4 bytes live in the entry itself."""
        return self.size <= 4


class Tag(NamedTuple):
    """What a tag table says about a tag: which result field it feeds, exiftool's name, how to format."""

    field: str  # a scalar field of ExifInfo, or "serial"
    name: str
    rank_bonus: int = 0  # added to the source rank: CreateDate ranks below any DateTimeOriginal
    fmt: str | None = None  # a key of FORMATTERS
    alt: Tag | None = None  # what the tag is when ``fmt`` refuses the value (exiftool's conditional tags)


class Tiff:
    """A view over ``buf`` holding TIFF data whose offsets count from ``base`` in one byte order."""

    __slots__ = ("_bo", "base", "buf", "end", "little", "origin")

    def __init__(
        self, buf: bytes, base: int, little: bool, origin: int | None = 0, end: int | None = None
    ) -> None:
        self.buf = buf
        self.base = base
        self.little = little
        # File offset of buf[0], or None when the buffer was assembled (decompressed, concatenated):
        # only then can a missing value be reported as a byte range of the file to fetch.
        self.origin = origin
        # The structure's own end (a JPEG segment's, say): nothing past it belongs to this TIFF.
        self.end = len(buf) if end is None else min(end, len(buf))
        self._bo = "<" if little else ">"

    def rebased(self, base: int, little: bool | None = None) -> Tiff:
        """The same buffer with another offset base (maker notes) and optionally another byte order."""
        return Tiff(self.buf, base, self.little if little is None else little, self.origin, self.end)

    def need(self, sink: Collector, pos: int, size: int) -> None:
        """Report that ``size`` bytes at ``pos`` were referenced but are not in the buffer.

        Only bytes past the end of the buffer can be fetched; a reference outside the structure but
        inside the buffer is simply bad data.
        """
        if self.origin is not None and pos >= 0 and pos + size > len(self.buf):
            sink.needed.append((self.origin + pos, min(size, MAX_NEED)))

    def u16(self, pos: int) -> int | None:
        if pos >= 0 and pos + 2 <= self.end:
            value: int = struct.unpack_from(self._bo + "H", self.buf, pos)[0]
            return value
        return None

    def u32(self, pos: int) -> int | None:
        if pos >= 0 and pos + 4 <= self.end:
            value: int = struct.unpack_from(self._bo + "I", self.buf, pos)[0]
            return value
        return None

    def has(self, pos: int, size: int) -> bool:
        """Whether ``size`` bytes at absolute ``pos`` are inside this structure (and the buffer)."""
        return pos >= 0 and size >= 0 and pos + size <= self.end

    def entries(self, pos: int, wanted: AbstractSet[int] | None = None) -> tuple[list[Entry], int] | None:
        """The entries of the IFD at absolute ``pos`` (only ``wanted`` tags, if given) and its table end.

        ``None`` when the entry table does not fit in the buffer (exiftool's "Bad IFD directory": none
        of it is trusted) or claims an absurd entry count. An empty IFD is valid.
        """
        count = self.u16(pos)
        if count is None or count > MAX_ENTRIES:
            return None
        end = pos + 2 + 12 * count
        if end > self.end:
            return None
        out: list[Entry] = []
        base = self.base
        at = pos + 2
        for tag, typ, n, ptr in struct.iter_unpack(self._bo + "HHII", self.buf[at:end]):
            unit = TYPE_SIZES.get(typ)
            # an unknown type has an unknown size, so its value cannot be located
            if unit is not None and (wanted is None or tag in wanted):
                size = unit * n
                out.append(Entry(tag, typ, n, at + 8 if size <= 4 else base + ptr, size, ptr))
            at += 12
        return out, end

    def next_ifd(self, end: int) -> int | None:
        """The absolute position of the IFD chained after the entry table ending at ``end``."""
        nxt = self.u32(end)
        return None if not nxt else self.base + nxt

    def raw(self, e: Entry, limit: int | None = None) -> bytes | None:
        """The value bytes of ``e`` (at most ``limit``), or ``None`` if they are not in the buffer."""
        size = e.size if limit is None else min(e.size, limit)
        return self.buf[e.pos : e.pos + size] if self.has(e.pos, size) else None

    def ints(self, e: Entry, limit: int = MAX_VALUES) -> list[int]:
        """Integer values of an integer-typed entry (empty for other types or out-of-range data)."""
        code = _INT_CODES.get(e.type)
        n = min(e.num, limit)
        if code is None or not self.has(e.pos, n * TYPE_SIZES[e.type]):
            return []
        return list(struct.unpack_from(f"{self._bo}{n}{code}", self.buf, e.pos))

    def numbers(self, e: Entry, limit: int = MAX_VALUES) -> list[float | None]:
        """Numeric values of any numeric type; a rational with a zero denominator gives ``None``."""
        n = min(e.num, limit)
        if e.type in (5, 10):
            if not self.has(e.pos, 8 * n):
                return []
            code = "I" if e.type == 5 else "i"
            pairs = struct.unpack_from(f"{self._bo}{2 * n}{code}", self.buf, e.pos)
            return [num / den if den else None for num, den in zip(pairs[::2], pairs[1::2], strict=True)]
        if e.type in (11, 12):
            code = "f" if e.type == 11 else "d"
            if not self.has(e.pos, n * TYPE_SIZES[e.type]):
                return []
            return list(struct.unpack_from(f"{self._bo}{n}{code}", self.buf, e.pos))
        return [float(v) for v in self.ints(e, limit)]

    def text(self, e: Entry) -> str | None:
        """A text rendering of ``e`` as exiftool ``-n`` prints it: strings decoded, numbers space-joined."""
        if e.type in _TEXT_TYPES:
            raw = self.raw(e, MAX_TEXT)
            return None if raw is None else decode_text(raw, padded=e.type != 2)
        values = self.ints(e, 16)
        return " ".join(map(str, values)) if values else None


def parse_header(
    buf: bytes, start: int, origin: int | None = 0, end: int | None = None
) -> tuple[Tiff, int] | None:
    """Parse a TIFF header at ``start``: the structure (offsets based at ``start``) and IFD0's position."""
    order = buf[start : start + 2]
    if order == b"II":
        little = True
    elif order == b"MM":
        little = False
    else:
        return None
    tiff = Tiff(buf, start, little, origin, end)
    if tiff.u16(start + 2) not in _MAGICS:
        return None
    first = tiff.u32(start + 4)
    return None if first is None else (tiff, start + first)


def _sony_serial(value: str) -> str:
    """Sony 0x2031 stores the serial's digit pairs reversed, with a leading zero (exiftool ValueConv)."""
    if len(value) == 8 and value.isdigit():
        value = value[6:8] + value[4:6] + value[2:4] + value[0:2]
    return value.removeprefix("0")


FORMATTERS: dict[str, Callable[[Tiff, Entry], str | None]] = {
    # Canon InternalSerialNumber is padded with 0xff bytes (exiftool strips them).
    "strip_ff": lambda t, e: (v.rstrip("\xff") if (v := t.text(e)) is not None else None),
    # Samsung writes placeholders into SerialNumber; exiftool wants five word characters first.
    "word5": lambda t, e: (v if (v := t.text(e)) and re.match(r"\w{5}", v) else None),
    "sony_serial": lambda t, e: (_sony_serial(v) if (v := t.text(e)) else v),
    # Canon's ImageUniqueID is 16 raw bytes that exiftool prints as hex; all zeros means "not set".
    "hex": lambda t, e: (raw.hex() if (raw := t.raw(e, 64)) and raw.strip(b"\0") else None),
    "hex_raw": lambda t, e: (raw.hex() if (raw := t.raw(e, 64)) else None),
    # Ricoh 0x0005 is a printable SerialNumber only when every byte is a word character, space or dash.
    "word_only": lambda t, e: (
        raw.decode("ascii").strip() if (raw := t.raw(e, 64)) and re.fullmatch(rb"[-\w ]+", raw) else None),
}


def offer_entries(
    tiff: Tiff, entries: list[Entry], table: dict[int, Tag], sink: Collector, rank: int
) -> None:
    """Offer every entry that ``table`` names to the collector, formatted as exiftool ``-n`` would."""
    for e in entries:
        tag = table.get(e.tag)
        if tag is None:
            continue
        if tag.field == "orientation":
            values = tiff.ints(e, 1)
            sink.offer("orientation", values[0] if values else None, rank + tag.rank_bonus)
            continue
        value = FORMATTERS[tag.fmt](tiff, e) if tag.fmt else tiff.text(e)
        if value is None and tag.alt is not None:
            tag = tag.alt
            value = FORMATTERS[tag.fmt](tiff, e) if tag.fmt else tiff.text(e)
        if value is None:
            if not tiff.has(e.pos, min(e.size, MAX_TEXT)):
                sink.error(f"value of {tag.name} outside data")
                tiff.need(sink, e.pos, e.size)
            continue
        if tag.field == "serial":
            sink.serial(tag.name, value)
        else:
            sink.offer(tag.field, value, rank + tag.rank_bonus)

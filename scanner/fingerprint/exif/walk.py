"""The EXIF walker: follows IFD0, its chain, ExifIFD, GPS and SubIFDs, applying the tag tables.

Every IFD is visited at most once (offsets are tracked, so loops between IFDs end), the number of IFDs is
bounded, and pointers of the wrong type are refused the way exiftool refuses them. Maker notes are parsed
after the walk, once the Make is known wherever it was stored. An XMP tag is copied up to the XMP reader's
``MAX_PACKET`` only; IPTC (IPTC-NAA, Photoshop resources) is read in place.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from tierscan.scanner.fingerprint.exif import tags as T
from tierscan.scanner.fingerprint.exif.blocks import MAX_BLOCKS
from tierscan.scanner.fingerprint.exif.gps import gps_position
from tierscan.scanner.fingerprint.exif.iptc import read_iptc, read_photoshop
from tierscan.scanner.fingerprint.exif.makernotes import parse_makernote, walk_note
from tierscan.scanner.fingerprint.exif.model import Collector, Rank
from tierscan.scanner.fingerprint.exif.tiff import MAX_ENTRIES, Entry, Tiff, offer_entries, parse_header
from tierscan.scanner.fingerprint.exif.xmp import MAX_PACKET

__all__ = ["TiffSummary", "walk_exif", "walk_tiff_ifd"]

MAX_IFDS = 32  # IFD0..n chain, ExifIFD, GPS, SubIFDs of real files stay far below this
MAX_CHAIN = 8  # pages followed along the IFD0 -> IFD1 -> ... chain
_POINTER_TYPES = frozenset((4, 13))
# RAW flavours that share the plain TIFF header: recognised by the Make of a file holding CFA data.
_RAW_BY_MAKE = {"NIKON": "NEF", "SONY": "ARW", "PENTAX": "PEF", "RICOH": "PEF", "SAMSUNG": "SRW",
                "CANON": "CR2", "OLYMPUS": "ORF", "PANASONIC": "RW2", "LEICA": "RWL"}
_CFA_PHOTOMETRIC = frozenset((32803, 34892))
_PHASE_ONE = re.compile(rb"(?s)IIII.waR|MMMMRaw.")
_MAIN_WANTED = frozenset((*T.EXIF_TAGS, *T.POINTERS, T.MAKE, T.MAKER_NOTE, T.DNG_PRIVATE, T.XMP_PACKET,
                          T.IPTC_NAA, T.PHOTOSHOP, T.DNG_VERSION, T.PHOTOMETRIC, T.IMAGE_WIDTH, T.IMAGE_HEIGHT))
_GPS_WANTED = frozenset((1, 2, 3, 4))


@dataclass(slots=True)
class TiffSummary:
    """Structural facts of a TIFF walk: the largest image's size and what marks a RAW file."""

    width: int | None = None
    height: int | None = None
    make: str = ""
    dng: bool = False
    cfa: bool = False
    phase_one: bool = False  # a Phase One maker note: the file is an IIQ
    xmp: list[bytes] = field(default_factory=list)

    def raw_format(self) -> str:
        """TIFF, DNG, IIQ, or the vendor RAW a plain-TIFF-header file is (by Make, when it holds CFA data)."""
        if self.dng:
            return "DNG"
        if self.phase_one:
            return "IIQ"
        if self.cfa:
            for prefix, fmt in _RAW_BY_MAKE.items():
                if self.make.upper().startswith(prefix):
                    return fmt
        return "TIFF"


class _Walker:
    __slots__ = ("notes", "sink", "summary", "visited")

    def __init__(self, sink: Collector) -> None:
        self.sink = sink
        self.summary = TiffSummary()
        self.notes: list[tuple[Tiff, int, int]] = []
        self.visited: set[int] = set()

    def run(self, tiff: Tiff, first: int, kind: str) -> None:
        queue: deque[tuple[int, str, str]] = deque([(first, kind, "IFD0")])
        chain = 0
        while queue:
            pos, kind, name = queue.popleft()
            if pos in self.visited:
                self.sink.error(f"{name} loops back to a visited IFD")
                continue
            if len(self.visited) >= MAX_IFDS:
                self.sink.error("too many IFDs")
                break
            self.visited.add(pos)
            parsed = tiff.entries(pos, _GPS_WANTED if kind == "gps" else _MAIN_WANTED)
            if parsed is None:
                count = tiff.u16(pos)
                if count is None or (count <= MAX_ENTRIES and not tiff.has(pos, 2 + 12 * count)):
                    tiff.need(self.sink, pos, 2 + 12 * (count or 0) + 4)
                self.sink.error(f"bad {name} directory")
                continue
            entries, end = parsed
            if kind == "gps":
                position = gps_position(tiff, entries)
                if position is not None:
                    self.sink.gps(*position, Rank.EXIF)
                continue
            self._main(tiff, entries, name, queue)
            if name.startswith("IFD") and chain < MAX_CHAIN:
                nxt = tiff.next_ifd(end)
                if nxt is not None:
                    chain += 1
                    queue.append((nxt, "main", f"IFD{chain}"))
        for parent, start, size in self.notes:
            parse_makernote(parent, start, size, self.summary.make, self.sink)

    def _main(self, tiff: Tiff, entries: list[Entry], name: str, queue: deque[tuple[int, str, str]]) -> None:
        offer_entries(tiff, entries, T.EXIF_TAGS, self.sink, Rank.EXIF)
        self._iptc(tiff, entries)
        summary = self.summary
        width = height = None
        for e in entries:
            tag = e.tag
            if tag in T.POINTERS:
                if e.type not in _POINTER_TYPES:
                    self.sink.error(f"wrong format for {name} pointer 0x{tag:04x}")
                    continue
                kind = T.POINTERS[tag]
                for offset in tiff.ints(e, 8 if kind == "subifd" else 1):
                    queue.append((tiff.base + offset, "gps" if kind == "gps" else "main", kind))
            elif tag == T.MAKE and not summary.make:
                summary.make = tiff.text(e) or ""
            elif tag == T.MAKER_NOTE:
                self.notes.append((tiff, e.pos, e.size))
                summary.phase_one = summary.phase_one or _PHASE_ONE.match(tiff.raw(e, 8) or b"") is not None
            elif tag == T.DNG_PRIVATE:
                self._dng_private(tiff, e)
            elif tag == T.XMP_PACKET and e.type in (1, 7) and len(summary.xmp) < MAX_BLOCKS:
                raw = tiff.raw(e, MAX_PACKET)  # as much as the XMP reader reads, however large the tag
                if raw:
                    summary.xmp.append(raw)
            elif tag == T.DNG_VERSION:
                summary.dng = True
            elif tag == T.PHOTOMETRIC and set(tiff.ints(e, 1)) & _CFA_PHOTOMETRIC:
                summary.cfa = True
            elif tag in (T.IMAGE_WIDTH, T.IMAGE_HEIGHT) and name != "IFD1":
                values = tiff.ints(e, 1)
                if values:
                    width, height = (values[0], height) if tag == T.IMAGE_WIDTH else (width, values[0])
        if width and height and width * height > (summary.width or 0) * (summary.height or 0):
            summary.width, summary.height = width, height

    def _iptc(self, tiff: Tiff, entries: list[Entry]) -> None:
        """IPTC-IIM in an IPTC-NAA tag or in Photoshop resources, read in place."""
        for e in entries:
            if e.tag in (T.IPTC_NAA, T.PHOTOSHOP) and tiff.has(e.pos, e.size):
                read = read_iptc if e.tag == T.IPTC_NAA else read_photoshop
                read(tiff.buf, e.pos, e.pos + e.size, self.sink)

    def _dng_private(self, tiff: Tiff, e: Entry) -> None:
        """DNGPrivateData "Adobe\\0MakN": the original maker note, its byte order and original offset."""
        raw = tiff.raw(e, 20)
        if raw is None or len(raw) < 20 or not raw.startswith(b"Adobe\x00MakN"):
            return
        size = int.from_bytes(raw[10:14], "big")
        little = {b"II": True, b"MM": False}.get(raw[14:16])
        if little is None or size < 6:
            return
        original = int.from_bytes(raw[16:20], "big")
        start = e.pos + 20
        self.notes.append((Tiff(tiff.buf, start - original, little, tiff.origin, tiff.end), start, size - 6))


def walk_exif(buf: bytes, start: int, sink: Collector, origin: int | None = 0,
              end: int | None = None) -> TiffSummary | None:
    """Walk the TIFF structure at ``buf[start:end]``; ``None`` if there is no valid header."""
    header = parse_header(buf, start, origin, end)
    if header is None:
        sink.error("bad TIFF header")
        return None
    walker = _Walker(sink)
    walker.run(*header, "main")
    return walker.summary


def walk_tiff_ifd(buf: bytes, start: int, kind: str, sink: Collector, origin: int | None = 0,
                  end: int | None = None) -> None:
    """Walk a TIFF whose first IFD is of a given kind: "main", "gps", or a maker-note vendor (CR3 CMTn)."""
    header = parse_header(buf, start, origin, end)
    if header is None:
        sink.error("bad TIFF header")
        return
    tiff, first = header
    if kind in ("main", "gps"):
        _Walker(sink).run(tiff, first, kind)
    else:
        walk_note(tiff, first, kind, sink)

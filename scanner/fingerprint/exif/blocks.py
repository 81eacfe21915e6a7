"""What a container walk hands to the metadata parsers: located metadata blocks, not interpreted yet.

Container walkers (JPEG, PNG, WebP, ISO BMFF and the RAW containers) only find where EXIF, XMP, GPMF and
vendor records live and the image size; they also say which byte range they would need next when given
only a prefix of the file. That ``needed`` range is the seam for ranged reads: a fetcher can read it and
walk again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_BLOCKS", "Blocks", "ExifBlock", "Record"]

# Real files carry one or two blocks of each kind; a file with hundreds is hostile, and each block costs
# a bounded but non-trivial walk, so only the first few are kept.
MAX_BLOCKS = 8


@dataclass(slots=True)
class ExifBlock:
    """A TIFF structure at ``buf[start:end]``; ``origin`` is the file offset of ``buf[0]`` (None if built).

    ``kind`` is what its first IFD holds: "main" (IFD0 or ExifIFD), "gps", or a maker-note vendor (CR3).
    """

    buf: bytes
    start: int
    end: int
    origin: int | None = 0
    kind: str = "main"


@dataclass(slots=True)
class Record:
    """A vendor record that is not a TIFF structure, at ``buf[start:end]``, read by the reader ``kind`` of
    :mod:`tierscan.scanner.fingerprint.exif.records` (a CIFF heap, an APP12 text segment, a binary block)."""

    kind: str
    buf: bytes
    start: int
    end: int


@dataclass(slots=True)
class Blocks:
    """Everything a container walk located."""

    format: str | None
    width: int | None = None
    height: int | None = None
    exif: list[ExifBlock] = field(default_factory=list)
    xmp: list[bytes] = field(default_factory=list)
    gpmf: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    needed: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) ranges still missing
    error: str | None = None

    def add_exif(self, block: ExifBlock) -> None:
        """Keep a located TIFF structure (the first MAX_BLOCKS only)."""
        if len(self.exif) < MAX_BLOCKS:
            self.exif.append(block)

    def add_xmp(self, packet: bytes) -> None:
        """Keep a located XMP packet (the first MAX_BLOCKS only)."""
        if len(self.xmp) < MAX_BLOCKS:
            self.xmp.append(packet)

    def add_gpmf(self, stream: bytes) -> None:
        """Keep a located GPMF stream (the first MAX_BLOCKS only)."""
        if len(self.gpmf) < MAX_BLOCKS:
            self.gpmf.append(stream)

    def add_record(self, record: Record) -> None:
        """Keep a located vendor record (the first MAX_BLOCKS only)."""
        if len(self.records) < MAX_BLOCKS:
            self.records.append(record)

    def need(self, offset: int, length: int, reason: str = "truncated") -> None:
        """Record that the walk needs ``length`` bytes at ``offset`` that the buffer does not hold."""
        self.needed.append((offset, max(length, 0)))
        self.fail(reason)

    def uses(self, offset: int, length: int) -> None:
        """Record a range the walk read where the buffer may be the file in pieces with holes between
        (formats whose structure starts at the end: X3F, CRW): a ranged reader fetches it if it lacks it
        and walks again; over a whole file it is already there."""
        self.needed.append((offset, max(length, 0)))

    def fail(self, reason: str) -> None:
        """Record the first structural problem of the container."""
        if self.error is None:
            self.error = reason

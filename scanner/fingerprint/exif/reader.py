"""``read_metadata``: locate the metadata blocks of a file, parse each, and merge them by rank."""

from __future__ import annotations

from tierscan.scanner.fingerprint.exif.blocks import ExifBlock
from tierscan.scanner.fingerprint.exif.containers import TIFF_FORMATS, locate_blocks
from tierscan.scanner.fingerprint.exif.gpmf import read_gpmf
from tierscan.scanner.fingerprint.exif.model import Collector, ImageMeta
from tierscan.scanner.fingerprint.exif.records import read_record
from tierscan.scanner.fingerprint.exif.walk import TiffSummary, walk_exif, walk_tiff_ifd
from tierscan.scanner.fingerprint.exif.xmp import read_xmp

__all__ = ["read_metadata", "read_prefix"]


def _walk_block(block: ExifBlock, sink: Collector) -> TiffSummary | None:
    if block.kind == "main":
        return walk_exif(block.buf, block.start, sink, block.origin, block.end)
    walk_tiff_ifd(block.buf, block.start, block.kind, sink, block.origin, block.end)
    return None


def read_prefix(data: bytes) -> tuple[ImageMeta, list[tuple[int, int]]]:
    """Read what ``data`` (a file or a prefix of it) holds, and the (offset, length) ranges still needed.

    This is the seam for ranged reads: a fetcher can read the ranges, join them with what it has and
    call again. Ranges are file offsets; values inside decompressed or concatenated blocks cannot be
    fetched piecemeal, so they are never reported.
    """
    sink = Collector()
    blocks = locate_blocks(data)
    fmt, width, height = blocks.format, blocks.width, blocks.height
    xmp = list(blocks.xmp)
    for block in blocks.exif:
        summary = _walk_block(block, sink)
        if summary is None:
            continue
        xmp.extend(summary.xmp)
        if fmt == "TIFF" and block.buf is data:
            fmt = summary.raw_format()
        if (fmt in TIFF_FORMATS or fmt == "CR3") and width is None:  # CR3: CMT1 is the image's IFD0
            width, height = summary.width, summary.height
    for packet in xmp:
        read_xmp(packet, sink)
    for stream in blocks.gpmf:
        read_gpmf(stream, sink)
    for record in blocks.records:
        read_record(record, sink)
    if width is None and sink.size is not None:
        width, height = sink.size
    error = blocks.error or (sink.errors[0] if sink.errors else None)
    needed = blocks.needed + sink.needed
    return ImageMeta(fmt, sink.build(), width, height, error), needed


def read_metadata(data: bytes) -> ImageMeta:
    """Read format, size and the personal-data fields of a whole file; never raises on hostile input.

    A malformed structure stops only the part it belongs to: what was read elsewhere is still returned,
    and ``error`` names the first problem met.
    """
    return read_prefix(data)[0]

"""JPEG (and MPO, and the JPEG inside RAF): walk the marker segments from SOI up to SOS.

Metadata lives in APPn segments before the scan data, so the walk never reads past SOS. Each segment is
stepped over by its length, so a prefix of the file suffices until a segment runs past its end; then the
walk reports the range it needs.

Hostile files: EXIF split over several APP1 segments is joined up to ``MAX_JOINED`` (1 MiB), in one copy
however many segments it takes; XMP and GPMF segments are at most 64 KiB each by the format.
"""

from __future__ import annotations

from tierscan.scanner.fingerprint.exif.blocks import Blocks, ExifBlock

__all__ = ["scan_jpeg"]

_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))
_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_TIFF_MARKS = (b"II*\x00", b"MM\x00*")
MAX_JOINED = 1 << 20  # multi-segment EXIF is joined up to this size


def _app1_exif(data: bytes, seg: int, end: int, blocks: Blocks, previous_end: int | None,
               joins: bytearray) -> None:
    """An APP1 Exif segment: a new TIFF structure, or the continuation of a multi-segment one.

    Continuations are appended to ``joins`` and joined onto the last block once (`_join`): joining at
    each segment would copy the growing block again every time, quadratic in the number of segments."""
    start = seg + 6
    if data[start : start + 4] in _TIFF_MARKS or not blocks.exif or previous_end is None:
        _join(blocks, joins)
        blocks.add_exif(ExifBlock(data, start, end))
        return
    # exiftool joins an Exif segment without its own TIFF header onto the previous one.
    last = blocks.exif[-1]
    if last.end - last.start + len(joins) + end - start > MAX_JOINED:
        blocks.fail("multi-segment EXIF too large")
        return
    joins += memoryview(data)[start:end]


def _join(blocks: Blocks, joins: bytearray) -> None:
    """Join the collected continuation segments onto the last EXIF block."""
    if joins:
        last = blocks.exif[-1]
        joined = last.buf[last.start : last.end] + joins
        blocks.exif[-1] = ExifBlock(joined, 0, len(joined), None)
        joins.clear()


def scan_jpeg(data: bytes, blocks: Blocks, offset: int = 0) -> None:
    """Walk the JPEG starting at ``data[offset]`` (SOI) and record its metadata blocks into ``blocks``."""
    joins = bytearray()
    _walk(data, blocks, offset, joins)
    _join(blocks, joins)


def _walk(data: bytes, blocks: Blocks, offset: int, joins: bytearray) -> None:
    n = len(data)
    pos = offset + 2
    exif_end: int | None = None
    while True:
        if pos + 4 > n:
            blocks.need(pos, 4)
            return
        if data[pos] != 0xFF:
            blocks.fail("bad JPEG marker")
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS: no metadata beyond this point
            return
        length = (data[pos + 2] << 8) | data[pos + 3]
        seg, end = pos + 4, pos + 2 + length
        if length < 2:
            blocks.fail("bad JPEG segment length")
            return
        if end > n:
            blocks.need(pos, length + 2)
            return
        if marker == 0xE1 and data.startswith(b"Exif\x00", seg):
            _app1_exif(data, seg, end, blocks, exif_end, joins)
            exif_end = end
        elif marker == 0xE1 and data.startswith(_XMP_ID, seg):
            blocks.add_xmp(data[seg + len(_XMP_ID) : end])
        elif marker == 0xE2 and data.startswith(b"MPF\x00", seg) and data[seg + 4 : seg + 8] in _TIFF_MARKS:
            blocks.format = "MPO"
        elif marker == 0xE6 and data.startswith(b"GoPro\x00", seg):
            blocks.add_gpmf(data[seg + 6 : end])
        elif marker in _SOF and blocks.width is None and length >= 7:
            blocks.height = (data[seg + 1] << 8) | data[seg + 2]
            blocks.width = (data[seg + 3] << 8) | data[seg + 4]
        pos = end

"""JPEG (and MPO, and the JPEG inside RAF, RW2 and X3F): walk the marker segments from SOI up to SOS.

Metadata lives in APPn segments before the scan data, so the walk never reads past SOS. Each segment is
stepped over by its length, so a prefix of the file suffices until a segment runs past its end; then the
walk reports the range it needs. Besides EXIF, XMP (and extended XMP, its chunks joined by offset) and
GPMF, vendor segments are located as records for records.py: Casio QVCI and FLIR (APP1), InfiRay's
sensor block (APP9, after an APP2 "IJPEG" mark), the "picture info" text (APP12) and Photoshop resources
with IPTC (APP13); and, after the image, the IPTC of an AFCP trailer (the one read past SOS, at the end).

Hostile files: EXIF split over several APP1 segments is joined up to ``MAX_JOINED`` (1 MiB), in one copy
however many segments it takes, and so are FLIR chunks and extended XMP (the first ``MAX_BLOCKS`` GUIDs);
other segments are at most 64 KiB each by the format.
"""

from __future__ import annotations

from typing import Literal

from tierscan.scanner.fingerprint.exif.blocks import MAX_BLOCKS, Blocks, ExifBlock, Record

__all__ = ["scan_jpeg"]

_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))
_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"  # then a 32-byte GUID, full length, offset
_TIFF_MARKS = (b"II*\x00", b"MM\x00*")
MAX_JOINED = 1 << 20  # multi-segment EXIF (and FLIR) is joined up to this size
_PHOTOSHOP = (b"Photoshop 3.0\x00", b"Adobe_Photoshop2.5:")
_AFCP: dict[bytes, Literal["big", "little"]] = {b"AXS!": "big", b"AXS*": "little"}  # a trailer's mark: byte order
MAX_AFCP_ENTRIES = 64


class _Segments:
    """Vendor APPn segments met so far: the IJPEG mark that makes APP9 an InfiRay sensor block, and the
    FLIR chunks, which are joined in chunk order once the walk ends (exiftool joins them the same way)."""

    __slots__ = ("flir", "flir_size", "ijpeg", "xmp_extended", "xmp_size")

    def __init__(self) -> None:
        self.ijpeg = False
        self.flir: dict[int, tuple[int, int]] = {}  # chunk number -> (start, end) of its payload
        self.flir_size = 0
        # extended XMP: GUID -> chunk offset -> (start, end) of its payload
        self.xmp_extended: dict[bytes, dict[int, tuple[int, int]]] = {}
        self.xmp_size = 0

    def add_xmp_extension(self, data: bytes, seg: int, end: int) -> None:
        """An extended XMP chunk (XMP part 3, 1.1.3.1): kept by GUID and offset, up to ``MAX_JOINED`` bytes."""
        head = seg + len(_XMP_EXTENSION)
        start = head + 40
        if start > end:
            return
        guid, offset = data[head : head + 32], int.from_bytes(data[head + 36 : head + 40], "big")
        chunks = self.xmp_extended.get(guid)
        if chunks is None and len(self.xmp_extended) < MAX_BLOCKS:
            chunks = self.xmp_extended[guid] = {}
        if chunks is not None and offset not in chunks and self.xmp_size + end - start <= MAX_JOINED:
            chunks[offset] = (start, end)
            self.xmp_size += end - start

    def add_flir(self, data: bytes, seg: int, end: int) -> None:
        number = data[seg + 6]
        if number not in self.flir and self.flir_size + end - seg - 8 <= MAX_JOINED:
            self.flir[number] = (seg + 8, end)
            self.flir_size += end - seg - 8

    def finish(self, data: bytes, blocks: Blocks) -> None:
        if self.flir:
            joined = b"".join(data[s:e] for _, (s, e) in sorted(self.flir.items()))
            blocks.add_record(Record("FLIR", joined, 0, len(joined)))
        for chunks in self.xmp_extended.values():
            blocks.add_xmp(b"".join(data[s:e] for _, (s, e) in sorted(chunks.items())))


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


_VENDOR_MARKERS = frozenset((0xE1, 0xE2, 0xE9, 0xEC, 0xED))


def _vendor(data: bytes, marker: int, seg: int, end: int, blocks: Blocks, segments: _Segments) -> None:
    """Vendor segments that carry serials or capture times, recognised as exiftool's JPEG table does."""
    if marker == 0xE1:
        if data.startswith(b"QVCI\x00", seg):
            blocks.add_record(Record("CasioQVCI", data, seg, end))
        elif data.startswith(b"FLIR\x00", seg) and end - seg >= 8:
            segments.add_flir(data, seg, end)
        elif data.startswith(_XMP_EXTENSION, seg):
            segments.add_xmp_extension(data, seg, end)
    elif marker == 0xE2:
        segments.ijpeg = segments.ijpeg or data.startswith(b"IJPEG\x00", seg + 4)
    elif marker == 0xE9:
        if segments.ijpeg:
            blocks.add_record(Record("InfiRaySensor", data, seg, end))
    elif marker == 0xEC:
        if data.find(b"[picture info]", seg, end) >= 0 or data.find(b"Type=", seg, end) >= 0:
            blocks.add_record(Record("PictureInfo", data, seg, end))
    elif data.startswith(_PHOTOSHOP, seg):
        blocks.add_record(Record("Photoshop", data, seg, end))


def scan_jpeg(data: bytes, blocks: Blocks, offset: int = 0) -> None:
    """Walk the JPEG starting at ``data[offset]`` (SOI) and record its metadata blocks into ``blocks``."""
    joins = bytearray()
    segments = _Segments()
    _walk(data, blocks, offset, joins, segments)
    _join(blocks, joins)
    segments.finish(data, blocks)
    if offset == 0:
        _afcp(data, blocks)


def _afcp(data: bytes, blocks: Blocks) -> None:
    """The IPTC of an AFCP trailer (AXS File Concatenation Protocol, exiftool's AFCP.pm), which some
    tools append after the image: its last 12 bytes are its mark and the offset of its header (mark,
    version, entry count, checksum), which 12-byte entries follow (tag, size, offset in the file). Only a
    trailer whose offsets hold is read; a prefix of the file has none."""
    order = _AFCP.get(data[-12:-8]) if len(data) >= 24 else None
    if order is None:
        return
    start = int.from_bytes(data[-8:-4], order)
    if start + 12 > len(data) - 12 or data[start : start + 4] != data[-12:-8]:
        return
    count = min(int.from_bytes(data[start + 6 : start + 8], order), MAX_AFCP_ENTRIES)
    for pos in range(start + 12, min(start + 12 + 12 * count, len(data) - 12), 12):
        size, at = int.from_bytes(data[pos + 4 : pos + 8], order), int.from_bytes(data[pos + 8 : pos + 12], order)
        if data[pos : pos + 4] == b"IPTC" and at + size <= len(data):
            blocks.add_record(Record("IPTC", data, at, at + size))


def _walk(data: bytes, blocks: Blocks, offset: int, joins: bytearray, segments: _Segments) -> None:
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
        elif marker in _VENDOR_MARKERS:
            _vendor(data, marker, seg, end, blocks, segments)
        elif marker in _SOF and blocks.width is None and length >= 7:
            blocks.height = (data[seg + 1] << 8) | data[seg + 2]
            blocks.width = (data[seg + 3] << 8) | data[seg + 4]
        pos = end

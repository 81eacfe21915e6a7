"""ISO BMFF images: HEIC/HEIF/AVIF (EXIF and XMP as items of the ``meta`` box) and Canon CR3 (CMTn boxes).

HEIF keeps metadata as items: ``iinf`` names them (type "Exif", or "mime" with an XMP content type) and
``iloc`` says where their bytes are, usually in ``mdat`` far from the header, so a prefix-only walk
reports that range as needed. The Exif item starts with a 4-byte offset to its TIFF header.

Hostile files: an item's bytes are read up to ``MAX_ITEM`` (4 MiB) only, and items are located only while
fewer than ``MAX_BLOCKS`` blocks of their kind are kept, so thousands of items sharing one large extent
cannot each be copied.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from tierscan.scanner.fingerprint.exif.blocks import MAX_BLOCKS, Blocks, ExifBlock

__all__ = ["scan_bmff"]

MAX_BOXES = 4096
MAX_ITEMS = 4096
MAX_EXTENTS = 64
MAX_ITEM = 4 << 20  # EXIF and XMP items are kilobytes; larger ones are not read
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_CR3_KINDS = {b"CMT1": "main", b"CMT2": "main", b"CMT3": "Canon", b"CMT4": "gps"}
_XMP_TYPES = (b"application/rdf+xml", b"application/xmp+xml")


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of the boxes in ``data[start:end]``; box ends are not clamped."""
    pos = start
    for _ in range(MAX_BOXES):
        if pos + 8 > end:
            return
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield btype, pos + header, pos + size
        pos += size


def _uint(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "big") if size else 0


class _Meta:
    """The parts of a HEIF ``meta`` box needed to locate metadata items and the primary image size."""

    def __init__(self) -> None:
        self.primary: int | None = None
        self.types: dict[int, bytes] = {}  # item id -> "Exif" / "xmp" / other item type
        self.locations: dict[int, tuple[int, list[tuple[int, int]]]] = {}  # id -> (method, extents)
        self.properties: list[tuple[bytes, int, int]] = []
        self.associations: dict[int, list[int]] = {}
        self.idat: tuple[int, int] | None = None

    def parse(self, data: bytes, body: int, end: int) -> None:
        for btype, b, e in _boxes(data, body + 4, end):  # meta is a FullBox
            e = min(e, end)
            if btype == b"pitm":
                self.primary = _uint(data, b + 4, 2 if data[b] == 0 else 4)
            elif btype == b"iinf":
                self._iinf(data, b, e)
            elif btype == b"iloc":
                self._iloc(data, b, e)
            elif btype == b"iprp":
                self._iprp(data, b, e)
            elif btype == b"idat":
                self.idat = (b, e)

    def _iinf(self, data: bytes, body: int, end: int) -> None:
        first = body + (6 if data[body : body + 1] == b"\x00" else 8)
        for btype, b, e in _boxes(data, first, end):
            if btype != b"infe" or len(self.types) >= MAX_ITEMS or e > end:
                continue
            version = data[b]
            if version < 2:
                continue
            id_size = 2 if version == 2 else 4
            item = _uint(data, b + 4, id_size)
            type_at = b + 4 + id_size + 2
            item_type = data[type_at : type_at + 4]
            if item_type == b"mime":
                name_end = data.find(b"\x00", type_at + 4, e)
                content = data[name_end + 1 : e].split(b"\x00", 1)[0] if name_end >= 0 else b""
                item_type = b"xmp" if content in _XMP_TYPES else b"mime"
            self.types[item] = item_type

    def _iloc(self, data: bytes, body: int, end: int) -> None:
        version = data[body]
        if version > 2 or body + 8 > end:
            return
        offset_size, length_size = data[body + 4] >> 4, data[body + 4] & 15
        base_size, index_size = data[body + 5] >> 4, (data[body + 5] & 15) if version else 0
        id_size = 2 if version < 2 else 4
        count = _uint(data, body + 6, id_size)
        pos = body + 6 + id_size
        for _ in range(min(count, MAX_ITEMS)):
            item = _uint(data, pos, id_size)
            pos += id_size
            method = 0
            if version:
                method = _uint(data, pos, 2) & 15
                pos += 2
            pos += 2  # data_reference_index
            base = _uint(data, pos, base_size)
            pos += base_size
            n = _uint(data, pos, 2)
            pos += 2
            extents: list[tuple[int, int]] = []
            for _ in range(n):
                pos += index_size
                offset = _uint(data, pos, offset_size)
                length = _uint(data, pos + offset_size, length_size)
                pos += offset_size + length_size
                if pos > end or len(extents) == MAX_EXTENTS:
                    return  # the box is shorter than it claims, or the item is absurdly fragmented
                extents.append((base + offset, length))
            if pos > end:
                return
            self.locations[item] = (method, extents)

    def _iprp(self, data: bytes, body: int, end: int) -> None:
        for btype, b, e in _boxes(data, body, end):
            e = min(e, end)
            if btype == b"ipco":
                self.properties = [(t, pb, min(pe, e)) for t, pb, pe in _boxes(data, b, e)]
            elif btype == b"ipma":
                self._ipma(data, b, e)

    def _ipma(self, data: bytes, body: int, end: int) -> None:
        version, flags = data[body], data[body + 3]
        id_size, wide = (2 if version < 1 else 4), bool(flags & 1)
        count = _uint(data, body + 4, 4)
        pos = body + 8
        for _ in range(min(count, MAX_ITEMS)):
            if pos + id_size + 1 > end:
                return
            item = _uint(data, pos, id_size)
            n = data[pos + id_size]
            pos += id_size + 1
            size = 2 if wide else 1
            indexes = [_uint(data, pos + i * size, size) & (0x7FFF if wide else 0x7F) for i in range(n)]
            pos += n * size
            self.associations[item] = indexes

    def primary_size(self, data: bytes) -> tuple[int, int] | None:
        """The ``ispe`` (image spatial extents) property of the primary item."""
        for index in self.associations.get(self.primary or -1, ()):
            if 1 <= index <= len(self.properties):
                btype, b, e = self.properties[index - 1]
                if btype == b"ispe" and b + 12 <= e:
                    return struct.unpack_from(">II", data, b + 4)
        return None

    def item_bytes(self, data: bytes, item: int, blocks: Blocks) -> tuple[bytes, int, int, int | None] | None:
        """(buffer, start, end, origin) of an item's bytes: zero-copy for one extent in the file."""
        method, extents = self.locations.get(item, (0, []))
        if method == 1 and self.idat is not None:
            extents = [(self.idat[0] + off, length) for off, length in extents]
        elif method != 0:
            return None
        if sum(length for _, length in extents) > MAX_ITEM:
            blocks.fail("metadata item too large")
            return None
        for off, length in extents:
            if off + length > len(data):
                blocks.need(off, length)
                return None
        if len(extents) == 1:
            off, length = extents[0]
            return data, off, off + length, 0
        joined = b"".join(data[off : off + length] for off, length in extents)
        return joined, 0, len(joined), None


def _heif(data: bytes, body: int, end: int, blocks: Blocks) -> None:
    meta = _Meta()
    meta.parse(data, body, end)
    size = meta.primary_size(data)
    if size is not None:
        blocks.width, blocks.height = size
    for item, item_type in meta.types.items():
        if item_type not in (b"Exif", b"xmp"):
            continue
        if len(blocks.xmp if item_type == b"xmp" else blocks.exif) >= MAX_BLOCKS:
            continue  # it would not be kept: its bytes are not worth locating or joining
        located = meta.item_bytes(data, item, blocks)
        if located is None:
            continue
        buf, start, stop, origin = located
        if item_type == b"xmp":
            blocks.add_xmp(buf[start:stop])
            continue
        tiff = start + 4 + _uint(buf, start, 4)
        if buf[tiff : tiff + 2] not in (b"II", b"MM") and buf.startswith(b"Exif\x00\x00", start + 4):
            tiff = start + 10
        blocks.add_exif(ExifBlock(buf, tiff, stop, origin))


def _cr3(data: bytes, body: int, end: int, blocks: Blocks) -> None:
    for btype, b, e in _boxes(data, body, end):
        if btype != b"uuid" or data[b : b + 16] != _CANON_UUID:
            continue
        for ctype, cb, ce in _boxes(data, b + 16, min(e, end)):
            kind = _CR3_KINDS.get(ctype)
            if kind is not None and ce <= end:
                blocks.add_exif(ExifBlock(data, cb, ce, 0, kind))


def scan_bmff(data: bytes, blocks: Blocks) -> None:
    """Walk the top-level boxes of an ISO BMFF image and record its metadata blocks into ``blocks``."""
    n = len(data)
    for btype, body, end in _boxes(data, 0, n):
        if btype in (b"meta", b"moov") and end > n:
            blocks.need(body - 8, end - body + 8)
            return
        if btype == b"meta":
            _heif(data, body, end, blocks)
        elif btype == b"moov":
            _cr3(data, body, end, blocks)
        elif btype == b"uuid" and data[body : body + 16] == _XMP_UUID and end <= n:
            blocks.add_xmp(data[body + 16 : end])

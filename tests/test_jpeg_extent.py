"""The end of a JPEG's primary image: found exactly, never guessed, so that reading stops there."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from tierscan.scanner.fingerprint.jpeg_extent import MAX_STEPS, primary_end

DATA = Path(__file__).parent / "data" / "exif"
JPEGS = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".mpo"))


def _phash(data: bytes) -> imagehash.ImageHash:
    with Image.open(io.BytesIO(data)) as img:
        return imagehash.phash(img.convert("RGB"))


@pytest.mark.parametrize("path", JPEGS, ids=lambda p: p.name)
def test_the_primary_image_decodes_alike_from_the_bytes_up_to_its_end(path: Path) -> None:
    data = path.read_bytes()
    end = primary_end(data)
    if end is None:  # damaged files: no EOI where the markers say it should be; read and decoded whole
        assert path.name == "exifpy__corrupted.jpg"
        return
    assert data[end - 2:end] == b"\xff\xd9"
    # Camera files end at their EOI (give or take padding); an MPO's second image follows its first.
    assert end >= len(data) - 64 or 0 <= data.find(b"\xff\xd8", end) - end < 16, path.name
    assert _phash(data[:end]) - _phash(data) == 0
    for cut in (end - 1, end // 2, 3):  # any shorter prefix: not known yet
        assert primary_end(data[:cut]) is None


def test_a_trailer_and_an_exif_thumbnail_are_stepped_over() -> None:
    img = Image.linear_gradient("L").resize((320, 240))
    thumb = io.BytesIO()
    img.resize((40, 30)).save(thumb, "JPEG")
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    buf = io.BytesIO()
    # An APP1 segment that holds a whole JPEG (SOI ... EOI) before the primary image's own markers.
    img.save(buf, "JPEG", exif=exif.tobytes() + thumb.getvalue())
    primary = buf.getvalue()
    trailer = b"\xff\xd8 motion photo video \xff\xd9" * 1000
    assert primary_end(primary + trailer) == len(primary)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\x00\x00"])
def test_not_a_jpeg_or_too_short_says_so(data: bytes) -> None:
    assert primary_end(data) is None


@pytest.mark.parametrize("filler", [b"\xff\xe0\x00\x02", b"\xff"], ids=["empty-segments", "fill-bytes"])
def test_a_walk_past_the_marker_bound_gives_up_and_decodes_what_was_read(filler: bytes) -> None:
    """The walk runs in the scan's event loop: a file of millions of markers must not hold it."""
    buf = io.BytesIO()
    Image.linear_gradient("L").save(buf, "JPEG")
    image = buf.getvalue()
    few = image[:2] + filler * 1000 + image[2:]
    assert primary_end(few) == len(few)
    hostile = image[:2] + filler * (MAX_STEPS + 1) + image[2:]
    assert primary_end(hostile) is None

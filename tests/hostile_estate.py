"""A local folder holding every kind of hostile file and name tierscan must survive at once.

Used by tests/test_hostile_estate.py, and by hand to measure a scan of it:

    python tests/hostile_estate.py DIR      # builds DIR/estate (the scan root) and DIR/outside
    /usr/bin/time -v tierscan scan DIR/estate --db DIR/h.db --format json

`build(root)` returns what the scan must do with each entry: `skipped` (the key must be in the report's
skipped list with a reason) or `scanned` (an ordinary result, however odd its name or bytes), and the outside
file whose metadata must never reach the inventory.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

_EXIF_PHOTO = Path(__file__).parent / "data" / "exif" / "exifpy__Canon_40D.jpg"
# A camera JPEG that carries GPS and a serial: the file a symlink must not smuggle into the inventory.
_GPS_PHOTO = Path(__file__).parent / "data" / "exif" / "exiftool__GoPro.jpg"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(extra: bytes = b"", width: int = 64, height: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    data = buf.getvalue()
    return data[:33] + extra + data[33:]  # after the signature and IHDR


def xmp_bomb_png(inflated: int = 4 << 20) -> bytes:
    """A small PNG whose zTXt XMP packet inflates to `inflated` bytes of one property name repeated with no
    value: the input that made a backtracking XMP parser quadratic (512 KiB took minutes)."""
    head = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"')
    unit = b" tiff:Make"
    text = zlib.compress(head + unit * ((inflated - len(head)) // len(unit)), 9)
    return _png(_chunk(b"zTXt", b"XML:com.adobe.xmp\x00\x00" + text))


def _bomb_png() -> bytes:
    """A PNG that declares 200,000 x 200,000 pixels: a decompression bomb by its header."""
    data = bytearray(_png())
    struct.pack_into(">II", data, 16, 200_000, 200_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@dataclass
class HostileEstate:
    root: Path  # the scan root
    outside: Path  # a photo with GPS outside the root, reached only through symlinks
    skipped: dict[str, str] = field(default_factory=dict)  # key -> a word its reason must contain
    scanned: list[str] = field(default_factory=list)  # keys that must be fingerprinted or skipped, never lost


def build(base: Path) -> HostileEstate:
    root, outside = base / "estate", base / "outside"
    bucket = root / "bucket"
    bucket.mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret-photo.jpg"
    secret.write_bytes(_GPS_PHOTO.read_bytes())
    (outside / "folder").mkdir()
    (outside / "folder" / "inner.jpg").write_bytes(_GPS_PHOTO.read_bytes())
    est = HostileEstate(root, secret)

    def put(name: str, data: bytes) -> None:
        (bucket / name).parent.mkdir(parents=True, exist_ok=True)  # a "/" in a key is a folder
        (bucket / name).write_bytes(data)
        est.scanned.append(name)

    photo = _EXIF_PHOTO.read_bytes()
    put("plain.jpg", photo)
    put("copy-of-plain.jpg", photo)
    put("xmp-bomb.png", xmp_bomb_png())
    put("pixel-bomb.png", _bomb_png())
    put("truncated.jpg", photo[: len(photo) // 3])
    put("not-an-image.jpg", b"%PDF-1.4\n" + os.urandom(2048))
    put("empty.jpg", b"")
    # Names that attack terminals and spreadsheets.
    put("[/x] closes markup.jpg", _png())
    put("[link=https:example.invalid]Click here[/link].png", _png(width=65))
    put("esc \x1b]8;;https:example.invalid\x07link\x1b]8;;\x07 \x1b[31mred\x1b[0m.png", _png(width=66))
    put("bidi \u202egnp.exe.png", _png(width=67))
    for i, lead in enumerate(("=", "+", "-", "@")):
        put(f"{lead}HYPERLINK(\"https:example.invalid\",\"x\")-{i}.png", _png(width=70 + i))
    # Entries that are not regular files inside the root.
    os.mkfifo(bucket / "fifo.jpg")
    est.skipped["fifo.jpg"] = "fifo"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(bucket / "socket.png"))
    sock.close()
    est.skipped["socket.png"] = "socket"
    os.symlink("loop-b.jpg", bucket / "loop-a.jpg")
    os.symlink("loop-a.jpg", bucket / "loop-b.jpg")
    est.skipped["loop-a.jpg"] = "loop"
    est.skipped["loop-b.jpg"] = "loop"
    os.symlink("does-not-exist.jpg", bucket / "broken.jpg")
    est.skipped["broken.jpg"] = "broken"
    os.symlink(secret, bucket / "outside.jpg")
    est.skipped["outside.jpg"] = "outside"
    os.symlink(outside / "folder", bucket / "outside-folder")
    est.skipped["outside-folder"] = "outside"
    return est


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/hostile_estate.py DIR")
    made = build(Path(sys.argv[1]))
    print(f"scan root: {made.root}")

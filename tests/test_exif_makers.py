"""Maker notes and RAW containers: agreement with exiftool on its own test files (tests/data/exif-makers),
and each parser on small synthetic structures built here, so that layouts no sample holds are covered."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path

import pytest
from exif_agreement import assert_agrees, files_in, manifest, read_all
from hypothesis import HealthCheck, given, settings, strategies as st
from test_plan import ranged

from tierscan.scanner.fingerprint.exif import ExifInfo, ImageMeta, detect_format, read_metadata
from tierscan.scanner.fingerprint.exif.containers import locate_blocks
from tierscan.scanner.fingerprint.exif.reader import read_prefix

DATA = Path(__file__).parent / "data" / "exif-makers"
ROWS = manifest(DATA)


# ---------------------------------------------------------------------------------------------------
# Agreement with exiftool 12.57 on every file of the folder
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results() -> dict[str, ImageMeta]:
    return read_all(DATA, ROWS)


def test_manifest_lists_every_file_unchanged() -> None:
    assert files_in(DATA) == {row["file"] for row in ROWS}
    assert len(ROWS) == 52
    for row in ROWS:
        assert hashlib.sha256((DATA / row["file"]).read_bytes()).hexdigest() == row["sha256"]


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_agrees_with_exiftool(row: dict[str, str], results: dict[str, ImageMeta]) -> None:
    exif = results[row["file"]].exif
    assert_agrees(exif, row)


def test_serial_tags_are_named_like_exiftool(results: dict[str, ImageMeta]) -> None:
    for row in ROWS:
        want = {tuple(item.split(":", 1)[1].split("=", 1)) for item in row["serial_tags"].split("|") if item}
        got = set(results[row["file"]].exif.serials)
        assert got <= want, row["file"]  # exiftool may name one value under two tags; every name is its own


@pytest.mark.parametrize(("name", "fmt", "head"), [
    ("exiftool__CanonRaw.crw", "CRW", "CRW"), ("exiftool__Minolta.mrw", "MRW", "MRW"),
    ("exiftool__Sigma.x3f", "X3F", "X3F"), ("exiftool__SigmaDP2.x3f", "X3F", "X3F"),
    ("exiftool__Panasonic.rw2", "RW2", "RW2"),
    ("exiftool__PhaseOne.iiq", "IIQ", "TIFF"),  # a TIFF header: its Phase One maker note makes it an IIQ
])
def test_raw_formats_are_recognised(name: str, fmt: str, head: str, results: dict[str, ImageMeta]) -> None:
    assert results[name].format == fmt
    assert detect_format((DATA / name).read_bytes()[:64]) == head


@pytest.mark.parametrize("name", ["exiftool__Minolta.mrw", "exiftool__CanonRaw.crw", "exiftool__CanonRaw.cr3"])
def test_raw_image_size_like_exiftool(name: str, results: dict[str, ImageMeta]) -> None:
    row = next(r for r in ROWS if r["file"] == name)
    meta = results[name]
    assert (meta.width, meta.height) == (int(row["width"]), int(row["height"]))


def test_owner_of_a_crw_comes_from_its_heap(results: dict[str, ImageMeta]) -> None:
    row = next(r for r in ROWS if r["file"] == "exiftool__CanonRaw.crw")
    assert results["exiftool__CanonRaw.crw"].exif.owner == row["owner_or_artist"] == "Phil Harvey"


# ---------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------

ASCII, SHORT, LONG, UNDEFINED = 2, 3, 4, 7


def ascii_(text: str) -> tuple[int, int, bytes]:
    raw = text.encode() + b"\0"
    return ASCII, len(raw), raw


def undefined(raw: bytes) -> tuple[int, int, bytes]:
    return UNDEFINED, len(raw), raw


def long_(value: int) -> tuple[int, int, bytes]:
    return LONG, 1, struct.pack("<I", value)


def ifd(at: int, entries: dict[int, tuple[int, int, bytes]], bo: str = "<") -> bytes:
    """An IFD placed at offset ``at`` (in the TIFF's offset space), out-of-line values right after it."""
    table, extra = b"", b""
    data_at = at + 2 + 12 * len(entries) + 4
    for tag, (typ, count, payload) in sorted(entries.items()):
        if len(payload) <= 4:
            table += struct.pack(bo + "HHI", tag, typ, count) + payload.ljust(4, b"\0")
        else:
            table += struct.pack(bo + "HHII", tag, typ, count, data_at + len(extra))
            extra += payload + b"\0" * (len(payload) & 1)
    return struct.pack(bo + "H", len(entries)) + table + b"\0\0\0\0" + extra


def tiff(parts: dict[int, bytes]) -> bytes:
    """A little-endian TIFF: header (IFD0 at 8) and ``parts`` placed at their offsets."""
    buf = bytearray(b"II*\x00\x08\x00\x00\x00")
    for offset, part in sorted(parts.items()):
        assert offset >= len(buf), "parts overlap"
        buf += b"\0" * (offset - len(buf)) + part
    return bytes(buf)


def note_file(make: str, note_at: int, note: bytes, model: str = "X") -> ExifInfo:
    """A TIFF whose ExifIFD (at 100) has ``note`` (stored at ``note_at``) as its MakerNote."""
    exif = ifd(100, {0x927C: (UNDEFINED, len(note), struct.pack("<I", note_at))})
    ifd0 = ifd(8, {0x010F: ascii_(make), 0x0110: ascii_(model), 0x8769: long_(100)})
    return read_metadata(tiff({8: ifd0, 100: exif, note_at: note})).exif


SOF_SOS_EOI = bytes.fromhex("ffc0000b08000a001401011100") + bytes.fromhex("ffda0008010100003f00") + b"\0\xff\xd9"


def jpeg(*segments: tuple[int, bytes]) -> bytes:
    body = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return b"\xff\xd8" + body + SOF_SOS_EOI


EXIF_TIME = tiff({8: ifd(8, {0x8769: long_(30)}), 30: ifd(30, {0x9003: ascii_("2020:01:02 03:04:05")})})


# ---------------------------------------------------------------------------------------------------
# Maker notes
# ---------------------------------------------------------------------------------------------------

def test_pentax_camera_info_record_holds_the_internal_serial() -> None:
    for bo, mark in (("<", b"II"), (">", b"MM")):
        record = struct.pack(bo + "5I", 0x12DB8, 20070913, 2, 1, 987654)
        entries = ifd(306, {0x0215: (LONG, 5, record)}, bo)
        if bo == ">":  # big-endian note inside a little-endian file: the value offset is big-endian too
            entries = struct.pack(">H", 1) + struct.pack(">HHII", 0x0215, LONG, 5, 324) + b"\0" * 4 + record
        info = note_file("PENTAX Corporation", 300, b"AOC\0" + mark + entries)
        assert info.serials == [("InternalSerialNumber", "987654")], bo
    short = ifd(306, {0x0215: (LONG, 3, struct.pack("<3I", 1, 2, 3))})  # too short for index 4
    assert note_file("PENTAX", 300, b"AOC\0II" + short).serials == []


def test_leica_and_canon_lens_layouts() -> None:
    # Leica X: "LEICA\0\x01\0", IFD at 8, offsets from the note start
    leica = b"LEICA\0\x01\0" + ifd(8, {0x0305: long_(4521312), 0x0500: undefined(b"L02130100001")})
    assert note_file("LEICA CAMERA AG", 300, leica).serials == [
        ("SerialNumber", "4521312"), ("InternalSerialNumber", "L02130100001")]
    # D-Lux: "LEICA CAMERA AG\0" then a Panasonic IFD at 18, offsets from the TIFF header
    dlux = b"LEICA CAMERA AG\0\0\0" + ifd(318, {0x0025: undefined(b"WD0123456789\0\0\0\0")})
    assert note_file("LEICA CAMERA AG", 300, dlux).serials == [("InternalSerialNumber", "WD0123456789")]
    # Canon LensInfo (0x4019): five bytes shown as hex, unless the body left them zero
    lens = ifd(300, {0x4019: undefined(bytes.fromhex("0a1b2c3d4e") + b"\0" * 25)})
    assert note_file("Canon", 300, lens).serials == [("LensSerialNumber", "0a1b2c3d4e")]
    unset = ifd(300, {0x4019: undefined(b"\0" * 30)})
    assert note_file("Canon", 300, unset).serials == []


@pytest.mark.parametrize(("kind", "at"), [(4, 0x5C), (6, 0x58)])
def test_hp_binary_note_serial(kind: int, at: int) -> None:
    note = bytearray(b"IIII" + bytes([kind, 0]) + b"\0" * 0x80)
    note[at : at + 24] = b"SERIAL NUMBER:CN12345678"
    assert note_file("Hewlett-Packard", 300, bytes(note)).serials == [("SerialNumber", "CN12345678")]
    note[at : at + 24] = b"NOT A SERIAL:CN123456789"
    assert note_file("Hewlett-Packard", 300, bytes(note)).serials == []


def test_reconyx_ultrafire_and_hyperfire2_records() -> None:
    uf = bytearray(b"RECONYXUF\0".ljust(0x80, b"\0"))
    uf[0x3B:0x42] = bytes([26, 39, 17, 10, 11, 2003 % 256, 2003 // 256])
    uf[0x4B : 0x4B + 15] = b"UF123456789ABCD"
    h2 = bytearray(b"RECONYXH2\0".ljust(0xB0, b"\0"))
    struct.pack_into("<6H", h2, 0x3E, 26, 39, 17, 10, 11, 2003)
    h2[0x7E : 0x7E + 30] = "H2-0001234".ljust(15, "\0").encode("utf-16-le")
    for note, serial in ((uf, "UF123456789ABCD"), (h2, "H2-0001234")):
        info = note_file("RECONYX", 300, bytes(note))
        assert (info.serials, info.datetime_original) == ([("SerialNumber", serial)], "2003:11:10 17:39:26")
    struct.pack_into("<6H", h2, 0x3E, 26, 39, 17, 10, 13, 2003)  # month 13: not a time
    assert note_file("RECONYX", 300, bytes(h2[:0x90])).datetime_original is None  # and the serial cut off


def test_canon_0x0096_is_a_serial_info_record_on_the_5d_series() -> None:
    record = bytes(range(1, 10)) + b"0123456789\0\0\0\0\0\0"
    note = ifd(300, {0x0096: undefined(record)})
    assert note_file("Canon", 300, note, "Canon EOS 5D Mark III").serials == [
        ("InternalSerialNumber", "0123456789")]
    text = ifd(300, {0x0096: ascii_("HA0123456")})
    assert note_file("Canon", 300, text, "Canon EOS 7D").serials == [("InternalSerialNumber", "HA0123456")]


def _sony_enciphered(plain: bytes) -> bytes:
    return bytes(pow(b, 3, 249) if 2 <= b <= 247 else b for b in plain)


@pytest.mark.parametrize(("model", "want"), [
    ("NEX-6", "124 52 86 120"), ("ILCE-7", "124 52 86 120"), ("SLT-A99V", "240 52 86 120 154"),
    ("ILCE-7M3", "136 52 138 52 86 120"), ("ILCA-99M2", "136 52 138 52 86 120"),
    ("ILCE-7M4", "136 52 138 52 86 120"), ("ILCE-1", "138 52 86 120 154 188"), ("DSC-RX100", None),
    ("NEX-7", None),
])
def test_sony_9050_internal_serial_by_model(model: str, want: str | None) -> None:
    """Each offset holds its own number, so the value says which one the model's layout read."""
    record = bytearray(0x100)
    for offset in (0x7C, 0xF0, 0x88, 0x8A):
        record[offset : offset + 6] = _sony_enciphered(bytes([offset, 0x34, 0x56, 0x78, 0x9A, 0xBC]))
    note = b"SONY DSC \0\0\0" + ifd(312, {0x9050: undefined(bytes(record))})
    serials = note_file("SONY", 300, note, model).serials
    assert serials == ([("InternalSerialNumber", want)] if want else [])


def test_ricoh_serial_is_text_when_printable_else_hex() -> None:
    printable = ifd(308, {0x0005: undefined(b"WD-00100056".ljust(16, b" "))}, ">")  # big-endian note
    assert note_file("RICOH", 300, b"Ricoh\0\0\0" + printable).serials == [("SerialNumber", "WD-00100056")]
    binary = bytes.fromhex("00000000000000012207000003100957")
    info = note_file("RICOH", 300, b"Ricoh\0\0\0" + ifd(308, {5: undefined(binary)}, ">"))
    assert info.serials == [("InternalSerialNumber", binary.hex())]


def test_ricoh_camera_info_subdir_serials() -> None:
    serial_info = b"RS1 :V01020200".ljust(16, b"\0") + b"SID:00100056".ljust(16, b"\0") + b"\0" * 16 \
        + b"LID:0012345".ljust(16, b"\0")
    sub_at = 400
    sub = b"[Ricoh Camera Info]\0" + ifd(sub_at + 20, {0x002C: undefined(serial_info)}, ">")
    note = b"Ricoh\0\0\0" + ifd(308, {0x2001: (LONG, 1, struct.pack(">I", sub_at))}, ">")
    info = note_file("RICOH", 300, note.ljust(sub_at - 300, b"\0") + sub)
    assert info.serials == [("BodySerialNumber", "SID:00100056"), ("LensSerialNumber", "LID:0012345")]


def _phase_one(entries: list[tuple[int, int, bytes]], little: bool = True) -> bytes:
    """A Phase One note: header, directory offset at 8, then count, 4 unused bytes and 16-byte entries."""
    bo = "<" if little else ">"
    directory = 16
    data_at = directory + 8 + 16 * len(entries)
    table, extra = b"", b""
    for tag, fmt_size, value in entries:
        if len(value) <= 4:
            table += struct.pack(bo + "III", tag, fmt_size, len(value)) + value.ljust(4, b"\0")
        else:
            table += struct.pack(bo + "IIII", tag, fmt_size, len(value), data_at + len(extra))
            extra += value
    head = (b"IIII" + b"CwaR") if little else (b"MMMM" + b"RawT")
    return head + struct.pack(bo + "I", directory) + b"\0" * 4 + struct.pack(bo + "II", len(entries), 0) + table + extra


def test_phase_one_note_serial_and_time() -> None:
    stamp = int(time.mktime((2013, 6, 19, 15, 44, 21, 0, 0, 0))) - time.timezone
    for little in (True, False):
        bo = "<" if little else ">"
        note = _phase_one([(0x0100, 4, struct.pack(bo + "i", 0)), (0x0102, 1, b"LD001055\0"),
                           (0x0112, 4, struct.pack(bo + "I", stamp))], little)
        info = note_file("Leaf", 300, note)
        assert info.serials == [("SerialNumber", "LD001055")]
        assert info.datetime_original == "2013:06:19 15:44:21"
    bad = _phase_one([(0x0102, 1, b"LD001055\0")])  # one entry: exiftool wants at least two
    assert note_file("Leaf", 300, bad).serials == []
    pointing_out = _phase_one([(0x0100, 4, b"\0" * 4), (0x0102, 1, b"X" * 9)])
    pointing_out = pointing_out[:-9]  # the serial's bytes are cut off: its offset points past the note
    assert note_file("Leaf", 300, pointing_out).serials == []


# ---------------------------------------------------------------------------------------------------
# RAW containers
# ---------------------------------------------------------------------------------------------------

def ciff_heap(entries: list[tuple[int, bytes]], base_len: int = 0) -> bytes:
    """A little-endian CIFF heap: values, then the directory, then the directory's offset (last 4 bytes).

    An entry whose type bits say "heap" (0x2800/0x3000) holds a nested heap built the same way."""
    values, table = b"", b""
    for tag, value in entries:
        if tag & 0x4000:
            table += struct.pack("<H", tag) + value.ljust(8, b"\0")[:8]
        else:
            table += struct.pack("<HII", tag, len(value), len(values))
            values += value
    return values + struct.pack("<H", len(entries)) + table + struct.pack("<I", len(values))


def crw(heap: bytes) -> bytes:
    return b"II" + struct.pack("<I", 26) + b"HEAPCCDR" + b"\x02\x00\x01\x00" + b"\0" * 8 + heap


def test_ciff_heap_nested_records() -> None:
    spec = ciff_heap([(0x180B | 0x4000, struct.pack("<I", 560018150)),
                      (0x080D | 0x4000, b"USA\0")])
    camera = ciff_heap([(0x0810, b"Jane Doe\0".ljust(32, b"\0")),
                        (0x080A, b"Canon\0Canon EOS 10D\0".ljust(32, b"\0")), (0x3004, spec)])
    props = ciff_heap([(0x180E | 0x4000, struct.pack("<III", 1068485966, 0, 0)), (0x2807, camera),
                       (0x1810, struct.pack("<IIfiIII", 3072, 2048, 1.0, 0, 8, 24, 257))])
    meta = read_metadata(crw(ciff_heap([(0x2005, b"raw"), (0x300A, props)])))
    assert (meta.format, meta.width, meta.height) == ("CRW", 3072, 2048)
    assert (meta.exif.make, meta.exif.model, meta.exif.owner) == ("Canon", "Canon EOS 10D", "Jane Doe")
    assert meta.exif.datetime_original == "2003:11:10 17:39:26"
    assert meta.exif.serials == [("SerialNumber", "560018150")]


def test_ciff_serial_of_a_powershot_is_not_a_serial() -> None:
    camera = ciff_heap([(0x080A, b"Canon\0Canon PowerShot G5\0"), (0x180B | 0x4000, struct.pack("<I", 7))])
    info = read_metadata(crw(ciff_heap([(0x300A, camera)]))).exif
    assert info.model == "Canon PowerShot G5" and info.serials == []


@pytest.mark.parametrize("damage", ["loop", "offset", "count", "truncated"])
def test_ciff_hostile_heaps_end(damage: str) -> None:
    inner = ciff_heap([(0x080A, b"Canon\0Canon EOS 10D\0")])
    heap = bytearray(ciff_heap([(0x300A, inner)]))
    if damage == "loop":  # the sub-heap entry points back at the whole root heap
        struct.pack_into("<II", heap, len(inner) + 4, len(heap), 0)
    elif damage == "offset":
        struct.pack_into("<I", heap, len(heap) - 4, 1 << 30)
    elif damage == "count":
        struct.pack_into("<H", heap, len(inner), 0xFFFF)
    data = crw(bytes(heap))
    if damage == "truncated":
        data = data[:-10]
    meta = read_metadata(data)
    assert meta.format == "CRW"
    if damage in ("offset", "truncated"):
        assert meta.exif == ExifInfo()


def x3f(sections: list[tuple[bytes, bytes]], version: int = 0x00020002) -> bytes:
    """An X3F file: header (width and height at 28), the sections, the SECd directory, its offset."""
    head = b"FOVb" + struct.pack("<I", version) + b"0" * 16 + struct.pack("<IIII", 0, 40, 30, 0)
    head = head.ljust(72, b"\0")
    body, directory = b"", b""
    for name, payload in sections:
        directory += struct.pack("<II", len(head) + len(body), len(payload)) + name
        body += payload
    where = len(head) + len(body)
    return head + body + b"SECd" + struct.pack("<II", 0x00020000, len(sections)) + directory + struct.pack("<I", where)


def x3f_properties(pairs: dict[str, str]) -> bytes:
    pool, entries = "", b""
    for name, value in pairs.items():
        entries += struct.pack("<II", len(pool), len(pool) + len(name) + 1)
        pool += name + "\0" + value + "\0"
    return (b"SECp" + struct.pack("<IIIII", 0x00020000, len(pairs), 0, 0, len(pool)) + entries
            + pool.encode("utf-16-le"))


def test_x3f_properties_and_embedded_jpeg() -> None:
    props = x3f_properties({"ISO": "100", "CAMMANUF": "SIGMA", "CAMMODEL": "SIGMA SD14", "CAMSERIAL": "2034567",
                            "TIME": "1068485966"})
    meta = read_metadata(x3f([(b"IMAG", b"SECi" + b"\0" * 40), (b"PROP", props)]))
    assert (meta.format, meta.width, meta.height) == ("X3F", 40, 30)
    assert (meta.exif.make, meta.exif.model, meta.exif.datetime_original) == (
        "SIGMA", "SIGMA SD14", "2003:11:10 17:39:26")
    assert meta.exif.serials == [("SerialNumber", "2034567")]
    embedded = jpeg((0xE1, b"Exif\0\0" + EXIF_TIME))
    preview = b"SECi\0\0\x02\0\x02\0\0\0\x12\0\0\0".ljust(28, b"\0") + embedded
    meta = read_metadata(x3f([(b"IMA2", preview), (b"PROP", x3f_properties({"TIME": "1"}))]))
    assert meta.exif.datetime_original == "2020:01:02 03:04:05"  # EXIF beats the property
    assert (meta.width, meta.height) == (40, 30)  # the header's size, not the preview's


def test_x3f_hostile_directories() -> None:
    good = x3f([(b"PROP", x3f_properties({"CAMSERIAL": "1"}))])
    assert read_metadata(good[:-4] + struct.pack("<I", len(good) + 100)).error == "bad X3F directory"
    lying = bytearray(x3f_properties({"CAMSERIAL": "1"}))
    struct.pack_into("<I", lying, 8, 1 << 28)  # an absurd entry count
    assert read_metadata(x3f([(b"PROP", bytes(lying))])).exif.serials == []
    pointing_out = bytearray(x3f_properties({"CAMSERIAL": "1"}))
    struct.pack_into("<I", pointing_out, 28, 1 << 20)  # a value position past the character pool
    assert read_metadata(x3f([(b"PROP", bytes(pointing_out))])).exif.serials == []


# A RAW file is read for its metadata alone (`plan.ranged_metadata`): the head and the end of a CRW or X3F
# file, then the ranges its directories point at, never the image data between.
BIG = 8 * 1024 * 1024


def camera_heap(serial: int) -> bytes:
    camera = ciff_heap([(0x080A, b"Canon\0Canon EOS 10D\0".ljust(32, b"\0")), (0x0810, b"Jane Doe\0")])
    return ciff_heap([(0x180E | 0x4000, struct.pack("<III", 1068485966, 0, 0)), (0x2807, camera),
                      (0x180B | 0x4000, struct.pack("<I", serial))])


@pytest.mark.parametrize("layout", ["metadata last", "metadata between the image data"])
def test_a_large_crw_is_read_from_its_head_and_end_and_what_its_heaps_point_at(layout: str) -> None:
    props = (0x300A, camera_heap(560018150))
    entries = [(0x2005, bytes(BIG)), props] if layout == "metadata last" else [
        (0x2005, bytes(BIG)), props, (0x2007, bytes(BIG))]
    data = crw(ciff_heap(entries))
    found, calls = ranged(data)
    assert found.exif == read_metadata(data).exif and found.exif.owner == "Jane Doe"
    assert found.exif.serials == [("SerialNumber", "560018150")]
    assert found.bytes_read < 200_000 and len(calls) <= 4, calls


@pytest.mark.parametrize("layout", ["properties last", "properties first", "preview between the image data"])
def test_a_large_x3f_is_read_from_its_head_and_end_and_what_its_directory_points_at(layout: str) -> None:
    props = (b"PROP", x3f_properties({"CAMMANUF": "SIGMA", "CAMMODEL": "SIGMA SD14", "CAMSERIAL": "2034567"}))
    image = (b"IMAG", b"SECi" + bytes(BIG))
    preview = (b"IMA2", b"SECi\0\0\x02\0\x02\0\0\0\x12\0\0\0".ljust(28, b"\0")
               + jpeg((0xE1, b"Exif\0\0" + EXIF_TIME)) + bytes(100_000))
    sections = {"properties last": [image, preview, props], "properties first": [props, image, preview],
                "preview between the image data": [image, preview, image, props]}[layout]
    data = x3f(sections)
    found, calls = ranged(data)
    assert found.exif == read_metadata(data).exif
    assert found.exif.serials == [("SerialNumber", "2034567")]
    assert found.exif.datetime_original == "2020:01:02 03:04:05"  # from the preview's EXIF
    assert found.bytes_read < 400_000 and len(calls) <= 5, calls


def test_a_large_raw_file_with_a_hostile_directory_costs_bounded_reads() -> None:
    data = bytearray(x3f([(b"IMAG", b"SECi" + bytes(BIG)), (b"PROP", x3f_properties({"CAMSERIAL": "1"}))]))
    struct.pack_into("<I", data, len(data) - 4, 1000)  # the directory pointer lands in the image data
    found, calls = ranged(bytes(data))
    assert read_metadata(bytes(data)).error == "bad X3F directory" and found.exif.serials == []
    assert found.bytes_read < 200_000 and len(calls) <= 4, calls


def test_one_embedded_jpeg_is_walked_however_often_it_is_named() -> None:
    preview = b"SECi\0\0\x02\0\x02\0\0\0\x12\0\0\0".ljust(28, b"\0") + jpeg((0xE1, b"Exif\0\0" + EXIF_TIME))
    data = x3f([(b"IMA2", preview)] * 200)
    assert len(locate_blocks(data).exif) == 1
    embedded = jpeg((0xE1, b"Exif\0\0" + EXIF_TIME))
    entry = struct.pack("<HHII", 0x002E, UNDEFINED, len(embedded), 8 + 2 + 12 * 50 + 4)
    head = struct.pack("<H", 50) + entry * 50 + b"\0" * 4  # the JpgFromRaw tag fifty times over
    data = b"IIU\0\x08\0\0\0" + head + embedded
    assert len(locate_blocks(data).exif) == 2  # the RW2's own TIFF and its JPEG's EXIF


def test_mrw_ttw_block_is_its_tiff() -> None:
    big_endian = b"MM\0*\0\0\0\x08" + struct.pack(">H", 1) + struct.pack(">HHII", 0x010F, 2, 14, 26) \
        + b"\0" * 4 + b"Konica Minolta"
    prd = b"27200001" + struct.pack(">4H", 2456, 3272, 2448, 3264)
    blocks = b"\0PRD" + struct.pack(">I", len(prd)) + prd + b"\0TTW" + struct.pack(">I", len(big_endian)) + big_endian
    data = b"\0MRM" + struct.pack(">I", len(blocks)) + blocks
    meta = read_metadata(data)
    assert (meta.format, meta.exif.make, meta.width, meta.height) == ("MRW", "Konica Minolta", 3264, 2448)
    meta, needed = read_prefix(data[:40])
    assert meta.exif.make is None and needed and needed[0][0] == 32


def test_rw2_reads_the_maker_note_of_its_embedded_jpeg() -> None:
    note = b"Panasonic\0\0\0" + ifd(312, {0x0025: undefined(b"F350807010058\0^\0")})
    exif = tiff({8: ifd(8, {0x010F: ascii_("Panasonic"), 0x8769: long_(100)}),
                 100: ifd(100, {0x927C: (UNDEFINED, len(note), struct.pack("<I", 300))}), 300: note})
    embedded = jpeg((0xE1, b"Exif\0\0" + exif))
    head = ifd(8, {0x002E: (UNDEFINED, len(embedded), struct.pack("<I", 64))})
    data = (b"IIU\0\x08\0\0\0" + head).ljust(64, b"\0") + embedded
    meta = read_metadata(data)
    assert (meta.format, meta.exif.make) == ("RW2", "Panasonic")
    assert meta.exif.serials == [("InternalSerialNumber", "F350807010058^")]  # exiftool drops only the NULs
    _, needed = read_prefix(data[:64])
    assert (64, len(embedded)) in needed


# ---------------------------------------------------------------------------------------------------
# JPEG vendor segments
# ---------------------------------------------------------------------------------------------------

def test_app12_picture_info() -> None:
    text = (b"[picture info]\r\nTimeDate=915117440\r\nShutter=6460\r\n[camera info]\r\n"
            b"Type=SR84 Serial#=AB-123 Version=v84-71\r\n[end]\0\0")
    info = read_metadata(jpeg((0xEC, text))).exif
    assert info.serials == [("SerialNumber", "AB-123")]
    assert info.datetime_original == "1998:12:31 15:17:20"
    written = read_metadata(jpeg((0xEC, b"Type=X\nTimeDate=2001:02:03 04:05:06\nMySerial#=1\n"))).exif
    assert written.datetime_original == "2001:02:03 04:05:06" and written.serials == []
    assert read_metadata(jpeg((0xEC, b"Ducky\0\x01\0\x04\0\0\0\x54"))).exif == ExifInfo()


def test_app12_exif_time_wins() -> None:
    info = read_metadata(jpeg((0xE1, b"Exif\0\0" + EXIF_TIME), (0xEC, b"[picture info]\nTimeDate=1\n"))).exif
    assert info.datetime_original == "2020:01:02 03:04:05"


def test_infiray_app9_needs_the_ijpeg_mark() -> None:
    sensor = bytearray(0x300)
    sensor[0x0C0:0x0D0] = b"P200019B15656148"
    sensor[0x240:0x248] = b"VIS-0042"
    mark = b"\0\x02\0\x01IJPEG\0\x01\0"
    info = read_metadata(jpeg((0xE2, mark), (0xE9, bytes(sensor)))).exif
    assert info.serials == [("IRSensorSerialNumber", "P200019B15656148"), ("VisibleSensorSerialNumber", "VIS-0042")]
    assert read_metadata(jpeg((0xE9, bytes(sensor)))).exif.serials == []  # APP9 of anyone else
    assert read_metadata(jpeg((0xE2, mark), (0xE9, bytes(sensor[:0xE0])))).exif.serials == [
        ("IRSensorSerialNumber", "P200019B15656148")]  # a field is read only when it lies wholly inside


def flir_fff(camera_info: bytes, little: bool = True) -> bytes:
    bo = "<" if little else ">"
    header = b"FFF\0" + b"Test".ljust(16, b"\0") + struct.pack(bo + "III", 100, 0x40, 2)
    header = header.ljust(0x40, b"\0")
    empty = b"\0" * 0x20
    entry = struct.pack(bo + "HHII", 0x20, 0, 0, 0) + struct.pack(bo + "II", 0x80, len(camera_info))
    return (header + empty + entry.ljust(0x20, b"\0")) + camera_info


def flir_camera_info(little: bool = True) -> bytes:
    bo = "<" if little else ">"
    info = bytearray(0x400)
    struct.pack_into(bo + "H", info, 0, 2)
    info[0x104:0x10D] = b"123456789"
    info[0x1A0:0x1A5] = b"L-777"
    struct.pack_into(bo + "IIh", info, 0x384, 1068485966, 250, -120)  # UTC+2
    return bytes(info)


@pytest.mark.parametrize("little", [True, False])
def test_flir_app1_chunks_are_joined(little: bool) -> None:
    fff = flir_fff(flir_camera_info(little), little)
    half = len(fff) // 2
    chunks = [(0xE1, b"FLIR\0\x01" + bytes([n, 1]) + part) for n, part in enumerate((fff[:half], fff[half:]))]
    info = read_metadata(jpeg(*chunks)).exif
    assert info.serials == [("CameraSerialNumber", "123456789"), ("LensSerialNumber", "L-777")]
    assert info.datetime_original == "2003:11:10 19:39:26.250+02:00"
    assert read_metadata(jpeg(chunks[0])).exif.serials == []  # the CameraInfo record is cut off


@pytest.mark.parametrize("length", [0, 1, 2])
def test_flir_camera_info_too_short(length: int) -> None:
    fff = flir_fff(flir_camera_info()[:length])
    assert read_metadata(jpeg((0xE1, b"FLIR\0\x01\0\0" + fff))).exif == ExifInfo()


def test_casio_qvci_time() -> None:
    qvci = bytearray(b"QVCI\0".ljust(0x62, b"\0"))
    qvci[0x4D : 0x4D + 19] = b"1998.10.24.12.08.57"
    assert read_metadata(jpeg((0xE1, bytes(qvci)))).exif.datetime_original == "1998:10:24 12:08:57"


def iptc_app13(datasets: list[tuple[int, int, bytes]]) -> bytes:
    iptc = b"".join(b"\x1c" + bytes([r, d]) + struct.pack(">H", len(v)) + v for r, d, v in datasets)
    other = b"8BIM" + struct.pack(">H", 0x03ED) + b"\x03abc" + struct.pack(">I", 3) + b"xyz\0"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    return b"Photoshop 3.0\0" + other + resource + b"\0" * (len(iptc) & 1)


def test_iptc_date_and_time_created() -> None:
    app13 = iptc_app13([(2, 0, b"\0\x02"), (2, 55, b"20061029"), (2, 60, b"062751-0500")])
    assert read_metadata(jpeg((0xED, app13))).exif.datetime_original == "2006:10:29 06:27:51-05:00"
    assert read_metadata(jpeg((0xED, iptc_app13([(2, 55, b"20061029")])))).exif.datetime_original is None
    both = jpeg((0xE1, b"Exif\0\0" + EXIF_TIME), (0xED, app13))
    assert read_metadata(both).exif.datetime_original == "2020:01:02 03:04:05"
    lying = iptc_app13([(2, 55, b"20061029")])[:-4] + b"\x1c\x02\x3c\xff\xff"  # size past the end
    assert read_metadata(jpeg((0xED, lying))).exif.datetime_original is None


def test_xmp_exif_serials_written_by_camera_raw() -> None:
    xmp = (b'<x:xmpmeta><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:SerialNumber="ACR151-42"'
           b' exif:LensSerialNumber="L-9"/></x:xmpmeta>')
    info = read_metadata(jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp))).exif
    assert info.serials == [("SerialNumber", "ACR151-42"), ("LensSerialNumber", "L-9")]


@pytest.mark.parametrize("digits", ["\u00b2", "\u0663", "9" * 5000])
def test_numbers_in_text_that_int_refuses(digits: str) -> None:
    """Digits int() refuses (a superscript, 5,000 of them) are no number, and raise nothing."""
    xmp = (f'<x:xmpmeta xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><rdf:Description tiff:Orientation="{digits}"'
           ' tiff:Make="M"/></x:xmpmeta>').encode()
    info = read_metadata(jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp))).exif
    assert (info.make, info.orientation) == ("M", None)
    info = read_metadata(x3f([(b"PROP", x3f_properties({"TIME": digits, "CAMMODEL": "SD9"}))])).exif
    assert (info.model, info.datetime_original) == ("SD9", None)
    if digits.isascii():
        info = read_metadata(jpeg((0xEC, b"[picture info]\nTimeDate=" + digits.encode() + b"\nSerial#=7\n"))).exif
        assert (info.serials, info.datetime_original) == ([("SerialNumber", "7")], None)


# ---------------------------------------------------------------------------------------------------
# Fuzzing the new parsers: read_metadata never raises
# ---------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [(DATA / name).read_bytes() for name in (
    "exiftool__CanonRaw.crw", "exiftool__Sigma.x3f", "exiftool__SigmaDP2.x3f", "exiftool__Minolta.mrw",
    "exiftool__Panasonic.rw2", "exiftool__PhaseOne.iiq", "exiftool__ExifTool.jpg", "exiftool__InfiRay.jpg",
    "exiftool__Pentax.jpg", "exiftool__Ricoh2.jpg", "exiftool__CasioQVCI.jpg", "exiftool__PhotoMechanic.jpg",
)] + [jpeg(*[(0xE1, b"FLIR\0\x01\0\0" + flir_fff(flir_camera_info()))])]


def _check(data: bytes) -> None:
    meta = read_metadata(data)
    assert isinstance(meta, ImageMeta) and isinstance(meta.exif, ExifInfo)
    assert len(meta.exif.serials) <= 32
    read_prefix(data[: len(data) // 2])


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 60000), st.integers(0, 255)), max_size=32),
       st.integers(0, 60000))
def test_fuzz_mutated_maker_files(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for index, value in flips:
        data[index % len(data)] = value
    _check(bytes(data[: max(cut, 16)]))


@FUZZ
@given(st.sampled_from([b"II\x1a\0\0\0HEAPCCDR", b"\0MRM\0\0\x01\0", b"FOVb\x02\0\x02\0", b"IIU\0\x08\0\0\0",
                        b"\xff\xd8\xff\xec\x01\x00[picture info]", b"\xff\xd8\xff\xe1\x01\x00FLIR\0\x01\0\0FFF\0",
                        b"\xff\xd8\xff\xed\x01\x00Photoshop 3.0\x008BIM\x04\x04"]),
       st.binary(max_size=4096))
def test_fuzz_random_bytes_after_a_new_magic(head: bytes, tail: bytes) -> None:
    _check(head + tail)


def test_every_prefix_of_a_crw_and_an_x3f_is_safe() -> None:
    for name in ("exiftool__CanonRaw.crw", "exiftool__SigmaDP2.x3f", "exiftool__Minolta.mrw"):
        data = (DATA / name).read_bytes()
        for end in range(0, len(data) + 1, 7):
            meta, needed = read_prefix(data[:end])
            assert isinstance(meta, ImageMeta)
            assert all(offset >= 0 and length >= 0 for offset, length in needed)

"""tierscan.scanner.fingerprint.exif: agreement with exiftool on real files, and the walkers on small synthetic
inputs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from exif_agreement import assert_agrees, files_in, manifest, read_all
from hypothesis import HealthCheck, given, settings, strategies as st

from tierscan.scanner.fingerprint.exif import ExifInfo, ImageMeta, read_metadata
from tierscan.scanner.fingerprint.exif.gpmf import read_gpmf
from tierscan.scanner.fingerprint.exif.model import Collector
from tierscan.scanner.fingerprint.exif.reader import read_prefix
from tierscan.scanner.fingerprint.exif.text import decode_text
from tierscan.scanner.fingerprint.exif.xmp import read_xmp, xmp_date

DATA = Path(__file__).parent / "data" / "exif"
ROWS = manifest(DATA)
# exiftool names WebP files with a VP8X chunk "Extended WEBP"; the scanner reports the container.
FORMAT_NAMES = {"Extended WEBP": "WEBP"}


# ---------------------------------------------------------------------------------------------------
# Agreement with exiftool 12.57 (MANIFEST.csv) on every real file
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results() -> dict[str, ImageMeta]:
    return read_all(DATA, ROWS)


def test_manifest_lists_every_file() -> None:
    assert files_in(DATA) == {row["file"] for row in ROWS}
    assert len(ROWS) == 74


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_agrees_with_exiftool(row: dict[str, str], results: dict[str, ImageMeta]) -> None:
    meta = results[row["file"]]
    exif = meta.exif
    assert_agrees(exif, row)
    if row["orientation"]:
        assert exif.orientation == int(row["orientation"])
    assert exif.owner == (row["owner_or_artist"] or None)
    assert exif.image_unique_id == (row["image_unique_id"] or None)
    assert meta.format == FORMAT_NAMES.get(row["file_type"], row["file_type"])
    assert (meta.width, meta.height) == (int(row["width"]), int(row["height"]))


def test_serial_tags_are_named_like_exiftool(results: dict[str, ImageMeta]) -> None:
    dng = results["exifpy__nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng"].exif
    assert set(dng.serials) >= {("SerialNumber", "3020326"), ("LensSerialNumber", "20003695"),
                                ("CameraSerialNumber", "3020326")}
    assert results["exiftool__GoPro.jpg"].exif.serials == [
        ("SerialNumber", "C3221324657219"), ("CameraSerialNumber", "C3221324657219")]
    assert results["exiftool__Olympus2.jpg"].exif.serials == [
        ("SerialNumber", "C90500055"), ("InternalSerialNumber", "0171612001128001")]


def test_malformed_files_report_why(results: dict[str, ImageMeta]) -> None:
    assert results["pillow__hopper_bad_exif.jpg"].error == "bad IFD0 directory"
    assert "0x8825" in (results["pillow__exif_gps_typeerror.jpg"].error or "")
    assert results["exifpy__DSCN0010.jpg"].error is None


# ---------------------------------------------------------------------------------------------------
# Synthetic TIFF structures
# ---------------------------------------------------------------------------------------------------

ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7


def ascii_(text: str) -> tuple[int, int, bytes]:
    raw = text.encode() + b"\0"
    return ASCII, len(raw), raw


def short(value: int) -> tuple[int, int, bytes]:
    return SHORT, 1, struct.pack("<H", value)


def long_(value: int) -> tuple[int, int, bytes]:
    return LONG, 1, struct.pack("<I", value)


def rationals(*pairs: tuple[int, int]) -> tuple[int, int, bytes]:
    return RATIONAL, len(pairs), b"".join(struct.pack("<II", n, d) for n, d in pairs)


def ifd(at: int, entries: dict[int, tuple[int, int, bytes]], next_ifd: int = 0) -> bytes:
    """A little-endian IFD placed at offset ``at``, its out-of-line values stored right after it."""
    table, extra = b"", b""
    data_at = at + 2 + 12 * len(entries) + 4
    for tag, (typ, count, payload) in sorted(entries.items()):
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, typ, count) + payload.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, typ, count, data_at + len(extra))
            extra += payload + b"\0" * (len(payload) & 1)
    return struct.pack("<H", len(entries)) + table + struct.pack("<I", next_ifd) + extra


def tiff(parts: dict[int, bytes]) -> bytes:
    """A little-endian TIFF: header (IFD0 at 8) and ``parts`` placed at their offsets."""
    buf = bytearray(b"II*\x00\x08\x00\x00\x00")
    for offset, part in sorted(parts.items()):
        assert offset >= len(buf), "parts overlap"
        buf += b"\0" * (offset - len(buf)) + part
    return bytes(buf)


SOF = bytes.fromhex("ffc0000b08000a001401011100")  # baseline frame, 20x10, one component
SOS_EOI = bytes.fromhex("ffda0008010100003f00") + b"\x00\xff\xd9"


def jpeg(*segments: tuple[int, bytes]) -> bytes:
    """A JPEG of 20x10 pixels with the given (marker, payload) segments after SOI."""
    body = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return b"\xff\xd8" + body + SOF + SOS_EOI


def exif_jpeg(tiff_bytes: bytes) -> bytes:
    return jpeg((0xE1, b"Exif\0\0" + tiff_bytes))


Value = tuple[int, int, bytes]  # (TIFF type, count, payload)


def gps_file(gps: dict[int, Value]) -> ExifInfo:
    return read_metadata(tiff({8: ifd(8, {0x8825: long_(100)}), 100: ifd(100, gps)})).exif


HK = {1: ascii_("N"), 2: rationals((22, 1), (16, 1), (3000, 100)),
      3: ascii_("E"), 4: rationals((114, 1), (10, 1), (0, 1))}


def test_gps_rationals_and_refs() -> None:
    info = gps_file(HK)
    assert info.gps_lat == pytest.approx(22 + 16 / 60 + 30 / 3600)
    assert info.gps_lon == pytest.approx(114 + 10 / 60)
    south_west = gps_file({**HK, 1: ascii_("S"), 3: ascii_("W")})
    assert (south_west.gps_lat, south_west.gps_lon) == (-info.gps_lat, -info.gps_lon)


@pytest.mark.parametrize("change", [
    {1: None},  # no latitude ref: exiftool builds no position
    {4: None},  # no longitude at all
    {2: rationals((22, 0), (16, 1), (30, 1))},  # zero denominator: undefined
    {2: rationals((91, 1), (0, 1), (0, 1))},  # out of range
    {4: rationals((181, 1), (0, 1), (0, 1))},
    {2: ascii_("22.5")},  # wrong type
    {2: (RATIONAL, 0, b"")},  # no values
    {1: ascii_("")},  # empty ref
], ids=["no-ref", "no-lon", "zero-denominator", "lat-91", "lon-181", "ascii-lat", "empty-lat",
        "empty-ref"])
def test_gps_garbage_is_rejected(change: dict[int, Value | None]) -> None:
    gps = {tag: value for tag, value in {**HK, **change}.items() if value is not None}
    info = gps_file(gps)
    assert (info.gps_lat, info.gps_lon) == (None, None)


def test_gps_pointer_of_wrong_type_is_refused() -> None:
    meta = read_metadata(tiff({8: ifd(8, {0x8825: ascii_("100")}), 100: ifd(100, HK)}))
    assert (meta.exif.gps_lat, meta.exif.gps_lon) == (None, None)
    assert "0x8825" in (meta.error or "")


def test_empty_gps_ifd_is_not_an_error() -> None:
    data = tiff({8: ifd(8, {0x8825: long_(100)}), 100: b"\0" * 6})
    meta = read_metadata(data)
    assert meta.exif.gps_lat is None and meta.error is None


def test_ifd_loops_end() -> None:
    # IFD0 chains to itself and its ExifIFD points back at IFD0; ExifIFD <-> GPS point at each other.
    ifd0 = ifd(8, {0x010F: ascii_("Loop"), 0x8769: long_(100)}, next_ifd=8)
    exif = ifd(100, {0x9003: ascii_("2020:01:02 03:04:05"), 0x8769: long_(8), 0x8825: long_(200)})
    gps = ifd(200, {0x8769: long_(100), **HK})
    meta = read_metadata(tiff({8: ifd0, 100: exif, 200: gps}))
    assert meta.exif.make == "Loop"
    assert meta.exif.datetime_original == "2020:01:02 03:04:05"
    assert "loops" in (meta.error or "")


def test_long_ifd_chain_is_bounded() -> None:
    # 200 IFDs chained one after another: only the first few are followed.
    parts = {8 + 18 * i: ifd(8 + 18 * i, {0x0112: short(1)}, next_ifd=8 + 18 * (i + 1)) for i in range(200)}
    meta = read_metadata(tiff(parts))
    assert meta.exif.orientation == 1


def test_offsets_outside_the_data() -> None:
    entries = {0x010F: (ASCII, 40, struct.pack("<I", 10_000)), 0x0110: ascii_("Model-X")}
    data = tiff({8: ifd(8, entries)})
    meta, needed = read_prefix(data)
    assert meta.exif.make is None and meta.exif.model == "Model-X"
    assert "Make" in (meta.error or "")
    assert (10_000, 40) in needed  # a plain TIFF: offsets are file offsets
    assert read_metadata(tiff({8: ifd(8, {0x8769: long_(1 << 30)})})).error == "bad exif directory"
    assert read_metadata(b"II*\x00\xff\xff\xff\x7f").error == "bad IFD0 directory"


def test_absurd_counts() -> None:
    huge = {0x010F: (ASCII, 0xFFFFFFFF, struct.pack("<I", 20)),
            0x0112: (SHORT, 0xFFFFFFFF, b"\0\0\0\0")}
    meta = read_metadata(tiff({8: ifd(8, huge)}))
    assert meta.exif.make is None
    many_entries = b"II*\x00\x08\x00\x00\x00" + b"\xff\xff" + b"\0" * 64
    assert read_metadata(many_entries).error == "bad IFD0 directory"


def test_ifd_cut_off_by_the_segment_end_is_not_trusted() -> None:
    # the entry table runs past the APP1 segment: exiftool rejects the whole IFD ("Bad IFD0 directory")
    table = ifd(8, {0x010F: ascii_("Cut"), 0x0112: short(6)})
    data = exif_jpeg(tiff({8: table})[:20])
    meta = read_metadata(data)
    assert meta.exif.make is None and meta.exif.orientation is None
    assert meta.error == "bad IFD0 directory"


def test_text_values_are_decoded_safely() -> None:
    assert decode_text(b"Canon\0garbage") == "Canon"
    assert decode_text(b"  NO= 20025585 \0") == "NO= 20025585"
    assert decode_text("Müller".encode()) == "Müller"
    assert decode_text("Müller".encode("latin-1")) == "Müller"
    assert decode_text(b"\0\0S010604030293\0", padded=True) == "S010604030293"
    assert decode_text(b"\xff\xfe\x00") == "ÿþ"
    meta = read_metadata(tiff({8: ifd(8, {0x013B: ascii_("Zoë Ñandú 張三")})}))
    assert meta.exif.owner == "Zoë Ñandú 張三"


def test_zero_length_string_is_absent() -> None:
    meta = read_metadata(tiff({8: ifd(8, {0x010F: (ASCII, 0, b""), 0x0110: ascii_("M")})}))
    assert meta.exif.make is None and meta.exif.model == "M"


def test_exif_beats_xmp_and_create_date_is_the_last_resort() -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
           b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" tiff:Make="FromXMP" tiff:Model="XModel"'
           b' xmp:CreateDate="2001-02-03T04:05:06+08:00"/></x:xmpmeta>')
    exif = tiff({8: ifd(8, {0x010F: ascii_("FromEXIF"), 0x8769: long_(100)}),
                 100: ifd(100, {0x9004: ascii_("1999:01:01 00:00:00")})})
    data = jpeg((0xE1, b"Exif\0\0" + exif), (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp))
    info = read_metadata(data).exif
    assert (info.make, info.model) == ("FromEXIF", "XModel")
    assert info.datetime_original == "1999:01:01 00:00:00"  # EXIF CreateDate beats XMP CreateDate


# ---------------------------------------------------------------------------------------------------
# Maker notes
# ---------------------------------------------------------------------------------------------------

def test_canon_maker_note_moved_by_an_editor_is_rebased_from_its_footer() -> None:
    note_at = 200  # where the note is now; it was written at 150, and its offsets say so
    owner = b"Jane Doe".ljust(32, b"\0")
    note_table = (struct.pack("<H", 2)
                  + struct.pack("<HHII", 0x0009, ASCII, 32, 150 + 2 + 24 + 4)
                  + struct.pack("<HHII", 0x000C, LONG, 1, 560018150)
                  + struct.pack("<I", 0))
    note = note_table + owner + b"II*\x00" + struct.pack("<I", 150)
    exif = ifd(100, {0x927C: (UNDEFINED, len(note), struct.pack("<I", note_at))})
    data = tiff({8: ifd(8, {0x010F: ascii_("Canon"), 0x8769: long_(100)}), 100: exif, note_at: note})
    info = read_metadata(data).exif
    assert info.owner == "Jane Doe"
    assert info.serials == [("SerialNumber", "560018150")]


def test_nikon_type3_maker_note_has_its_own_tiff_header() -> None:
    inner = tiff({8: ifd(8, {0x001D: ascii_("3020326")})})
    note = b"Nikon\x00\x02\x11\x00\x00" + inner
    exif = ifd(100, {0x927C: (UNDEFINED, len(note), note)})
    data = tiff({8: ifd(8, {0x010F: ascii_("NIKON CORPORATION"), 0x8769: long_(100)}), 100: exif})
    assert read_metadata(data).exif.serials == [("SerialNumber", "3020326")]


def test_unknown_or_garbage_maker_notes_are_ignored() -> None:
    notes = (b"\x00" * 64, b"\xff" * 64, b"OLYMPUS\x00II\x03\x00" + b"\xff" * 40,
             b"Nikon\x00\x02" + b"\0" * 4)
    for note in notes:
        exif = ifd(100, {0x927C: (UNDEFINED, len(note), note)})
        data = tiff({8: ifd(8, {0x010F: ascii_("Canon"), 0x8769: long_(100)}), 100: exif})
        assert read_metadata(data).exif.serials == []


def note_file(make: str, note_at: int, note: bytes) -> ExifInfo:
    """A TIFF whose ExifIFD (at 100) has ``note`` as its MakerNote, stored at ``note_at``."""
    exif = ifd(100, {0x927C: (UNDEFINED, len(note), struct.pack("<I", note_at))})
    return read_metadata(tiff({8: ifd(8, {0x010F: ascii_(make), 0x8769: long_(100)}), 100: exif,
                               note_at: note})).exif


def test_vendor_maker_note_layouts() -> None:
    # Fujifilm: little-endian, IFD offset stored at 8, offsets count from the note
    fuji = b"FUJIFILM" + struct.pack("<I", 12) + ifd(12, {0x0010: ascii_("FF02B1234567")})
    assert note_file("FUJIFILM", 300, fuji).serials == [("InternalSerialNumber", "FF02B1234567")]
    # Sony: IFD after a 12-byte header, offsets count from the TIFF header; digit pairs stored reversed
    sony = b"SONY DSC \0\0\0" + ifd(312, {0x2031: ascii_("04030201")})
    assert note_file("SONY", 300, sony).serials == [("SerialNumber", "1020304")]
    # Pentax "AOC": byte-order mark at 4, IFD at 6
    pentax = b"AOC\0II" + ifd(306, {0x0229: ascii_("4521312")})
    assert note_file("PENTAX", 300, pentax).serials == [("SerialNumber", "4521312")]
    # Samsung: no header, recognised by MakerNoteVersion "0100"; serial placeholders are ignored
    samsung = ifd(300, {0x0001: (UNDEFINED, 4, b"0100"), 0xA002: ascii_("R2AJ123456K")})
    assert note_file("SAMSUNG", 300, samsung).serials == [("SerialNumber", "R2AJ123456K")]
    placeholder = ifd(300, {0x0001: (UNDEFINED, 4, b"0100"), 0xA002: ascii_("0")})
    assert note_file("SAMSUNG", 300, placeholder).serials == []


def test_gopro_gpmf_nested_records() -> None:
    casn = b"CASN" + b"c\x0e\x00\x01" + b"C3221324657219" + b"\0\0"
    devc = b"DEVC" + b"\x00\x01" + struct.pack(">H", len(casn)) + casn
    sink = Collector()
    read_gpmf(devc, sink)
    assert sink.serials == [("CameraSerialNumber", "C3221324657219")]
    read_gpmf(b"DEVC\x00\x01\xff\xff" + casn, sink)  # claims more than it holds
    assert sink.errors


# ---------------------------------------------------------------------------------------------------
# XMP
# ---------------------------------------------------------------------------------------------------

def test_xmp_attributes_elements_and_custom_prefixes() -> None:
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
              b'xmlns:a="http://ns.adobe.com/exif/1.0/aux/" xmlns:ex="http://ns.adobe.com/exif/1.0/" '
              b'xmlns:t="http://ns.adobe.com/tiff/1.0/" a:SerialNumber="022070029137" '
              b'ex:GPSLatitude="22,16.5N" ex:GPSLongitude="114,10.0E">'
              b"<t:Make>Smith &amp; Sons</t:Make><ex:DateTimeOriginal>2010-04-13T09:37:22+02:00"
              b"</ex:DateTimeOriginal><a:LensSerialNumber>000091aa5e</a:LensSerialNumber>"
              b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    sink = Collector()
    read_xmp(packet, sink)
    info = sink.build()
    assert info.make == "Smith & Sons"
    assert info.datetime_original == "2010:04:13 09:37:22+02:00"
    assert sink.serials == [("SerialNumber", "022070029137"), ("LensSerialNumber", "000091aa5e")]
    assert info.gps_lat == pytest.approx(22.275) and info.gps_lon == pytest.approx(114 + 1 / 6)


def test_xmp_without_known_namespaces_yields_nothing() -> None:
    sink = Collector()
    read_xmp(b'<x tiff:Make="NoNamespace"/>' + b"\xff" * 100, sink)
    assert sink.build() == ExifInfo()


@pytest.mark.parametrize(("iso", "exif"), [
    ("2010-04-13T09:37:22+02:00", "2010:04:13 09:37:22+02:00"),
    ("2011-09-23T12:43:03Z", "2011:09:23 12:43:03Z"),
    ("2011-09-23T12:43", "2011:09:23 12:43"),
    ("2005-09-07", "2005:09:07"),
    ("yesterday", "yesterday"),
])
def test_xmp_dates_like_exiftool(iso: str, exif: str) -> None:
    assert xmp_date(iso) == exif


# ---------------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------------

def png(*chunks: tuple[bytes, bytes]) -> bytes:
    def chunk(ctype: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
    ihdr = struct.pack(">IIBBBBB", 20, 10, 8, 2, 0, 0, 0)
    body = b"".join(chunk(ctype, payload) for ctype, payload in chunks)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + body + chunk(b"IEND", b"")


SMALL_EXIF = tiff({8: ifd(8, {0x010F: ascii_("Pentax"), 0x0112: short(8)})})


def test_png_exif_after_idat_and_in_text_profiles() -> None:
    after_idat = png((b"IDAT", b"\0" * 32), (b"eXIf", SMALL_EXIF))
    meta = read_metadata(after_idat)
    assert (meta.format, meta.width, meta.height, meta.exif.make, meta.exif.orientation) == (
        "PNG", 20, 10, "Pentax", 8)
    hexed = (b"Exif\0\0" + SMALL_EXIF).hex().encode()
    profile = b"\nexif\n    %d\n%s\n" % (len(SMALL_EXIF) + 6, hexed)
    ztxt = png((b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(profile)), (b"IDAT", b""))
    assert read_metadata(ztxt).exif.make == "Pentax"
    xmp = b'<x xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Model="K100D"/>'
    itxt = png((b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp)))
    assert read_metadata(itxt).exif.model == "K100D"


def test_png_prefix_reports_the_next_chunk_it_needs() -> None:
    data = png((b"IDAT", b"\0" * 1000), (b"eXIf", SMALL_EXIF))
    idat_end = data.index(b"eXIf") - 4
    meta, needed = read_prefix(data[:idat_end])
    assert meta.exif.make is None and needed == [(idat_end, 8)]
    meta, needed = read_prefix(data)
    assert meta.exif.make == "Pentax" and needed == []


def test_png_compressed_text_is_bounded() -> None:
    bomb = zlib.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    meta = read_metadata(png((b"zTXt", b"Raw profile type exif\0\0" + bomb)))
    assert meta.format == "PNG" and meta.exif == ExifInfo()


def test_webp_exif_chunk_with_and_without_jpeg_prefix() -> None:
    for payload in (SMALL_EXIF, b"Exif\0\0" + SMALL_EXIF):
        canvas = (19).to_bytes(3, "little") + (9).to_bytes(3, "little")  # width-1, height-1
        vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x08\0\0\0" + canvas
        exif = b"EXIF" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
        body = b"WEBP" + vp8x + exif
        meta = read_metadata(b"RIFF" + struct.pack("<I", len(body)) + body)
        assert (meta.format, meta.width, meta.height, meta.exif.make) == ("WEBP", 20, 10, "Pentax")


def test_jpeg_multi_segment_exif_is_joined() -> None:
    whole = tiff({8: ifd(8, {0x010F: ascii_("A" * 60), 0x0110: ascii_("SplitModel")})})
    first, second = whole[:40], whole[40:]
    meta = read_metadata(jpeg((0xE1, b"Exif\0\0" + first), (0xE1, b"Exif\0\0" + second)))
    assert meta.exif.model == "SplitModel" and meta.exif.make == "A" * 60


def test_jpeg_mpo_and_size() -> None:
    mpf = b"MPF\0" + b"MM\x00*\x00\x00\x00\x08" + b"\0" * 6
    meta = read_metadata(jpeg((0xE1, b"Exif\0\0" + SMALL_EXIF), (0xE2, mpf)))
    assert (meta.format, meta.width, meta.height) == ("MPO", 20, 10)
    bad_mpf = b"MPF\0" + b" M\x00*\x00\x00\x00\x08"  # not a TIFF header: exiftool says JPEG
    assert read_metadata(jpeg((0xE2, bad_mpf))).format == "JPEG"


def test_jpeg_truncated_in_a_segment_reports_the_range() -> None:
    data = exif_jpeg(SMALL_EXIF)
    meta, needed = read_prefix(data[:20])
    assert meta.format == "JPEG" and meta.error == "truncated"
    assert needed == [(2, len(SMALL_EXIF) + 10)]
    assert read_prefix(data)[1] == []


def test_heic_prefix_asks_for_the_metadata_items() -> None:
    data = (DATA / "exifpy__iphone_13_pro_max.heic").read_bytes()
    meta, needed = read_prefix(data[:8192])
    assert meta.format == "HEIC" and meta.exif.make is None and needed
    upto = max(offset + length for offset, length in needed)
    assert upto < len(data) // 50  # the metadata sits near the start of mdat
    meta, needed = read_prefix(data[:upto])
    assert (meta.exif.make, needed) == ("Apple", [])


def box(btype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + btype + body


def full_box(btype: bytes, version: int, body: bytes, flags: int = 0) -> bytes:
    return box(btype, bytes([version]) + flags.to_bytes(3, "big") + body)


def test_heif_exif_item_stored_in_idat() -> None:
    exif_item = struct.pack(">I", 6) + b"Exif\0\0" + SMALL_EXIF
    infe = [full_box(b"infe", 2, struct.pack(">HH", item, 0) + kind + b"\0")
            for item, kind in ((1, b"Exif"), (2, b"hvc1"))]
    iinf = full_box(b"iinf", 0, struct.pack(">H", 2) + b"".join(infe))
    # iloc v1: 4-byte offsets and lengths, item 1 in construction method 1 (offset into idat)
    iloc = full_box(b"iloc", 1, b"\x44\x00" + struct.pack(">HHHHHII", 1, 1, 1, 0, 1, 0, len(exif_item)))
    ipco = box(b"ipco", full_box(b"ispe", 0, struct.pack(">II", 640, 480)))
    ipma = full_box(b"ipma", 0, struct.pack(">IHBB", 1, 2, 1, 0x81))
    meta = full_box(b"meta", 0, full_box(b"pitm", 0, struct.pack(">H", 2)) + iinf + iloc
                    + box(b"iprp", ipco + ipma) + box(b"idat", exif_item))
    data = box(b"ftyp", b"heic\0\0\0\0mif1heic") + meta
    meta_out = read_metadata(data)
    assert (meta_out.format, meta_out.width, meta_out.height) == ("HEIC", 640, 480)
    assert (meta_out.exif.make, meta_out.exif.orientation) == ("Pentax", 8)
    avif = read_metadata(box(b"ftyp", b"avif\0\0\0\0mif1avif") + meta)
    assert (avif.format, avif.exif.make) == ("AVIF", "Pentax")


def test_cr3_cmt_boxes() -> None:
    cmt1 = tiff({8: ifd(8, {0x010F: ascii_("Canon"), 0x0110: ascii_("Canon EOS R5")})})
    cmt2 = tiff({8: ifd(8, {0x9003: ascii_("2021:05:06 07:08:09")})})
    cmt3 = tiff({8: ifd(8, {0x000C: long_(12345678), 0x0009: ascii_("Owner Name")})})
    cmt4 = tiff({8: ifd(8, HK)})
    cmts = b"".join(box(name, body) for name, body in
                    ((b"CMT1", cmt1), (b"CMT2", cmt2), (b"CMT3", cmt3), (b"CMT4", cmt4)))
    canon_uuid = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    data = box(b"ftyp", b"crx \0\0\0\x01crx isom") + box(b"moov", box(b"uuid", canon_uuid + cmts))
    meta = read_metadata(data)
    assert meta.format == "CR3"
    assert (meta.exif.make, meta.exif.model, meta.exif.owner) == ("Canon", "Canon EOS R5", "Owner Name")
    assert meta.exif.datetime_original == "2021:05:06 07:08:09"
    assert meta.exif.serials == [("SerialNumber", "12345678")]
    assert meta.exif.gps_lat == pytest.approx(22 + 16 / 60 + 30 / 3600)


def test_raf_reads_its_embedded_jpeg() -> None:
    embedded = exif_jpeg(SMALL_EXIF)
    header = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0") + struct.pack(">II", 100, len(embedded))
    meta = read_metadata(header.ljust(100, b"\0") + embedded)
    assert (meta.format, meta.exif.make, meta.width) == ("RAF", "Pentax", None)
    assert read_metadata(header.ljust(100, b"\0")).error == "bad RAF JPEG pointer"


@pytest.mark.parametrize(("magic", "fmt"), [(b"IIRO", "ORF"), (b"IIU\x00", "RW2"), (b"II*\x00", "TIFF")])
def test_tiff_variants(magic: bytes, fmt: str) -> None:
    meta = read_metadata(magic + SMALL_EXIF[4:])
    assert (meta.format, meta.exif.make) == (fmt, "Pentax")


@pytest.mark.parametrize("data", [
    b"", b"\0", b"\0" * 4096, b"%PDF-1.7\n" + b"\0" * 100, b"PK\x03\x04" + b"\0" * 60,
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + b"\0" * 40,
    b"\xff\xd8", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*\x00\x00\x00", b"RIFF\0\0\0\0WEBP",
    b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x0cftypheic",
], ids=repr)
def test_empty_tiny_and_non_images(data: bytes) -> None:
    meta = read_metadata(data)
    assert meta.exif == ExifInfo()
    assert meta.width is None or meta.width >= 0


@pytest.mark.parametrize("name", ["exiftool__Canon.jpg", "pillow__exif_gps.jpg", "exiftool__GoPro.jpg"])
def test_every_prefix_of_a_small_file_is_safe(name: str) -> None:
    data = (DATA / name).read_bytes()
    for end in range(len(data) + 1):
        meta, needed = read_prefix(data[:end])
        assert isinstance(meta, ImageMeta)
        assert all(offset >= 0 and length >= 0 for offset, length in needed)


# ---------------------------------------------------------------------------------------------------
# Fuzzing: read_metadata never raises, whatever the bytes
# ---------------------------------------------------------------------------------------------------

SEEDS = [(DATA / name).read_bytes()[:16384] for name in (
    "exiftool__Canon.jpg", "exiftool__NikonD70.jpg", "exiftool__Olympus2.jpg", "exiftool__GoPro.jpg",
    "exifpy__Reconyx_HC500_Hyperfire.jpg", "pillow__exif.png", "pillow__flower.webp", "exifpy__Arbitro.tiff",
    "exifpy__iphone_13_pro_max.heic",
)]
MAGIC_HEADS = [b"\xff\xd8\xff\xe1\x00\x40Exif\0\0II*\x00\x08\x00\x00\x00", b"II*\x00\x08\x00\x00\x00",
               b"MM\x00*\x00\x00\x00\x08", b"\x89PNG\r\n\x1a\n", b"RIFF\xff\xff\x00\x00WEBP",
               b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", b"FUJIFILMCCD-RAW "]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    meta = read_metadata(data)
    assert isinstance(meta, ImageMeta) and isinstance(meta.exif, ExifInfo)
    lat, lon = meta.exif.gps_lat, meta.exif.gps_lon
    assert (lat is None) == (lon is None)
    assert lat is None or (-90 <= lat <= 90 and -180 <= lon <= 180)  # type: ignore[operator]


@FUZZ
@given(st.sampled_from(MAGIC_HEADS), st.binary(max_size=2048))
def test_fuzz_random_bytes_after_a_magic(head: bytes, tail: bytes) -> None:
    _check(head + tail)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 16383), st.integers(0, 255)), max_size=24),
       st.integers(0, 16384))
def test_fuzz_mutated_real_files(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for index, value in flips:
        if index < len(data):
            data[index] = value
    _check(bytes(data[: max(cut, 64)]))

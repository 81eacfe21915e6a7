"""People named in metadata: IPTC-IIM datasets (APP13, TIFF IPTC-NAA) with their character sets, XMP by its
RDF structure (arrays, structures, attribute shorthand, face regions, people keywords, extended and wide
packets), what the caption and location text become, hostile input, and the names' way to the inventory
(whole) and the HTML report (initials only)."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import zlib
from html import unescape
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from test_exif import ascii_, box, full_box, ifd, jpeg, png, tiff
from test_report import RECORDS, rec
from test_report_review import built, page, rows_of

from tierscan.policies.domain import PersonalData
from tierscan.policies.model import Context
from tierscan.scanner.core.models import ExifRecord, InventoryRecord, Tier
from tierscan.scanner.fingerprint.exif import read_metadata
from tierscan.scanner.fingerprint.exif.model import MAX_CAPTION, MAX_NAME, MAX_PEOPLE, Collector
from tierscan.scanner.fingerprint.exif.people import read_people
from tierscan.scanner.fingerprint.record import exif_json
from tierscan.scanner.report.charts import WIDTH, Series, grouped_bar_chart
from tierscan.scanner.report.exposure import KINDS
from tierscan.scanner.report.html_review import mask_name, mask_people
from tierscan.scanner.report.inventory import CSV_COLUMNS, write_csv, write_jsonl

DATA = Path(__file__).resolve().parent / "data"

# ---------------------------------------------------------------------------------------------------
# IPTC-IIM
# ---------------------------------------------------------------------------------------------------


def dataset(record: int, number: int, value: bytes) -> bytes:
    if len(value) < 0x8000:
        return struct.pack(">BBBH", 0x1C, record, number, len(value)) + value
    return struct.pack(">BBBHI", 0x1C, record, number, 0x8004, len(value)) + value  # extended dataset


def photoshop(iptc: bytes) -> bytes:
    """An APP13 payload: the signature and one 8BIM 0x0404 resource holding ``iptc``."""
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    return b"Photoshop 3.0\0" + resource + b"\0" * (len(iptc) & 1)


def iptc_jpeg(*datasets: bytes) -> bytes:
    return jpeg((0xED, photoshop(b"".join(datasets))))


def test_iptc_names_every_by_line_contact_and_writer_and_keeps_caption_and_place() -> None:
    info = read_metadata(iptc_jpeg(
        dataset(2, 80, b"Jane Doe"), dataset(2, 80, b"John Roe"), dataset(2, 85, b"Staff Photographer"),
        dataset(2, 118, b"Picture Desk"), dataset(2, 122, b"Ann Editor"), dataset(2, 120, b"Jane at the pier"),
        dataset(2, 90, b"Hong Kong"), dataset(2, 92, b"Central Pier 7"), dataset(2, 95, b"HK Island"),
        dataset(2, 101, b"China"),
    )).exif
    assert info.people == ["Jane Doe", "John Roe", "Picture Desk", "Ann Editor"]  # By-line Title is a job, not a name
    assert info.caption == "Jane at the pier"
    assert info.place == "Central Pier 7, Hong Kong, HK Island, China"


def test_iptc_text_follows_the_coded_character_set() -> None:
    utf8 = read_metadata(iptc_jpeg(dataset(1, 90, b"\x1b%G"), dataset(2, 80, "陳大文".encode()),
                                   dataset(2, 90, "香港".encode()))).exif
    assert (utf8.people, utf8.place) == (["陳大文"], "香港")
    latin1 = read_metadata(iptc_jpeg(dataset(1, 90, b"\x1b-A"), dataset(2, 80, "José Núñez".encode("latin-1")))).exif
    assert latin1.people == ["José Núñez"]
    # Declared UTF-8 but not: bad bytes are replaced, never raised.
    broken = read_metadata(iptc_jpeg(dataset(1, 90, b"\x1b%G"), dataset(2, 80, b"Jos\xe9"))).exif
    assert broken.people == ["Jos\ufffd"]


def test_iptc_without_a_character_set_is_utf8_when_it_decodes_else_windows_latin() -> None:
    assert read_metadata(iptc_jpeg(dataset(2, 80, "李小龍".encode()))).exif.people == ["李小龍"]
    assert read_metadata(iptc_jpeg(dataset(2, 80, "Zoë “Z” Ng".encode("cp1252")))).exif.people == ["Zoë “Z” Ng"]


def test_iptc_in_a_tiff_ipTC_naa_tag() -> None:
    stream = dataset(2, 80, b"Tiff Author") + dataset(2, 120, b"A caption")
    data = tiff({8: ifd(8, {0x010F: ascii_("Nikon"), 0x83BB: (7, len(stream), stream)})})
    info = read_metadata(data).exif
    assert (info.make, info.people, info.caption) == ("Nikon", ["Tiff Author"], "A caption")


def afcp(image: bytes, entries: list[tuple[bytes, bytes]], count: int | None = None) -> bytes:
    """``image`` with a big-endian AFCP trailer holding ``entries`` (tag, value)."""
    start = len(image)
    values_at = start + 12 + 12 * len(entries)
    table, values = b"", b""
    for tag, value in entries:
        table += tag + struct.pack(">II", len(value), values_at + len(values))
        values += value
    header = b"AXS!" + b"\0\1" + struct.pack(">H", len(entries) if count is None else count) + b"\0" * 4
    return image + header + table + values + b"AXS!" + struct.pack(">I", start) + b"\0" * 4


def test_iptc_in_an_afcp_trailer_after_the_image() -> None:
    stream = dataset(2, 80, b"Trailer Name")
    assert read_metadata(afcp(jpeg(), [(b"TEXT", b"note"), (b"IPTC", stream)])).exif.people == ["Trailer Name"]
    # A count past the trailer, offsets past the file, a start that is not a header: nothing, no error.
    assert read_metadata(afcp(jpeg(), [(b"IPTC", stream)], count=65535)).exif.people == ["Trailer Name"]
    bad = bytearray(afcp(jpeg(), [(b"IPTC", stream)]))
    at = len(jpeg()) + 12 + 8  # the entry's offset: after the header, the tag and the size
    bad[at : at + 4] = b"\xff\xff\xff\xff"
    assert read_metadata(bytes(bad)).exif.people == []
    moved = afcp(jpeg(), [(b"IPTC", stream)])[:-8] + struct.pack(">I", 3) + b"\0" * 4
    assert read_metadata(moved).exif.people == []


def test_names_are_kept_once_whatever_their_case_and_spacing() -> None:
    info = read_metadata(iptc_jpeg(dataset(2, 80, b"Jane  Doe"), dataset(2, 80, b"JANE DOE"),
                                   dataset(2, 122, b" Jane Doe\0junk"))).exif
    assert info.people == ["Jane Doe"]


# ---------------------------------------------------------------------------------------------------
# XMP
# ---------------------------------------------------------------------------------------------------

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
}


def packet(body: str, prefixes: dict[str, str] | None = None) -> bytes:
    """An XMP packet: ``body`` inside one rdf:Description, every namespace declared (under ``prefixes``'
    names where given)."""
    names = {k: (prefixes or {}).get(k, k) for k in NS}
    for k, v in names.items():
        body = body.replace(f"<{k}:", f"<{v}:").replace(f"</{k}:", f"</{v}:").replace(f" {k}:", f" {v}:")
    decls = " ".join(f'xmlns:{names[k]}="{uri}"' for k, uri in NS.items() if k != "rdf")
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS["rdf"]}">'
            f'<rdf:Description rdf:about="" {decls}>{body}</rdf:Description></rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>').encode()


def people_of(data: bytes) -> Collector:
    sink = Collector()
    read_people(data, sink)
    return sink


def xmp_jpeg(data: bytes) -> bytes:
    return jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\0" + data))


CORE = """
<dc:creator><rdf:Seq><rdf:li>Chan Tai Man</rdf:li><rdf:li>陳小明</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="en-GB">A day out</rdf:li>
  <rdf:li xml:lang="x-default">Tai Man &amp; Siu Ming at the pier</rdf:li></rdf:Alt></dc:description>
<Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Wong Siu Ming</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
<Iptc4xmpExt:PersonInImageWDetails><rdf:Bag><rdf:li rdf:parseType="Resource">
  <Iptc4xmpExt:PersonName><rdf:Alt><rdf:li xml:lang="x-default">Lee Ka Yan</rdf:li></rdf:Alt></Iptc4xmpExt:PersonName>
</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImageWDetails>
<plus:ImageCreator><rdf:Seq><rdf:li plus:ImageCreatorName="Ho Wing" plus:ImageCreatorID="x1"/></rdf:Seq>
</plus:ImageCreator>
<photoshop:CaptionWriter>Ng Mei</photoshop:CaptionWriter>
<dc:contributor><rdf:Bag><rdf:li>Lam Po</rdf:li></rdf:Bag></dc:contributor>
<xmpRights:Owner><rdf:Bag><rdf:li>Yip Sum</rdf:li></rdf:Bag></xmpRights:Owner>
<plus:CopyrightOwner><rdf:Seq><rdf:li rdf:parseType="Resource">
  <plus:CopyrightOwnerName>Kwok Fu</plus:CopyrightOwnerName></rdf:li></rdf:Seq></plus:CopyrightOwner>
<photoshop:AuthorsPosition>Staff</photoshop:AuthorsPosition>
<Iptc4xmpCore:Location>Pier 7</Iptc4xmpCore:Location>
<photoshop:City>Hong Kong</photoshop:City>
"""


def test_xmp_arrays_structures_and_language_alternatives() -> None:
    info = read_metadata(xmp_jpeg(packet(CORE))).exif
    assert info.people == ["Chan Tai Man", "陳小明", "Wong Siu Ming", "Lee Ka Yan", "Ho Wing", "Ng Mei", "Lam Po",
                           "Yip Sum", "Kwok Fu"]
    assert info.caption == "Tai Man & Siu Ming at the pier"  # the x-default alternative, entities resolved
    assert info.place == "Pier 7, Hong Kong"


def test_xmp_is_read_by_namespace_not_by_prefix_and_in_attribute_form() -> None:
    odd = {"dc": "d", "photoshop": "ps1", "Iptc4xmpExt": "ext"}
    assert read_metadata(xmp_jpeg(packet(CORE, odd))).exif.people[:3] == ["Chan Tai Man", "陳小明", "Wong Siu Ming"]
    attrs = packet("").replace(b'rdf:about=""', b'rdf:about="" photoshop:CaptionWriter="Ng Mei" '
                                                b"photoshop:Country='China' photoshop:State=\"Kowloon\"")
    info = read_metadata(xmp_jpeg(attrs)).exif
    assert (info.people, info.place) == (["Ng Mei"], "Kowloon, China")
    # A prefix bound to another namespace names nothing.
    other = packet("<dc:creator><rdf:Seq><rdf:li>Nobody</rdf:li></rdf:Seq></dc:creator>").replace(
        NS["dc"].encode(), b"http://example.com/not-dc/")
    assert read_metadata(xmp_jpeg(other)).exif.people == []


def test_xmp_ranks_before_iptc_for_caption_and_place_parts_but_every_name_counts() -> None:
    data = jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet(
        "<dc:creator><rdf:Seq><rdf:li>XMP Name</rdf:li></rdf:Seq></dc:creator>"
        "<dc:description><rdf:Alt><rdf:li xml:lang='x-default'>XMP caption</rdf:li></rdf:Alt></dc:description>"
        "<photoshop:City>XMP City</photoshop:City>")),
        (0xED, photoshop(dataset(2, 80, b"IIM Name") + dataset(2, 120, b"IIM caption")
                         + dataset(2, 90, b"IIM City") + dataset(2, 92, b"IIM Sub"))))
    info = read_metadata(data).exif
    assert info.people == ["XMP Name", "IIM Name"]
    assert (info.caption, info.place) == ("XMP caption", "IIM Sub, XMP City")


def test_location_created_and_shown_fill_in_after_the_core_fields() -> None:
    body = """
<Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li Iptc4xmpExt:City="Shown City" Iptc4xmpExt:CountryName="Shown"/>
</rdf:Bag></Iptc4xmpExt:LocationShown>
<Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType="Resource">
<Iptc4xmpExt:Sublocation>Flat 3, 8 Hill Road</Iptc4xmpExt:Sublocation><Iptc4xmpExt:City>Made City</Iptc4xmpExt:City>
</rdf:li></rdf:Bag></Iptc4xmpExt:LocationCreated>"""
    assert read_metadata(xmp_jpeg(packet(body))).exif.place == "Flat 3, 8 Hill Road, Made City, Shown"


MWG = """
<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>
 <rdf:li rdf:parseType="Resource"><mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/>
  <mwg-rs:Name>Face Element</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type></rdf:li>
 <rdf:li><rdf:Description mwg-rs:Type="Pet" mwg-rs:Name="Rex the Dog"/></rdf:li>
 <rdf:li><rdf:Description mwg-rs:Name="Face Attribute" mwg-rs:Type="Face"><mwg-rs:Area stArea:x="0.1"/>
  </rdf:Description></rdf:li>
 <rdf:li rdf:parseType="Resource"><mwg-rs:Type>Focus</mwg-rs:Type><mwg-rs:Name>Focus point</mwg-rs:Name></rdf:li>
 <rdf:li rdf:parseType="Resource"><mwg-rs:Name>No Type Given</mwg-rs:Name></rdf:li>
</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>
"""
MICROSOFT = """
<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
 <rdf:li MPReg:Rectangle="0.1, 0.1, 0.2, 0.2" MPReg:PersonDisplayName="MS Attribute"/>
 <rdf:li><rdf:Description><MPReg:PersonDisplayName>MS Element</MPReg:PersonDisplayName>
  <MPReg:Rectangle>0.3, 0.3, 0.1, 0.1</MPReg:Rectangle></rdf:Description></rdf:li>
</rdf:Bag></MPRI:Regions></MP:RegionInfo>
"""


def test_mwg_face_regions_name_people_and_pets_or_focus_points_do_not() -> None:
    assert people_of(packet(MWG)).people == ["Face Element", "Face Attribute", "No Type Given"]


def test_microsoft_photo_regions_name_people() -> None:
    assert people_of(packet(MICROSOFT)).people == ["MS Attribute", "MS Element"]


def test_people_keywords_name_the_leaves_under_a_people_root() -> None:
    body = """
<lr:hierarchicalSubject><rdf:Bag><rdf:li>People</rdf:li><rdf:li>People|Family</rdf:li>
 <rdf:li>People|Family|Mary Chan</rdf:li><rdf:li>Places|Hong Kong|Central</rdf:li><rdf:li>people|Tom Lau</rdf:li>
</rdf:Bag></lr:hierarchicalSubject>
<digiKam:TagsList><rdf:Seq><rdf:li>People/Unknown</rdf:li><rdf:li>People/Ho Ka Ming</rdf:li>
 <rdf:li>Events/Wedding</rdf:li></rdf:Seq></digiKam:TagsList>
<dc:subject><rdf:Bag><rdf:li>Not a Person</rdf:li></rdf:Bag></dc:subject>"""
    assert people_of(packet(body)).people == ["Mary Chan", "Tom Lau", "Ho Ka Ming"]


def test_xmp_in_png_tiff_webp_and_a_wide_encoding() -> None:
    xmp = packet(CORE)
    itxt = png((b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp)))
    assert read_metadata(itxt).exif.people[0] == "Chan Tai Man"
    in_tiff = tiff({8: ifd(8, {0x02BC: (1, len(xmp), xmp)})})
    assert read_metadata(in_tiff).exif.people[0] == "Chan Tai Man"
    chunks = [(b"VP8X", b"\x04\0\0\0" + (19).to_bytes(3, "little") + (9).to_bytes(3, "little")), (b"XMP ", xmp)]
    body = b"WEBP" + b"".join(c + struct.pack("<I", len(d)) + d + b"\0" * (len(d) & 1) for c, d in chunks)
    assert read_metadata(b"RIFF" + struct.pack("<I", len(body)) + body).exif.people[0] == "Chan Tai Man"
    for codec in ("utf-16-be", "utf-16-le", "utf-32-be"):
        wide = xmp.decode().encode(codec)
        assert read_metadata(xmp_jpeg(wide)).exif.people[:2] == ["Chan Tai Man", "陳小明"], codec


def test_xmp_in_a_heif_mime_item() -> None:
    xmp = packet(MWG)
    infe = [full_box(b"infe", 2, struct.pack(">HH", 1, 0) + b"mime" + b"\0application/rdf+xml\0"),
            full_box(b"infe", 2, struct.pack(">HH", 2, 0) + b"hvc1\0")]
    iinf = full_box(b"iinf", 0, struct.pack(">H", 2) + b"".join(infe))
    iloc = full_box(b"iloc", 1, b"\x44\x00" + struct.pack(">HHHHHII", 1, 1, 1, 0, 1, 0, len(xmp)))
    meta = full_box(b"meta", 0, full_box(b"pitm", 0, struct.pack(">H", 2)) + iinf + iloc + box(b"idat", xmp))
    info = read_metadata(box(b"ftyp", b"heic\0\0\0\0mif1heic") + meta).exif
    assert info.people == ["Face Element", "Face Attribute", "No Type Given"]


def test_extended_xmp_chunks_are_joined_by_offset() -> None:
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    main = packet(f'<xmpNote:HasExtendedXMP xmlns:xmpNote="http://ns.adobe.com/xmp/note/">{guid.decode()}'
                  "</xmpNote:HasExtendedXMP>")
    extended = packet(MWG)
    cut = len(extended) // 2
    head, tail = extended[:cut], extended[cut:]

    def chunk(offset: int, part: bytes) -> tuple[int, bytes]:
        return 0xE1, b"http://ns.adobe.com/xmp/extension/\0" + guid + struct.pack(">II", len(extended), offset) + part

    data = jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\0" + main), chunk(cut, tail), chunk(0, head))
    assert read_metadata(data).exif.people == ["Face Element", "Face Attribute", "No Type Given"]


# ---------------------------------------------------------------------------------------------------
# The test files of both exif folders that name people
# ---------------------------------------------------------------------------------------------------

# What `exiftool -IPTC:all -XMP:all` shows of these files, as the kinds read here.
REAL = {
    "exif-makers/exiftool__IPTC.jpg": (["Phil Harvey", "I wrote it"], "A witty caption", "Kingston, Ont, Canada"),
    "exif-makers/exiftool__ExifTool.tif": (["I'm the author", "I wrote it"], "The picture caption",
                                           "Kingston, Ontario, Canada"),
    "exif-makers/exiftool__XMP.jpg": (["Phil Harvey", "I wrote it"], "UTF-16 (big-endian) encoded XMP",
                                      "Kingston, Ont, Canada"),
    "exif-makers/exiftool__MWG.jpg": (
        ["WRONG1of2-XMP-Creator", "WRONG2of2-XMP-Creator", "WRONG1of2-IPTC-Creator", "WRONG2of2-IPTC-Creator"],
        "WRONG-XMP-Description", "RIGHT-IPTC-Location, RIGHT-XMP-City, RIGHT-IPTC-State, RIGHT-IPTC-Country"),
    "exif-makers/exiftool__Nikon.nef": ([], "A caption", "Kingston, Ontario, Canada"),
    "exif-makers/exiftool__PNG.png": (["Phil Harvey"], None, None),
    "exif-makers/exiftool__ExtendedXMP.jpg": (["PhilToo"], None, None),  # pdf:Author, in the extension
    "exif/exifpy__33-type_error.jpg": (["Pilar Flores"], "El cielo sobre Berlin (Heaven above Berlin)", None),
    "exif/pillow__iptc.jpg": ([], None, "Budapest, Hungary"),
    "exif-makers/exiftool__AFCP.jpg": (["byline", "caption writer"], "ExifTool AFCP test",
                                       "city, state, country name"),  # IPTC in the AFCP trailer
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_name_who_exiftool_shows(name: str) -> None:
    info = read_metadata((DATA / name).read_bytes()).exif
    assert (info.people, info.caption, info.place) == REAL[name]


# ---------------------------------------------------------------------------------------------------
# Hostile input: bounded work, bounded results
# ---------------------------------------------------------------------------------------------------


def test_a_million_names_keep_the_first_few() -> None:
    names = "".join(f"<rdf:li>Person {i}</rdf:li>" for i in range(1_000_000))
    sink = people_of(packet(f"<dc:creator><rdf:Seq>{names}</rdf:Seq></dc:creator>"))
    assert sink.people == [f"Person {i}" for i in range(MAX_PEOPLE)]
    stream = b"".join(dataset(2, 80, b"P%d" % i) for i in range(100_000))
    iim = tiff({8: ifd(8, {0x83BB: (7, len(stream), stream)})})  # a TIFF tag: no 64 KiB segment limit
    assert read_metadata(iim).exif.people == [f"P{i}" for i in range(MAX_PEOPLE)]


def test_huge_values_are_cut_before_they_are_decoded() -> None:
    caption = "x" * 10_000_000
    xmp = packet(f"<dc:description><rdf:Alt><rdf:li>{caption}</rdf:li></rdf:Alt></dc:description>"
                 f"<dc:creator><rdf:Seq><rdf:li>{'N' * 1_000_000}</rdf:li></rdf:Seq></dc:creator>")
    in_segment = packet(f"<dc:description><rdf:Alt><rdf:li>{caption[:60_000]}</rdf:li></rdf:Alt></dc:description>")
    info = read_metadata(xmp_jpeg(in_segment)).exif  # a JPEG segment holds 64 KiB
    assert info.caption is not None and len(info.caption) == MAX_CAPTION
    sink = people_of(xmp)
    assert len(sink.build().caption or "") == MAX_CAPTION and [len(n) for n in sink.people] == [MAX_NAME]
    stream = dataset(2, 120, caption.encode())  # an extended dataset
    iim = read_metadata(tiff({8: ifd(8, {0x83BB: (7, len(stream), stream)})})).exif
    assert iim.caption is not None and len(iim.caption) == MAX_CAPTION


def test_an_unterminated_attribute_value_is_one_pass() -> None:
    decls = f'xmlns:rdf="{NS["rdf"]}" xmlns:dc="{NS["dc"]}" xmlns:photoshop="{NS["photoshop"]}"'.encode()
    for value in (b"b" * 1_000_000, b"b " * 500_000):
        data = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/' " + decls + b"><rdf:RDF>"
                b'<rdf:Description photoshop:City="' + value + b"></rdf:Description>"
                b"<rdf:Description><dc:creator><rdf:Seq><rdf:li>Kept</rdf:li></rdf:Seq></dc:creator>"
                b"</rdf:Description></rdf:RDF></x:xmpmeta>")
        assert people_of(data).people == ["Kept"]


def test_deep_nesting_and_unbalanced_tags_end() -> None:
    deep = "<dc:creator>" * 200_000 + "<rdf:li>Deep</rdf:li>" + "</dc:creator>" * 200_000
    assert people_of(packet(deep)).people == []  # below the depth followed: counted, not kept
    assert people_of(packet("</a></b><dc:creator><rdf:Seq><rdf:li>Kept</rdf:li>")).people == ["Kept"]
    assert people_of(b"<dc:creator " * 100_000).people == []


def test_entities_are_never_expanded_beyond_the_predefined_ones() -> None:
    bomb = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>')
    data = bomb.encode() + packet("<dc:creator><rdf:Seq><rdf:li>&c; &amp; &#x9673;</rdf:li></rdf:Seq></dc:creator>")
    assert people_of(data).people == ["&c; & 陳"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from([CORE, MWG, MICROSOFT]), st.integers(0, 3000))
def test_any_damage_to_a_packet_is_survived(noise: bytes, body: str, at: int) -> None:
    data = packet(body)
    damaged = data[:at] + noise + data[at + len(noise) // 2:]
    sink = people_of(damaged)
    assert len(sink.people) <= MAX_PEOPLE and all(len(n) <= MAX_NAME for n in sink.people)


# ---------------------------------------------------------------------------------------------------
# The kinds, the inventory, the policies and the HTML report
# ---------------------------------------------------------------------------------------------------


def test_the_kinds_and_the_catalog_json() -> None:
    info = read_metadata(xmp_jpeg(packet(CORE))).exif
    record = ExifRecord.model_validate_json(exif_json(info) or "")
    assert record.personal_data() == ["people", "caption", "place"]
    assert record.people[0] == "Chan Tai Man"
    blank = read_metadata(jpeg()).exif
    assert ExifRecord.model_validate_json(exif_json(blank) or "").personal_data() == []
    # A file naming nobody stores no trace of the new fields: catalog rows stay as large as they were.
    camera_only = read_metadata(tiff({8: ifd(8, {0x010F: ascii_("Nikon")})})).exif
    for stored in (exif_json(blank) or "", exif_json(camera_only) or ""):
        assert not {"people", "caption", "place"} & set(json.loads(stored))


NAMED = ["Chan Tai Man", "陳小明", "Mary O'Brien"]


def named_records() -> list[InventoryRecord]:
    exif = ExifRecord(people=NAMED, caption="Chan Tai Man at home", place="8 Hill Road, Hong Kong")
    return [rec("s3://hk-photos/named.jpg", 1000, "STANDARD", Tier.hot, "ap-east-1", "HK", 10, exif=exif,
                personal_data=exif.personal_data())]


def test_the_inventory_keeps_the_names_whole() -> None:
    records = named_records()
    out = io.StringIO()
    write_jsonl(records, out)
    line = json.loads(out.getvalue())
    assert line["exif"]["people"] == NAMED and line["personal_data"] == ["people", "caption", "place"]
    out = io.StringIO()
    write_csv(records, out)
    header, row = out.getvalue().splitlines()[:2]
    cells = dict(zip(CSV_COLUMNS, next(csv.reader([row])), strict=True))
    assert header.split(",") == CSV_COLUMNS
    assert cells["people"] == "|".join(NAMED) and cells["place"] == "8 Hill Road, Hong Kong"


def test_parquet_holds_the_names_as_a_list(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from tierscan.scanner.report.inventory_parquet import write_parquet
    path = tmp_path / "inv.parquet"
    write_parquet(named_records(), path)
    assert pq.read_table(path).column("people").to_pylist() == [NAMED]


def test_the_html_report_shows_initials_never_a_whole_name() -> None:
    records = [*RECORDS, *named_records()]
    text = unescape(page(built(records), records))
    assert "s3://hk-photos/named.jpg" in rows_of(text, "personal-data")
    for name in NAMED:
        assert name not in text
    assert "Chan Tai Man at home" not in text and "8 Hill Road" not in text
    assert mask_people(NAMED) == "C. T. M., 陳., M. O." and mask_people(NAMED) in text


@pytest.mark.parametrize("name", ["Chan Tai Man", "陳大文", "Jean-Luc Picard", "Ab", "Dr. Jane Q. Public"])
def test_a_masked_name_never_shows_whole(name: str) -> None:
    masked = mask_name(name)
    assert name not in masked and masked


def test_the_personal_data_filter_takes_the_new_kinds() -> None:
    record = named_records()[0].model_dump(mode="json")
    ctx = Context(now=named_records()[0].modified, resource="object")
    assert PersonalData(type="personal-data", kinds=["people"]).match(record, ctx)
    assert not PersonalData(type="personal-data", kinds=["gps"]).match(record, ctx)
    assert "people named" in PersonalData(type="personal-data", kinds=["people", "place"]).reason(record, ctx)


def test_the_exposure_legend_wraps_inside_the_chart_with_every_kind() -> None:
    svg = grouped_bar_chart(["HK", "CN"], [Series(k, "#000", [1, 2]) for k in ("any", *KINDS)], "exposure")
    legend = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="12\.0" height="12\.0"[^>]*><title>([^<]*)<', svg)
    assert [name for _, _, name in legend] == ["any", *KINDS]
    labels = {name: float(x) + 16 + 8 * len(name) for x, _, name in legend}
    assert all(end <= WIDTH for end in labels.values()) and len({y for _, y, _ in legend}) == 2
    bars = [float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="11\.0"', svg)]
    assert min(bars) > max(float(y) for _, y, _ in legend) + 12  # the bars start below the legend's last line

"""People named in an XMP packet, its caption and its location text, read by the packet's RDF structure.

The simple-value scan of :mod:`xmp` cannot see these: names sit in arrays (``dc:creator``'s ``rdf:Seq``,
``Iptc4xmpExt:PersonInImage``'s ``rdf:Bag``) and in structures whose fields only mean something together
(a region's ``Name`` counts when its ``Type`` is ``Face``). So the packet is tokenised into tags and text,
without an XML parser, and every value is given its *property path*: the property elements from the
top down, namespaces resolved through the ``xmlns`` declarations in scope, RDF's own containers
(``rdf:Description``, ``rdf:Seq``, ``rdf:li``...) left out, so ``<dc:creator><rdf:Seq><rdf:li>`` and any
other way RDF allows to write it both give the path ``dc:creator``. Attributes of an element are
properties one level below it (RDF's shorthand for a structure).

Where the names come from:

- IPTC Core/Extension (IPTC Photo Metadata Standard 2023.1): ``dc:creator`` (and Dublin Core's
  ``dc:contributor``), ``xmpRights:Owner``, ``photoshop:CaptionWriter``,
  ``Iptc4xmpExt:PersonInImage`` (IPTC "Person Shown", which Apple Photos writes on export for the people
  it named), ``Iptc4xmpExt:PersonInImageWDetails/PersonName``; PLUS ``plus:ImageCreator/ImageCreatorName``
  and ``plus:CopyrightOwner/CopyrightOwnerName`` (a rights owner may be a person);
  Adobe PDF's ``pdf:Author``.
- Face regions: MWG Guidelines 2.0 section 5.9 (``mwg-rs:Regions/RegionList``, a ``Name`` counts when
  ``Type`` is ``Face`` or absent, not ``Pet``, ``Focus`` or ``BarCode``), written by Lightroom, digiKam,
  Picasa and Google's desktop tools; Microsoft Photo 1.2 (``MP:RegionInfo/MPRI:Regions``, each region's
  ``MPReg:PersonDisplayName``), written by Windows Photo Gallery and Picasa.
- People keywords, the last level under a root named "People" (or "Person", "Persons"): Lightroom's
  ``lr:hierarchicalSubject`` ("People|Family|Jane Doe"), digiKam's ``digiKam:TagsList`` ("People/Jane
  Doe"; its own "Unknown", "Unconfirmed" and "Ignored" face tags are not names), Windows Photo Gallery's
  ``MicrosoftPhoto:LastKeywordXMP`` ("People/Jane Doe") and Expression Media's ``mediapro:CatalogSets``.
  A path that is the parent of another (a writer listing "People|Family" beside "People|Family|Jane")
  names a group, not a person.

Caption: ``dc:description`` (its ``x-default`` alternative, else the first). Location text: the IPTC Core
``Iptc4xmpCore:Location`` (sub-location) and ``photoshop:City``/``State``/``Country``, then the IPTC
Extension's ``LocationCreated`` and ``LocationShown`` structures, each part ranked apart as the MWG
guidelines reconcile them.

Hostile packets: the packet is cut at ``MAX_PACKET`` bytes by the caller; tags and attributes are found by
patterns that cannot span a ``<``, so the pass is linear; nesting is followed ``MAX_DEPTH`` levels deep
(deeper elements are counted, not kept); at most ``MAX_STRUCTS`` regions and ``MAX_KEYWORDS`` keyword
paths are held; each value is cut before it is decoded. There is no DTD processing, so no entity but
XML's and HTML's predefined ones is ever expanded.
"""

from __future__ import annotations

import html
import re

from tierscan.scanner.fingerprint.exif.model import MAX_CAPTION, MAX_NAME, MAX_PEOPLE, Collector, Rank

__all__ = ["read_people"]

MAX_DEPTH = 64
MAX_STRUCTS = 256  # face regions held until their Type is known
MAX_KEYWORDS = 1024  # people keyword paths held until their parents are known
MAX_BINDINGS = 64  # namespace declarations in scope

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DC = "http://purl.org/dc/elements/1.1/"
_PS = "http://ns.adobe.com/photoshop/1.0/"
_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
_MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
_MP = "http://ns.microsoft.com/photo/1.2/"
_MP_REG = "http://ns.microsoft.com/photo/1.2/t/Region#"
_PDF = "http://ns.adobe.com/pdf/1.3/"
_XML = "http://www.w3.org/XML/1998/namespace"
_PASS_THROUGH = frozenset((_RDF, "adobe:ns:meta/"))  # RDF's own nodes and the x:xmpmeta wrapper

Prop = tuple[str, str]  # (namespace URI, local name)

# A property path's last step that names a person -> the top-level property it must sit under.
_PERSON_LEAVES: dict[Prop, tuple[Prop, ...]] = {
    (_DC, "creator"): ((_DC, "creator"),),
    (_DC, "contributor"): ((_DC, "contributor"),),
    ("http://ns.adobe.com/xap/1.0/rights/", "Owner"): (("http://ns.adobe.com/xap/1.0/rights/", "Owner"),),
    (_PS, "CaptionWriter"): ((_PS, "CaptionWriter"),),
    (_EXT, "PersonInImage"): ((_EXT, "PersonInImage"),),
    (_EXT, "PersonName"): ((_EXT, "PersonInImageWDetails"),),
    (_PLUS, "ImageCreatorName"): ((_PLUS, "ImageCreator"),),
    (_PLUS, "CopyrightOwnerName"): ((_PLUS, "CopyrightOwner"),),
    (_PDF, "Author"): ((_PDF, "Author"),),
    (_MP_REG, "PersonDisplayName"): ((_MP, "RegionInfo"),),
}
# Keyword hierarchies: top-level property -> the level separator.
_KEYWORDS: dict[Prop, str] = {
    ("http://ns.adobe.com/lightroom/1.0/", "hierarchicalSubject"): "|",
    ("http://www.digikam.org/ns/1.0/", "TagsList"): "/",
    ("http://ns.microsoft.com/photo/1.0/", "LastKeywordXMP"): "/",
    ("http://ns.iview-multimedia.com/mediapro/1.0/", "CatalogSets"): "|",
}
_PEOPLE_ROOTS = frozenset(("people", "person", "persons"))
_NOT_NAMES = frozenset(("unknown", "unconfirmed", "ignored"))  # digiKam's own face tags
# Location parts: (top-level property, leaf) -> (Collector part, rank).
_PLACES: dict[tuple[Prop, Prop], tuple[str, int]] = {
    ((_CORE, "Location"), (_CORE, "Location")): ("sublocation", Rank.XMP),
    ((_PS, "City"), (_PS, "City")): ("city", Rank.XMP),
    ((_PS, "State"), (_PS, "State")): ("state", Rank.XMP),
    ((_PS, "Country"), (_PS, "Country")): ("country", Rank.XMP),
    **{((_EXT, where), (_EXT, leaf)): (part, Rank.IPTC + bonus)
       for where, bonus in (("LocationCreated", 1), ("LocationShown", 2))
       for leaf, part in (("Sublocation", "sublocation"), ("City", "city"), ("ProvinceState", "state"),
                          ("CountryName", "country"))},
}
_CAPTION = (_DC, "description")
_REGIONS = (_MWG_RS, "Regions")
_REGION_LIST = (_MWG_RS, "RegionList")
_REGION_NAME = (_MWG_RS, "Name")
_REGION_TYPE = (_MWG_RS, "Type")
# Top-level properties whose values are read; any other property's subtree is skipped unresolved.
_TOPS = frozenset((*(top for tops in _PERSON_LEAVES.values() for top in tops), *_KEYWORDS, _CAPTION, _REGIONS,
                   *(top for top, _ in _PLACES)))
# Local names an attribute must have to be resolved: the leaves read, and rdf:parseType.
_LEAF_NAMES = frozenset(name.encode() for _, name in (*_PERSON_LEAVES, *_KEYWORDS, *(leaf for _, leaf in _PLACES),
                                                      _CAPTION, _REGION_NAME, _REGION_TYPE, (_RDF, "parseType")))
# A qualified name of a top-level property read: a packet without one (most camera and editor packets)
# costs one search.
_WANTED = re.compile(
    rb":(?:" + b"|".join(sorted({re.escape(name.encode()) for _, name in _TOPS}))
    + rb")(?![\w.-])"
)
# Leading bytes of a packet in a wide encoding (UTF-32 first: its marks start like UTF-16's).
_WIDE = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
         (b"<\x00\x00\x00", "utf-32-le"), (b"\xfe\xff", "utf-16"), (b"\xff\xfe", "utf-16"),
         (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"))
_TAG = re.compile(rb"<([^<>]*)>")
_NAME = re.compile(rb"/?([^\s/>]+)")
# An attribute starts after whitespace: a name run is tried from its start only, never from inside it,
# which keeps a long unterminated value linear.
_ATTR = re.compile(rb"""\s([^\s=/"']+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_RAW_NAME = MAX_NAME * 4 * 2  # bytes of a value decoded for a name (UTF-8, with room for entities)
_RAW_CAPTION = MAX_CAPTION * 4 * 2


class _Frame:
    """One open element: its bindings, its place in the property path, and its structure's id."""

    __slots__ = ("bindings", "lang_default", "path", "qname", "struct")

    def __init__(self, qname: bytes, bindings: dict[bytes, str], path: tuple[Prop, ...] | None, struct: int,
                 lang_default: bool) -> None:
        # path None: a top-level property not read, whose subtree `read_people` only counts
        self.qname = qname
        self.bindings = bindings
        self.path = path
        self.struct = struct
        self.lang_default = lang_default


class _Found:
    """What one packet names, gathered before it is offered (regions wait for their Type)."""

    __slots__ = ("caption", "keywords", "people", "places", "regions")

    def __init__(self) -> None:
        self.people: list[str] = []
        self.regions: dict[int, list[str | None]] = {}  # struct id -> [name, type]
        self.keywords: list[tuple[str, ...]] = []
        self.caption: tuple[bool, str] | None = None  # (x-default, text)
        self.places: dict[tuple[str, int], str] = {}  # (Collector part, rank) -> the first value

    def value(self, path: tuple[Prop, ...], raw: bytes, struct: int, lang_default: bool) -> None:
        leaf, top = path[-1], path[0]
        if leaf in _PERSON_LEAVES:
            if top in _PERSON_LEAVES[leaf] and len(self.people) < MAX_PEOPLE:
                self.people.append(_text(raw, _RAW_NAME))
        elif leaf in (_REGION_NAME, _REGION_TYPE) and top == _REGIONS and _REGION_LIST in path:
            region = self.regions.get(struct)
            if region is None and len(self.regions) < MAX_STRUCTS:
                region = self.regions[struct] = [None, None]
            if region is not None:
                region[leaf == _REGION_TYPE] = _text(raw, _RAW_NAME)
        elif len(path) == 1 and top in _KEYWORDS:
            if len(self.keywords) < MAX_KEYWORDS:
                levels = tuple(p.strip() for p in _text(raw, _RAW_NAME * 4).split(_KEYWORDS[top]))
                if len(levels) > 1 and levels[0].casefold() in _PEOPLE_ROOTS:
                    self.keywords.append(levels)
        elif path == (_CAPTION,):
            if self.caption is None or (lang_default and not self.caption[0]):
                self.caption = (lang_default, _text(raw, _RAW_CAPTION))
        elif (place := _PLACES.get((top, leaf))) is not None and place not in self.places:
            self.places[place] = _text(raw, _RAW_NAME)

    def offer(self, sink: Collector) -> None:
        for name in self.people:
            sink.person(name)
        for region, kind in self.regions.values():
            if region and (kind is None or kind.casefold() == "face"):
                sink.person(region)
        paths = set(self.keywords)
        parents = {p[:i] for p in paths for i in range(2, len(p))}
        for levels in self.keywords:
            if levels not in parents and levels[-1] and levels[-1].casefold() not in _NOT_NAMES:
                sink.person(levels[-1])
        if self.caption is not None:
            sink.offer("caption", self.caption[1], Rank.XMP)
        for (part, rank), value in self.places.items():
            sink.offer(part, value, rank)


def _text(raw: bytes, limit: int) -> str:
    """A value's text: cut to ``limit`` bytes, decoded (UTF-8, bad bytes replaced), entities resolved."""
    return html.unescape(raw[:limit].decode("utf-8", errors="replace")).strip()


def _resolve(qname: bytes, bindings: dict[bytes, str]) -> Prop | None:
    prefix, colon, local = qname.partition(b":")
    if not colon:
        return None
    uri = bindings.get(prefix)
    return None if uri is None else (uri, local.decode("latin-1"))


def _utf8(packet: bytes) -> bytes:
    """The packet in UTF-8: XMP may be serialised in UTF-16 or UTF-32 too (XMP part 1, 7.3.2), which its
    first character ``<`` (or a byte-order mark) shows."""
    head = packet[:4]
    for mark, codec in _WIDE:
        if head.startswith(mark):
            return packet.decode(codec, errors="replace").encode("utf-8")
    return packet


def read_people(packet: bytes, sink: Collector) -> None:
    """Offer the people, caption and location text of the XMP ``packet`` to the collector."""
    packet = _utf8(packet)
    if _WANTED.search(packet) is None:
        return
    found = _Found()
    stack: list[_Frame] = []
    root = _Frame(b"", {}, (), 0, False)
    skipped = 0  # elements open below MAX_DEPTH or in the subtree of a property not read: counted, not kept
    open_at = -1  # where the text of the innermost element starts, while it has no child element
    serial = 0
    for m in _TAG.finditer(packet):
        body = m[1]
        if not body or body[:1] in b"?!":
            continue
        if skipped:
            skipped += -1 if body[:1] == b"/" else body[-1:] != b"/"
            continue
        if body[:1] == b"/":  # a closing tag: a leaf's text, then the element is done
            if not stack or body[1:].rstrip() != stack[-1].qname:  # a stray closing tag is ignored
                continue
            frame = stack.pop()
            if open_at >= 0 and frame.path:  # not the top, where no property is open
                found.value(frame.path, packet[open_at:m.start()], _struct(stack, root), frame.lang_default)
            open_at = -1
            continue
        open_at = -1
        if len(stack) >= MAX_DEPTH:
            skipped = body[-1:] != b"/"
            continue
        serial += 1
        parent = stack[-1] if stack else root
        opened = _open(body, parent, serial)
        if opened is None:
            continue
        attrs, frame = opened
        if frame.path is None:  # a property not read: its subtree is only counted
            skipped = body[-1:] != b"/"
            continue
        for name, value in attrs:
            if name[0] != _RDF:
                found.value((*frame.path, name), value, serial, False)
        if body[-1:] != b"/":
            stack.append(frame)
            open_at = m.end()
    found.offer(sink)


def _struct(stack: list[_Frame], root: _Frame) -> int:
    """The id of the structure a leaf's text belongs to: its innermost enclosing RDF node."""
    return stack[-1].struct if stack else root.struct


def _open(body: bytes, parent: _Frame, serial: int) -> tuple[list[tuple[Prop, bytes]], _Frame] | None:
    """An opening tag's frame and its property attributes (name, raw value)."""
    name_match = _NAME.match(body)
    if name_match is None:
        return None
    attrs = ([(a, b or c) for a, b, c in _ATTR.findall(body, name_match.end())]  # one group is empty
             if b"=" in body else [])
    bindings = parent.bindings
    declared = [(a[6:], v) for a, v in attrs if a.startswith(b"xmlns:")]
    if declared:
        bindings = dict(bindings)
        for prefix, uri in declared:
            if prefix in bindings or len(bindings) < MAX_BINDINGS:
                bindings[prefix] = uri.decode("utf-8", errors="replace")
    qname = name_match[1]
    element = _resolve(qname, bindings)
    lang_default = False
    props: list[tuple[Prop, bytes]] = []
    for a, v in attrs:
        if a.startswith(b"xmlns"):
            continue
        if a == b"xml:lang":
            lang_default = v == b"x-default"
            continue
        if a.rpartition(b":")[2] not in _LEAF_NAMES:
            continue
        prop = _resolve(a, bindings)
        if prop is not None and prop[0] != _XML:
            props.append((prop, v))
    if element is not None and element[0] in _PASS_THROUGH:
        # rdf:Description and rdf:li start a structure; containers (Seq, Bag, Alt, RDF) only pass through
        struct = serial if element[1] in ("Description", "li") else parent.struct
        return props, _Frame(qname, bindings, parent.path, struct, lang_default or parent.lang_default)
    if element is None:
        return props, _Frame(qname, bindings, parent.path, parent.struct, lang_default)
    resource = any(p == (_RDF, "parseType") and v == b"Resource" for p, v in props)
    above = parent.path or ()  # a frame on the stack always has a path: skipped subtrees are not pushed
    path = None if not above and element not in _TOPS else (*above, element)
    return props, _Frame(qname, bindings, path, serial if resource else parent.struct, lang_default)

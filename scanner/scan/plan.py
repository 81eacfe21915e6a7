"""The read planner: which bytes each object needs, and what reading them costs (DESIGN.md, "Reading as
little as possible").

Per object, one of:

- ``full``: one GET of the whole object, and its SHA-256 from that read. Perceptual hashes need pixels, so
  with perceptual hashing on a decodable image whose size collides is read whole. Objects no larger than
  ``HEAD + TAIL`` are always read whole: one request either way. So is an object whose size collides
  (a head and a tail, two requests, would be read) where one whole GET costs less in fees than those two:
  in tiers that charge by the byte read, up to `whole_read_below` of its price.
- ``image``: the pixels of a JPEG whose size does not collide (or is not known to yet), up to the end of
  its primary image (`tierscan.scanner.fingerprint.jpeg_extent`): a first chunk of ``IMAGE_FIRST`` or a quarter of
  the object, then chunks four times longer until its EOI; MPF previews, gain maps and motion-photo videos after it
  are not read. No SHA-256 unless the chunks reached the end; a collision found later is narrowed with head and tail
  like any other.
- ``meta``: the EXIF audit alone. A ``HEAD`` chunk, walked by ``tierscan.scanner.fingerprint.exif.read_prefix``;
  the walker reports the further ranges its format needs (a JPEG APP segment longer than the head, PNG
  chunks after IDAT, WebP EXIF after the pixels, TIFF/RAW IFD offsets, HEIC/AVIF boxes; X3F and CRW, whose
  directories are at the end, start from the last ``END`` bytes too) and only those are read. When
  the size collides, a ``TAIL`` chunk is read too so the object can be narrowed.
- ``narrow``: an unchanged object read again only for exact matching: head and tail chunks.
- ``copy``: a byte-identical copy (same size and content identity: a trusted MD5, the same S3 multipart
  ETag or full-object CRC64NVME, `models.content_identity`, of a kind its connector declares) of an object
  this scan reads: its fingerprint is the representative's, no read.

A backend that cannot read byte ranges (`Capabilities.ranged_reads` off) gets ``full`` reads only.

Provider checksums spare reads for exact matching before any of this (`Catalog.work`). Where the provider
holds a whole-object checksum that the listing does not give (S3 CRC64NVME), `plan_heads` weighs one HEAD
an object (a request, no bytes) against the head, tail and whole reads its size class would need.

After the head/tail pass, only objects whose (size, head, tail) key still collides are read whole for their
SHA-256 (like fclones). Reads go hottest tier first, so a retrieval budget (`Budget`) leaves cold data
unread rather than hot.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import groupby

from tierscan.connectors import Capabilities, connector_class
from tierscan.scanner.core.models import NOT_AN_IMAGE, ObjectRef, content_identity
from tierscan.scanner.fingerprint.exif.model import ExifInfo, ImageMeta
from tierscan.scanner.fingerprint.exif.reader import read_prefix
from tierscan.scanner.pricing.table import GIB, Price, PriceTable
from tierscan.scanner.scan.catalog import WorkItem

__all__ = [
    "HEAD",
    "TAIL",
    "Budget",
    "PlannedRead",
    "RangedMeta",
    "ReadKind",
    "TierCost",
    "capabilities_of",
    "estimate",
    "head_pays",
    "headtail_key",
    "plan_heads",
    "plan_kind",
    "plan_reads",
    "ranged_metadata",
    "spread_decodes",
    "trusted_identity",
    "whole_read_below",
]

# The first read. Measured on the 74 EXIF samples in tests/data/exif (a walk needs up to SOS for JPEG):
# head 8 KiB: 13.8% of their bytes, 2.01 requests a file; 16 KiB: 14.5%, 1.47; 32 KiB: 17.9%, 1.27;
# 64 KiB: 23.7%, 1.12. A longer segment costs one follow-up read of exactly what the walker asks for.
HEAD = 16 * 1024
TAIL = 4 * 1024  # as fclones: with the head, tells apart nearly every same-size pair of distinct photos
# The first chunk of an `image` read: a web-sized JPEG whole, a camera JPEG's first quarter.
IMAGE_FIRST = 256 * 1024
Prefix = tuple[ImageMeta, list[tuple[int, int]]]  # what `read_prefix` says: the metadata, the ranges needed
MAX_ROUNDS = 12  # follow-up requests per object before the rest of the object is read in one go

# Formats the fingerprint step decodes to pixels, by file extension (a hint: the magic bytes decide).
_JPEG_EXT = frozenset(("jpg", "jpeg", "jpe", "jfif"))
_RAW_EXT = frozenset(("cr2", "cr3", "nef", "arw", "dng", "orf", "rw2", "pef", "srw", "raf"))
# Container formats whose walkers step over bodies in order (holes in a sparse view are never looked at);
# the others follow offsets anywhere, so their view is kept a contiguous prefix.
_SEQUENTIAL = frozenset(("JPEG", "MPO", "PNG", "WEBP"))
# Formats whose structure starts at the end of the file (X3F's section directory, CRW's heap directories):
# their walkers read the head and `END` bytes of the end, and declare every other range they read.
_FROM_THE_END = frozenset(("X3F", "CRW"))
END = 64 * 1024


def decodable_hint(key: str) -> bool:
    """Whether the key names a format perceptual hashing decodes (RAW files give metadata only)."""
    return _extension(key) not in _RAW_EXT


def _extension(key: str) -> str:
    return key.rsplit(".", 1)[-1].lower() if "." in key else ""


def image_first_chunk(size: int) -> int:
    """Bytes the first request of an `image` read asks for."""
    return min(size, max(IMAGE_FIRST, size // 4))


class ReadKind(str, Enum):
    """How one object is read: the kinds the module's docstring describes."""

    full = "full"
    image = "image"
    meta = "meta"
    narrow = "narrow"


@dataclass(slots=True)
class PlannedRead:
    item: WorkItem
    kind: ReadKind
    copies: list[WorkItem] = field(default_factory=list)  # byte-identical objects that take this result

    @property
    def ref(self) -> ObjectRef:
        return self.item.ref

    def estimate(self) -> tuple[int, int]:
        """(requests, bytes) this read costs before any narrowing or follow-up read."""
        size = self.ref.size
        if self.kind == ReadKind.full or size <= HEAD + TAIL:
            return 1, size
        if self.kind == ReadKind.image:
            return 1, image_first_chunk(size)
        if self.kind == ReadKind.narrow or (self.kind == ReadKind.meta and self.item.want_sha256):
            return 2, HEAD + TAIL
        return 1, HEAD


def whole_read_below(price: Price) -> int:
    """The size up to which one GET of a whole object costs less than a head and a tail, two GETs of
    HEAD + TAIL bytes: a request is worth get/retrieval bytes where reads are charged by the byte (S3
    Glacier Instant Retrieval in Hong Kong, $0.011 a 1,000 GETs and $0.03/GB: 394 KB; Standard-IA, $0.0011
    and $0.01: 118 KB). Without a retrieval fee bytes cost time, not fees: only the smallest go whole."""
    if price.retrieval_gb <= 0:
        return HEAD + TAIL
    return HEAD + TAIL + int(price.get_per_1000 / 1000 * GIB / price.retrieval_gb)


def capabilities_of(ref: ObjectRef) -> Capabilities:
    """What the connector of `ref`'s scheme can do (its class's declaration: nothing is opened)."""
    scheme, found, _ = ref.uri.partition("://")
    return connector_class(scheme.lower() if found else "file").capabilities


def trusted_identity(ref: ObjectRef) -> str | None:
    """`ref.content_id` from the checksum kinds its connector declares: those every listing gives free
    (`Capabilities.free_checksums`) and those a HEAD fetches. A kind a listing carries undeclared is not
    trusted to make two objects copies."""
    checksums = ref.checksums
    if not checksums:
        return None
    declared = capabilities_of(ref).checksums
    if checksums.keys() <= declared.keys():
        return content_identity(checksums)
    return content_identity({kind: value for kind, value in checksums.items() if kind in declared})


def plan_reads(work: Iterable[WorkItem], *, perceptual: bool,
               price: Callable[[ObjectRef], Price] | None = None) -> list[PlannedRead]:
    """One `PlannedRead` per object to read, hottest tier first; byte-identical copies ride along.
    `price`: each object's prices, to read whole the objects for which that is cheaper (`whole_read_below`);
    without it, only those of HEAD + TAIL bytes or fewer."""
    by_identity: dict[tuple[int, str], list[WorkItem]] = defaultdict(list)
    singles: list[WorkItem] = []
    for item in work:
        identity = trusted_identity(item.ref)
        if identity and item.want_metadata:
            by_identity[(item.ref.size, identity)].append(item)
        else:
            singles.append(item)
    leaders: list[tuple[WorkItem, list[WorkItem]]] = [(i, []) for i in singles]
    for items in by_identity.values():
        items.sort(key=lambda i: (i.ref.tier.rank, i.ref.uri))  # read the hottest (cheapest) copy
        leaders.append((items[0], items[1:]))
    plans = [PlannedRead(item, plan_kind(item, perceptual=perceptual, price=price), copies)
             for item, copies in leaders]
    plans.sort(key=lambda p: (p.ref.tier.rank, p.ref.uri))
    return plans


def plan_kind(item: WorkItem, *, perceptual: bool,
              price: Callable[[ObjectRef], Price] | None = None) -> ReadKind:
    """How `plan_reads` reads one object: full, image, meta or narrow; always full from a backend that
    cannot read byte ranges (`Capabilities.ranged_reads`)."""
    ref = item.ref
    if not capabilities_of(ref).ranged_reads:
        return ReadKind.full
    headtail = item.want_sha256 or not item.want_metadata  # a head and a tail would be read
    if ref.size <= (whole_read_below(price(ref)) if headtail and price else HEAD + TAIL):
        return ReadKind.full
    if not item.want_metadata:
        return ReadKind.narrow
    if perceptual and decodable_hint(ref.key):
        return ReadKind.image if not item.want_sha256 and _extension(ref.key) in _JPEG_EXT else ReadKind.full
    return ReadKind.meta


def head_pays(item: WorkItem, *, perceptual: bool, price: Callable[[ObjectRef], Price] | None = None) -> bool:
    """Whether one HEAD (a request, no bytes) that settles the object's exact matching beats reading for
    it: a tail chunk beside the metadata, or head and tail chunks, then the whole object wherever those
    still collide (every byte of a copy). It does unless the object is read whole anyway: a small one, or
    one whose pixels perceptual hashing decodes whole. An object that needs a restore is never read."""
    if not item.ref.readable:
        return False
    if not item.want_metadata:
        return True  # a narrow read or a whole one for its SHA-256: the HEAD settles it with none
    [settled] = plan_reads([replace(item, want_sha256=False)], perceptual=perceptual, price=price)
    return settled.kind != ReadKind.full


def plan_heads(pending: Iterable[tuple[WorkItem, list[str]]], *, perceptual: bool,
               price: Callable[[ObjectRef], Price] | None = None) -> list[tuple[WorkItem, list[str]]]:
    """The HEADs worth sending, of `Catalog.pending_checksums` (by size): a size class settles only when
    every object in it has its checksum, so its pending objects are HEADed all together, when the HEAD
    pays (`head_pays`) for one of them at least, or not at all."""
    heads: list[tuple[WorkItem, list[str]]] = []
    for _, members in groupby(pending, key=lambda p: p[0].ref.size):
        group = list(members)
        if any(head_pays(item, perceptual=perceptual, price=price) for item, _ in group):
            heads += group
    return heads


def spread_decodes(plans: list[PlannedRead], *, perceptual: bool) -> list[PlannedRead]:
    """`plans` with the reads that decode no pixels (head and tail, ranged metadata, whole reads for a
    SHA-256 alone) spread evenly among those that do, each kind in its own order. Reads in plan order
    bunch them: after a 20,000-object listing the hot tier's head/tail narrowing comes first, hundreds of
    reads that keep the fingerprint workers idle for half a second before the cooler tiers' images
    arrive. The order matters for fees only under a retrieval budget, which reads hottest first."""
    decodes = [perceptual and p.item.want_metadata and p.kind in (ReadKind.full, ReadKind.image) for p in plans]
    decoding = [p for p, d in zip(plans, decodes, strict=True) if d]
    light = [p for p, d in zip(plans, decodes, strict=True) if not d]
    if not decoding or not light:
        return plans
    # Each read's place is its fraction of the way through its own kind; sorting by it merges the two.
    placed = [((i + 0.5) / len(decoding), 0, p) for i, p in enumerate(decoding)]
    placed += [((j + 0.5) / len(light), 1, p) for j, p in enumerate(light)]
    return [p for *_, p in sorted(placed, key=lambda t: t[:2])]


def headtail_key(size: int, head: bytes, tail: bytes) -> str:
    """The narrowing key of an object: its size and digests of its first HEAD and last TAIL bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(head[:HEAD])
    h.update(b"\x00")
    h.update(tail[-TAIL:] if size > HEAD else b"")
    return f"{size}:{h.hexdigest()}"


@dataclass(frozen=True, slots=True)
class TierCost:
    tier: str
    objects: int = 0
    requests: int = 0
    bytes: int = 0
    retrieval_usd: float = 0.0
    request_usd: float = 0.0
    full_bytes_at_most: int = 0  # extra bytes if head/tail narrowing settles nothing and images run to the end

    def __add__(self, other: TierCost) -> TierCost:
        """The costs of both, of one tier (a plan made a run of size classes at a time)."""
        return TierCost(self.tier, self.objects + other.objects, self.requests + other.requests,
                        self.bytes + other.bytes, self.retrieval_usd + other.retrieval_usd,
                        self.request_usd + other.request_usd, self.full_bytes_at_most + other.full_bytes_at_most)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What a scan would read, per tier, and the listing it was planned from."""

    tiers: dict[str, TierCost]
    listed: int
    unchanged: int

    def why_nothing(self) -> str:
        """Why a plan with no reads reads nothing, in words."""
        if self.listed == 0:
            return "nothing is listed under the targets"
        if self.unchanged == self.listed:
            return (f"all {self.listed:,} listed objects are unchanged since the last scan (size, modified time "
                    "and ETag or version), and their results are kept")
        return (f"the {self.listed - self.unchanged:,} new or changed objects need no read (empty, or in a tier "
                "that must be restored first)")


def price_of(prices: PriceTable, price_as: Callable[[ObjectRef], str | None], ref: ObjectRef) -> Price:
    return prices.price_for(price_as(ref) or ref.provider, ref.storage_class, ref.region, ref.tier)


def estimate(plans: Iterable[PlannedRead], prices: PriceTable,
             price_as: Callable[[ObjectRef], str | None]) -> dict[str, TierCost]:
    """Requests, bytes and fees per tier that reading `plans` incurs (before follow-up reads)."""
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in plans:
        requests, nbytes = p.estimate()
        price = price_of(prices, price_as, p.ref)
        a = acc[p.ref.tier.value]
        a["objects"] += 1 + len(p.copies)
        a["requests"] += requests
        a["bytes"] += nbytes
        a["retrieval_usd"] += nbytes / GIB * price.retrieval_gb
        a["request_usd"] += requests / 1000 * price.get_per_1000
        if p.kind == ReadKind.image:
            a["full_bytes_at_most"] += p.ref.size - nbytes  # further chunks, up to the whole object
        elif p.kind != ReadKind.full and p.item.want_sha256:
            a["full_bytes_at_most"] += p.ref.size
    return {
        tier: TierCost(tier, int(a["objects"]), int(a["requests"]), int(a["bytes"]), a["retrieval_usd"],
                       a["request_usd"], int(a["full_bytes_at_most"]))
        for tier, a in sorted(acc.items())
    }


class Budget:
    """A cap on retrieval fees: a read is made only if its estimated fee still fits."""

    def __init__(self, limit_usd: float | None):
        self.limit = limit_usd
        self.spent = 0.0

    def admit(self, fee_usd: float) -> bool:
        if self.limit is None or fee_usd <= 0:
            self.spent += fee_usd
            return True
        if self.spent + fee_usd > self.limit:
            return False
        self.spent += fee_usd
        return True

    def charge(self, fee_usd: float) -> None:
        """Fees of follow-up reads, charged once made."""
        self.spent += fee_usd


@dataclass(slots=True)
class RangedMeta:
    """What a ranged metadata read found, and what it cost."""

    format: str | None
    width: int | None
    height: int | None
    exif: ExifInfo | None
    error: str | None
    head: bytes
    tail: bytes
    requests: int
    bytes_read: int


def _view(size: int, pieces: dict[int, bytes], contiguous: bool) -> bytes:
    """The file as far as it is known: fetched pieces at their offsets, zeros in the holes between them.

    Walkers of sequential containers only look at what they asked for, so holes are safe there; for the
    others the caller keeps `pieces` one contiguous prefix."""
    out = []
    pos = 0
    for start in sorted(pieces):
        piece = pieces[start]
        end = start + len(piece)
        if end <= pos:
            continue
        if start > pos:
            if contiguous:
                break
            out.append(bytes(start - pos))
            out.append(piece)
        else:
            out.append(piece[pos - start:])
        pos = end
    return b"".join(out)


def _covered(pieces: dict[int, bytes], offset: int, length: int) -> bool:
    return any(s <= offset and offset + length <= s + len(p) for s, p in pieces.items())


async def ranged_metadata(fetch: Callable[[int, int], Awaitable[bytes]], size: int, *,
                          want_tail: bool, parse: Callable[[bytes], Awaitable[Prefix]] | None = None) -> RangedMeta:
    """Read format, size and EXIF with ranged reads: the head, then only the ranges the format walker
    asks for. `fetch(start, end)` reads bytes [start, end). The tail chunk is read when `want_tail`
    (for narrowing) and reused by walkers whose metadata follows the pixels. `parse` walks what is
    known (`read_prefix` in a worker process, off the event loop); without it, it is walked here."""
    requests = nbytes = 0

    async def walk(view: bytes) -> Prefix:
        return read_prefix(view) if parse is None else await parse(view)

    async def get(start: int, end: int) -> bytes:
        nonlocal requests, nbytes
        data = await fetch(start, end)
        requests += 1
        nbytes += len(data)
        return data

    head = await get(0, min(size, HEAD))
    tail = b""
    tail_start = size
    if want_tail and size > HEAD:
        tail_start = max(HEAD, size - TAIL)
        tail = await get(tail_start, size)
    # Only ranges the walker asked for go into its view (the tail too, once asked for): a sequential
    # walker then never lands in a hole, because every hole lies beyond the last range it asked for.
    pieces = {0: head}
    from tierscan.scanner.fingerprint.exif.formats import detect_format

    fmt = detect_format(head[:64])
    contiguous = fmt not in _SEQUENTIAL and fmt not in _FROM_THE_END
    if fmt in _FROM_THE_END and size > HEAD:
        start = max(HEAD, size - END)
        if tail and start >= tail_start:
            pieces[start] = tail[start - tail_start:]
        else:
            pieces[start] = await get(start, tail_start) + tail if tail else await get(start, size)
    webp_meta = fmt == "WEBP" and head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x0C)
    grow = HEAD
    meta = None
    for _ in range(MAX_ROUNDS):
        view = _view(size, pieces, contiguous)
        meta, needed = await walk(view)
        needed = [(o, n) for o, n in needed
                  if 0 <= o < size and not _covered(pieces, o, max(1, min(n, size - o)))]
        if not needed and webp_meta and len(view) < size:
            # The WebP walker takes the end of its view for the end of the file; VP8X says EXIF or XMP
            # chunks exist, and they follow the pixels: go on with the next chunk header.
            needed = [(len(view), 8)]
        if not needed:
            break
        if contiguous:
            # Offset-following formats: extend the prefix to cover every range asked for.
            start = len(view)
            end = max(min(size, max(o + n for o, n in needed)), min(size, start + grow))
        else:
            o, n = min(needed)
            start, end = o, min(size, o + max(n, grow))
        if tail and start >= tail_start:
            pieces[start] = tail[start - tail_start:]  # already read for narrowing
            continue
        if tail and end > tail_start:
            end = tail_start
            pieces[start] = await get(start, end) + tail
        else:
            pieces[start] = await get(start, end)
        grow *= 2  # a long run of chunk headers (PNG IDATs) costs log(size) requests, not one per chunk
    else:
        view = _view(size, pieces, contiguous)
        if len(view) < size:  # give up on ranges: the rest in one read
            pieces[len(view)] = await get(len(view), size)
        elif fmt in _FROM_THE_END:  # the whole file, in one read
            pieces = {0: await get(0, size)}
        meta, _ = await walk(_view(size, pieces, contiguous))
    assert meta is not None
    error = NOT_AN_IMAGE if fmt is None else None
    return RangedMeta(fmt, meta.width, meta.height, meta.exif, error, head, tail,
                      requests, nbytes)

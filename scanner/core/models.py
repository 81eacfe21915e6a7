"""The records tierscan passes between its stages and writes out: pydantic models at every boundary.

`ObjectRef` is what a connector lists (what reading an object yields is a plain record of the read path,
`tierscan.scanner.scan.read_session`); `Group`, `Finding` and `Report` are what users and scripts read (the JSON report
contract, `schema_version: 1`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CHECKSUM_KINDS",
    "FACES_NOT_ANALYSED",
    "GPS",
    "IDENTITY_KINDS",
    "NOT_AN_IMAGE",
    "UNPUBLISHED_KINDS",
    "Breakdown",
    "BucketSummary",
    "ChecksumKind",
    "ExifRecord",
    "Finding",
    "Group",
    "GroupMember",
    "Holding",
    "InventoryRecord",
    "ObjectRef",
    "Report",
    "ReportTotals",
    "ScanStats",
    "Severity",
    "Skipped",
    "Tier",
    "Trust",
    "content_identities",
    "content_identity",
]

REPORT_SCHEMA_VERSION: Final = 1


class Tier(str, Enum):
    """Normalised storage tier, hottest first (the order is meaningful: see `Tier.rank`)."""

    hot = "hot"
    cool = "cool"
    cold = "cold"
    archive = "archive"

    @property
    def rank(self) -> int:
        """0 for hot up to 3 for archive."""
        return _TIER_RANKS[self]


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANKS[self]


# Ranks by declaration order, looked up rather than found by a scan of the members: policies and master
# choice ask for them hundreds of thousands of times a grouping.
_TIER_RANKS = {tier: i for i, tier in enumerate(Tier)}
_SEVERITY_RANKS = {severity: i for i, severity in enumerate(Severity)}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectStatus(str, Enum):
    """An object's state in the catalog (its `status` column; scanner/scan/catalog.py says what each means).

    The catalog stores and returns the values as text; the members' names equal their values, so a member
    compares and hashes equal to the text a row holds."""

    listed = "listed"
    fingerprinted = "fingerprinted"
    skipped = "skipped"
    failed = "failed"
    unreadable = "unreadable"
    gone = "gone"


# The skip reason of an object whose bytes are not an image (a text file, a video): never a member of a
# duplicate group, whatever its copies, since tierscan audits images.
NOT_AN_IMAGE = "not an image"
# The start of the reason a fingerprinted image carries when its faces could not be counted.
FACES_NOT_ANALYSED = "faces not analysed"


class Trust(str, Enum):
    """How far an equal provider checksum goes between two objects of the same size."""

    identity = "identity"  # equal values are the same bytes: no read needed to group them
    candidate = "candidate"  # equal values only suggest the same bytes: a read confirms


@dataclass(frozen=True, slots=True)
class ChecksumKind:
    """One kind of provider checksum, as data: the core asks these, never which provider gave a value.

    `layout`: the value depends on how the object was uploaded (part sizes), so only equal values mean
    something; unequal ones may be the same bytes in another layout. `computed`: the provider computed it
    from the bytes (no writer can set it), so unequal values of a layout-free kind are different bytes.

    The trust rule. `identity` kinds are whole-object digests the provider computed: MD5 (collision
    resistant for data nobody crafted), an S3 multipart ETag (the MD5 of the parts' MD5s), and S3's
    full-object CRC64NVME. A 64-bit CRC is no proof against someone who crafts a collision on purpose, but
    two unrelated objects of one size share one with odds of 2^-64: for grouping *reports* it is as good
    as an MD5. Remediation never rests on it: `tierscan apply` proves the bytes again before it deletes or
    moves anything (`Connector.vouched` takes cryptographic digests only, else it reads both). `candidate`
    kinds are 32-bit CRCs (too many objects share one by chance) and values a writer sets (Azure
    Content-MD5): equal ones need a confirming read."""

    name: str
    trust: Trust
    layout: bool = False
    computed: bool = True
    # Its values stand for themselves in identity tokens (kinds older than the others, whose tokens the
    # catalogs and group ids already hold); other kinds' values are prefixed with the kind.
    bare: bool = False
    # The `InventoryRecord` field that publishes its values (a documented inventory field), if any; the
    # values of identity kinds without one travel in `InventoryRecord.checksums`, unpublished.
    field: str | None = None

    def token(self, value: str) -> str:
        """`value` as an identity token: never equal to another kind's."""
        return value if self.bare else f"{self.name}:{value}"


# Every kind a connector may put in `ObjectRef.checksums`, strongest identity first: the first one an
# object has is its `content_identity`.
CHECKSUM_KINDS: Mapping[str, ChecksumKind] = {k.name: k for k in (
    ChecksumKind("md5", Trust.identity, bare=True, field="md5"),  # 32 hex digits
    # S3 multipart ETag, `<hex>-<parts>`
    ChecksumKind("s3mpu", Trust.identity, layout=True, bare=True, field="multipart_etag"),
    ChecksumKind("crc64nvme", Trust.identity),  # S3 full-object CRC64NVME (never composite)
    ChecksumKind("crc32c", Trust.candidate),  # GCS crc32c: full-object, composite objects included
    ChecksumKind("content-md5", Trust.candidate, computed=False),  # Azure Content-MD5: what a writer claimed
)}
IDENTITY_KINDS = tuple(k.name for k in CHECKSUM_KINDS.values() if k.trust is Trust.identity)
# The identity kinds no inventory field publishes, in declared order: `InventoryRecord.checksums` holds them.
UNPUBLISHED_KINDS = tuple(k for k in IDENTITY_KINDS if CHECKSUM_KINDS[k].field is None)


@dataclass(slots=True, kw_only=True)
class ObjectRef:
    """One object as a connector lists it: where it is, what it costs to keep, what the provider knows. A
    plain dataclass, not a validated model, and not frozen (a frozen one takes four times as long to make):
    one is made per object listed, from typed values (`Connector.make_ref`); only the size is checked.
    Never changed once made: `dataclasses.replace` makes a changed copy."""

    uri: str
    provider: str
    bucket: str
    key: str
    version: str | None = None
    size: int
    etag: str | None = None
    # Provider checksums of the whole object by kind (`CHECKSUM_KINDS`), lowercase hex. None: the provider
    # holds one of that kind that the listing does not give, and a HEAD would (`Capabilities.checksums`).
    checksums: dict[str, str | None] = dataclasses.field(default_factory=dict)
    tier: Tier
    storage_class: str
    readable: bool = True
    region: str
    jurisdiction: str
    modified: datetime
    # Why the listing gives the object up without a read (a FIFO, a symlink out of the scanned folder, a
    # folder that cannot be listed): the catalog records it `skipped` with this reason and never reads it.
    # A URI ending in "/" stands for a folder that could not be listed (local folders only).
    skipped: str | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"{self.uri}: a negative size ({self.size})")

    @property
    def content_id(self) -> str | None:
        """`content_identity` of this object's checksums."""
        return content_identity(self.checksums)


def content_identities(checksums: Mapping[str, str | None]) -> tuple[str, ...]:
    """Tokens that each mean byte-identical between two objects of the same size, read or not: one per
    `identity` kind the object has a value of, strongest first. Two objects with one token in common are
    copies. Layout kinds (a multipart ETag) differ between copies uploaded with other part sizes, which can
    only hide a duplicate until the bytes are read, never invent one."""
    return tuple(CHECKSUM_KINDS[k].token(v) for k in IDENTITY_KINDS if (v := checksums.get(k)))


def content_identity(checksums: Mapping[str, str | None]) -> str | None:
    """The strongest of `content_identities`, or None."""
    return next(iter(content_identities(checksums)), None)


class GPS(_Frozen):
    lat: float  # degrees north (negative: south)
    lon: float  # degrees east (negative: west)


class ExifRecord(_Frozen):
    """The metadata fields that matter for an audit: where, which device, when, with what."""

    gps: GPS | None = None  # where the photo was taken (decimal degrees, WGS 84)
    serials: list[str] = Field(default_factory=list)  # camera body, lens and other device serial numbers
    make: str | None = None  # the camera's maker
    model: str | None = None  # the camera's model
    datetime_original: str | None = None  # when it was taken, as the camera wrote it (EXIF DateTimeOriginal)
    software: str | None = None  # the software that last wrote it
    owner: str | None = None  # the camera owner's or artist's name
    orientation: int | None = None  # EXIF orientation, 1-8
    # People named: IPTC By-line, Contact, Writer-Editor; XMP creators, people shown, named face regions,
    # people keywords (de-duplicated, at most 64 names of 128 characters)
    people: list[str] = Field(default_factory=list)
    caption: str | None = None  # the caption (IPTC Caption-Abstract, XMP dc:description): free text, 1,024 chars
    place: str | None = None  # the location text: "sub-location, city, state, country" (IPTC / XMP)

    def personal_data(self) -> list[str]:
        """Kinds of personal data present, in a stable order (the `personal_data[]` inventory field)."""
        kinds = []
        if self.gps is not None:
            kinds.append("gps")
        if self.serials:
            kinds.append("serial")
        if self.owner:
            kinds.append("owner")
        if self.datetime_original:
            kinds.append("timestamp")
        if self.people:
            kinds.append("people")
        if self.caption:
            kinds.append("caption")
        if self.place:
            kinds.append("place")
        return kinds


class InventoryRecord(_Frozen):
    """One object in the audit inventory: exact values (GPS is not rounded here)."""

    uri: str  # the object's URI
    provider: str  # s3, gs, az or local
    bucket: str  # its bucket (Azure: account/container; local: the top folder)
    key: str  # its key in the bucket
    version: str | None = None  # S3 version id or GCS generation, where the listing gives one
    size: int  # bytes
    tier: Tier  # hot, cool, cold or archive, from its storage class
    storage_class: str  # the provider's own class or access tier (STANDARD, GLACIER_IR, Cool, ...)
    region: str  # where it is stored (`local` for a folder, `unknown` when unmapped)
    jurisdiction: str  # the region's jurisdiction: HK, CN, ... (scanner/data/jurisdictions.yaml)
    modified: datetime  # last modified, UTC
    etag: str | None = None  # the provider's ETag, as listed
    md5: str | None = None  # a trusted provider MD5, when the listing gave one
    multipart_etag: str | None = None  # a trusted S3 multipart ETag (checksum kind "s3mpu")
    # Values of the identity kinds no field publishes (`UNPUBLISHED_KINDS`: S3's full-object CRC64NVME, once
    # a HEAD gave it), by kind: grouping uses them; the inventory does not list them.
    checksums: dict[str, str] = Field(default_factory=dict, exclude=True)
    sha256: str | None = None  # of the whole object, when it was read whole
    phash: str | None = None  # perceptual hash (64-bit, hex), when the pixels were decoded
    dhash: str | None = None  # difference hash (64-bit, hex)
    format: str | None = None  # the image format its bytes show (JPEG, PNG, HEIC, ...), not its name's
    width: int | None = None  # pixels
    height: int | None = None  # pixels
    exif: ExifRecord | None = None  # the metadata that matters for an audit
    # gps, serial, owner, timestamp, people, caption, place: what the metadata holds; faces: the pixels
    personal_data: list[str] = Field(default_factory=list)
    # Faces found in the pixels (one or more: personal-data kind `faces`); None: not analysed (not a decoded
    # image, too small to hash, a scan without perceptual hashes or without faces)
    faces: int | None = None
    taken_in: str | None = None  # where it was taken: the territory of its GPS position (HK, MO, CN, ...); none at sea
    taken_near: str | None = None  # the nearest populated place (GeoNames), preferring one in that territory
    # fingerprinted | listed (not read: no read was needed) | skipped | failed | unreadable | gone
    status: str
    reason: str | None = None  # why it was skipped, when it was

    @property
    def content_id(self) -> str | None:
        """`content_identity` as the provider gave it."""
        return content_identity(self._checksums())

    @property
    def content_ids(self) -> tuple[str, ...]:
        """`content_identities` as the provider gave them."""
        return content_identities(self._checksums())

    def _checksums(self) -> dict[str, str | None]:
        """The identity kinds' values by kind, from their published fields or `checksums`."""
        return {k: getattr(self, field) if (field := CHECKSUM_KINDS[k].field) else self.checksums.get(k)
                for k in IDENTITY_KINDS}


class Holding(NamedTuple):
    """What the savings tally reads of one stored object (`Catalog.tally_records`): where it is, what it
    weighs and costs, not its fingerprint or metadata. The fields are `InventoryRecord`'s; a holding of
    several `objects` stands for that many that the tally treats alike (same bucket, class, region, tier,
    none a redundant copy), the first of them by URI, with `size` their bytes in all."""

    uri: str
    provider: str
    bucket: str
    key: str
    size: int
    tier: Tier
    storage_class: str
    region: str
    jurisdiction: str
    modified: datetime
    status: str
    objects: int = 1


class GroupMember(_Frozen):
    uri: str  # the copy's object URI
    size: int  # bytes
    tier: Tier  # hot, cool, cold or archive, from its storage class
    region: str  # where it is stored (`local` for a folder, `unknown` when unmapped)
    jurisdiction: str  # the region's jurisdiction: HK, CN, ... (scanner/data/jurisdictions.yaml)
    distance: int = 0  # perceptual (pHash) Hamming distance to the master; 0 for exact groups


class Group(_Frozen):
    # Stable across scans: `e-` and a digest of the content (exact), `n-` and one of the centre's URI (near).
    id: str
    kind: Literal["exact", "near"]  # exact: byte-identical; near: the same picture (crop, resize, re-encode...)
    master: str  # the copy to keep, chosen by the `master:` rules; never named for removal
    members: list[GroupMember]  # every copy: the master first, then by URI
    spans_tiers: bool  # copies in more than one tier
    spans_regions: bool  # copies in more than one region
    spans_jurisdictions: bool  # copies under more than one jurisdiction
    # some copy's metadata holds a personal-data kind (`ExifRecord.personal_data`), or its pixels faces
    has_personal_data: bool
    # A near group's members by URI -> every other byte-identical copy of that member (the rest of the exact
    # group it stands for), for members that have some: the files that hold each picture. Empty for exact
    # groups, whose members are all listed already.
    copies: dict[str, list[str]] = Field(default_factory=dict)


class Finding(_Frozen):
    policy: str  # the policy that made it (the most severe, when several recommend the same)
    # Other policies that recommend the same action for the same object or group: one finding for them all.
    also: list[str] = Field(default_factory=list)
    severity: Severity  # the policy's: info, low, medium, high, critical
    action: str  # what it recommends: report, delete-redundant, transition, strip-metadata, relocate
    uris: list[str]  # the copies the recommendation is for (never a group's master for removals)
    group: str | None = None  # the group's id, for a group policy
    reason: str  # what matched, in plain words
    # What following the recommendation for these URIs saves each month and costs once (early deletion,
    # retrieval), priced like the report's savings; 0 for actions that move no bytes, such as `report`.
    monthly_savings_usd: float = 0.0
    one_time_cost_usd: float = 0.0


class Skipped(_Frozen):
    uri: str  # the object tierscan could not read or judge
    reason: str  # why: not an image, corrupt, too large, unreadable tier, denied, timed out, ...


class BucketSummary(_Frozen):
    uri: str  # the bucket's URI (a local bucket: its folder)
    name: str  # the bucket's own name (Azure: account/container)
    provider: str  # s3, gs, az or local
    region: str  # where it is stored (`local` for a folder, `unknown` when unmapped)
    jurisdiction: str  # the region's jurisdiction: HK, CN, ... (scanner/data/jurisdictions.yaml)
    tier: Tier | None = None  # the bucket's tier when all its objects share one
    objects: int  # objects listed (gone ones excluded)
    bytes: int  # their bytes
    redundant_objects: int  # exact copies here whose group's master is elsewhere or another copy
    redundant_bytes: int  # their bytes
    monthly_cost_usd: float  # keeping every object here for a month, at its class and region
    monthly_savings_usd: float  # what removing the redundant copies saves a month
    one_time_cost_usd: float  # early-deletion charges of those copies younger than their class's minimum
    # First month whose cumulative savings exceed the one-time cost; None when nothing is saved.
    break_even_month: int | None = None


class Breakdown(_Frozen):
    """Objects, bytes and savings of one tier or one region (the report's `tiers[]` and `regions[]`)."""

    key: str  # the tier (hot, cool, cold, archive) or the region
    jurisdiction: str | None = None  # for a region: its jurisdiction
    objects: int  # objects listed
    bytes: int  # their bytes
    redundant_objects: int  # redundant exact copies among them
    redundant_bytes: int  # their bytes
    monthly_cost_usd: float  # keeping them for a month
    monthly_savings_usd: float  # what removing the redundant copies saves a month
    one_time_cost_usd: float  # early-deletion charges of those copies


class ReportTotals(_Frozen):
    objects: int  # objects listed in every bucket
    bytes: int  # their bytes
    duplicate_groups: int  # exact groups (two or more byte-identical copies)
    near_duplicate_groups: int  # near groups, for review; never counted in savings
    redundant_objects: int  # exact copies other than their group's master
    redundant_bytes: int  # their bytes
    monthly_savings_usd: float  # what removing them saves a month: the buckets' sum
    one_time_cost_usd: float  # their early-deletion charges: the buckets' sum
    scan_cost_usd: float  # the last scan's own retrieval and request fees
    skipped: int  # objects in `skipped[]`
    scan_retrieval_usd: float = 0.0  # the part of scan_cost_usd that is retrieval fees
    scan_request_usd: float = 0.0  # the part of scan_cost_usd that is request (GET) fees
    # First month whose cumulative savings exceed one_time_cost_usd (the buckets' rule, over their sums);
    # None: nothing is saved.
    break_even_month: int | None = None
    # The same, counting this scan's own cost as well: one_time_cost_usd + scan_cost_usd.
    break_even_month_with_scan: int | None = None


class ScanStats(_Frozen):
    """What the last scan did and what it cost: the scan reports its own bill."""

    scan_id: int | None = None  # the scan's number in the catalog
    started: datetime | None = None
    finished: datetime | None = None
    listed: int = 0  # objects the listing returned
    fingerprinted: int = 0  # objects read and fingerprinted in this scan
    unchanged: int = 0  # objects unchanged since an earlier scan, not read again
    gone: int = 0  # objects of earlier scans no longer listed
    requests: int = 0  # read requests made (GETs, ranged or whole)
    bytes_read: int = 0  # bytes those requests returned
    bytes_read_by_tier: dict[str, int] = Field(default_factory=dict)  # the same, per tier
    cost_usd: float = 0.0  # the scan's own fees: retrieval_usd + request_usd
    # Exact per-object accounting (`tierscan.scanner.scan.pipeline`): requests per tier and the fees they incurred,
    # each object priced by its own class and region. Empty in catalogs written before it existed.
    requests_by_tier: dict[str, int] = Field(default_factory=dict)
    retrieval_usd: float = 0.0  # retrieval fees of the bytes read (cool, cold and archive classes)
    request_usd: float = 0.0  # request fees of the reads
    # Objects a `--max-retrieval-usd` budget left unread (retried by the next scan), and their bytes.
    left_unread: int = 0
    left_unread_bytes: int = 0


class Report(_Frozen):
    schema_version: Literal[1] = REPORT_SCHEMA_VERSION  # changes only when a field changes meaning or goes
    generated_at: datetime  # when this report was built (prices and early-deletion charges are as of then)
    scan: ScanStats
    totals: ReportTotals
    buckets: list[BucketSummary]  # by monthly savings, largest first
    groups: list[Group]  # exact and near duplicate groups
    findings: list[Finding]  # by policy, then URIs
    skipped: list[Skipped]  # objects not read or not judged, with the reason
    tiers: list[Breakdown] = Field(default_factory=list)  # hottest first
    regions: list[Breakdown] = Field(default_factory=list)  # by bytes, largest first
    prices: dict[str, str] = Field(default_factory=dict)  # price table provenance: source and date

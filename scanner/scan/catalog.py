"""The catalog: one SQLite file (WAL) holding every object seen, its fingerprint, and the last results.

It is what makes scans incremental: an object whose size, modified time, ETag and version are unchanged
keeps its fingerprint and is not read again. Objects no longer listed under a target are marked `gone`.
An object's `last_seen` is the scan that last wrote its listed fields (new, changed or moved), or, for a
listing compared by lookups (`LookedUpListing`), the last scan that saw it; `Catalog.scan_listed` says
which objects a scan listed.
The schema is versioned (`meta.schema_version`); opening a catalog of another version is an error rather
than a silent migration.

Object status (`ObjectStatus`): `listed` (new or changed, not read yet), `fingerprinted`, `skipped` (its
content is not a usable image: zero bytes, not an image, corrupt; kept until the object changes), `failed`
(the read failed: vanished, denied, throttled; tried again by the next scan), `unreadable` (tier needs a
restore; matched on metadata only), `gone` (no longer listed). `reason` says why for the last four. A
listing may give an object up unread (`ObjectRef.skipped`: a FIFO, a symlink out of the scanned folder): it is recorded
`skipped` with that reason and never read. A folder that could not be listed is one such entry (its URI
ends in "/"); what the catalog holds under it is kept as it was, not marked gone, since nobody looked.

One command writes a catalog at a time: scan, plan, merge, apply --execute and near ignore hold its lock
(`tierscan.scanner.scan.catalog_lock`) from start to end, and a second one is refused at once with the holder's pid,
host, command and start time. Readers (report, inventory, near ignored, apply --plan) take no lock: WAL mode lets
them read the last committed state while a writer runs.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    Protocol,
    Self,
)

from tierscan.policies.prefilter import AllOf, AnyOf, Between, Condition, HasPersonalData, OneOf
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import (
    CHECKSUM_KINDS,
    FACES_NOT_ANALYSED,
    IDENTITY_KINDS,
    NOT_AN_IMAGE,
    UNPUBLISHED_KINDS,
    ExifRecord,
    Finding,
    Group,
    Holding,
    InventoryRecord,
    ObjectRef,
    ObjectStatus,
    ScanStats,
    Tier,
    Trust,
)
from tierscan.scanner.core.places import located
from tierscan.scanner.fingerprint.layout import LAYOUTS, MAGIC, mirror_phash

if TYPE_CHECKING:
    from tierscan.scanner.core.shard import Shard

__all__ = ["SCHEMA_VERSION", "Catalog", "Listed", "Listing", "LookedUpListing", "MergedListing",
           "ResultWriter", "Signatures", "WorkItem"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT,
    targets TEXT NOT NULL,
    stats TEXT
);
CREATE TABLE IF NOT EXISTS objects (
    uri TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    provider TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT,
    size INTEGER NOT NULL,
    etag TEXT,
    checksums TEXT NOT NULL,
    tier TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    readable INTEGER NOT NULL,
    region TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    modified TEXT NOT NULL,
    identity TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    sha256 TEXT,
    phash TEXT,
    dhash TEXT,
    near_sig BLOB,
    headtail TEXT,
    format TEXT,
    width INTEGER,
    height INTEGER,
    exif TEXT,
    faces INTEGER
);
CREATE INDEX IF NOT EXISTS objects_size ON objects (size);
CREATE INDEX IF NOT EXISTS objects_target_uri ON objects (target, uri);
CREATE INDEX IF NOT EXISTS objects_status ON objects (status);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS not_duplicates (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS thumbnails (uri TEXT PRIMARY KEY, identity TEXT NOT NULL, data BLOB NOT NULL);
"""
# Columns added after catalogs were first written: (name, type). Opening an older catalog adds them.
_ADDED_COLUMNS = (("near_sig", "BLOB"), ("headtail", "TEXT"), ("faces", "INTEGER"))



def _checksum(kind: str, table: str = "") -> str:
    """SQL for an object's value of a checksum kind; NULL when it has none, or its value is not known yet."""
    return f"json_extract({table}checksums, '$.\"{kind}\"')"


# Where each `InventoryRecord` field comes from: its column, or for a published checksum kind
# (`ChecksumKind.field`) its entry in the checksums JSON, which SQLite takes out (`json.loads` of every row
# was a quarter of the time reading 20,000 records took).
_RECORD_SOURCES = {name: name for name in (
    "uri", "provider", "bucket", "key", "version", "size", "tier", "storage_class", "region", "jurisdiction",
    "modified", "etag", "sha256", "phash", "dhash", "format", "width", "height", "status", "reason", "faces")} | {
    kind.field: _checksum(kind.name) for kind in CHECKSUM_KINDS.values() if kind.field}
# Then the unpublished identity kinds' values, for `InventoryRecord.checksums`.
_RECORD_COLUMNS = ", ".join([*_RECORD_SOURCES.values(), *map(_checksum, UNPUBLISHED_KINDS)])
# Whether an object's metadata holds each kind of personal data (`ExifRecord.personal_data`), when it has any.
_PERSONAL_KINDS = {
    "gps": "json_extract(exif, '$.gps') IS NOT NULL",
    "serial": "COALESCE(json_array_length(exif, '$.serials'), 0) > 0",
    "owner": "COALESCE(json_extract(exif, '$.owner'), '') <> ''",
    "timestamp": "COALESCE(json_extract(exif, '$.datetime_original'), '') <> ''",
    "people": "COALESCE(json_array_length(exif, '$.people'), 0) > 0",
    "caption": "COALESCE(json_extract(exif, '$.caption'), '') <> ''",
    "place": "COALESCE(json_extract(exif, '$.place'), '') <> ''",
}
# Kinds of personal data the pixels hold, by their own columns (`InventoryRecord.faces`).
_PIXEL_KINDS = {"faces": "COALESCE(faces, 0) > 0"}


def _personal(kinds: Iterable[str]) -> str:
    """SQL true when an object's metadata (or pixels) hold one of these kinds of personal data."""
    wanted = sorted(kinds)
    found = f"(exif IS NOT NULL AND ({' OR '.join(_PERSONAL_KINDS[k] for k in wanted if k in _PERSONAL_KINDS) or '0'}))"
    pixels = [_PIXEL_KINDS[k] for k in wanted if k in _PIXEL_KINDS]
    return f"({' OR '.join([found, *pixels])})" if pixels else found


# Whether an object holds personal data (`InventoryRecord.personal_data` is not empty).
_PERSONAL = _personal([*_PERSONAL_KINDS, *_PIXEL_KINDS])
# Policy record keys whose value is their column's (`prefilter` conditions on them become SQL): text, integer.
_TEXT_KEYS = frozenset(name for name, source in _RECORD_SOURCES.items() if name == source) - {"size", "width",
                                                                                                  "height", "faces"}
_INTEGER_KEYS = frozenset({"size", "width", "height", "faces"})
# Statuses whose row keeps its fingerprint while the object is unchanged.
_KEEPS_FINGERPRINT = (ObjectStatus.fingerprinted, ObjectStatus.skipped, ObjectStatus.unreadable)
# No signature yet, or one of a layout this version does not read (`layout.LAYOUTS`).
_READ_LAYOUTS = ", ".join(f"X'{magic.hex()}'" for magic in LAYOUTS)
_NEEDS_SIGNATURE = ("(status='fingerprinted' AND phash IS NOT NULL AND (near_sig IS NULL OR "
                    f"substr(near_sig, 1, {len(MAGIC)}) NOT IN ({_READ_LAYOUTS})))")
# No face count yet (read by a scan without faces, or before they were counted), nor a reason it failed.
_NEEDS_FACES = "(status='fingerprinted' AND phash IS NOT NULL AND faces IS NULL AND reason IS NULL)"
# What a listing sets on every object it sees, in `Catalog.record_listing`'s order.
_LISTED_COLUMNS = ("target, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, "
                   "region, jurisdiction, modified")
_WORK_RUN = 20_000  # objects to read planned at once (`Catalog.work_runs`): memory holds their plans
_LISTING_BATCH = 500  # URIs per lookup: under SQLite's 999 bound parameters of old builds
_REF_COLUMNS = (
    "uri, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, region, "
    "jurisdiction, modified"
)
_REF_COLUMNS_OF_O = ", ".join(f"o.{c}" for c in _REF_COLUMNS.split(", "))
_CHECKSUMS_AT = _LISTED_COLUMNS.split(", ").index("checksums")
# What `Catalog._compare` reads of a stored object: URI, identity, status, reason, whether it holds no
# result of a read (`_BLANK`), then the listed columns (the offsets are of the row without its URI).
_BLANK = ("(sha256 IS NULL AND headtail IS NULL AND phash IS NULL AND dhash IS NULL AND near_sig IS NULL AND "
          "format IS NULL AND width IS NULL AND height IS NULL AND exif IS NULL AND faces IS NULL)")
_STORED_COLUMNS = f"uri, identity, status, reason, {_BLANK} AS blank, {_LISTED_COLUMNS}"
_STORED_LISTED = 4
_STORED_CHECKSUMS = _STORED_LISTED + _CHECKSUMS_AT
# WAL pages between automatic checkpoints while listings write (SQLite's default is 1,000: 4 MB).
_BULK_CHECKPOINT = 16_384


def _content_identity(table: str = "") -> str:
    """SQL for `models.content_identity`: the strongest identity token, or NULL."""
    tokens = [_checksum(k, table) if CHECKSUM_KINDS[k].bare else f"'{k}:' || {_checksum(k, table)}"
              for k in IDENTITY_KINDS]
    return f"COALESCE({', '.join(tokens)})"


def _settled_class() -> str:
    """SQL (a HAVING clause over one size class) true when provider checksums settle exact matching in the
    class without a read: every member has a value of one kind, and that kind tells them apart. An
    identity kind does (equal: the same bytes; unequal: other bytes), unless its values depend on the part
    layout, which only settles members that all share one value; a candidate the provider computed does
    when all its values differ."""
    rules = []
    for kind in CHECKSUM_KINDS.values():
        every = f"COUNT({_checksum(kind.name)}) = COUNT(*)"
        if kind.trust is Trust.identity:
            rules.append(f"({every} AND COUNT(DISTINCT {_checksum(kind.name)}) = 1)" if kind.layout else every)
        elif kind.computed and not kind.layout:
            rules.append(f"({every} AND COUNT(DISTINCT {_checksum(kind.name)}) = COUNT(*))")
    return " OR ".join(rules)


def _unique_candidate() -> str:
    """SQL true for an object that a provider-computed candidate checksum tells apart from every other object
    of its size: all of them have one of that kind, and no other has its value. It needs no read."""
    rules = []
    for kind in CHECKSUM_KINDS.values():
        if kind.trust is Trust.candidate and kind.computed and not kind.layout:
            value = _checksum(kind.name)
            # One text key, not a row value: a row value with a NULL in it is looked up by a scan of the list.
            rules.append(
                f"({value} IS NOT NULL AND size IN (SELECT size FROM objects WHERE status<>'gone' AND size>0 "
                f"GROUP BY size HAVING COUNT({value}) = COUNT(*)) AND size || ':' || {value} IN (SELECT size || "
                f"':' || {value} FROM objects WHERE status<>'gone' AND size>0 AND {value} IS NOT NULL "
                f"GROUP BY size, {value} HAVING COUNT(*) = 1))")
    return " OR ".join(rules) or "0"


# Size classes where exact matching needs bytes: more than one object, and checksums do not settle them.
# Queries name it `colliding`, a table built once per query (every row's checksums are read to build it).
def _colliding(among: str = "1") -> str:
    """The `colliding` size classes (more than one object, not settled by identity checksums), of the sizes
    `among` (an SQL condition on `size`) keeps."""
    return ("WITH colliding(size) AS MATERIALIZED (SELECT size FROM objects WHERE status<>'gone' AND size>0 "
            f"AND {among} GROUP BY size HAVING COUNT(*)>1 AND NOT ({_settled_class()})) ")


_COLLIDING = _colliding()
# An object that needs bytes read for exact matching (`Catalog.work`), in a query that starts `_COLLIDING`.
_NEEDS_EXACT = f"(size IN colliding AND NOT ({_unique_candidate()}))"


def _kept_checksums(listed: dict[str, str | None], stored: str) -> dict[str, str | None]:
    """The checksums of an unchanged object: the listing's, with the values a HEAD fetched earlier for the
    kinds the listing gives without one (the object is the same, so they still hold)."""
    if None not in listed.values():
        return listed
    known = json.loads(stored)
    return {kind: known.get(kind) if value is None else value for kind, value in listed.items()}


def _identity(ref: ObjectRef, modified: str) -> str:
    """What must stay equal for a stored fingerprint to still describe the object (`modified`: its
    modified time in ISO format). An object the listing skipped has its reason in it: when it becomes a
    readable object, or is skipped for another reason, it has changed."""
    if ref.skipped is not None:
        return f"skipped|{ref.skipped}|{modified}"
    return f"{ref.size}|{modified}|{ref.etag or ''}|{ref.version or ''}"


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One object to read, and what to compute from its bytes."""

    ref: ObjectRef
    want_sha256: bool
    want_metadata: bool  # False: an unchanged object read again only for its SHA-256


class Signatures(Mapping[str, bytes]):
    """The catalog's near-duplicate signature blobs by URI, each read when asked for (one primary-key
    lookup): near grouping asks once per image, and a dict of every blob would grow with the estate."""

    _WHERE = "near_sig IS NOT NULL AND status<>'gone'"

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __getitem__(self, uri: str) -> bytes:
        row = self._db.execute(f"SELECT near_sig FROM objects WHERE uri=? AND {self._WHERE}", (uri,)).fetchone()
        if row is None:
            raise KeyError(uri)
        return bytes(row[0])

    def __iter__(self) -> Iterator[str]:
        cursor = self._db.cursor()
        cursor.row_factory = None
        return (uri for (uri,) in cursor.execute(f"SELECT uri FROM objects WHERE {self._WHERE} ORDER BY uri"))

    def __len__(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM objects WHERE {self._WHERE}").fetchone()[0])


class ResultWriter:
    """Groups and findings of one evaluation, written in batches inside `Catalog.writing_results`."""

    BATCH = 2_000

    def __init__(self, db: sqlite3.Connection, exact_written: Callable[[], None]):
        self._db = db
        self._exact_written = exact_written  # told when an exact group is written
        self._groups: list[tuple[str, str, str]] = []
        self._findings: list[tuple[bytes, str, str]] = []

    def group(self, group: Group) -> None:
        if group.kind == "exact":
            self._exact_written()
        self._groups.append((group.id, group.kind, group.model_dump_json()))
        if len(self._groups) >= self.BATCH:
            self.flush()

    def finding(self, key: bytes, tie: str, finding: Finding) -> None:
        """`key`: its order (`policies.order_key`); `tie`: the order among equal keys, then arrival."""
        self._findings.append((key, tie, finding.model_dump_json()))
        if len(self._findings) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        self._db.executemany("INSERT INTO groups (id, kind, data) VALUES (?, ?, ?)", self._groups)
        self._db.executemany("INSERT INTO temp.new_finding (key, tie, data) VALUES (?, ?, ?)", self._findings)
        self._groups.clear()
        self._findings.clear()


@dataclass(slots=True)
class _Changes:
    """What comparing listed objects with their stored rows found (`Catalog._compare`)."""

    seen: list[str] = field(default_factory=list)  # unchanged: every listed field as stored
    again: list[str] = field(default_factory=list)  # as stored, still waiting for a read (new or changed before)
    moved: list[tuple[object, ...]] = field(default_factory=list)  # same bytes; tier, region... moved
    fresh: list[tuple[object, ...]] = field(default_factory=list)  # new or changed: (uri, ..., status, reason)

    @property
    def changed(self) -> int:
        return len(self.fresh) + len(self.again)

    @property
    def unchanged(self) -> int:
        return len(self.seen) + len(self.moved)

    def waiting(self) -> set[str]:
        """The URIs among these that wait for a read (status `listed`)."""
        return {*(str(row[0]) for row in self.fresh if row[-2] == ObjectStatus.listed), *self.again}


class Listed(NamedTuple):
    """What one batch of a listing found: new, changed or still waiting for a read; unchanged; the URIs
    waiting for a read."""

    changed: int
    unchanged: int
    waiting: set[str]


class Listing(Protocol):
    """One target's listing into the catalog (`Catalog.listing`)."""

    def add(self, refs: list[ObjectRef]) -> Listed:
        """Compare a batch of listed objects with the catalog and write what changed."""

    def finish(self) -> int:
        """The listing is complete: mark what it did not find gone; returns how many."""

    def close(self) -> None:
        """Let go of what the listing holds (after `finish`, or instead of it when the listing failed)."""


class LookedUpListing:
    """A listing in no known order: each batch looked up by URI (`Catalog.record_listing`), every object
    seen gets this scan as its last-seen one, and `Catalog.mark_gone` takes the rest."""

    def __init__(self, catalog: Catalog, target: str, scan_id: int):
        self._catalog, self._target, self._scan = catalog, target, scan_id

    def add(self, refs: Iterable[ObjectRef]) -> Listed:
        changed = unchanged = 0
        waiting: set[str] = set()
        for batch in _unique_batches(refs, _LISTING_BATCH):
            with self._catalog.db:
                found = self._catalog._look_up(batch, self._target, self._scan)
            changed += found.changed
            unchanged += found.unchanged
            waiting |= found.waiting()
        return Listed(changed, unchanged, waiting)

    def finish(self) -> int:
        return self._catalog.mark_gone(self._target, self._scan)

    def close(self) -> None:
        pass


_listings = itertools.count(1)


class MergedListing:
    """A listing in URI order merged with the catalog's rows of its target, read in URI order a chunk at a
    time (`objects_target_uri`): a listed object meets its stored row without a lookup, an unchanged one
    is not written (its last-seen scan stays that of the scan that last wrote it), and a stored row the
    walk passes without a listed twin is no longer there. Memory holds a chunk of rows and a batch.

    Passed rows wait in a temporary table until the listing ends (then they are gone), so a listing
    that is not quite in order stays right: an object that comes after the walk passed its URI, or stored
    under another target (overlapping targets), is looked up by URI and taken off that table. What lies
    under a folder that could not be listed (a skipped entry whose URI ends in "/") is kept as it was."""

    _CHUNK = 2_048  # stored rows read a query

    def __init__(self, catalog: Catalog, target: str, scan_id: int):
        self._catalog, self._db = catalog, catalog.db
        self._target, self._scan = target, scan_id
        self._id = next(_listings)
        self._rows: list[tuple[Any, ...]] = []  # the chunk of stored rows at hand, and the next one's index
        self._next = 0
        self._after = ""  # the last URI read: the next chunk starts after it
        self._read_all = False
        self._last: str | None = None  # the last URI listed
        self._passed = 0  # rows passed without a listed twin, waiting in temp.listing_passed
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS listing_passed (listing INTEGER NOT NULL, "
                         "uri TEXT NOT NULL, PRIMARY KEY (listing, uri))")
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS listing_kept (listing INTEGER NOT NULL, "
                         "low TEXT NOT NULL, high TEXT NOT NULL)")

    def _head(self) -> tuple[Any, ...] | None:
        """The next stored row of the target not passed yet, or None at the end."""
        if self._next < len(self._rows):
            return self._rows[self._next]
        if self._read_all:
            return None
        self._rows = self._catalog._tuples(
            f"SELECT {_STORED_COLUMNS} FROM objects WHERE target=? AND uri>? ORDER BY uri LIMIT {self._CHUNK}",
            (self._target, self._after)).fetchall()
        self._next = 0
        self._read_all = len(self._rows) < self._CHUNK
        if not self._rows:
            return None
        self._after = self._rows[-1][0]
        return self._rows[0]

    def add(self, refs: list[ObjectRef]) -> Listed:
        changed = unchanged = 0
        waiting: set[str] = set()
        for batch in _unique_batches(refs, len(refs) or 1):  # a URI listed twice: after its first is written
            found = self._add(batch)
            changed += found.changed
            unchanged += found.unchanged
            waiting |= found.waiting()
        return Listed(changed, unchanged, waiting)

    def _add(self, batch: list[ObjectRef]) -> _Changes:
        stored: dict[str, tuple[Any, ...]] = {}
        missed: list[str] = []  # not met by the walk: new, behind it, or stored under another target
        passed: list[tuple[int, str]] = []
        kept: list[tuple[int, str, str]] = []
        gone = ObjectStatus.gone  # looked up once: a member's lookup costs more than the comparison
        for ref in batch:
            uri = ref.uri
            if ref.skipped is not None and uri.endswith("/"):
                kept.append((self._id, *_under(uri)))
            if self._last is not None and uri <= self._last:
                missed.append(uri)
                continue
            self._last = uri
            head = self._head()
            while head is not None and head[0] < uri:
                if head[2] != gone:
                    passed.append((self._id, head[0]))
                self._next += 1
                head = self._head()
            if head is not None and head[0] == uri:
                stored[uri] = head[1:]
                self._next += 1
            else:
                missed.append(uri)
        db = self._db
        with self._catalog.db:
            if passed:
                db.executemany("INSERT OR IGNORE INTO temp.listing_passed VALUES (?, ?)", passed)
                self._passed += len(passed)
            if kept:
                db.executemany("INSERT INTO temp.listing_kept VALUES (?, ?, ?)", kept)
            for i in range(0, len(missed), _LISTING_BATCH):
                looked_up = self._catalog._stored(missed[i : i + _LISTING_BATCH])
                stored.update(looked_up)
                if looked_up and self._passed:
                    db.execute(f"DELETE FROM temp.listing_passed WHERE listing=? AND uri IN "
                               f"({', '.join('?' * len(looked_up))})", (self._id, *looked_up))
            found = self._catalog._compare(batch, stored, self._target, self._scan)
            self._catalog._write(found, self._scan, touch=False)
        return found

    def finish(self) -> int:
        db = self._db
        with self._catalog.db:
            if self._next < len(self._rows):  # the rest of the chunk at hand, then the rows not read yet
                db.executemany("INSERT OR IGNORE INTO temp.listing_passed VALUES (?, ?)",
                               [(self._id, row[0]) for row in self._rows[self._next:] if row[2] != ObjectStatus.gone])
            if not self._read_all:
                db.execute("INSERT OR IGNORE INTO temp.listing_passed SELECT ?, uri FROM objects WHERE target=? "
                           "AND uri>? AND status<>'gone'", (self._id, self._target, self._after))
            self._rows, self._next, self._read_all = [], 0, True
            return db.execute(
                "UPDATE objects SET status='gone', reason='no longer listed' WHERE uri IN (SELECT p.uri FROM "
                "temp.listing_passed p WHERE p.listing=? AND NOT EXISTS (SELECT 1 FROM temp.listing_kept k "
                "WHERE k.listing=p.listing AND p.uri>k.low AND p.uri<k.high)) AND target=? AND status<>'gone'",
                (self._id, self._target)).rowcount

    def close(self) -> None:
        with self._catalog.db:
            self._db.execute("DELETE FROM temp.listing_passed WHERE listing=?", (self._id,))
            self._db.execute("DELETE FROM temp.listing_kept WHERE listing=?", (self._id,))


class _Connection(sqlite3.Connection):
    """A catalog connection: statements outside a transaction commit at once (`isolation_level=None`), and
    `with connection:` is one transaction, BEGIN to COMMIT (ROLLBACK on an exception). The stock context
    manager begins none in that mode, so each row of an `executemany` inside it committed on its own: a
    write of the WAL per row, and a checkpoint every few hundred rows. Inside a transaction already open,
    `with` joins it and leaves the end to its opener."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._opened: list[bool] = []  # per `with` entered: whether it began the transaction

    def __enter__(self) -> Self:
        opens = not self.in_transaction
        if opens:
            self.execute("BEGIN")
        self._opened.append(opens)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None, /) -> Literal[False]:
        if self._opened.pop() and self.in_transaction:
            self.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


_CACHE_KIB = 65536  # the page cache of the catalog, and of its temporary tables


class Catalog:
    def __init__(self, path: Path):
        self.path = path
        self._exact_members_fresh = False  # `temp.exact_member` holds the stored exact groups' members
        try:
            self.db = sqlite3.connect(path, isolation_level=None, factory=_Connection)
        except sqlite3.Error as exc:
            raise UsageError(f"{path}: cannot open the catalog: {exc}") from exc
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint (two fsyncs) every 10,000 pages of WAL, not every 1,000: a scan's bulk writes
            # rewrite the same pages many times over, and each checkpoint blocks the writer on the disk.
            self.db.execute("PRAGMA wal_autocheckpoint=10000")
            # A fixed page cache of 64 MiB for the catalog and as much for temporary tables (SQLite's default
            # is 2 MiB each): a scan's writes, lookups by URI and grouping's temporary tables then mostly
            # stay in memory; beyond that they spill to the files, so memory stays bounded at any size.
            self.db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self.db.execute(f"PRAGMA temp.cache_size=-{_CACHE_KIB}")
            self.db.executescript(_SCHEMA)
            # Listings walk a target's rows in URI order (`MergedListing`); older catalogs indexed them by
            # target and last-seen scan instead.
            self.db.execute("DROP INDEX IF EXISTS objects_target")
            present = {r["name"] for r in self.db.execute("PRAGMA table_info(objects)")}
            for name, kind in _ADDED_COLUMNS:
                if name not in present:
                    self.db.execute(f"ALTER TABLE objects ADD COLUMN {name} {kind}")
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path}: not a tierscan catalog: {exc}") from exc
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise UsageError(
                f"{path}: catalog schema version {row[0]}, this tierscan reads {SCHEMA_VERSION}; "
                "scan into a new --db file"
            )

    def close(self) -> None:
        self.db.close()

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def holds_match(self, pattern: str) -> bool:
        """Whether a listed object's bucket name or URI matches a `buckets:` glob of the config (fnmatch's
        `*`, `?` and `[...]`, case-sensitive, as `Config.bucket_settings` matches)."""
        glob = pattern.replace("[!", "[^")
        return bool(self.db.execute("SELECT EXISTS (SELECT 1 FROM objects WHERE status<>'gone' AND "
                                    "(uri GLOB ? OR bucket GLOB ?))", (glob, glob)).fetchone()[0])

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scans -----------------------------------------------------------------------------------
    def begin_scan(self, targets: list[str], started: datetime) -> int:
        cur = self.db.execute(
            "INSERT INTO scans (started, targets) VALUES (?, ?)", (started.isoformat(), json.dumps(targets))
        )
        return int(cur.lastrowid or 0)

    def finish_scan(self, stats: ScanStats) -> None:
        self.db.execute(
            "UPDATE scans SET finished=?, stats=? WHERE id=?",
            (stats.finished.isoformat() if stats.finished else None, stats.model_dump_json(), stats.scan_id),
        )

    def last_scan(self) -> ScanStats:
        row = self.db.execute("SELECT stats FROM scans WHERE stats IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return ScanStats.model_validate_json(row[0]) if row else ScanStats()

    def last_scan_targets(self) -> list[str]:
        """The targets the last finished scan listed, as given to it; empty before any scan finished."""
        row = self.db.execute("SELECT targets FROM scans WHERE stats IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return [str(t) for t in json.loads(row[0])] if row else []

    # --- listing ---------------------------------------------------------------------------------
    def listing(self, target: str, scan_id: int, ordered: bool) -> Listing:
        """A listing of `target` into the catalog, fed a batch at a time (`Listing.add`) and ended by
        `Listing.finish` once the target was listed completely. `ordered`: the listing comes in URI order
        (mostly: what does not is still compared right, at the cost of a lookup each), so it is merged with
        the catalog's rows of the target (`MergedListing`); else each batch is looked up (`record_listing`).
        """
        return MergedListing(self, target, scan_id) if ordered else LookedUpListing(self, target, scan_id)

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Fewer, larger WAL checkpoints while listings write many rows: each checkpoint syncs the disk."""
        before = self.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.db.execute(f"PRAGMA wal_autocheckpoint={_BULK_CHECKPOINT}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA wal_autocheckpoint={int(before)}")

    def record_listing(self, refs: Iterable[ObjectRef], target: str, scan_id: int) -> tuple[int, int]:
        """Upsert listed objects, each batch compared with the catalog by one lookup of its URIs, and move
        the last-seen scan of every one of them (`mark_gone` then finds what the scan did not see). Returns
        (new, changed or still waiting for a read; unchanged).

        A rescan of an unchanged estate costs a few statements per batch, not two per object."""
        found = LookedUpListing(self, target, scan_id).add(refs)
        return found.changed, found.unchanged

    def _look_up(self, batch: list[ObjectRef], target: str, scan_id: int) -> _Changes:
        """One batch of a `LookedUpListing` (no URI twice in it)."""
        for ref in batch:
            if ref.skipped is not None and ref.uri.endswith("/"):
                self._keep_under(ref.uri, scan_id)
        found = self._compare(batch, self._stored([ref.uri for ref in batch]), target, scan_id)
        self._write(found, scan_id, touch=True)
        return found

    def _stored(self, uris: list[str]) -> dict[str, tuple[Any, ...]]:
        """The stored rows of these objects (`_STORED_COLUMNS`) by URI."""
        return {row[0]: row[1:] for row in self._tuples(
            f"SELECT {_STORED_COLUMNS} FROM objects WHERE uri IN ({', '.join('?' * len(uris))})", uris)}

    def _compare(self, batch: Iterable[ObjectRef], stored: Mapping[str, Any], target: str,
                 scan_id: int) -> _Changes:
        """Sort listed objects (no URI twice) by what their stored rows (`stored`, by URI) say of them."""
        found = _Changes()
        for ref in batch:
            modified = ref.modified.isoformat()
            ident = _identity(ref, modified)
            values: tuple[object, ...] = (
                target, ref.provider, ref.bucket, ref.key, ref.version, ref.size, ref.etag,
                json.dumps(ref.checksums, sort_keys=True) if ref.checksums else "{}", ref.tier.value,
                ref.storage_class, int(ref.readable), ref.region, ref.jurisdiction, modified,
            )
            row: Any = stored.get(ref.uri)
            same = row is not None and row[0] == ident
            if same and row[1] in _KEEPS_FINGERPRINT:
                # Same bytes: keep the fingerprint, and the checksum values a HEAD fetched for it.
                if None in ref.checksums.values():
                    kept = json.dumps(_kept_checksums(ref.checksums, row[_STORED_CHECKSUMS]), sort_keys=True)
                    values = (*values[:_CHECKSUMS_AT], kept, *values[_CHECKSUMS_AT + 1:])
                if row[_STORED_LISTED:] == values:
                    found.seen.append(ref.uri)
                else:
                    found.moved.append((*values, scan_id, ref.uri))
                continue
            if ref.skipped is not None:
                status, reason = ObjectStatus.skipped.value, ref.skipped
            elif ref.readable:
                status, reason = ObjectStatus.listed.value, None
            else:
                status = ObjectStatus.unreadable.value
                reason = f"unreadable tier ({ref.storage_class}): matched on metadata only"
            if same and row[1:4] == (status, reason, 1) and row[_STORED_LISTED:] == values:
                # Listed again before it was read (a second `plan`): the row already is what the insert
                # below would write.
                found.again.append(ref.uri)
                continue
            found.fresh.append((ref.uri, *values, ident, scan_id, status, reason))
        return found

    def _write(self, found: _Changes, scan_id: int, touch: bool) -> None:
        """Write what `_compare` found: new and changed rows, listed fields that moved; with `touch`, the
        last-seen scan of the unchanged ones too."""
        seen = [*found.seen, *found.again] if touch else []
        if seen:
            self.db.execute(f"UPDATE objects SET last_seen=? WHERE uri IN ({', '.join('?' * len(seen))})",
                            (scan_id, *seen))
        if found.moved:
            self.db.executemany(
                f"UPDATE objects SET {', '.join(f'{c}=?' for c in _LISTED_COLUMNS.split(', '))}, last_seen=? "
                "WHERE uri=?", found.moved)
        if found.fresh:
            self.db.executemany(
                f"INSERT OR REPLACE INTO objects (uri, {_LISTED_COLUMNS}, identity, last_seen, status, reason) "
                f"VALUES ({', '.join('?' * 19)})", found.fresh)

    def _keep_under(self, folder: str, scan_id: int) -> None:
        """Objects under a folder that could not be listed count as seen: kept as they were."""
        self.db.execute("UPDATE objects SET last_seen=? WHERE uri>? AND uri<?", (scan_id, *_under(folder)))

    def mark_gone(self, target: str, scan_id: int) -> int:
        """Objects of a fully listed target that this scan did not see (after `record_listing`)."""
        cur = self.db.execute(
            "UPDATE objects SET status='gone', reason='no longer listed' "
            "WHERE target=? AND last_seen<>? AND status<>'gone'",
            (target, scan_id),
        )
        return cur.rowcount

    def scan_listed(self, scan_id: int) -> str:
        """SQL true for an object that scan `scan_id` listed (or kept, under a folder it could not list):
        one whose row it wrote, or, not gone, of a target it listed. Unchanged rows keep an older last-seen
        scan (`MergedListing`); the scan's targets were listed completely, else it would have failed."""
        row = self.db.execute("SELECT targets FROM scans WHERE id=?", (scan_id,)).fetchone()
        targets = ", ".join(_quoted(t) for t in (json.loads(row[0]) if row else []))
        return f"(last_seen={int(scan_id)} OR (status<>'gone' AND target IN ({targets})))"

    def keep_perceptual_mode(self, mode: str) -> int:
        """Hashes made in another `fingerprint.PERCEPTUAL_MODE` cannot be compared with this one's: their
        objects go back to `listed`, to be read and fingerprinted afresh (once), and the catalog records
        `mode`. Returns how many objects that is."""
        if self.meta("perceptual_mode") == mode:
            return 0
        with self.db:
            stale = self.db.execute("UPDATE objects SET status='listed' WHERE status='fingerprinted' "
                                    "AND phash IS NOT NULL").rowcount
            self.set_meta("perceptual_mode", mode)
        return stale

    # --- planning --------------------------------------------------------------------------------
    def work(self, shard: Shard | None = None, signatures: bool = True, faces: bool = False) -> Iterator[WorkItem]:
        """Objects that need bytes read: new or changed ones, and any object without a content key in a
        size class that has a collision (exact duplicates can only have equal sizes), unless an earlier
        head/tail read already told it apart (`headtail`; `tierscan.scanner.scan.plan` pulls it back in when a
        newcomer's
        head and tail match it).

        Provider checksums (`models.CHECKSUM_KINDS`) spare reads: a size class needs none for exact
        matching when every object has a value of one identity kind (a trusted MD5, a full-object CRC64NVME;
        for a multipart ETag, whose value depends on the part layout, only one value shared by all), or of
        one candidate kind whose values all differ; in other classes, an object whose candidate value no
        other object of its size shares needs none either.
        Images fingerprinted before near-duplicate signatures existed (or by a scan without them) are read
        once more for them, unless `signatures` is False (a scan that makes none); likewise for their faces
        when `faces` is True.
        With a `shard`, only its objects; the size classes still count every listed object.
        """
        for items in self.work_runs(shard, signatures, faces):
            yield from items

    def work_runs(self, shard: Shard | None = None, signatures: bool = True, faces: bool = False,
                  run: int | None = None) -> Iterator[list[WorkItem]]:
        """`work`, in runs of whole size classes holding about `run` objects each (a bigger size class is a
        run of its own), smallest sizes first. Byte-identical objects share a size, so a run holds every copy
        of what it holds; each run is found by queries of its own (the size index bounds it), so results
        of one run may be written before the next is taken, and memory holds one run rather than every
        object a first scan reads."""
        run = run or _WORK_RUN
        above = -1
        while True:
            bounds = self.db.execute("SELECT size, COUNT(*) FROM objects WHERE size>? GROUP BY size ORDER BY size",
                                     (above,))
            low = high = None
            held = 0
            while held < run and (row := bounds.fetchone()) is not None:
                low = row[0] if low is None else low
                high, held = row[0], held + row[1]
            bounds.close()
            if low is None or high is None:
                return
            above = high
            rows = self._work_rows(signatures, faces, low, high)
            items = [_work_item(row) for row in rows if shard is None or shard.owns(row["uri"])]
            if items:
                yield items

    def _work_rows(self, signatures: bool, faces: bool, low: int, high: int) -> list[sqlite3.Row]:
        """The rows of `work`'s objects of sizes `low` to `high`, by size then URI."""
        needs_signature = " OR ".join([*([_NEEDS_SIGNATURE] if signatures else []), *([_NEEDS_FACES] if faces else [])])
        needs_signature = f"({needs_signature})" if needs_signature else "0"
        sizes = f"size BETWEEN {int(low)} AND {int(high)}"
        return self.db.execute(
            f"{_colliding(sizes)}SELECT {_REF_COLUMNS}, status, sha256, {_NEEDS_EXACT} AS collides, "
            f"{needs_signature} AS needs_signature FROM objects "
            f"WHERE readable=1 AND size>0 AND {sizes} AND (status='listed' OR (status='fingerprinted' AND "
            f"sha256 IS NULL AND headtail IS NULL AND {_NEEDS_EXACT}) OR {needs_signature}) ORDER BY size, uri"
        ).fetchall()

    def size_rounds(self, sizes: Iterable[int], peers: int) -> Iterator[list[int]]:
        """These sizes in ascending runs holding about `peers` listed objects each (a size class with more
        is a run of its own)."""
        wanted = sorted(set(sizes))
        run: list[int] = []
        held = 0
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            counts = dict(self.db.execute(
                f"SELECT size, COUNT(*) FROM objects WHERE status<>'gone' AND readable=1 "
                f"AND size IN ({', '.join('?' * len(chunk))}) GROUP BY size", chunk).fetchall())
            for size in chunk:
                count = counts.get(size, 0)
                if run and held + count > peers:
                    yield run
                    run, held = [], 0
                run.append(size)
                held += count
        if run:
            yield run

    # A scan's read keys (`ReadSession`), kept in temporary tables rather than in memory: the sizes of its
    # whole reads without error, and a row an object it read otherwise (or read for SHA-256 alone). A whole
    # read needs no row: its object's catalog row has its key and SHA-256. `settled`: 1 on the row of a
    # whole read, 2 when that object has no trusted MD5 (its SHA-256 settles the key); `md5` and `sha256`
    # where a read for SHA-256 alone computed both.
    def begin_read_keys(self) -> None:
        """Empty tables of this scan's read keys."""
        with self.db:
            self._script("""
                DROP TABLE IF EXISTS temp.read_keys;
                DROP TABLE IF EXISTS temp.read_sizes;
                CREATE TEMP TABLE read_keys (uri TEXT PRIMARY KEY, key TEXT, identity TEXT, settled INTEGER,
                                             md5 TEXT, sha256 TEXT);
                CREATE INDEX temp.read_keys_md5 ON read_keys (md5) WHERE md5 IS NOT NULL;
                CREATE TEMP TABLE read_sizes (size INTEGER PRIMARY KEY)
            """)

    def end_read_keys(self) -> None:
        with self.db:
            self._script("DROP TABLE IF EXISTS temp.read_keys; DROP TABLE IF EXISTS temp.read_sizes")

    def record_read_keys(self, rows: Iterable[tuple[str, str, str, int, str | None, str | None]],
                         sizes: Iterable[int]) -> None:
        """`rows`: (uri, headtail key, identity: `ObjectRef.content_id` or the uri, settled, MD5, SHA-256), a
        later row of a URI replacing its earlier one; `sizes`: of whole reads."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO temp.read_keys VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.db.executemany("INSERT OR IGNORE INTO temp.read_sizes VALUES (?)", ((size,) for size in sizes))

    def record_read_identities(self, rows: Iterable[tuple[str, str]]) -> None:
        """(identity, uri): new identities of objects read (checksums fetched after their read)."""
        with self.db:
            self.db.executemany("UPDATE temp.read_keys SET identity=? WHERE uri=?", rows)

    def read_sha256(self, key: str, md5: str) -> str | None:
        """The SHA-256 a read of this scan computed for bytes of this key and MD5."""
        row = self._tuples("SELECT sha256 FROM temp.read_keys WHERE md5=? AND key=? LIMIT 1", (md5, key)).fetchone()
        return None if row is None else row[0]

    def whole_read_sizes_unhashed(self) -> set[int]:
        """The sizes of this scan's whole reads that hold a readable object not gone without a SHA-256: only
        there can a listed object still need a whole read for exact matching."""
        return {size for (size,) in self._tuples(
            "SELECT DISTINCT size FROM objects WHERE status<>'gone' AND readable=1 AND sha256 IS NULL "
            "AND size IN temp.read_sizes")}

    def size_peers(self, sizes: Iterable[int]
                   ) -> Iterator[tuple[str, ObjectRef | None, str | None, str | None, tuple[str, str, int] | None]]:
        """Every readable, listed object of these sizes: (uri, ref, headtail key, SHA-256, read), for
        narrowing. `read`: (key, identity, settled) of an object with a row of this scan's reads
        (`record_read_keys`), whose ref is None (the caller has what it needs of it: no record is built);
        else None."""
        wanted = sorted(set(sizes))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.db.execute(
                f"SELECT {_REF_COLUMNS_OF_O}, o.headtail, o.sha256, k.key AS read_key, k.identity AS read_identity, "
                "k.settled AS read_settled FROM objects o LEFT JOIN temp.read_keys k ON k.uri=o.uri "
                f"WHERE o.status<>'gone' AND o.readable=1 AND o.size IN ({marks})", chunk,
            ):
                if row["read_key"] is None:
                    yield row["uri"], _ref(row), row["headtail"], row["sha256"], None
                else:
                    read = (row["read_key"], row["read_identity"], row["read_settled"] or 0)
                    yield row["uri"], None, row["headtail"], row["sha256"], read

    def fill_copies(self) -> int:
        """Give listed objects the fingerprint of a fingerprinted object with the same size and content
        identity (byte-identical): a shard scan reads one copy of each and leaves the others to `tierscan merge`."""
        twin = (
            "FROM objects t WHERE t.size=objects.size AND t.status='fingerprinted' AND "
            f"{_content_identity('t.')}={_content_identity('objects.')}"
        )
        cur = self.db.execute(
            "UPDATE objects SET (status, reason, sha256, headtail, phash, dhash, near_sig, format, width, height,"
            " exif, faces) = (SELECT t.status, t.reason, t.sha256, t.headtail, t.phash, t.dhash, t.near_sig,"
            f" t.format, t.width, t.height, t.exif, t.faces {twin} ORDER BY t.uri LIMIT 1) WHERE status='listed'"
            f" AND readable=1 AND {_content_identity()} IS NOT NULL AND EXISTS (SELECT 1 {twin})"
        )
        return cur.rowcount

    def pending_checksums(self, kinds: Iterable[str]) -> Iterator[tuple[WorkItem, list[str]]]:
        """Objects whose checksum of these kinds the provider holds but the listing did not give (None in
        `ObjectRef.checksums`), in size classes that need reads for exact matching and where every object
        has one of that kind (given or not yet known): once fetched, they settle the class. Each as the read
        it would otherwise need, with its unknown kinds, by size then URI. Objects that need a restore are
        among them: a HEAD reads no bytes."""
        found: dict[str, tuple[WorkItem, list[str]]] = {}
        for kind in kinds:
            has = f"json_type(checksums, '$.\"{kind}\"')"
            rows = self.db.execute(
                f"{_COLLIDING}SELECT {_REF_COLUMNS}, status FROM objects WHERE size>0 AND {has}='null' AND (status "
                "IN ('listed', 'unreadable') OR (status='fingerprinted' AND sha256 IS NULL)) AND size IN colliding AND "
                f"size IN (SELECT size FROM objects WHERE status<>'gone' AND size>0 GROUP BY size "
                f"HAVING COUNT({has}) = COUNT(*))")
            for row in rows:
                item = WorkItem(_ref(row), want_sha256=True, want_metadata=row["status"] == ObjectStatus.listed)
                found.setdefault(row["uri"], (item, []))[1].append(kind)
        return iter(sorted(found.values(), key=lambda f: (f[0].ref.size, f[0].ref.uri)))

    def record_checksums(self, rows: Iterable[tuple[str, dict[str, str]]]) -> None:
        """Store checksum values fetched after the listing: (uri, kind -> value)."""
        with self.db:
            for uri, values in rows:
                for kind, value in values.items():
                    self.db.execute(f"UPDATE objects SET checksums=json_set(checksums, '$.\"{kind}\"', ?) "
                                    "WHERE uri=?", (value, uri))

    def needs_exact(self, uris: Iterable[str]) -> set[str]:
        """Those of these objects whose exact matching still needs their bytes (see `work`). One query for
        them all, through a temporary table: the size classes it weighs are built once, not per chunk."""
        with self.db:
            self._script("""
                DROP TABLE IF EXISTS temp.exact_asked;
                CREATE TEMP TABLE exact_asked (uri TEXT PRIMARY KEY)
            """)
            self.db.executemany("INSERT OR IGNORE INTO temp.exact_asked VALUES (?)", ((uri,) for uri in uris))
        try:
            return {row[0] for row in self._tuples(
                f"{_colliding('size IN (SELECT o.size FROM objects o JOIN temp.exact_asked a ON a.uri=o.uri)')}"
                f"SELECT uri FROM objects WHERE uri IN temp.exact_asked AND {_NEEDS_EXACT}")}
        finally:
            with self.db:
                self.db.execute("DROP TABLE temp.exact_asked")

    def skip_empty(self) -> int:
        """Zero-byte objects are recorded as skipped without a read."""
        cur = self.db.execute(
            "UPDATE objects SET status='skipped', reason='zero-byte object' WHERE size=0 AND status='listed'"
        )
        return cur.rowcount

    # --- results ---------------------------------------------------------------------------------
    def record_rows(self, rows: Iterable[tuple[tuple[str, ...], tuple[object, ...]]]) -> None:
        """Store results in one transaction: (columns, their values then the URI). A run of rows that set
        the same columns goes in one `executemany`, in order."""
        with self.db:
            for columns, run in itertools.groupby(rows, key=lambda row: row[0]):
                self.db.executemany(f"UPDATE objects SET {', '.join(f'{k}=?' for k in columns)} WHERE uri=?",
                                    (values for _, values in run))

    def replace_results(self, groups: list[Group], findings: list[Finding]) -> None:
        self._exact_written()
        with self.db:
            self.db.execute("DELETE FROM groups")
            self.db.execute("DELETE FROM findings")
            self.db.executemany(
                "INSERT INTO groups (id, kind, data) VALUES (?, ?, ?)",
                [(g.id, g.kind, g.model_dump_json()) for g in groups],
            )
            self.db.executemany("INSERT INTO findings (data) VALUES (?)", [(f.model_dump_json(),) for f in findings])

    def groups(self) -> list[Group]:
        return [Group.model_validate_json(r[0]) for r in self.db.execute("SELECT data FROM groups ORDER BY id")]

    def findings(self) -> list[Finding]:
        return [Finding.model_validate_json(r[0]) for r in self.db.execute("SELECT data FROM findings ORDER BY id")]

    def records(self, include_gone: bool = False) -> Iterator[InventoryRecord]:
        """Every object as an inventory record (placed: `located`), streamed in URI order."""
        where = "" if include_gone else "WHERE status<>'gone'"
        rows = self._tuples(f"SELECT exif, {_RECORD_COLUMNS} FROM objects {where} ORDER BY uri")
        yield from located(_record(exif_text, values) for exif_text, *values in rows)

    def _script(self, script: str) -> None:
        """Statements one by one: `executescript` would commit the transaction that is open."""
        for statement in script.split(";"):
            if statement.strip():
                self.db.execute(statement)

    def _tuples(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        cursor = self.db.cursor()
        cursor.row_factory = None  # plain tuples: `sqlite3.Row` finds each column by name
        return cursor.execute(sql, params)

    # --- grouping and reporting reads: streamed, so that memory does not grow with the objects -----------
    def exact_candidates(self) -> Iterator[tuple[Any, ...]]:
        """Every object that has byte-identical copies (of those not gone, not empty, with a SHA-256 or an
        identity checksum) as a plain tuple: its content label, then what exact grouping reads of it (uri,
        provider, size, tier, region, jurisdiction, modified, width, height, whether its metadata holds
        personal data, SHA-256, then its value of each of `IDENTITY_KINDS`), ordered by label then URI: equal
        labels are one group of
        copies, and only labels of two or more objects come. Objects are copies when they share a SHA-256, or
        a size and an identity token (`models.content_identities`: every identity kind, so an MD5-ETag copy
        and a multipart copy join through a shared full-object CRC64NVME), and so on transitively. Only
        tokens that two objects or more share can join anything, so only those are kept (one scan of the
        objects gives every token). Labels settle in SQL: each object starts with its least shared token and
        takes the least label of any object it shares a token with, until no label changes (a round or two
        on real estates). Where no such object has a checksum, SHA-256s alone join copies: each object's
        label is its SHA-256, found in one query."""
        columns = ("o.uri, o.provider, o.size, o.tier, o.region, o.jurisdiction, o.modified, o.width, o.height, "
                   f"{_PERSONAL.replace('exif', 'o.exif')}, o.sha256, "
                   f"{', '.join(_checksum(k, 'o.') for k in IDENTITY_KINDS)}")
        def live(o: str = "") -> str:
            return f"{o}status<>'gone' AND {o}size>0 AND NOT ({o}status='skipped' AND {o}reason IS '{NOT_AN_IMAGE}')"

        if self.db.execute(f"SELECT 1 FROM objects WHERE {live()} AND checksums<>'{{}}' LIMIT 1").fetchone() is None:
            yield from self._tuples(
                f"SELECT o.sha256, {columns} FROM objects o WHERE {live('o.')} AND o.sha256 IN (SELECT sha256 "
                f"FROM objects WHERE {live()} AND sha256<>'' GROUP BY sha256 HAVING COUNT(*) > 1) "
                "ORDER BY o.sha256, o.uri")
            return
        values = {k: f"NULLIF({_checksum(k)}, '')" for k in IDENTITY_KINDS}
        kinds = ["NULLIF(sha256, '')", *("'id:' || size || ':' || " + (v if CHECKSUM_KINDS[k].bare
                                                                        else f"'{k}:' || {v}")
                                         for k, v in values.items())]
        # Each object's tokens in one scan of the objects (a NULL where it has none of a kind; an object
        # without checksums has its SHA-256 alone, and the other kinds are not looked up).
        token = "CASE k.n " + " ".join(f"WHEN {n} THEN {sql}" for n, sql in enumerate(kinds)) + " END"
        numbers = " UNION ALL ".join(f"SELECT {n} AS n" for n in range(len(kinds)))
        self._script(f"""
            DROP TABLE IF EXISTS temp.copy_token;
            DROP TABLE IF EXISTS temp.copy_label;
            CREATE TEMP TABLE copy_token AS WITH every_token AS MATERIALIZED (
                SELECT uri, t FROM (SELECT uri, {token} AS t FROM objects CROSS JOIN ({numbers}) k
                                    WHERE {live()} AND (k.n=0 OR checksums<>'{{}}'))
                                    WHERE t IS NOT NULL)
                SELECT uri, t FROM every_token WHERE t IN (
                    SELECT t FROM every_token GROUP BY t HAVING COUNT(*) > 1);
            CREATE INDEX temp.copy_token_t ON copy_token (t);
            CREATE INDEX temp.copy_token_uri ON copy_token (uri);
            CREATE TEMP TABLE copy_label (uri TEXT PRIMARY KEY, root TEXT NOT NULL);
            INSERT INTO copy_label SELECT uri, MIN(t) FROM copy_token GROUP BY uri;
        """)
        least = ("(SELECT MIN(tl.root) FROM temp.copy_token k JOIN temp.token_label tl ON tl.t=k.t "
                 "WHERE k.uri=copy_label.uri)")
        # Labels only change through an object with two shared tokens or more (they bridge two labels).
        bridged = "SELECT 1 FROM temp.copy_token GROUP BY uri HAVING COUNT(*) > 1 LIMIT 1"
        if self.db.execute(bridged).fetchone() is not None:
            while True:
                self._script("""
                    DROP TABLE IF EXISTS temp.token_label;
                    CREATE TEMP TABLE token_label (t TEXT PRIMARY KEY, root TEXT NOT NULL);
                    INSERT INTO token_label SELECT k.t, MIN(l.root) FROM temp.copy_token k
                        JOIN temp.copy_label l ON l.uri=k.uri GROUP BY k.t HAVING COUNT(*) > 1;
                """)
                if not self.db.execute(f"UPDATE temp.copy_label SET root={least} WHERE root>{least}").rowcount:
                    break
        self._script("""
            CREATE INDEX temp.copy_label_root ON copy_label (root);
            DROP TABLE IF EXISTS temp.token_label;
            DROP TABLE temp.copy_token
        """)
        yield from self._tuples(
            f"SELECT l.root, {columns} FROM temp.copy_label l JOIN objects o ON o.uri=l.uri "
            "WHERE l.root IN (SELECT root FROM temp.copy_label GROUP BY root HAVING COUNT(*) > 1) "
            "ORDER BY l.root, o.uri")
        self.db.execute("DROP TABLE temp.copy_label")

    def exact_members(self) -> None:
        """`temp.exact_member` (uri, master): every member of the stored exact groups, for the queries below
        that leave out or flag redundant copies (the members other than their group's master). Made once
        while the exact groups stay as they are (a scan's evaluation and its report share it)."""
        if self._exact_members_fresh:
            return
        self._script("""
            DROP TABLE IF EXISTS temp.exact_member;
            CREATE TEMP TABLE exact_member (uri TEXT PRIMARY KEY, master TEXT NOT NULL);
            INSERT OR IGNORE INTO temp.exact_member SELECT json_extract(m.value, '$.uri'),
                json_extract(g.data, '$.master') FROM groups g, json_each(g.data, '$.members') m
                WHERE g.kind='exact';
        """)
        self._exact_members_fresh = True

    def _exact_written(self) -> None:
        self._exact_members_fresh = False

    def copies_of(self, uris: Iterable[str]) -> dict[str, list[str]]:
        """Of `uris`, each one that is an exact group's master -> the group's other members, in URI order
        (near groups hold masters, so this names the files behind each picture). Reads `temp.exact_member`
        (`exact_members`)."""
        self.exact_members()
        self.db.execute("CREATE INDEX IF NOT EXISTS temp.exact_member_master ON exact_member (master)")
        found: dict[str, list[str]] = {}
        for uri in uris:
            copies = [r[0] for r in self.db.execute(
                "SELECT uri FROM temp.exact_member WHERE master=? AND uri<>master ORDER BY uri", (uri,))]
            if copies:
                found[uri] = copies
        return found

    def group_members(self) -> None:
        """`temp.group_member` (uri, id, kind, master): every member of every stored group, for `group_of` and
        `is_master`, which look a URI up there rather than hold the groups."""
        self._script("""
            DROP TABLE IF EXISTS temp.group_member;
            CREATE TEMP TABLE group_member (uri TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
                                            master TEXT NOT NULL);
            INSERT INTO temp.group_member SELECT json_extract(m.value, '$.uri'), g.id, g.kind,
                json_extract(g.data, '$.master') FROM groups g, json_each(g.data, '$.members') m;
            CREATE INDEX temp.group_member_uri ON group_member (uri);
            CREATE INDEX temp.group_member_master ON group_member (master);
        """)

    def group_of(self, uri: str) -> Group | None:
        """The stored group `uri` is a member of: an exact group before a near one, then the least id
        (after `group_members`)."""
        row = self.db.execute("SELECT id FROM temp.group_member WHERE uri=? ORDER BY kind<>'exact', id LIMIT 1",
                              (uri,)).fetchone()
        return None if row is None else self.group(row[0])

    def is_master(self, uri: str) -> bool:
        """Whether `uri` is the master of a stored group (after `group_members`)."""
        return self.db.execute("SELECT 1 FROM temp.group_member WHERE master=? LIMIT 1", (uri,)).fetchone() is not None

    def masters_of(self, uris: Iterable[str]) -> dict[str, str]:
        """The exact group master of each of `uris` that is a member of one (after `exact_members`)."""
        found = {}
        for uri in set(uris):
            row = self.db.execute("SELECT master FROM temp.exact_member WHERE uri=?", (uri,)).fetchone()
            if row is not None:
                found[uri] = row[0]
        return found

    def near_rows(self) -> Iterator[tuple[Any, ...]]:
        """What near grouping reads of each image with perceptual hashes that is not a redundant exact copy
        (after `exact_members`), as plain tuples in URI order: uri, provider, size, tier, region,
        jurisdiction, modified, width, height, phash, dhash, capture time, camera serials (JSON), whether
        its metadata holds personal data (`ExifRecord.personal_data`), EXIF orientation."""
        return self._tuples(
            "SELECT uri, provider, size, tier, region, jurisdiction, modified, width, height, phash, dhash, "
            "json_extract(exif, '$.datetime_original'), json_extract(exif, '$.serials'), "
            f"{_PERSONAL}, json_extract(exif, '$.orientation') FROM objects "
            "WHERE status='fingerprinted' AND phash IS NOT NULL AND phash<>'' "
            "AND dhash IS NOT NULL AND dhash<>'' AND uri NOT IN "
            "(SELECT uri FROM temp.exact_member WHERE uri<>master) ORDER BY uri")

    def records_matching(self, condition: Condition, placed: bool = True) -> Iterator[InventoryRecord]:
        """The objects not gone that meet `condition` (and maybe others: a condition on a key with no
        column of its own holds for every object), as inventory records in URI order; `placed`: with
        where each photo was taken (`located`)."""
        where, params = _where(condition)
        sql = f"SELECT exif, {_RECORD_COLUMNS} FROM objects WHERE status<>'gone' AND {where} ORDER BY uri"
        found = (_record(exif_text, values) for exif_text, *values in self._tuples(sql, params))
        yield from located(found) if placed else found

    def personal_records(self) -> Iterator[InventoryRecord]:
        """The objects not gone whose metadata (or pixels) hold personal data, as inventory records in URI order."""
        return self.records_matching(HasPersonalData(frozenset([*_PERSONAL_KINDS, *_PIXEL_KINDS])))

    def records_of(self, uris: Iterable[str], placed: bool = True) -> dict[str, InventoryRecord]:
        """The inventory records of these objects (gone ones included), by URI; `placed`: with where each
        photo was taken (`located`)."""
        wanted = list(dict.fromkeys(uris))
        read: dict[str, InventoryRecord] = {}
        for start in range(0, len(wanted), _LISTING_BATCH):  # one query a batch of URIs, not one a URI
            batch = wanted[start : start + _LISTING_BATCH]
            sql = f"SELECT exif, {_RECORD_COLUMNS} FROM objects WHERE uri IN ({', '.join('?' * len(batch))})"
            for exif_text, *values in self._tuples(sql, batch):
                record = _record(exif_text, values)
                read[record.uri] = record
        found = [read[uri] for uri in wanted if uri in read]
        return {record.uri: record for record in (located(found) if placed else found)}

    def tally_records(self, alike: bool = True) -> Iterator[tuple[Holding, bool]]:
        """Every object not gone, as what the savings tally reads of it, with whether it is a redundant
        copy: a member of a stored exact group other than its master. `alike`: objects that are not
        redundant copies and that the tally treats alike (same provider, bucket, storage class, region,
        jurisdiction and tier, in the same bucket URI) come summed in SQL as one holding of their count
        (a redundant copy's early-deletion charge depends on its own age: those come one by one). In URI
        order of each holding's first object, so that whatever the tally sees first comes first."""
        self.exact_members()
        # The bucket part of a URI that ends in "/" + its key as written (`pricing.savings.bucket_uri`);
        # an object whose URI does not is a holding of its own.
        head = ("CASE WHEN e.uri IS NULL AND o.key<>'' AND instr(o.key, '%')=0 AND instr(o.uri, '?')=0 AND "
                "substr(o.uri, -length(o.key) - 1)='/' || o.key THEN substr(o.uri, 1, length(o.uri) - "
                "length(o.key) - 1) END")
        together = (f"GROUP BY COALESCE({head}, o.uri), o.provider, o.bucket, o.storage_class, o.region, "
                    "o.jurisdiction, o.tier ORDER BY MIN(o.uri)" if alike else "ORDER BY o.uri")
        uri, size, count = ("MIN(o.uri)", "SUM(o.size)", "COUNT(*)") if alike else ("o.uri", "o.size", "1")
        rows = self._tuples(
            f"SELECT {uri}, o.provider, o.bucket, o.key, {size}, o.tier, o.storage_class, o.region, "
            f"o.jurisdiction, o.modified, o.status, e.uri IS NOT NULL, {count} FROM objects o "
            "LEFT JOIN temp.exact_member e ON e.uri=o.uri AND e.uri<>e.master WHERE o.status<>'gone' "
            + together)
        tiers = {tier.value: tier for tier in Tier}
        for uri, provider, bucket, key, size, tier, storage_class, region, jurisdiction, modified, status, \
                redundant, n in rows:
            yield Holding(uri, provider, bucket, key, size, tiers[tier], storage_class, region, jurisdiction,
                          datetime.fromisoformat(modified), status, n), bool(redundant)

    def skipped(self) -> Iterator[tuple[str, str]]:
        """(uri, reason) of every object skipped, failed or unreadable, in URI order."""
        return self._tuples(
            "SELECT uri, COALESCE(NULLIF(reason, ''), status) FROM objects "
            "WHERE status IN ('skipped', 'failed', 'unreadable') ORDER BY uri")

    def skip_reasons(self) -> list[tuple[str, int]]:
        """Skipped, failed and unreadable objects by reason (as `skipped` gives it), each reason in the order
        it first appears there."""
        return [(r[0], r[1]) for r in self._tuples(
            "SELECT COALESCE(NULLIF(reason, ''), status) AS why, COUNT(*), MIN(uri) AS first FROM objects "
            "WHERE status IN ('skipped', 'failed', 'unreadable') GROUP BY why ORDER BY first")]

    def skipped_count(self) -> int:
        return int(self.db.execute(
            "SELECT COUNT(*) FROM objects WHERE status IN ('skipped', 'failed', 'unreadable')").fetchone()[0])

    def group_counts(self) -> dict[str, int]:
        """Stored groups by kind."""
        return {r[0]: r[1] for r in self.db.execute("SELECT kind, COUNT(*) FROM groups GROUP BY kind")}

    def each_group(self) -> Iterator[Group]:
        """The stored groups, streamed by id (`groups` gives the same as a list)."""
        for (data,) in self._tuples("SELECT data FROM groups ORDER BY id"):
            yield Group.model_validate_json(data)

    def group(self, group_id: str) -> Group | None:
        row = self.db.execute("SELECT data FROM groups WHERE id=?", (group_id,)).fetchone()
        return None if row is None else Group.model_validate_json(row[0])

    def each_finding(self) -> Iterator[Finding]:
        """The stored findings, streamed in order (`findings` gives the same as a list)."""
        for (data,) in self._tuples("SELECT data FROM findings ORDER BY id"):
            yield Finding.model_validate_json(data)

    def finding_counts(self) -> list[tuple[str, str, int]]:
        """Stored findings counted by policy and severity."""
        return [(r[0], r[1], r[2]) for r in self._tuples(
            "SELECT json_extract(data, '$.policy'), json_extract(data, '$.severity'), COUNT(*) FROM findings "
            "GROUP BY 1, 2 ORDER BY 1, 2")]

    @contextmanager
    def writing_results(self) -> Iterator[ResultWriter]:
        """Replace the stored groups and findings in one transaction, written as they are produced: readers
        see the old results until it commits. Findings come with their order key (`policies.order_key`) and
        a tie-break, and are stored in that order."""
        self.db.execute("BEGIN")
        try:
            self._script("""
                DELETE FROM groups;
                DELETE FROM findings;
                DROP TABLE IF EXISTS temp.new_finding;
                CREATE TEMP TABLE new_finding (key BLOB NOT NULL, tie TEXT NOT NULL, seq INTEGER PRIMARY KEY,
                                               data TEXT NOT NULL);
            """)
            self._exact_written()
            writer = ResultWriter(self.db, self._exact_written)
            yield writer
            writer.flush()
            self.db.execute("INSERT INTO findings (data) SELECT data FROM temp.new_finding ORDER BY key, tie, seq")
            self.db.execute("DROP TABLE temp.new_finding")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self._exact_written()
            raise

    def signatures(self) -> Signatures:
        """Near-duplicate signature blobs by URI, for the objects not gone that have one: read when asked
        for, not held (`Signatures`)."""
        return Signatures(self.db)

    # --- thumbnails --------------------------------------------------------------------------------
    # The report's pictures (`scan.thumbnails`), keyed by URI like the results and stored with the identity
    # of the bytes they show: a thumbnail counts only while its object keeps that identity, and a scan
    # deletes those of objects changed or gone (`prune_thumbnails`).
    def record_thumbnails(self, rows: Iterable[tuple[str, bytes]]) -> None:
        """Store (URI, WebP) thumbnails of objects just read, replacing any earlier one (one transaction)."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO thumbnails SELECT uri, identity, ? FROM objects "
                                "WHERE uri=?", [(data, uri) for uri, data in rows])

    def thumbnail(self, uris: Iterable[str]) -> bytes | None:
        """The thumbnail of the first of `uris` that has a current one (byte-identical copies show the same
        picture, so a caller passes an object and its copies)."""
        for uri in uris:
            row = self.db.execute("SELECT t.data FROM thumbnails t JOIN objects o ON o.uri=t.uri AND "
                                  "o.identity=t.identity AND o.status<>'gone' WHERE t.uri=?", (uri,)).fetchone()
            if row is not None:
                return bytes(row[0])
        return None

    def prune_thumbnails(self) -> int:
        """Delete the thumbnails of objects gone or changed since they were made; returns how many."""
        return self.db.execute(
            "DELETE FROM thumbnails WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.uri=thumbnails.uri AND "
            "o.identity=thumbnails.identity AND o.status<>'gone')").rowcount

    def mirror_phash(self, uri: str) -> int | None:
        """The pHash of the mirror image of `uri`'s picture, from its near-duplicate signature (None without
        a current one): a copy flipped left to right has a pHash near it."""
        blob = self.signatures().get(uri)
        return None if blob is None else mirror_phash(blob)

    def drop_faces(self) -> int:
        """Forget every face count, and why one failed (a scan with `scan.faces` off); returns how many."""
        with self.db:
            return self.db.execute(
                "UPDATE objects SET faces=NULL, reason=CASE WHEN status='fingerprinted' AND reason LIKE "
                f"'{FACES_NOT_ANALYSED}%' THEN NULL ELSE reason END WHERE faces IS NOT NULL OR "
                f"(status='fingerprinted' AND reason LIKE '{FACES_NOT_ANALYSED}%')").rowcount

    def drop_thumbnails(self) -> int:
        """Delete every thumbnail (a scan with `scan.thumbnails` off); returns how many."""
        return self.db.execute("DELETE FROM thumbnails").rowcount

    # --- user decisions ----------------------------------------------------------------------------
    def add_not_duplicates(self, uris: Iterable[str]) -> int:
        """Record that these objects are not duplicates of each other (every pair of them). Kept across
        rescans: near groups never join a recorded pair. Returns the number of new pairs."""
        pairs = list(itertools.combinations(sorted(set(uris)), 2))
        with self.db:
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO not_duplicates VALUES (?, ?)", pairs)
            return self.db.total_changes - before

    def known(self, uris: Iterable[str]) -> set[str]:
        """Those of `uris` that the catalog holds (gone ones included)."""
        return {u for u in uris if self.db.execute("SELECT 1 FROM objects WHERE uri=?", (u,)).fetchone()}

    def not_duplicates(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT a, b FROM not_duplicates ORDER BY a, b")]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM objects GROUP BY status")}


def _where(condition: Condition) -> tuple[str, list[object]]:
    """SQL over the objects table true for every object that meets `condition`, and its parameters."""
    match condition:
        case OneOf(key=key, values=values, negated=negated) if key in _TEXT_KEYS:
            marks = ", ".join("?" * len(values))
            sql = f'("{key}" IS NULL OR "{key}" NOT IN ({marks}))' if negated else f'"{key}" IN ({marks})'
            return sql, [*sorted(values)]
        case OneOf(key="taken_in" | "taken_near", negated=False):
            return _personal(["gps"]), []  # where a photo was taken comes from its GPS position
        case Between(key=key, low=low, high=high) if key in _INTEGER_KEYS:
            bounds = [(f'"{key}" >= ?', low), (f'"{key}" <= ?', high)]
            kept = [(sql, value) for sql, value in bounds if value is not None]
            return f"({' AND '.join(sql for sql, _ in kept) or '1'})", [value for _, value in kept]
        case HasPersonalData(kinds=kinds):
            return _personal(kinds), []
        case AllOf(parts=parts) | AnyOf(parts=parts):
            joined = [_where(part) for part in parts]
            word, empty = (" AND ", "1") if isinstance(condition, AllOf) else (" OR ", "0")
            return f"({word.join(sql for sql, _ in joined) or empty})", [p for _, ps in joined for p in ps]
    return "1", []  # a key without a column of its own: no narrowing


def _record(exif_text: str | None, values: Sequence[Any]) -> InventoryRecord:
    """An inventory record from the `_RECORD_COLUMNS` values and the exif JSON."""
    exif = ExifRecord.model_validate_json(exif_text) if exif_text else None
    published = len(_RECORD_SOURCES)
    checksums = {k: v for k, v in zip(UNPUBLISHED_KINDS, values[published:], strict=True) if v}
    fields = dict(zip(_RECORD_SOURCES, values[:published], strict=True))
    kinds = [*(exif.personal_data() if exif else []), *(["faces"] if fields["faces"] else [])]
    return InventoryRecord(**fields, checksums=checksums, exif=exif, personal_data=kinds)


def _under(folder: str) -> tuple[str, str]:
    """Bounds (both excluded) of the URIs under `folder` (which ends in "/"): every URI that starts with it
    sorts between it and `folder` with its last "/" raised to "0", the next character."""
    return folder, folder[:-1] + "0"


def _quoted(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _unique_batches(refs: Iterable[ObjectRef], size: int) -> Iterator[list[ObjectRef]]:
    """`refs` in order, in batches of at most `size` where no URI comes twice: a URI listed again (a
    second target over the same objects) is compared with what its first listing wrote."""
    batch: list[ObjectRef] = []
    uris: set[str] = set()
    for ref in refs:
        if len(batch) >= size or ref.uri in uris:
            yield batch
            batch, uris = [], set()
        batch.append(ref)
        uris.add(ref.uri)
    if batch:
        yield batch


def _work_item(row: sqlite3.Row) -> WorkItem:
    """A row of `Catalog._work_rows` as the read it asks for."""
    return WorkItem(_ref(row), want_sha256=bool(row["collides"]),
                    want_metadata=row["status"] == ObjectStatus.listed or bool(row["needs_signature"]))


def _ref(row: sqlite3.Row) -> ObjectRef:
    return ObjectRef(
        uri=row["uri"], provider=row["provider"], bucket=row["bucket"], key=row["key"], version=row["version"],
        size=row["size"], etag=row["etag"], checksums=json.loads(row["checksums"]), tier=Tier(row["tier"]),
        storage_class=row["storage_class"], readable=bool(row["readable"]), region=row["region"],
        jurisdiction=row["jurisdiction"], modified=datetime.fromisoformat(row["modified"]),
    )

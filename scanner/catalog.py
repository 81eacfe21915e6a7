"""The catalog: one SQLite file (WAL) holding every object seen, its fingerprint, and the last results.

It is what makes scans incremental: an object whose size, modified time, ETag and version are unchanged
keeps its fingerprint and is not read again. Objects no longer listed under a target are marked `gone`.
The schema is versioned (`meta.schema_version`); opening a catalog of another version is an error rather
than a silent migration.

Object status: `listed` (new or changed, not read yet), `fingerprinted`, `skipped` (its content is not a
usable image: zero bytes, not an image, corrupt; kept until the object changes), `failed` (the read failed:
vanished, denied, throttled; tried again by the next scan), `unreadable` (tier needs a restore; matched on
metadata only), `gone` (no longer listed). `reason` says why for the last four. A listing may give an
object up unread (`ObjectRef.skipped`: a FIFO, a symlink out of the scanned folder): it is recorded
`skipped` with that reason and never read. A folder that could not be listed is one such entry (its URI
ends in "/"); what the catalog holds under it is kept as it was, not marked gone, since nobody looked.

One command writes a catalog at a time: scan, plan, merge, apply --execute and near ignore hold its
lock (`scanner.catalog_lock`) from start to end, and a second one is refused at once with the holder's pid, host, command
and start time. Readers (report, inventory, near ignored, apply --plan) take no lock: WAL mode lets them
read the last committed state while a writer runs.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .errors import UsageError
from .models import ExifRecord, Finding, Group, InventoryRecord, ObjectRef, ScanStats
from .signatures import MAGIC

if TYPE_CHECKING:
    from .shard import Shard

__all__ = ["Catalog", "SCHEMA_VERSION", "WorkItem"]

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
    exif TEXT
);
CREATE INDEX IF NOT EXISTS objects_size ON objects (size);
CREATE INDEX IF NOT EXISTS objects_target ON objects (target, last_seen);
CREATE INDEX IF NOT EXISTS objects_status ON objects (status);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS not_duplicates (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
"""
# Columns added after catalogs were first written: (name, type). Opening an older catalog adds them.
_ADDED_COLUMNS = (("near_sig", "BLOB"), ("headtail", "TEXT"))

# Where each `InventoryRecord` field comes from: its column, or for the trusted checksums their entry in the
# checksums JSON, which SQLite takes out (`json.loads` of every row was a quarter of the time reading 20,000
# records took).
_RECORD_SOURCES = {name: name for name in (
    "uri", "provider", "bucket", "key", "version", "size", "tier", "storage_class", "region", "jurisdiction",
    "modified", "etag", "sha256", "phash", "dhash", "format", "width", "height", "status", "reason")} | {
    "md5": "json_extract(checksums, '$.md5')", "multipart_etag": "json_extract(checksums, '$.s3mpu')"}
# No signature yet, or one of an older layout (`signatures.MAGIC` names the current one).
_NEEDS_SIGNATURE = ("(status='fingerprinted' AND phash IS NOT NULL AND (near_sig IS NULL OR "
                    f"substr(near_sig, 1, {len(MAGIC)}) <> X'{MAGIC.hex()}'))")
# What a listing sets on every object it sees, in `Catalog.record_listing`'s order.
_LISTED_COLUMNS = ("target, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, "
                   "region, jurisdiction, modified")
_LISTING_BATCH = 500  # URIs per lookup: under SQLite's 999 bound parameters of old builds
_REF_COLUMNS = (
    "uri, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, region, "
    "jurisdiction, modified"
)


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


class Catalog:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"{path}: cannot open the catalog: {exc}") from exc
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
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

    # --- listing ---------------------------------------------------------------------------------
    def record_listing(self, refs: Iterable[ObjectRef], target: str, scan_id: int) -> tuple[int, int]:
        """Upsert listed objects. Returns (new or changed, unchanged).

        Compared with the catalog a batch at a time (one lookup of the batch's URIs), written with one
        statement per kind of change: a rescan of an unchanged estate costs a few statements per batch, not
        two per object."""
        changed = unchanged = 0
        with self.db:
            for batch in _unique_batches(refs, _LISTING_BATCH):
                c, u = self._record_batch(batch, target, scan_id)
                changed += c
                unchanged += u
        return changed, unchanged

    def _record_batch(self, batch: list[ObjectRef], target: str, scan_id: int) -> tuple[int, int]:
        """One batch of `record_listing` (no URI twice in it, inside its transaction)."""
        marks = ", ".join("?" * len(batch))
        cursor = self.db.cursor()
        cursor.row_factory = None
        stored = {row[0]: row[1:] for row in cursor.execute(
            f"SELECT uri, identity, status, {_LISTED_COLUMNS} FROM objects WHERE uri IN ({marks})",
            [ref.uri for ref in batch])}
        seen: list[tuple[str]] = []  # unchanged, and every listed field as stored: only last_seen moves
        moved: list[tuple[object, ...]] = []  # unchanged bytes; tier, region or config-derived fields moved
        fresh: list[tuple[object, ...]] = []  # new or changed
        for ref in batch:
            if ref.skipped is not None and ref.uri.endswith("/"):
                self._keep_under(ref.uri, scan_id)
            modified = ref.modified.isoformat()
            ident = _identity(ref, modified)
            values = (
                target, ref.provider, ref.bucket, ref.key, ref.version, ref.size, ref.etag,
                json.dumps(ref.checksums, sort_keys=True) if ref.checksums else "{}", ref.tier.value,
                ref.storage_class, int(ref.readable), ref.region, ref.jurisdiction, modified,
            )
            row = stored.get(ref.uri)
            if row is not None and row[0] == ident and row[1] in ("fingerprinted", "skipped", "unreadable"):
                # Same bytes: keep the fingerprint.
                if row[2:] == values:
                    seen.append((ref.uri,))
                else:
                    moved.append((*values, scan_id, ref.uri))
                continue
            if ref.skipped is not None:
                status, reason = "skipped", ref.skipped
            elif ref.readable:
                status, reason = "listed", None
            else:
                status = "unreadable"
                reason = f"unreadable tier ({ref.storage_class}): matched on metadata only"
            fresh.append((ref.uri, *values, ident, scan_id, status, reason))
        if seen:
            self.db.execute(f"UPDATE objects SET last_seen=? WHERE uri IN ({', '.join('?' * len(seen))})",
                            (scan_id, *(uri for (uri,) in seen)))
        if moved:
            self.db.executemany(
                f"UPDATE objects SET {', '.join(f'{c}=?' for c in _LISTED_COLUMNS.split(', '))}, last_seen=? "
                "WHERE uri=?", moved)
        if fresh:
            self.db.executemany(
                f"INSERT OR REPLACE INTO objects (uri, {_LISTED_COLUMNS}, identity, last_seen, status, reason) "
                f"VALUES ({', '.join('?' * 19)})", fresh)
        return len(fresh), len(seen) + len(moved)

    def _keep_under(self, folder: str, scan_id: int) -> None:
        """Objects under a folder that could not be listed count as seen: kept as they were."""
        # Every URI that starts with `folder` (which ends in "/") sorts between it and `folder` with its
        # last "/" raised to "0", the next character: one range of the primary key.
        self.db.execute("UPDATE objects SET last_seen=? WHERE uri>? AND uri<?",
                        (scan_id, folder, folder[:-1] + "0"))

    def mark_gone(self, target: str, scan_id: int) -> int:
        """Objects of a fully listed target that this scan did not see."""
        cur = self.db.execute(
            "UPDATE objects SET status='gone', reason='no longer listed' "
            "WHERE target=? AND last_seen<>? AND status<>'gone'",
            (target, scan_id),
        )
        return cur.rowcount

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
    def work(self, shard: Shard | None = None, signatures: bool = True) -> Iterator[WorkItem]:
        """Objects that need bytes read: new or changed ones, and any object without a content key in a
        size class that has a collision (exact duplicates can only have equal sizes), unless an earlier
        head/tail read already told it apart (`headtail`; `scanner.plan` pulls it back in when a newcomer's
        head and tail match it).

        A size class needs no reads for exact matching when every object has a trusted MD5 (different MD5s
        are different bytes) or every object has the same S3 multipart ETag (`models.content_identity`;
        different multipart ETags may be the same bytes in other part sizes).
        Images fingerprinted before near-duplicate signatures existed (or by a scan without them) are read
        once more for them, unless `signatures` is False (a scan that makes none).
        With a `shard`, only its objects; the size classes still count every listed object.
        """
        colliding = (
            "SELECT size FROM objects WHERE status<>'gone' AND size>0 GROUP BY size HAVING COUNT(*)>1 "
            "AND SUM(CASE WHEN json_extract(checksums, '$.md5') IS NULL THEN 1 ELSE 0 END) > 0 "
            "AND NOT (COUNT(json_extract(checksums, '$.s3mpu')) = COUNT(*) "
            "AND COUNT(DISTINCT json_extract(checksums, '$.s3mpu')) = 1)"
        )
        needs_signature = _NEEDS_SIGNATURE if signatures else "0"
        rows = self.db.execute(
            f"SELECT {_REF_COLUMNS}, status, sha256, size IN ({colliding}) AS collides, "
            f"{needs_signature} AS needs_signature FROM objects "
            "WHERE readable=1 AND size>0 AND (status='listed' OR (status='fingerprinted' AND sha256 IS NULL "
            f"AND headtail IS NULL AND size IN ({colliding})) OR {needs_signature}) ORDER BY uri"
        )
        for row in rows:
            if shard is not None and not shard.owns(row["uri"]):
                continue
            yield WorkItem(_ref(row), want_sha256=bool(row["collides"]),
                           want_metadata=row["status"] == "listed" or bool(row["needs_signature"]))

    def size_peers(self, sizes: Iterable[int]) -> Iterator[tuple[ObjectRef, str | None, str | None]]:
        """Every readable, listed object of these sizes, with its headtail key and SHA-256 (for narrowing)."""
        wanted = sorted(set(sizes))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.db.execute(
                f"SELECT {_REF_COLUMNS}, headtail, sha256 FROM objects WHERE status<>'gone' AND readable=1 "
                f"AND size IN ({marks})", chunk,
            ):
                yield _ref(row), row["headtail"], row["sha256"]

    def listed_among(self, uris: list[str]) -> set[str]:
        """Which of these objects are waiting for a read (new or changed since the last scan)."""
        marks = ", ".join("?" for _ in uris)
        rows = self.db.execute(f"SELECT uri FROM objects WHERE status='listed' AND uri IN ({marks})", uris)
        return {row[0] for row in rows}

    def fill_copies(self) -> int:
        """Give listed objects the fingerprint of a fingerprinted object with the same size and content
        identity (byte-identical): a shard scan reads one copy of each and leaves the others to `tierscan merge`."""
        identity = "COALESCE(json_extract({t}checksums, '$.md5'), json_extract({t}checksums, '$.s3mpu'))"
        twin = (
            "FROM objects t WHERE t.size=objects.size AND t.status='fingerprinted' AND "
            f"{identity.format(t='t.')}={identity.format(t='objects.')}"
        )
        cur = self.db.execute(
            "UPDATE objects SET (status, reason, sha256, headtail, phash, dhash, near_sig, format, width, height,"
            f" exif) = (SELECT t.status, t.reason, t.sha256, t.headtail, t.phash, t.dhash, t.near_sig, t.format,"
            f" t.width, t.height, t.exif {twin} ORDER BY t.uri LIMIT 1) WHERE status='listed' AND readable=1 AND"
            f" {identity.format(t='')} IS NOT NULL AND EXISTS (SELECT 1 {twin})"
        )
        return cur.rowcount

    def skip_empty(self) -> int:
        """Zero-byte objects are recorded as skipped without a read."""
        cur = self.db.execute(
            "UPDATE objects SET status='skipped', reason='zero-byte object' WHERE size=0 AND status='listed'"
        )
        return cur.rowcount

    # --- results ---------------------------------------------------------------------------------
    def record_fingerprints(self, rows: Iterable[tuple[str, dict[str, object]]]) -> None:
        """Store results: (uri, fields) where fields are catalog columns (exif as an ExifRecord). A run of
        rows that set the same columns goes in one `executemany`, in order."""
        with self.db:
            for columns, run in itertools.groupby(rows, key=lambda row: tuple(row[1])):
                self.db.executemany(
                    f"UPDATE objects SET {', '.join(f'{k}=?' for k in columns)} WHERE uri=?",
                    ((*(v.model_dump_json() if isinstance(v, ExifRecord) else v for v in fields.values()), uri)
                     for uri, fields in run))

    def replace_results(self, groups: list[Group], findings: list[Finding]) -> None:
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
        """Every object as an inventory record, streamed in URI order."""
        where = "" if include_gone else "WHERE status<>'gone'"
        cursor = self.db.cursor()
        cursor.row_factory = None  # plain tuples: `sqlite3.Row` finds each column by name
        cursor.execute(f"SELECT exif, {', '.join(_RECORD_SOURCES.values())} FROM objects {where} ORDER BY uri")
        for exif_text, *values in cursor:
            exif = ExifRecord.model_validate_json(exif_text) if exif_text else None
            yield InventoryRecord(**dict(zip(_RECORD_SOURCES, values)), exif=exif,
                                  personal_data=exif.personal_data() if exif else [])

    def object_rows(self) -> Iterator[dict[str, Any]]:
        """Every stored object row, gone ones included, as column -> value (for `scanner.merge`)."""
        for row in self.db.execute("SELECT * FROM objects ORDER BY uri"):
            yield dict(row)

    def replace_objects(self, rows: Iterable[dict[str, Any]]) -> int:
        """Make these rows the whole object table (a merged catalog is derived from its parts)."""
        count = 0
        with self.db:
            self.db.execute("DELETE FROM objects")
            for row in rows:
                cols = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                self.db.execute(f"INSERT INTO objects ({cols}) VALUES ({marks})", tuple(row.values()))
                count += 1
        return count

    def signatures(self) -> dict[str, bytes]:
        """Near-duplicate signature blobs by URI, for the objects that have one."""
        rows = self.db.execute("SELECT uri, near_sig FROM objects WHERE near_sig IS NOT NULL AND status<>'gone'")
        return {r[0]: r[1] for r in rows}

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


def _ref(row: sqlite3.Row) -> ObjectRef:
    return ObjectRef(
        uri=row["uri"], provider=row["provider"], bucket=row["bucket"], key=row["key"], version=row["version"],
        size=row["size"], etag=row["etag"], checksums=json.loads(row["checksums"]), tier=row["tier"],
        storage_class=row["storage_class"], readable=bool(row["readable"]), region=row["region"],
        jurisdiction=row["jurisdiction"], modified=row["modified"],
    )

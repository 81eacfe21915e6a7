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
from .models import (
    CHECKSUM_KINDS,
    IDENTITY_KINDS,
    ExifRecord,
    Finding,
    Group,
    InventoryRecord,
    ObjectRef,
    ScanStats,
    Trust,
)
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
    "md5": "json_extract(checksums, '$.md5')", "multipart_etag": "json_extract(checksums, '$.s3mpu')",
    "crc64nvme": "json_extract(checksums, '$.crc64nvme')"}
# No signature yet, or one of an older layout (`signatures.MAGIC` names the current one).
_NEEDS_SIGNATURE = ("(status='fingerprinted' AND phash IS NOT NULL AND (near_sig IS NULL OR "
                    f"substr(near_sig, 1, {len(MAGIC)}) <> X'{MAGIC.hex()}'))")
_REF_COLUMNS = (
    "uri, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, region, "
    "jurisdiction, modified"
)


def _checksum(kind: str, table: str = "") -> str:
    """SQL for an object's value of a checksum kind; NULL when it has none, or its value is not known yet."""
    return f"json_extract({table}checksums, '$.\"{kind}\"')"


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
_COLLIDING = ("WITH colliding(size) AS MATERIALIZED (SELECT size FROM objects WHERE status<>'gone' AND size>0 "
              f"GROUP BY size HAVING COUNT(*)>1 AND NOT ({_settled_class()})) ")
# An object that needs bytes read for exact matching (`Catalog.work`), in a query that starts `_COLLIDING`.
_NEEDS_EXACT = f"(size IN colliding AND NOT ({_unique_candidate()}))"


def _kept_checksums(listed: dict[str, str | None], stored: str) -> dict[str, str | None]:
    """The checksums of an unchanged object: the listing's, with the values a HEAD fetched earlier for the
    kinds the listing gives without one (the object is the same, so they still hold)."""
    if None not in listed.values():
        return listed
    known = json.loads(stored)
    return {kind: known.get(kind) if value is None else value for kind, value in listed.items()}


def _identity(ref: ObjectRef) -> str:
    """What must stay equal for a stored fingerprint to still describe the object. An object the listing
    skipped has its reason in it: when it becomes a readable object, or is skipped for another reason,
    it has changed."""
    if ref.skipped is not None:
        return f"skipped|{ref.skipped}|{ref.modified.isoformat()}"
    return f"{ref.size}|{ref.modified.isoformat()}|{ref.etag or ''}|{ref.version or ''}"


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
        """Upsert listed objects. Returns (new or changed, unchanged)."""
        changed = unchanged = 0
        with self.db:
            for ref in refs:
                if ref.skipped is not None and ref.uri.endswith("/"):
                    self._keep_under(ref.uri, scan_id)
                ident = _identity(ref)
                row = self.db.execute("SELECT identity, status, checksums FROM objects WHERE uri=?", (ref.uri,)).fetchone()
                values = (
                    ref.provider, ref.bucket, ref.key, ref.version, ref.size, ref.etag,
                    json.dumps(ref.checksums, sort_keys=True), ref.tier.value, ref.storage_class,
                    int(ref.readable), ref.region, ref.jurisdiction, ref.modified.isoformat(),
                )
                if row is not None and row["identity"] == ident and row["status"] in ("fingerprinted", "skipped", "unreadable"):
                    # Same bytes: keep the fingerprint. Tier, region and config-derived fields may move.
                    checksums = json.dumps(_kept_checksums(ref.checksums, row["checksums"]), sort_keys=True)
                    self.db.execute(
                        "UPDATE objects SET target=?, provider=?, bucket=?, key=?, version=?, size=?, etag=?,"
                        " checksums=?, tier=?, storage_class=?, readable=?, region=?, jurisdiction=?,"
                        " modified=?, last_seen=? WHERE uri=?",
                        (target, *values[:6], checksums, *values[7:], scan_id, ref.uri),
                    )
                    unchanged += 1
                    continue
                if ref.skipped is not None:
                    status, reason = "skipped", ref.skipped
                elif ref.readable:
                    status, reason = "listed", None
                else:
                    status = "unreadable"
                    reason = f"unreadable tier ({ref.storage_class}): matched on metadata only"
                self.db.execute(
                    "INSERT OR REPLACE INTO objects (uri, target, provider, bucket, key, version, size, etag,"
                    " checksums, tier, storage_class, readable, region, jurisdiction, modified, identity,"
                    " last_seen, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ref.uri, target, *values, ident, scan_id, status, reason),
                )
                changed += 1
        return changed, unchanged

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

        Provider checksums (`models.CHECKSUM_KINDS`) spare reads: a size class needs none for exact
        matching when every object has a value of one identity kind (a trusted MD5, a full-object CRC64NVME;
        for a multipart ETag, whose value depends on the part layout, only one value shared by all), or of
        one candidate kind whose values all differ; in other classes, an object whose candidate value no
        other object of its size shares needs none either.
        Images fingerprinted before near-duplicate signatures existed (or by a scan without them) are read
        once more for them, unless `signatures` is False (a scan that makes none).
        With a `shard`, only its objects; the size classes still count every listed object.
        """
        needs_signature = _NEEDS_SIGNATURE if signatures else "0"
        rows = self.db.execute(
            f"{_COLLIDING}SELECT {_REF_COLUMNS}, status, sha256, {_NEEDS_EXACT} AS collides, "
            f"{needs_signature} AS needs_signature FROM objects "
            "WHERE readable=1 AND size>0 AND (status='listed' OR (status='fingerprinted' AND sha256 IS NULL "
            f"AND headtail IS NULL AND {_NEEDS_EXACT}) OR {needs_signature}) ORDER BY uri"
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
        twin = (
            "FROM objects t WHERE t.size=objects.size AND t.status='fingerprinted' AND "
            f"{_content_identity('t.')}={_content_identity('objects.')}"
        )
        cur = self.db.execute(
            "UPDATE objects SET (status, reason, sha256, headtail, phash, dhash, near_sig, format, width, height,"
            f" exif) = (SELECT t.status, t.reason, t.sha256, t.headtail, t.phash, t.dhash, t.near_sig, t.format,"
            f" t.width, t.height, t.exif {twin} ORDER BY t.uri LIMIT 1) WHERE status='listed' AND readable=1 AND"
            f" {_content_identity()} IS NOT NULL AND EXISTS (SELECT 1 {twin})"
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
                item = WorkItem(_ref(row), want_sha256=True, want_metadata=row["status"] == "listed")
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
        """Those of these objects whose exact matching still needs their bytes (see `work`)."""
        wanted = list(uris)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(r[0] for r in self.db.execute(
                f"{_COLLIDING}SELECT uri FROM objects WHERE uri IN ({marks}) AND {_NEEDS_EXACT}", chunk))
        return found

    def skip_empty(self) -> int:
        """Zero-byte objects are recorded as skipped without a read."""
        cur = self.db.execute(
            "UPDATE objects SET status='skipped', reason='zero-byte object' WHERE size=0 AND status='listed'"
        )
        return cur.rowcount

    # --- results ---------------------------------------------------------------------------------
    def record_fingerprints(self, rows: Iterable[tuple[str, dict[str, object]]]) -> None:
        """Store results: (uri, fields) where fields are catalog columns (exif as an ExifRecord)."""
        with self.db:
            for uri, fields in rows:
                fields = dict(fields)
                if isinstance(fields.get("exif"), ExifRecord):
                    fields["exif"] = fields["exif"].model_dump_json()  # type: ignore[union-attr]
                cols = ", ".join(f"{k}=?" for k in fields)
                self.db.execute(f"UPDATE objects SET {cols} WHERE uri=?", (*fields.values(), uri))

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


def _ref(row: sqlite3.Row) -> ObjectRef:
    return ObjectRef(
        uri=row["uri"], provider=row["provider"], bucket=row["bucket"], key=row["key"], version=row["version"],
        size=row["size"], etag=row["etag"], checksums=json.loads(row["checksums"]), tier=row["tier"],
        storage_class=row["storage_class"], readable=bool(row["readable"]), region=row["region"],
        jurisdiction=row["jurisdiction"], modified=row["modified"],
    )

"""`tierscan merge`: combine shard catalogs into one, then group and evaluate policies over the whole.

Each part takes only the rows of its own shard (its catalog's `meta.shard`; a catalog of an unsharded
scan gives every row): a shard lists every object, but only its own rows carry fingerprints. When parts
disagree about an object (stale parts of another shard count, overlapping unsharded catalogs), the row
with the newest identity wins (the later modified time, then the part whose scan started later, then the
more complete status) and the disagreement is reported, never silently dropped.

A part that a shard scan still holds (its `CatalogLock`) is refused, never merged half written.

Pairs recorded as "not duplicates" in any part (or earlier in the merged catalog) are kept. Each object's
thumbnail comes from the part whose row won, when that part made one of the same bytes.

The parts are grouped and evaluated with the settings their scans stored, which must agree, or with a
config given instead (`tierscan.scanner.scan.settings.merge_settings`); the merged catalog stores them.

The merge runs in SQLite: each part is attached in turn and its own rows' ranking keys go to a temporary
table, a window over it picks each URI's winner, and the winners' rows are copied part by part with
`INSERT ... SELECT`, so no row passes through Python and memory does not grow with the objects.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import ObjectStatus, ScanStats
from tierscan.scanner.core.shard import parse_shard
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.catalog_lock import CatalogLock
from tierscan.scanner.scan.pipeline import evaluate_results
from tierscan.scanner.scan.progress import Progress
from tierscan.scanner.scan.settings import (
    SettingsError,
    StoredSettings,
    merge_settings,
    store_settings,
    stored_settings,
)

__all__ = ["MergeResult", "merge_catalogs"]

log = logging.getLogger("tierscan")

_EPOCH = datetime.min.replace(tzinfo=UTC)
# Ties between rows of equal identity go to the one that knows more.
_STATUS_RANK = {ObjectStatus.fingerprinted: 4, ObjectStatus.skipped: 3, ObjectStatus.unreadable: 3,
                ObjectStatus.failed: 2, ObjectStatus.gone: 1, ObjectStatus.listed: 0}


@dataclass
class MergeResult:
    """What the merge combined, where parts disagreed, and the settings it grouped and evaluated with."""

    objects: int = 0
    parts: int = 0
    conflicts: list[str] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    config: Config = field(default_factory=Config)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Part:
    name: str
    started: datetime
    scan_id: int  # its last scan: the rows it saw then are what it listed
    catalog: Catalog


# The ranking of one URI's rows, best first: the later modified time, the part whose scan started later,
# the more complete status, a SHA-256, then the part named first.
_BEST_FIRST = "{t}moment DESC, {t}started DESC, {t}status_rank DESC, {t}has_sha DESC, {t}part"
_RANK_SQL = "CASE status " + " ".join(f"WHEN '{s.value}' THEN {r}" for s, r in _STATUS_RANK.items()) + " ELSE 0 END"


def _merge_rows(into: Catalog, parts: list[_Part], conflicts: list[str]) -> tuple[int, int]:
    """Replace `into`'s objects with the parts' winning rows; returns how many, and how many objects the
    parts' last scans listed (each once, however many parts listed it). Each part gives only the rows of
    its own shard (all of them for an unsharded catalog)."""
    db = into.db
    columns = ", ".join(f'"{r[1]}"' for r in db.execute("PRAGMA main.table_info(objects)"))
    shards = [parse_shard(spec) if (spec := p.catalog.meta("shard")) else None for p in parts]
    db.create_function("owned", 2, lambda i, uri: (shard := shards[i]) is None or shard.owns(uri),
                       deterministic=True)
    db.create_function("moment", 1, lambda text: datetime.fromisoformat(text).timestamp(), deterministic=True)
    for table in ("merge_rank", "merge_win", "merge_rows"):
        db.execute(f"DROP TABLE IF EXISTS temp.{table}")
    db.execute("CREATE TEMP TABLE merge_rank (uri TEXT NOT NULL, part INTEGER NOT NULL, moment REAL NOT NULL, "
               "started REAL NOT NULL, status_rank INTEGER NOT NULL, has_sha INTEGER NOT NULL, "
               "identity TEXT NOT NULL, status TEXT NOT NULL, listed INTEGER NOT NULL)")
    for i, part in enumerate(parts):
        with _attached(db, part.catalog.path):
            db.execute(f"INSERT INTO temp.merge_rank SELECT uri, ?, moment(modified), ?, {_RANK_SQL}, "
                       f"sha256 IS NOT NULL, identity, status, {part.catalog.scan_listed(part.scan_id)} "
                       "FROM part.objects WHERE owned(?, uri)", (i, part.started.timestamp(), i))
    db.execute("CREATE INDEX temp.merge_rank_uri ON merge_rank (uri)")
    listed = db.execute("SELECT COUNT(DISTINCT uri) FROM temp.merge_rank WHERE listed").fetchone()[0]
    db.execute(f"CREATE TEMP TABLE merge_win AS SELECT uri, part, identity, status FROM (SELECT *, ROW_NUMBER() "
               f"OVER (PARTITION BY uri ORDER BY {_BEST_FIRST.format(t='')}) AS n FROM temp.merge_rank) WHERE n=1")
    db.execute("CREATE INDEX temp.merge_win_part ON merge_win (part, uri)")
    rows = db.execute(f"SELECT r.uri, r.part, r.identity, r.status, w.part, w.identity, w.status FROM "
                      f"temp.merge_rank r JOIN temp.merge_win w ON w.uri=r.uri WHERE r.identity<>w.identity "
                      f"ORDER BY r.uri, {_BEST_FIRST.format(t='r.')}")
    for uri, rivals in itertools.groupby(rows, key=lambda row: row[0]):
        first = next(rivals)
        kept = f"{parts[first[4]].name}: {first[5]} ({first[6]})"
        others = "; ".join(f"{parts[p].name}: {ident} ({status})" for _, p, ident, status, *_ in [first, *rivals])
        conflicts.append(f"{uri}: kept {kept}; differs from {others}")
    db.execute(f"CREATE TEMP TABLE merge_rows AS SELECT {columns} FROM main.objects WHERE 0")
    for i, part in enumerate(parts):
        with _attached(db, part.catalog.path):
            db.execute(f"INSERT INTO temp.merge_rows SELECT {columns} FROM part.objects "
                       "WHERE uri IN (SELECT uri FROM temp.merge_win WHERE part=?)", (i,))
    with db:
        db.execute("DELETE FROM main.objects")
        count = db.execute(f"INSERT INTO main.objects ({columns}) SELECT {columns} FROM temp.merge_rows "
                           "ORDER BY uri").rowcount
        db.execute("DELETE FROM main.thumbnails")
    for i, part in enumerate(parts):  # the winning row's thumbnail, if its part made one of those bytes
        with _attached(db, part.catalog.path), db:
            db.execute("INSERT OR REPLACE INTO main.thumbnails SELECT t.uri, t.identity, t.data FROM "
                       "part.thumbnails t JOIN temp.merge_win w ON w.uri=t.uri AND w.identity=t.identity "
                       "WHERE w.part=?", (i,))
    for table in ("merge_rank", "merge_win", "merge_rows"):
        db.execute(f"DROP TABLE temp.{table}")
    return count, listed


@contextmanager
def _attached(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """`path` attached as `part`, to read from (one at a time: SQLite attaches ten databases at most)."""
    db.execute("ATTACH DATABASE ? AS part", (str(path),))
    try:
        yield
    finally:
        db.execute("DETACH DATABASE part")


def _combined_stats(stats: list[ScanStats]) -> ScanStats:
    """Reads add up across shards; listings do not (every shard lists everything), so unchanged and gone
    are the largest part's; `listed` is counted from the rows (`_merge_rows`)."""
    by_tier: Counter[str] = Counter()
    for s in stats:
        by_tier.update(s.bytes_read_by_tier)
    started = [s.started for s in stats if s.started]
    finished = [s.finished for s in stats if s.finished]
    # Exact per-object fees add up too, when every part that read anything recorded them.
    fees: dict[str, Any] = {}
    if all(s.requests_by_tier or not s.requests for s in stats):
        fees = {"requests_by_tier": dict(sum((Counter(s.requests_by_tier) for s in stats), Counter())),
                "retrieval_usd": sum(s.retrieval_usd for s in stats),
                "request_usd": sum(s.request_usd for s in stats)}
    return ScanStats(
        started=min(started) if started else None, finished=max(finished) if finished else None,
        unchanged=max((s.unchanged for s in stats), default=0),
        gone=max((s.gone for s in stats), default=0), fingerprinted=sum(s.fingerprinted for s in stats),
        requests=sum(s.requests for s in stats), bytes_read=sum(s.bytes_read for s in stats),
        bytes_read_by_tier=dict(by_tier), cost_usd=sum(s.cost_usd for s in stats),
        **fees,
        left_unread=sum(s.left_unread for s in stats), left_unread_bytes=sum(s.left_unread_bytes for s in stats),
    )


def _parts_settings(parts: list[_Part], config_given: bool, warnings: list[str]
                    ) -> list[tuple[str, StoredSettings | None]]:
    """Each part's stored settings; with a config given, a part whose settings cannot be used is merged
    with a warning instead of refused."""
    found: list[tuple[str, StoredSettings | None]] = []
    for part in parts:
        try:
            found.append((part.name, stored_settings(part.catalog)))
        except SettingsError as exc:
            if not config_given:
                raise
            warnings.append(f"warning: {part.name}: the scan settings stored in this part {exc.problem}")
            found.append((part.name, None))
    return found


def merge_catalogs(parts: list[Path], into: Catalog, config: Config | None, now: datetime | None = None,
                   config_name: str = "--config", progress: Progress | None = None) -> MergeResult:
    """Replace `into`'s objects with the parts' merged rows, then group and evaluate policies with `config`
    (named `config_name` in warnings), or with the parts' stored settings when it is None; `progress` is
    told each step."""
    if not parts:
        raise UsageError("merge: name at least one part catalog")
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UsageError(f"merge: no part catalog at {', '.join(missing)}")
    if any(p.resolve() == into.path.resolve() for p in parts):
        raise UsageError(f"merge: {into.path} is also a part; merge into a new --db file")
    result = MergeResult(parts=len(parts))
    with ExitStack() as stack:
        opened = []
        locked: set[Path] = set()
        for path in parts:
            if path.resolve() not in locked:  # a part named twice is one file to lock
                locked.add(path.resolve())
                stack.enter_context(CatalogLock(path))
            catalog = stack.enter_context(Catalog(path))
            last = catalog.last_scan()
            opened.append(_Part(str(path), last.started or _EPOCH, -1 if last.scan_id is None else last.scan_id,
                                catalog))
        named = _parts_settings(opened, config is not None, result.warnings)
        result.config, warnings = merge_settings(named, config, config_name)
        result.warnings += warnings
        stats = _combined_stats([p.catalog.last_scan() for p in opened])

        result.objects, listed = _merge_rows(into, opened, result.conflicts)
        into.fill_copies()  # byte-identical copies a shard left to the shard that read their twin
        for part in opened:  # user decisions ("not duplicates") recorded in any part still hold
            for pair in part.catalog.not_duplicates():
                into.add_not_duplicates(pair)
        modes = {mode for p in opened if (mode := p.catalog.meta("perceptual_mode")) is not None}
    scan_id = into.begin_scan([str(p) for p in parts], stats.started or now or datetime.now(UTC))
    into.set_meta("shard", "")
    if len(modes) == 1:
        into.set_meta("perceptual_mode", modes.pop())
    elif modes:  # unrecorded, so the next scan of the merged catalog hashes them all again, one way
        log.warning("merge: the parts' images were hashed by different tierscan versions: near groups may "
                    "miss pairs until the next scan of %s", into.path)
    evaluate_results(result.config, into, now or datetime.now(UTC), progress=progress)
    store_settings(result.config, into)
    result.stats = stats.model_copy(update={"scan_id": scan_id, "listed": listed})
    into.finish_scan(result.stats)
    return result

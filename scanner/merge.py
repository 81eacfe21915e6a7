"""`tierscan merge`: combine shard catalogs into one, then group and evaluate policies over the whole.

Each part takes only the rows of its own shard (its catalog's `meta.shard`; a catalog of an unsharded
scan gives every row): a shard lists every object, but only its own rows carry fingerprints. When parts
disagree about an object (stale parts of another shard count, overlapping unsharded catalogs), the row
with the newest identity wins (the later modified time, then the part whose scan started later, then the
more complete status) and the disagreement is reported, never silently dropped.

A part that a shard scan still holds (its `CatalogLock`) is refused, never merged half written.

Pairs recorded as "not duplicates" in any part (or earlier in the merged catalog) are kept.

The parts are streamed in URI order and merged like sorted runs, so memory stays bounded by the number
of parts, not by the number of objects.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .catalog_lock import CatalogLock
from .config import Config
from .errors import UsageError
from .models import ScanStats
from .pipeline import evaluate_results
from .shard import parse_shard

__all__ = ["MergeResult", "merge_catalogs"]

log = logging.getLogger("tierscan")

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
# Ties between rows of equal identity go to the one that knows more.
_STATUS_RANK = {"fingerprinted": 4, "skipped": 3, "unreadable": 3, "failed": 2, "gone": 1, "listed": 0}


@dataclass
class MergeResult:
    """What the merge combined, and where parts disagreed."""

    objects: int = 0
    parts: int = 0
    conflicts: list[str] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)


@dataclass(frozen=True)
class _Part:
    name: str
    started: datetime
    catalog: Catalog


def _owned_rows(part: _Part) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any], str]]:
    """The part's own rows in URI order, each with its ranking key."""
    spec = part.catalog.meta("shard")
    shard = parse_shard(spec) if spec else None
    for row in part.catalog.object_rows():
        if shard is None or shard.owns(row["uri"]):
            modified = datetime.fromisoformat(row["modified"])
            rank = (modified, part.started, _STATUS_RANK.get(row["status"], 0), row["sha256"] is not None)
            yield row["uri"], rank, row, part.name


def _combined_stats(stats: list[ScanStats]) -> ScanStats:
    """Reads add up across shards; listings do not (every shard lists everything), so those are the
    largest part's."""
    by_tier: Counter[str] = Counter()
    for s in stats:
        by_tier.update(s.bytes_read_by_tier)
    started = [s.started for s in stats if s.started]
    finished = [s.finished for s in stats if s.finished]
    return ScanStats(
        started=min(started) if started else None, finished=max(finished) if finished else None,
        listed=max((s.listed for s in stats), default=0), unchanged=max((s.unchanged for s in stats), default=0),
        gone=max((s.gone for s in stats), default=0), fingerprinted=sum(s.fingerprinted for s in stats),
        requests=sum(s.requests for s in stats), bytes_read=sum(s.bytes_read for s in stats),
        bytes_read_by_tier=dict(by_tier), cost_usd=sum(s.cost_usd for s in stats),
        # Exact per-object fees add up too, when every part that read anything recorded them.
        **({"requests_by_tier": dict(sum((Counter(s.requests_by_tier) for s in stats), Counter())),
            "retrieval_usd": sum(s.retrieval_usd for s in stats), "request_usd": sum(s.request_usd for s in stats)}
           if all(s.requests_by_tier or not s.requests for s in stats) else {}),
        left_unread=sum(s.left_unread for s in stats), left_unread_bytes=sum(s.left_unread_bytes for s in stats),
    )


def merge_catalogs(parts: list[Path], into: Catalog, config: Config, now: datetime | None = None) -> MergeResult:
    """Replace `into`'s objects with the parts' merged rows, then group and evaluate policies."""
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
            opened.append(_Part(str(path), catalog.last_scan().started or _EPOCH, catalog))
        stats = _combined_stats([p.catalog.last_scan() for p in opened])

        def winners() -> Iterator[dict[str, Any]]:
            streams = [_owned_rows(p) for p in opened]
            for uri, same in itertools.groupby(heapq.merge(*streams, key=lambda c: c[0]), key=lambda c: c[0]):
                candidates = sorted(same, key=lambda c: c[1], reverse=True)
                best = candidates[0]
                rivals = [c for c in candidates[1:] if c[2]["identity"] != best[2]["identity"]]
                if rivals:
                    others = "; ".join(f"{c[3]}: {c[2]['identity']} ({c[2]['status']})" for c in rivals)
                    result.conflicts.append(f"{uri}: kept {best[3]}: {best[2]['identity']} ({best[2]['status']});"
                                            f" differs from {others}")
                yield best[2]

        result.objects = into.replace_objects(winners())
        into.fill_copies()  # byte-identical copies a shard left to the shard that read their twin
        for part in opened:  # user decisions ("not duplicates") recorded in any part still hold
            for pair in part.catalog.not_duplicates():
                into.add_not_duplicates(pair)
        modes = {mode for p in opened if (mode := p.catalog.meta("perceptual_mode")) is not None}
    scan_id = into.begin_scan([str(p) for p in parts], stats.started or now or datetime.now(timezone.utc))
    into.set_meta("shard", "")
    if len(modes) == 1:
        into.set_meta("perceptual_mode", modes.pop())
    elif modes:  # unrecorded, so the next scan of the merged catalog hashes them all again, one way
        log.warning("merge: the parts' images were hashed by different tierscan versions: near groups may "
                    "miss pairs until the next scan of %s", into.path)
    evaluate_results(config, into, now or datetime.now(timezone.utc))
    result.stats = stats.model_copy(update={"scan_id": scan_id})
    into.finish_scan(result.stats)
    return result

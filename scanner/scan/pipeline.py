"""One scan, end to end: list every target, plan the reads (`tierscan.scanner.scan.plan`), read what the plan says,
fingerprint in a process pool, group, evaluate policies, and store the results in the catalog for `report`.

Listing, reading and fingerprinting overlap: objects that cost no retrieval fee (hot tiers) are read as soon
as they are listed, the first of each content identity only, and hashed whole or head-and-tail so that
whatever collides later can be narrowed; the rest (tiers with retrieval fees, where the hottest copy should
be read instead, and whole reads that narrowing still needs) wait for the listing to end, when the copies of
early reads take their fingerprints without a read. Fingerprinting runs in worker processes. Reads are
bounded by `scan.concurrency`, and each object's bytes are released as soon as its fingerprint is back, so
memory stays bounded by concurrency x object size, not by the number of objects (the plan itself holds one
small record per object to read); objects the workers read themselves (local files) never reach this
process, and at most two batches of them a worker are out at once. The reads themselves are
`tierscan.scanner.scan.read_session`'s; their results go to the catalog in batches. Each request is counted and priced
per object, so the scan reports its exact bill. A failing object is recorded with its reason and the scan
goes on.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tierscan.connectors import Connector, connector_class, parse_target
from tierscan.policies import Evaluator, PolicySet, Pricing, configured_policies, order_key, write_resources
from tierscan.policies.costs import ObjectRecord
from tierscan.policies.model import Resource
from tierscan.policies.prefilter import group_may_match, prefilter
from tierscan.scanner import __version__
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import Finding, Group, InventoryRecord, ObjectRef, ScanStats
from tierscan.scanner.core.shard import Shard
from tierscan.scanner.core.tiers import JurisdictionMap
from tierscan.scanner.fingerprint.layout import PERCEPTUAL_MODE
from tierscan.scanner.fingerprint.pool import FingerprintPool
from tierscan.scanner.group.members import ExactCopy, NearImage, exact_group
from tierscan.scanner.pricing.table import PriceTable, price_as_from_config
from tierscan.scanner.scan.catalog import Catalog, Listing
from tierscan.scanner.scan.plan import ScanPlan, TierCost, estimate, plan_reads
from tierscan.scanner.scan.progress import Progress
from tierscan.scanner.scan.read_session import ReadSession, _Accounts
from tierscan.scanner.scan.settings import store_settings

if TYPE_CHECKING:
    from tierscan.scanner.group.cluster import NearGrouping

__all__ = ["Evaluation", "evaluate_results", "plan_scan", "policy_records", "run_scan", "write_policy_resources"]

log = logging.getLogger("tierscan")
_T = TypeVar("_T")

# Listed objects per catalog transaction: each commit costs about as much as a few dozen rows. The first
# batch is smaller, so that the early reads start soon after the listing does.
_FIRST_BATCH = 256
_WRITE_BATCH = 1024


class _EarlyReads:
    """Listed objects to read before the listing ends: new or changed, readable, free to retrieve, and the
    first of their (size, content identity). A bounded queue: a listing far ahead of the reads waits, so
    memory stays bounded. Ends with `None`."""

    _QUEUE = 4096

    def __init__(self, free: Callable[[ObjectRef], bool]):
        self.queue: asyncio.Queue[ObjectRef | None] = asyncio.Queue(self._QUEUE)
        self.free = free
        self.seen: set[tuple[int, str]] = set()

    async def offer(self, refs: list[ObjectRef], new: set[str]) -> None:
        for ref in refs:
            if ref.uri not in new or not ref.readable or ref.size == 0 or not self.free(ref):
                continue
            if ref.content_id is not None:
                if (ref.size, ref.content_id) in self.seen:
                    continue  # a copy: `Catalog.fill_copies` gives it the fingerprint after the listing
                self.seen.add((ref.size, ref.content_id))
            await self.queue.put(ref)


async def _list_all(config: Config, catalog: Catalog, targets: list[str], scan_id: int,
                    connectors: dict[str, Connector], stats: dict[str, int], progress: Progress,
                    early: _EarlyReads | None = None) -> None:
    """List every target into the catalog; `stats` counts listed, unchanged and gone objects."""
    async def one(target_text: str) -> None:
        target = parse_target(target_text)
        conn = connectors[target.scheme]
        listing = catalog.listing(target_text, scan_id, ordered=conn.lists_in_order(target))
        try:
            batch: list[ObjectRef] = []
            size = _FIRST_BATCH
            async for ref in conn.list_objects(target):
                batch.append(ref)
                if len(batch) >= size:
                    await store(listing, batch)
                    size = _WRITE_BATCH
            await store(listing, batch)
            # Only a listing that completed may declare objects gone.
            stats["gone"] += listing.finish()
        finally:
            listing.close()

    async def store(listing: Listing, batch: list[ObjectRef]) -> None:
        found = listing.add(batch)
        stats["listed"] += found.changed + found.unchanged
        stats["unchanged"] += found.unchanged
        progress.listed(found.changed + found.unchanged)
        if early is not None and found.waiting:
            await early.offer(batch, found.waiting)
        batch.clear()

    stopping = False
    try:
        with catalog.bulk_writes():
            await asyncio.gather(*(one(t) for t in targets))
    except asyncio.CancelledError:
        stopping = True  # the scan is stopping (Ctrl-C): its readers are cancelled too, and take no end mark
        raise
    finally:
        progress.listing_done()
        if early is not None and not stopping:
            await early.queue.put(None)  # waits for room: the readers are still taking objects


def _policy_record(r: InventoryRecord, jurisdictions: JurisdictionMap) -> ObjectRecord:
    return ObjectRecord.of(r, gba=jurisdictions.lookup(r.region).gba)


def _group_record(group: Group, objects: Mapping[str, ObjectRecord]) -> dict[str, object]:
    """A group as policies see it: its members are whole object records (with their distance)."""
    record = group.model_dump(mode="json")
    record["members"] = [objects[m.uri].adding(distance=m.distance) for m in group.members]
    return record


class _PolicyRecords(Mapping[str, dict[str, object]]):
    """Policy records of a catalog's objects (by URI) or groups (by id), each made when it is looked up."""

    def __init__(self, config: Config, catalog: Catalog, groups: bool):
        self._jurisdictions = JurisdictionMap.builtin(config.jurisdictions)
        self._catalog, self._groups = catalog, groups

    def __getitem__(self, key: str) -> dict[str, object]:
        if not self._groups:
            return _object_records_of(self._catalog, [key], self._jurisdictions)[key]
        group = self._catalog.group(key)
        if group is None:
            raise KeyError(key)
        return _group_record(group, _object_records_of(self._catalog, [m.uri for m in group.members],
                                                       self._jurisdictions))

    def __iter__(self) -> Iterator[str]:
        if self._groups:
            return (g.id for g in self._catalog.each_group())
        return (r.uri for r in self._catalog.records())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _object_records_of(catalog: Catalog, uris: Iterable[str],
                       jurisdictions: JurisdictionMap) -> dict[str, ObjectRecord]:
    return {uri: _policy_record(r, jurisdictions) for uri, r in catalog.records_of(uris).items()}


def policy_records(config: Config, catalog: Catalog) -> tuple[Mapping[str, dict[str, object]],
                                                              Mapping[str, dict[str, object]]]:
    """What policies see, keyed by URI and by group id: object records, and group records whose members
    are full object records, each read from the catalog when looked up (`--output-dir` writes the
    matched ones out). The scan evaluates the same records as it streams them."""
    return _PolicyRecords(config, catalog, groups=False), _PolicyRecords(config, catalog, groups=True)


def write_policy_resources(out: Path, config: Config, catalog: Catalog, findings: Iterable[Finding]) -> None:
    """Cloud-Custodian-style dry-run output: each configured policy's folder under `out` with the records
    its findings matched."""
    policy_set = configured_policies(config)
    objects, groups = policy_records(config, catalog)
    write_resources(out, policy_set, findings, objects=objects, groups=groups)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """How many groups and findings `evaluate_results` stored (the report reads them back as a stream)."""

    exact_groups: int
    near_groups: int
    findings: int


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused. Grouping and policies build many short-lived, acyclic objects
    (records, groups, policy records), and the near-duplicate index is long-lived: each full collection
    that this sets off walks every object alive. Reference counting still frees all that is not in a
    cycle, and the verification processes forked meanwhile do not write to every inherited object's
    header (the copy-on-write that `gc.freeze` exists to avoid)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def evaluate_results(config: Config, catalog: Catalog, now: datetime,
                     policy_set: PolicySet | None = None, progress: Progress | None = None) -> Evaluation:
    """Group the catalog's objects, evaluate the configured policies (findings priced like the report),
    and store both, with `results_digest` of what they depend on besides the objects. `policy_set`: the
    configured policies, when the caller has loaded them already; `progress` is told each step."""
    if policy_set is None:
        policy_set = configured_policies(config)
    catalog.set_meta(_RESULTS_DIGEST, "")  # until the new results are stored
    with _no_cycle_collection():
        evaluation = _evaluate(config, catalog, now, policy_set, progress or Progress())
    catalog.set_meta(_RESULTS_DIGEST, results_digest(config, catalog, now, policy_set))
    return evaluation


_RESULTS_DIGEST = "results_digest"  # the `meta` key


def results_digest(config: Config, catalog: Catalog, now: datetime, policy_set: PolicySet) -> str:
    """A digest of what the stored groups and findings depend on besides the objects: this tierscan, the
    config (thresholds, master rules, buckets' tiers and regions, jurisdictions), the policies, the price
    override file, the user's "not duplicates", and the evaluation day (UTC): ages and early-deletion
    charges move with time, so results are evaluated afresh at least once a day."""
    digest = hashlib.sha256()
    prices = config.prices.read_bytes() if config.prices is not None and config.prices.is_file() else b""
    for part in (__version__, config.model_dump_json(), repr(policy_set), prices.hex(),
                 now.astimezone(UTC).date().isoformat(), *itertools.chain(*catalog.not_duplicates())):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _evaluate(config: Config, catalog: Catalog, now: datetime, policy_set: PolicySet | None,
              progress: Progress) -> Evaluation:
    """Streams from the catalog and writes as it goes: memory holds the group at hand and the near-duplicate
    index (`NearImage`s and hashes of the images with perceptual hashes), not a record per object.

    Exact groups come from the catalog by content label, one at a time, and their policies run as each
    is stored. Near grouping then reads only the images that are not redundant exact copies; object
    policies run while the verification processes work. Records are built only for what some policy may
    match (`tierscan.policies.prefilter`): the objects the catalog selects, and the groups whose own fields leave a
    group policy possible; the policies' compiled filters still decide (`policies.Evaluator`). Findings are
    stored in `policies.evaluate`'s order: by `order_key`, then object findings (in URI order), exact groups'
    and near groups' (by group id), as one pass over objects, exact and near groups sorted stably gives."""
    if policy_set is None:
        policy_set = configured_policies(config)
    evaluator = Evaluator(policy_set, now=now, pricing=Pricing(PriceTable.of_config(config),
                                                                price_as_from_config(config)))
    may_match = group_may_match(prefilter(policy_set, "group"))
    jurisdictions = JurisdictionMap.builtin(config.jurisdictions)
    counts: dict[str, int] = defaultdict(int)
    with catalog.writing_results() as out:

        def stored(group: Group) -> bool:
            """Store the group; whether some group policy may match it (else its records are not built)."""
            out.group(group)
            counts[group.kind] += 1
            progress.advance()
            return may_match(group)

        def judge(resource: Resource, records: Iterable[Mapping[str, object]], tie: str) -> None:
            for finding in evaluator.findings(resource, records):
                out.finding(order_key(finding), tie, finding)
                counts["findings"] += 1

        def group_record(group: Group, members: Iterable[InventoryRecord]) -> dict[str, object]:
            return _group_record(group, {r.uri: _policy_record(r, jurisdictions) for r in members})

        progress.step("exact groups")
        for _, labelled in itertools.groupby(catalog.exact_candidates(), key=lambda row: row[0]):
            group = exact_group([ExactCopy.of_row(row[1:]) for row in labelled], config.master)
            if stored(group):
                members = catalog.records_of((m.uri for m in group.members), placed=False).values()
                judge("group", [group_record(group, members)], f"1 {group.id}")
        out.flush()
        catalog.exact_members()  # near grouping leaves out their redundant copies
        listed = [*config.near.not_duplicates, *catalog.not_duplicates()]
        masters = catalog.masters_of(uri for uris in listed for uri in uris)
        objects = catalog.records_matching(prefilter(policy_set, "object"), placed=False)
        progress.step("near index")
        images = [NearImage.of_row(row) for row in catalog.near_rows()]
        # Near grouping (and the array libraries it loads) only where there are images to group.
        near: AbstractContextManager[NearGrouping | None] = nullcontext()
        if images:
            from tierscan.scanner.group.cluster import start_near_groups

            near = start_near_groups(
                images, (), config.near.model_copy(update={"not_duplicates": []}), config.master,
                signatures=catalog.signatures(), workers=config.scan.workers,
                not_duplicates=[[masters.get(uri, uri) for uri in uris] for uris in listed])
        with near as grouping:
            # Object policies need no groups: they run while the verification processes work, over the
            # objects that some object policy may match.
            progress.step("object policies")
            judge("object", _counted((_policy_record(r, jurisdictions) for r in objects), progress), "0")
            progress.step("near groups")
            for group in grouping.groups() if grouping is not None else ():
                if stored(group):
                    members = catalog.records_of((m.uri for m in group.members), placed=False).values()
                    judge("group", [group_record(group, members)], f"2 {group.id}")
    return Evaluation(counts["exact"], counts["near"], counts["findings"])


def _counted(items: Iterable[_T], progress: Progress, every: int = 1024) -> Iterator[_T]:
    """`items`, telling `progress` every `every` of them (not each one: a bar update costs more than a
    record)."""
    n = 0
    for item in items:
        yield item
        n += 1
        if n == every:
            progress.advance(n)
            n = 0
    progress.advance(n)


def _load_kernels() -> None:
    """Load the near-duplicate index kernels (imported here: a scan without perceptual hashes never needs
    them)."""
    from tierscan.scanner.group.hamming_index import ensure_loaded

    ensure_loaded()


def _forget_other_hashes(catalog: Catalog) -> None:
    stale = catalog.keep_perceptual_mode(PERCEPTUAL_MODE)
    if stale:
        log.warning("%d images were hashed by another tierscan version (perceptual mode); they are read once "
                    "more, so that every hash is made the same way", stale)


def _connectors(config: Config, targets: list[str], shard: Shard | None) -> dict[str, Connector]:
    """One connector per scheme of the targets; a shard's lists only its share of inventory reports."""
    connectors: dict[str, Connector] = {}
    for scheme in {parse_target(t).scheme for t in targets}:
        connectors[scheme] = connector_class(scheme)(config)
        connectors[scheme].inventory_shard = shard
    return connectors


@dataclass(frozen=True, slots=True)
class _StoredResults:
    """The results digest a scan or plan found (`results_digest`), and the catalog's change count once it
    was cleared: a run clears it when it starts, so one that stops halfway leaves no results claimed valid,
    and puts it back when it wrote nothing."""

    digest: str | None
    writes: int

    def unwritten(self, catalog: Catalog) -> str | None:
        """The digest found, if nothing was written to the catalog since (no object new, changed, moved,
        read or gone)."""
        return self.digest if self.digest and catalog.db.total_changes == self.writes else None


def _begin(config: Config, catalog: Catalog, targets: list[str], started: datetime, shard: Shard | None
           ) -> tuple[int, dict[str, int], _Accounts, dict[str, Connector], _StoredResults]:
    """What a scan and a plan set up alike: the scan's row, the stored results' digest (cleared), the
    catalog's perceptual mode, the counters, the accounts and one connector per scheme."""
    scan_id = catalog.begin_scan(targets, started)
    store_settings(config, catalog)  # what the report and the merge price and evaluate with
    digest = catalog.meta(_RESULTS_DIGEST)
    catalog.set_meta(_RESULTS_DIGEST, "")
    stored = _StoredResults(digest, catalog.db.total_changes)
    if config.scan.perceptual:
        _forget_other_hashes(catalog)
    return scan_id, defaultdict(int), _Accounts(config), _connectors(config, targets, shard), stored


async def run_scan(config: Config, catalog: Catalog, targets: list[str],
                   progress: Progress | None = None, now: Callable[[], datetime] | None = None,
                   shard: Shard | None = None) -> ScanStats:
    """List, read, fingerprint, group and evaluate (results go to the catalog, which the report streams);
    returns what the scan did and read.

    A `shard` scan lists everything but reads only its share (see `tierscan.scanner.core.shard`) and stops before
    grouping: groups need every shard's fingerprints, so `tierscan merge` groups and evaluates.
    """
    clock = now or (lambda: datetime.now(UTC))
    progress = progress or Progress()
    if not targets:
        raise UsageError("nothing to scan: name a path or URI, or set `targets:` in the config file")
    # Validate policies before any listing, so a bad policy file costs nothing.
    policy_set = configured_policies(config)
    started = clock()
    scan_id, counters, acct, connectors, stored = _begin(config, catalog, targets, started, shard)
    # A shard reads no early objects: its representatives are chosen over the whole listing.
    early = _EarlyReads(lambda ref: acct.retrieval(ref, 1 << 30) == 0) if shard is None else None
    try:
        if config.scan.perceptual and shard is None:
            _load_kernels()  # near grouping's; loaded before the workers fork, which then share numba's set-up
        with FingerprintPool(config.scan.workers, timeout=config.scan.object_timeout,
                             perceptual=config.scan.perceptual) as pool:
            listing = asyncio.create_task(
                _list_all(config, catalog, targets, scan_id, connectors, counters, progress, early))
            try:
                session = ReadSession(config, catalog, connectors, pool, counters, acct, progress, shard)
                await session.read_all(listing, early.queue if early is not None else None)
            finally:
                listing.cancel()  # a no-op once it has ended
    finally:
        for conn in connectors.values():
            await conn.aclose()
    if not config.scan.faces:  # off: no object keeps a count, so none is reported that this scan did not make
        catalog.drop_faces()
    unwritten = stored.unwritten(catalog)
    # With `scan.thumbnails` off every thumbnail goes; else those of objects changed or gone, if any are.
    if not config.scan.thumbnails:
        catalog.drop_thumbnails()
    elif unwritten is None:
        catalog.prune_thumbnails()
    catalog.set_meta("shard", str(shard or ""))  # which rows `tierscan merge` takes from this catalog
    if shard is None:
        evaluated = clock()
        if unwritten is not None and unwritten == results_digest(config, catalog, evaluated, policy_set):
            catalog.set_meta(_RESULTS_DIGEST, unwritten)  # the stored groups and findings still hold
        else:
            evaluate_results(config, catalog, evaluated, policy_set, progress)
    progress.done()
    stats = ScanStats(
        scan_id=scan_id, started=started, finished=clock(),
        listed=counters["listed"], fingerprinted=counters["fingerprinted"], unchanged=counters["unchanged"],
        gone=counters["gone"], requests=sum(acct.requests.values()), bytes_read=sum(acct.bytes.values()),
        bytes_read_by_tier=dict(acct.bytes), requests_by_tier=dict(acct.requests),
        retrieval_usd=acct.retrieval_usd, request_usd=acct.request_usd,
        cost_usd=acct.retrieval_usd + acct.request_usd, left_unread=acct.left, left_unread_bytes=acct.left_bytes,
    )
    catalog.finish_scan(stats)
    return stats


async def plan_scan(config: Config, catalog: Catalog, targets: list[str],
                    progress: Progress | None = None, now: Callable[[], datetime] | None = None,
                    shard: Shard | None = None) -> ScanPlan:
    """List the targets into the catalog (listing requests only, no object is read) and return what a
    scan would read, per tier: requests, bytes and fees (`tierscan.scanner.scan.plan.estimate`)."""
    clock = now or (lambda: datetime.now(UTC))
    progress = progress or Progress()
    if not targets:
        raise UsageError("nothing to plan: name a path or URI, or set `targets:` in the config file")
    scan_id, counters, acct, connectors, stored = _begin(config, catalog, targets, clock(), shard)
    try:
        await _list_all(config, catalog, targets, scan_id, connectors, counters, progress)
    finally:
        for conn in connectors.values():
            await conn.aclose()
    catalog.skip_empty()
    if (unwritten := stored.unwritten(catalog)) is not None:
        catalog.set_meta(_RESULTS_DIGEST, unwritten)  # the listing changed nothing: the results still hold
    tiers: dict[str, TierCost] = {}
    for items in catalog.work_runs(shard, signatures=config.scan.perceptual and config.scan.signatures,
                                   faces=config.scan.perceptual and config.scan.faces):
        plans = plan_reads(items, perceptual=config.scan.perceptual, price=acct.price)
        for tier, cost in estimate(plans, acct.prices, acct.price_as).items():  # type: ignore[arg-type]
            tiers[tier] = cost + tiers[tier] if tier in tiers else cost
    return ScanPlan(dict(sorted(tiers.items())), listed=counters["listed"], unchanged=counters["unchanged"])

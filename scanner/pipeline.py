"""One scan, end to end: list every target, plan the reads (`scanner.plan`), read what the plan says,
fingerprint in a process pool, group, evaluate policies, and store the results in the catalog for `report`.

Listing, reading and fingerprinting overlap: objects that cost no retrieval fee (hot tiers) are read as soon
as they are listed, the first of each content identity only, and hashed whole or head-and-tail so that
whatever collides later can be narrowed; the rest (tiers with retrieval fees, where the hottest copy should
be read instead, and whole reads that narrowing still needs) wait for the listing to end, when the copies of
early reads take their fingerprints without a read. Fingerprinting runs in worker processes. Reads are
bounded by `scan.concurrency`, and each object's bytes are released as soon as its fingerprint is back, so
memory stays bounded by concurrency x object size, not by the number of objects (the plan itself holds one
small record per object to read). Every read produces a `models.Fingerprint`, the record the catalog takes,
written in batches. Each request is counted and priced per object, so the scan reports its exact bill. A
failing object is recorded with its reason and the scan goes on.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from fractions import Fraction
from typing import Callable

from connectors import Connector, connector_class, parse_target
from policies import PolicySet, Pricing, iter_findings, load_policies, order_key

from .catalog import Catalog, WorkItem
from .cluster import NearImage, exact_group, iter_near_groups
from .config import Config
from .errors import ObjectError, UsageError
from .fingerprint import PERCEPTUAL_MODE, FingerprintPool, FingerprintResult, WorkerFailed
from .hamming_index import load_kernels
from .models import Fingerprint, Group, InventoryRecord, ObjectRef, ScanStats, content_identity
from .jpeg_extent import primary_end
from .plan import (GIB, HEAD, TAIL, Budget, PlannedRead, TierCost, estimate, exif_record, headtail_key,
                   image_first_chunk, plan_heads, plan_reads, price_of, ranged_metadata, spread_decodes)
from .pricing import Price, PriceTable, price_as_from_config
from .progress import Progress
from .shard import Shard
from .tiers import JurisdictionMap

__all__ = ["Evaluation", "evaluate_results", "plan_scan", "policy_records", "run_scan"]

log = logging.getLogger("tierscan")

_WRITE_BATCH = 256  # catalog rows per transaction


def _fingerprint(result: FingerprintResult, *, headtail: str | None, bytes_read: int,
                 requests: int) -> Fingerprint:
    """A worker's result as the boundary record the catalog takes."""
    return Fingerprint(
        sha256=result.sha256, headtail=headtail, phash=result.phash, dhash=result.dhash,
        near_sig=result.near_sig, format=result.format, width=result.width, height=result.height,
        exif=exif_record(result.exif), error=result.error, bytes_read=bytes_read, requests=requests,
    )


def _sha256_and_md5(data: bytes) -> tuple[str, str]:
    """Both digests of a whole read (hashlib releases the GIL on large inputs: run in a thread)."""
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def _result_fields(item: WorkItem, fp: Fingerprint) -> dict[str, object]:
    """Catalog columns to update from a fingerprint (metadata only when the item wanted it)."""
    fields: dict[str, object] = {}
    if fp.sha256:
        fields["sha256"] = fp.sha256
    if fp.headtail:
        fields["headtail"] = fp.headtail
    if not item.want_metadata or (fp.exif is None and fp.format is None and fp.error is None):
        return fields
    fields.update(
        format=fp.format, width=fp.width, height=fp.height,
        phash=fp.phash, dhash=fp.dhash, near_sig=fp.near_sig, exif=fp.exif,
        status="skipped" if fp.error else "fingerprinted", reason=fp.error,
    )
    return fields


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
    async def one(target_text: str) -> None:
        target = parse_target(target_text)
        conn = connectors[target.scheme]
        batch: list[ObjectRef] = []
        async for ref in conn.list_objects(target):
            batch.append(ref)
            if len(batch) >= _WRITE_BATCH:
                await _store_listing(batch, target_text)
        await _store_listing(batch, target_text)
        # Only a listing that completed may declare objects gone.
        stats["gone"] += catalog.mark_gone(target_text, scan_id)

    async def _store_listing(batch: list[ObjectRef], target_text: str) -> None:
        changed, unchanged = catalog.record_listing(batch, target_text, scan_id)
        stats["listed"] += changed + unchanged
        stats["unchanged"] += unchanged
        progress.listed(changed + unchanged)
        if early is not None and changed:
            await early.offer(batch, catalog.listed_among([r.uri for r in batch]))
        batch.clear()

    try:
        await asyncio.gather(*(one(t) for t in targets))
    finally:
        progress.listing_done()
        if early is not None:
            await early.queue.put(None)


class _Accounts:
    """What this scan's reads cost: requests and bytes per tier, and the fees, each object priced by its
    own class and region (`scanner.pricing`), so the report's scan cost is exact."""

    def __init__(self, config: Config):
        self.prices = PriceTable.load(config.prices)
        self.price_as = price_as_from_config(config)
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        # Exact sums: the fees must not depend on the order the reads happen to finish in.
        self._retrieval_usd = Fraction(0)
        self._request_usd = Fraction(0)
        self.left = 0
        self.left_bytes = 0

    def price(self, ref: ObjectRef) -> Price:
        return price_of(self.prices, self.price_as, ref)  # type: ignore[arg-type]

    def retrieval(self, ref: ObjectRef, nbytes: int) -> float:
        return nbytes / GIB * self.price(ref).retrieval_gb

    def add(self, ref: ObjectRef, nbytes: int) -> None:
        price = self.price(ref)
        tier = ref.tier.value
        self.requests[tier] += 1
        self.bytes[tier] += nbytes
        self._retrieval_usd += Fraction(nbytes / GIB * price.retrieval_gb)
        self._request_usd += Fraction(price.get_per_1000 / 1000)

    @property
    def retrieval_usd(self) -> float:
        return float(self._retrieval_usd)

    @property
    def request_usd(self) -> float:
        return float(self._request_usd)


async def _read_all(config: Config, catalog: Catalog, connectors: dict[str, Connector],
                    pool: FingerprintPool, stats: dict[str, int], acct: _Accounts,
                    progress: Progress, shard: Shard | None, listing: asyncio.Task[None],
                    early: _EarlyReads | None) -> None:
    """Read `early` objects while `listing` runs; then plan (`scanner.plan`) the rest and read in two
    passes: every planned read (whole objects, ranged EXIF, head/tail chunks), then whole reads only for
    objects whose (size, head, tail) still collides."""
    perceptual = config.scan.perceptual
    signatures = perceptual and config.scan.signatures
    budget = Budget(config.scan.max_retrieval_usd)
    pending: list[tuple[str, dict[str, object]]] = []
    # Narrowing state: the headtail key of every object this scan saw, and who still needs its SHA-256.
    keys: dict[str, tuple[str, str]] = {}  # uri -> (key, identity: `ObjectRef.content_id` or the uri)
    narrowed: list[PlannedRead] = []  # head/tail reads to settle with whole reads where their keys collide
    # Whole reads need no further read: only their sizes (to meet the catalog's objects of those sizes) and
    # the keys they settle (an object without a trusted MD5 whose SHA-256 is known) are kept, not the read.
    whole_sizes: set[int] = set()
    settled_plain: set[str] = set()
    computed: dict[str, dict[str, str]] = defaultdict(dict)  # headtail key -> MD5 -> SHA-256 of whole reads

    def flush() -> None:
        catalog.record_fingerprints(pending)
        pending.clear()

    def record(item: WorkItem, fp: Fingerprint) -> None:
        pending.append((item.ref.uri, _result_fields(item, fp)))
        if item.want_metadata:
            stats["fingerprinted"] += 1
        if len(pending) >= _WRITE_BATCH:
            flush()

    def fail(items: list[WorkItem], reason: str) -> None:
        for item in items:
            pending.append((item.ref.uri, {"status": "failed", "reason": reason, "headtail": None}))

    def leave(p: PlannedRead) -> None:
        for item in [p.item, *p.copies]:
            acct.left += 1
            acct.left_bytes += item.ref.size
            if item.want_metadata:
                pending.append((item.ref.uri, {"status": "failed", "headtail": None, "reason":
                                f"left unread: over the retrieval budget ({config.scan.max_retrieval_usd} USD)"}))
            else:
                pending.append((item.ref.uri, {"headtail": None}))  # read again for its SHA-256 next scan

    def note_key(p: PlannedRead, key: str | None) -> None:
        if key is None:
            return
        for item in [p.item, *p.copies]:
            keys[item.ref.uri] = (key, item.ref.content_id or item.ref.uri)

    async def fetch(ref: ObjectRef, start: int, end: int) -> bytes:
        conn = connectors[parse_target(ref.uri).scheme]
        data = await conn.read_range(ref, start, end)
        acct.add(ref, len(data))
        progress.read(len(data))
        return data

    async def full(p: PlannedRead) -> Fingerprint | None:
        item, ref = p.item, p.ref
        data = await fetch(ref, 0, ref.size)
        if len(data) != ref.size:
            fail([item, *p.copies], f"truncated read: {len(data)} of {ref.size} bytes")
            return None
        key = headtail_key(ref.size, data[:HEAD], data[-TAIL:])
        if not item.want_metadata:
            sha, md5 = await asyncio.to_thread(_sha256_and_md5, data)
            computed[key][md5] = sha
            return Fingerprint(sha256=sha, headtail=key, bytes_read=len(data), requests=1)
        # A whole read always gives the SHA-256 (1.8 GB/s: free beside the read), whoever asked.
        answer = pool.submit(data, want_sha256=True, want_perceptual=perceptual, want_signature=signatures)
        del data  # the pool has what it needs; drop ours before waiting
        result = await answer
        return _fingerprint(result, headtail=key, bytes_read=ref.size, requests=1)

    async def image(p: PlannedRead) -> Fingerprint | None:
        """A JPEG's primary image (`scanner.plan`, kind ``image``): chunks until its EOI, then fingerprinted."""
        ref = p.ref
        first = image_first_chunk(ref.size)
        data = await fetch(ref, 0, first)
        requests = 1
        if len(data) != first:
            fail([p.item, *p.copies], f"truncated read: {len(data)} of {ref.size} bytes")
            return None
        end = primary_end(data)
        while end is None and len(data) < ref.size:
            # Not a JPEG after all (the key said so), or a damaged one: the rest in one read.
            upto = ref.size if data[:2] != b"\xff\xd8" else min(ref.size, 4 * len(data))
            more = await fetch(ref, len(data), upto)
            requests += 1
            if len(more) != upto - len(data):
                fail([p.item, *p.copies], f"truncated read: {len(data) + len(more)} of {ref.size} bytes")
                return None
            data += more
            end = primary_end(data)
        whole = len(data) == ref.size
        key = headtail_key(ref.size, data[:HEAD], data[-TAIL:]) if whole else None
        pixels = data if whole or end is None else data[:end]  # whole: the SHA-256 is of every byte
        nbytes = len(data)
        del data
        answer = pool.submit(pixels, want_sha256=whole, want_perceptual=True, want_signature=signatures)
        del pixels
        result = await answer
        return _fingerprint(result, headtail=key, bytes_read=nbytes, requests=requests)

    async def meta(p: PlannedRead) -> Fingerprint:
        ref = p.ref
        try:  # walked in the pool: a hostile file must not hold the event loop, nor anything past the deadline
            found = await ranged_metadata(lambda s, e: fetch(ref, s, e), ref.size, want_tail=p.item.want_sha256,
                                          parse=pool.read_prefix)
        except WorkerFailed as exc:
            return Fingerprint(error=str(exc))
        key = headtail_key(ref.size, found.head, found.tail) if p.item.want_sha256 else None
        return Fingerprint(
            headtail=key, format=found.format, width=found.width, height=found.height,
            exif=exif_record(found.exif) if found.error is None else None, error=found.error,
            bytes_read=found.bytes_read, requests=found.requests,
        )

    async def narrow(p: PlannedRead) -> Fingerprint:
        ref = p.ref
        head = await fetch(ref, 0, HEAD)
        tail = await fetch(ref, ref.size - TAIL, ref.size)
        return Fingerprint(headtail=headtail_key(ref.size, head, tail), bytes_read=len(head) + len(tail), requests=2)

    async def one(p: PlannedRead) -> None:
        ref = p.ref
        if p.kind in ("full", "image") and ref.size > config.scan.max_object_bytes:
            for item in [p.item, *p.copies]:
                pending.append((item.ref.uri, {"status": "skipped",
                                               "reason": f"larger than {config.scan.max_object_bytes} bytes"}))
            return
        requests, nbytes = p.estimate()
        estimate = acct.retrieval(ref, nbytes)
        if not budget.admit(estimate):
            leave(p)
            return
        before = acct.retrieval_usd
        try:
            reader = {"full": full, "image": image, "meta": meta, "narrow": narrow}[p.kind]
            fp = await reader(p)
        except ObjectError as exc:
            fail([p.item, *p.copies], f"{exc.reason}: {exc}")
            return
        finally:
            budget.charge(acct.retrieval_usd - before - estimate)  # follow-up reads beyond the estimate
        if fp is None:
            return
        note_key(p, fp.headtail)
        if (p.item.want_sha256 or p.kind == "full") and fp.headtail is not None and fp.error is None:
            # Settled after the first pass: a whole read, or its key tells it apart. Whole reads count even
            # unasked (early reads, before anyone knew the size collides): their SHA-256 settles a key.
            if p.kind != "full":
                narrowed.append(p)
            else:
                whole_sizes.add(ref.size)
                if not ref.checksums.get("md5"):
                    settled_plain.add(fp.headtail)
        for item in [p.item, *p.copies]:
            record(item, fp)

    async def run(reads: list[PlannedRead]) -> None:
        queue = iter(reads)

        async def reader() -> None:
            for p in queue:  # the readers share one iterator: at most `concurrency` objects in flight
                await one(p)

        await asyncio.gather(*(reader() for _ in range(config.scan.concurrency)))
        flush()

    async def run_early(queue: asyncio.Queue[ObjectRef | None]) -> None:
        async def reader() -> None:
            while (ref := await queue.get()) is not None:
                # Whether its size collides is known only once the listing ends. Without perceptual hashing,
                # read the tail as if it did; with it, read the image (the pixels of a JPEG only; whole
                # otherwise, SHA-256 and all): a collision found later is narrowed then (`Catalog.work`).
                item = WorkItem(ref, want_sha256=not perceptual, want_metadata=True)
                [p] = plan_reads([item], perceptual=perceptual, price=acct.price)
                progress.planned(1, ref.size)
                await one(p)
            await queue.put(None)  # for the next reader; the listing has ended, so there is room

        await asyncio.gather(*(reader() for _ in range(config.scan.concurrency)))
        flush()

    async def fetch_checksums() -> None:
        """HEADs for the whole-object checksums listings name without a value, where `plan_heads` finds
        them cheaper than the reads they spare; a failed HEAD leaves the object to be read."""
        kinds = {k for conn in connectors.values() for k, how in conn.capabilities.checksums.items() if how == "head"}
        if not kinds:
            return
        heads = iter(plan_heads(catalog.pending_checksums(kinds), perceptual=perceptual, price=acct.price))
        found: list[tuple[str, dict[str, str]]] = []

        async def header() -> None:
            for item, wanted in heads:
                ref = item.ref
                conn = connectors.get(parse_target(ref.uri).scheme)
                if conn is None:
                    continue  # listed by an earlier scan of other targets
                try:
                    values = await conn.head_checksums(ref, wanted)
                except ObjectError as exc:
                    log.debug("%s: no checksum (%s)", ref.uri, exc)
                    continue
                finally:
                    acct.add(ref, 0)
                if values:
                    found.append((ref.uri, values))
                    if ref.uri in keys:  # read early: narrowing compares its identity
                        keys[ref.uri] = (keys[ref.uri][0], content_identity({**ref.checksums, **values}) or ref.uri)

        await asyncio.gather(*(header() for _ in range(config.scan.concurrency)))
        catalog.record_checksums(found)

    if early is not None:
        await run_early(early.queue)
    await listing  # a failed listing fails the scan here
    catalog.skip_empty()
    await fetch_checksums()
    if early is not None:
        stats["fingerprinted"] += catalog.fill_copies()  # copies of early reads, listed after them
    # A WorkItem is small; result writes must not race the cursor. A shard plans over every object, so
    # that byte-identical copies pick the same representative in every shard and in one process; it reads
    # the plans whose representative it owns, and `tierscan merge` fills copies owned by other shards.
    plans = plan_reads(list(catalog.work(signatures=signatures)), perceptual=perceptual, price=acct.price)
    if shard is not None:
        plans = [p for p in plans if shard.owns(p.ref.uri)]
        unowned = sum(1 for p in plans for c in p.copies if not shard.owns(c.ref.uri) and c.want_metadata)
        stats["fingerprinted"] += unowned  # counted where their twin is read, as one process counts them
        for p in plans:
            p.copies = [c for c in p.copies if shard.owns(c.ref.uri)]
    progress.planned(sum(1 + len(p.copies) for p in plans), sum(p.ref.size * (1 + len(p.copies)) for p in plans))
    await run(plans if budget.limit is not None else spread_decodes(plans, perceptual=perceptual))
    if narrowed or whole_sizes:
        reads, fill = _still_colliding(catalog, narrowed, keys, whole_sizes, settled_plain)
        await run(reads)
        for key, items in fill.items():  # MD5-trusted objects: the SHA-256 of the read object with their MD5
            for item in items:
                sha = computed[key].get(item.ref.checksums.get("md5") or "")
                if sha is not None:
                    record(item, Fingerprint(sha256=sha))
        flush()


def _still_colliding(catalog: Catalog, narrowed: list[PlannedRead], keys: dict[str, tuple[str, str]],
                     whole_sizes: AbstractSet[int] = frozenset(), settled_plain: AbstractSet[str] = frozenset()
                     ) -> tuple[list[PlannedRead], dict[str, list[WorkItem]]]:
    """Whole reads for SHA-256, after the head/tail pass: objects whose (size, head, tail) key another
    object shares, including the catalog's objects that share it without a SHA-256. An object of the same
    size whose key is unknown (fingerprinted before keys were kept) cannot be told apart, so it forces
    whole reads too.

    Objects with a trusted MD5 are not read when every object of their key without one is: those reads
    compute MD5 as well, and an MD5-trusted object takes the SHA-256 of the one whose MD5 equals its own
    (returned as key -> items to fill); objects that all have trusted MD5s need no read at all.

    `narrowed`: the head/tail reads; `whole_sizes` and `settled_plain`: the sizes of this scan's whole reads,
    and the keys they settled (read whole, no trusted MD5)."""
    peers = list(catalog.size_peers(whole_sizes | {p.ref.size for p in narrowed}))
    # Objects that provider checksums tell apart from every other object of their size (`Catalog.work`).
    need = catalog.needs_exact([p.ref.uri for p in narrowed] + [ref.uri for ref, _, _ in peers])
    narrowed = [p for p in narrowed if p.ref.uri in need]
    identities: dict[str, set[str]] = defaultdict(set)
    for uri, (narrow_key, identity) in keys.items():
        if uri in need:
            identities[narrow_key].add(identity)
    unknown_sizes: set[int] = set()
    settled_plain = set(settled_plain)  # keys with an object without MD5 whose SHA-256 is already known
    members: dict[str, list[tuple[WorkItem, list[WorkItem]]]] = defaultdict(list)
    for ref, key, sha in peers:
        if ref.uri in keys or ref.uri not in need:
            continue
        if key is None:
            unknown_sizes.add(ref.size)
            continue
        identities[key].add(ref.content_id or ref.uri)
        if sha is None:
            members[key].append((WorkItem(ref, want_sha256=True, want_metadata=False), []))
        elif not ref.checksums.get("md5"):
            settled_plain.add(key)
    for p in narrowed:
        key = keys[p.ref.uri][0]
        members[key].append((replace(p.item, want_metadata=False), [replace(c, want_metadata=False) for c in p.copies]))
    reads: list[PlannedRead] = []
    fill: dict[str, list[WorkItem]] = {}
    for key, group in members.items():
        size = int(key.split(":", 1)[0])
        if len(identities[key]) < 2 and size not in unknown_sizes:
            continue
        plain = [g for g in group if not g[0].ref.checksums.get("md5")]
        trusted = [g for g in group if g[0].ref.checksums.get("md5")]
        if key not in settled_plain and size not in unknown_sizes:
            if not plain:
                continue  # only trusted MD5s, and different MD5s are different bytes
            fill[key] = [i for item, copies in trusted for i in (item, *copies)]
            trusted = []
        reads += [PlannedRead(item, "full", copies) for item, copies in _one_per_identity(plain + trusted)]
    return reads, fill


def _one_per_identity(group: list[tuple[WorkItem, list[WorkItem]]]) -> list[tuple[WorkItem, list[WorkItem]]]:
    """One read per content identity, the hottest copy, the others riding along (a copy filled after an
    early read meets its twin again here)."""
    out: list[tuple[WorkItem, list[WorkItem]]] = []
    leaders: dict[str, list[WorkItem]] = {}
    for item, copies in sorted(group, key=lambda g: (g[0].ref.tier.rank, g[0].ref.uri)):
        identity = item.ref.content_id
        if identity is not None and identity in leaders:
            leaders[identity] += [item, *copies]
            continue
        riders = list(copies)
        if identity is not None:
            leaders[identity] = riders
        out.append((item, riders))
    return out


def _policy_record(r: InventoryRecord, jurisdictions: JurisdictionMap) -> dict[str, object]:
    record = r.model_dump(mode="json")
    record["gba"] = jurisdictions.lookup(r.region).gba
    return record


def _group_record(group: Group, objects: Mapping[str, dict[str, object]]) -> dict[str, object]:
    """A group as policies see it: its members are whole object records (with their distance)."""
    record = group.model_dump(mode="json")
    record["members"] = [{**objects[m.uri], "distance": m.distance} for m in group.members]
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
                       jurisdictions: JurisdictionMap) -> dict[str, dict[str, object]]:
    return {uri: _policy_record(r, jurisdictions) for uri, r in catalog.records_of(uris).items()}


def policy_records(config: Config, catalog: Catalog) -> tuple[Mapping[str, dict[str, object]],
                                                              Mapping[str, dict[str, object]]]:
    """What policies see, keyed by URI and by group id: object records, and group records whose members
    are full object records, each read from the catalog when looked up (`--output-dir` writes the
    matched ones out). The scan evaluates the same records as it streams them."""
    return _PolicyRecords(config, catalog, groups=False), _PolicyRecords(config, catalog, groups=True)


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
                     policy_set: PolicySet | None = None) -> Evaluation:
    """Group the catalog's objects, evaluate the configured policies (findings priced like the report),
    and store both. `policy_set`: the configured policies, when the caller has loaded them already."""
    with _no_cycle_collection():
        return _evaluate(config, catalog, now, policy_set)


def _evaluate(config: Config, catalog: Catalog, now: datetime, policy_set: PolicySet | None) -> Evaluation:
    """Streams from the catalog and writes as it goes: memory holds the group at hand and the near-duplicate
    index (`NearImage`s and hashes of the images with perceptual hashes), not a record per object.

    Exact groups come from the catalog by content label, one at a time, and their policies run as each
    is stored. Near grouping then reads only the images that are not redundant exact copies; object
    policies run over the streamed records while the verification processes work. Findings are stored
    in `policies.evaluate`'s order: by `order_key`, then object findings (in URI order), exact groups'
    and near groups' (by group id), as one pass over objects, exact and near groups sorted stably gives."""
    if policy_set is None:
        policy_set = load_policies(packs=config.policies.packs, files=config.policies.files)
    pricing = Pricing(PriceTable.load(config.prices), price_as_from_config(config))
    jurisdictions = JurisdictionMap.builtin(config.jurisdictions)
    counts: dict[str, int] = defaultdict(int)
    with catalog.writing_results() as out:

        def store(group: Group | None, objects: Iterable[InventoryRecord], tie: str) -> None:
            if group is not None:
                out.group(group)
                counts[group.kind] += 1
                records = {r.uri: _policy_record(r, jurisdictions) for r in objects}
                found = iter_findings(policy_set, groups=[_group_record(group, records)], now=now, pricing=pricing)
            else:
                found = iter_findings(policy_set, objects=(_policy_record(r, jurisdictions) for r in objects),
                                      now=now, pricing=pricing)
            for finding in found:
                out.finding(order_key(finding), tie, finding)
                counts["findings"] += 1

        for _, labelled in itertools.groupby(catalog.exact_candidates(), key=lambda pair: pair[0]):
            members = [record for _, record in labelled]
            group = exact_group(members, config.master)
            store(group, members, f"1 {group.id}")
        out.flush()
        catalog.exact_members()  # near grouping leaves out their redundant copies
        listed = [*config.near.not_duplicates, *catalog.not_duplicates()]
        masters = catalog.masters_of(uri for uris in listed for uri in uris)
        near = iter_near_groups(
            [NearImage.of_row(row) for row in catalog.near_rows()], (),
            config.near.model_copy(update={"not_duplicates": []}), config.master,
            signatures=catalog.signatures(), workers=config.scan.workers,
            not_duplicates=[[masters.get(uri, uri) for uri in uris] for uris in listed],
            # Object policies need no groups: they run while the verification processes work.
            meanwhile=lambda: store(None, catalog.records(), "0"))
        for group in near:
            store(group, catalog.records_of(m.uri for m in group.members).values(), f"2 {group.id}")
    return Evaluation(counts["exact"], counts["near"], counts["findings"])


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


async def run_scan(config: Config, catalog: Catalog, targets: list[str],
                   progress: Progress | None = None, now: Callable[[], datetime] | None = None,
                   shard: Shard | None = None) -> ScanStats:
    """List, read, fingerprint, group and evaluate (results go to the catalog, which the report streams);
    returns what the scan did and read.

    A `shard` scan lists everything but reads only its share (see `scanner.shard`) and stops before
    grouping: groups need every shard's fingerprints, so `tierscan merge` groups and evaluates.
    """
    clock = now or (lambda: datetime.now(timezone.utc))
    progress = progress or Progress()
    if not targets:
        raise UsageError("nothing to scan: name a path or URI, or set `targets:` in the config file")
    # Validate policies before any listing, so a bad policy file costs nothing.
    policy_set = load_policies(packs=config.policies.packs, files=config.policies.files)
    started = clock()
    scan_id = catalog.begin_scan(targets, started)
    if config.scan.perceptual:
        _forget_other_hashes(catalog)
    counters: dict[str, int] = defaultdict(int)
    acct = _Accounts(config)
    connectors = _connectors(config, targets, shard)
    # A shard reads no early objects: its representatives are chosen over the whole listing.
    early = _EarlyReads(lambda ref: acct.retrieval(ref, 1 << 30) == 0) if shard is None else None
    try:
        with FingerprintPool(config.scan.workers, timeout=config.scan.object_timeout,
                             perceptual=config.scan.perceptual) as pool:
            # Near grouping needs the index kernels: loaded while the scan reads, after the workers have
            # forked, and joined before the reads end. A fork while the load holds numba's compiler lock
            # hands the child that lock held, forever: verification forks after the reads, and a later
            # scan in this process forks workers of its own.
            kernels = threading.Thread(target=load_kernels, name="load-kernels", daemon=True)
            if config.scan.perceptual and shard is None:
                kernels.start()
            listing = asyncio.create_task(
                _list_all(config, catalog, targets, scan_id, connectors, counters, progress, early))
            try:
                await _read_all(config, catalog, connectors, pool, counters, acct, progress, shard, listing, early)
            finally:
                listing.cancel()  # a no-op once it has ended
                if kernels.is_alive():
                    await asyncio.to_thread(kernels.join)
    finally:
        for conn in connectors.values():
            await conn.aclose()
    catalog.set_meta("shard", str(shard or ""))  # which rows `tierscan merge` takes from this catalog
    if shard is None:
        evaluate_results(config, catalog, clock(), policy_set)
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
                    shard: Shard | None = None) -> dict[str, TierCost]:
    """List the targets into the catalog (listing requests only, no object is read) and return what a
    scan would read, per tier: requests, bytes and fees (`scanner.plan.estimate`)."""
    clock = now or (lambda: datetime.now(timezone.utc))
    progress = progress or Progress()
    if not targets:
        raise UsageError("nothing to plan: name a path or URI, or set `targets:` in the config file")
    scan_id = catalog.begin_scan(targets, clock())
    if config.scan.perceptual:
        _forget_other_hashes(catalog)
    counters: dict[str, int] = defaultdict(int)
    connectors = _connectors(config, targets, shard)
    try:
        await _list_all(config, catalog, targets, scan_id, connectors, counters, progress)
    finally:
        for conn in connectors.values():
            await conn.aclose()
    catalog.skip_empty()
    acct = _Accounts(config)
    plans = plan_reads(catalog.work(shard, signatures=config.scan.perceptual and config.scan.signatures),
                       perceptual=config.scan.perceptual, price=acct.price)
    return estimate(plans, acct.prices, acct.price_as)  # type: ignore[arg-type]

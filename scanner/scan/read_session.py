"""A scan's reads (`pipeline.run_scan`): read the early objects while the listing runs, then plan
(`tierscan.scanner.scan.plan`) the rest and read in two passes: every planned read (whole objects, ranged EXIF,
head/tail chunks), then whole reads only for objects whose (size, head, tail) still collides.

`ReadSession` holds what the passes share: the narrowing state (the keys of the objects read go to a
temporary catalog table with the result rows, so memory does not grow with the objects read), the
accounts, the retrieval budget and a result writer (`_Results`) that sends the catalog its rows in
batches. Each plan kind has its reader. Whole reads of objects a worker process can read itself
(`Capabilities.worker_reads`: local files) are not read here at all: `_WorkerReads` sends a worker a
batch of them (what to open, the wants) in one message, and the worker reads, hashes and parses each,
answering with plain tuples. Every other read goes through the connector here, and the bytes to the
pool, one object at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Any

from tierscan.connectors import Connector, parse_target
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import ObjectError
from tierscan.scanner.core.models import ObjectRef, ObjectStatus, content_identity
from tierscan.scanner.core.shard import Shard
from tierscan.scanner.fingerprint import pool as fingerprint_pool
from tierscan.scanner.fingerprint.jpeg_extent import primary_end
from tierscan.scanner.fingerprint.pool import BatchBroken, FingerprintPool, WorkerFailed
from tierscan.scanner.fingerprint.record import Fingerprint, exif_json
from tierscan.scanner.pricing.table import GIB, Price, PriceTable, price_as_from_config
from tierscan.scanner.scan.catalog import Catalog, WorkItem
from tierscan.scanner.scan.plan import (
    HEAD,
    TAIL,
    Budget,
    PlannedRead,
    ReadKind,
    headtail_key,
    image_first_chunk,
    plan_heads,
    plan_kind,
    plan_reads,
    price_of,
    ranged_metadata,
    spread_decodes,
)
from tierscan.scanner.scan.progress import Progress

__all__ = ["ReadSession"]

log = logging.getLogger("tierscan")

_WRITE_BATCH = 256  # catalog rows per transaction
_WORKER_BATCH = 128  # objects per message to a worker that reads them itself
_BATCHES_A_WORKER = 4  # such messages in flight per worker: one worked on, three waiting for it
_PEERS_A_ROUND = 20_000  # objects of the size classes narrowing settles together


class _Accounts:
    """What this scan's reads cost: requests and bytes per tier, and the fees, each object priced by its
    own class and region (`tierscan.scanner.pricing.table`), so the report's scan cost is exact."""

    def __init__(self, config: Config):
        self.prices = PriceTable.load(config.prices)
        self.price_as = price_as_from_config(config)
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        # Exact sums: the fees must not depend on the order the reads happen to finish in. Request fees as
        # counts per price a 1,000 requests, each a sum of equal terms.
        self._retrieval_usd = Fraction(0)
        self._gets: dict[float, int] = defaultdict(int)
        self.left = 0
        self.left_bytes = 0
        # Without `buckets:` entries an object's price depends on its class alone: looked up once a class.
        self._class_prices: dict[tuple[str, str, str, str], Price] | None = None if config.buckets else {}

    def price(self, ref: ObjectRef) -> Price:
        if self._class_prices is None:
            return price_of(self.prices, self.price_as, ref)  # type: ignore[arg-type]
        key = (ref.provider, ref.storage_class, ref.region, ref.tier)
        price = self._class_prices.get(key)
        if price is None:
            price = self._class_prices[key] = price_of(self.prices, self.price_as, ref)  # type: ignore[arg-type]
        return price

    def retrieval(self, ref: ObjectRef, nbytes: int) -> float:
        return nbytes / GIB * self.price(ref).retrieval_gb

    def add(self, ref: ObjectRef, nbytes: int) -> None:
        price = self.price(ref)
        tier = ref.tier.value
        self.requests[tier] += 1
        self.bytes[tier] += nbytes
        if price.retrieval_gb:
            self._retrieval_usd += Fraction(nbytes / GIB * price.retrieval_gb)
        self._gets[price.get_per_1000] += 1

    @property
    def retrieval_usd(self) -> float:
        return float(self._retrieval_usd)

    @property
    def request_usd(self) -> float:
        return float(sum((Fraction(get / 1000) * n for get, n in self._gets.items()), Fraction(0)))


def _keyed(fingerprint: Fingerprint, headtail: str | None) -> Fingerprint:
    """A worker's fingerprint of bytes whose head/tail key the session knows."""
    fingerprint.headtail = headtail
    return fingerprint


def _sha256_and_md5(data: bytes) -> tuple[str, str]:
    """Both digests of a whole read (hashlib releases the GIL on large inputs: run in a thread)."""
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


# The columns of an object no read settled, of a copy left unread, and of an object not read at all.
_UNSETTLED_COLUMNS = ("status", "reason", "headtail")
_UNREAD_COLUMNS = ("headtail",)
_SKIPPED_COLUMNS = ("status", "reason")
# The columns a read with metadata sets, after its SHA-256 and headtail key when it has them.
_METADATA_COLUMNS = ("format", "width", "height", "phash", "dhash", "near_sig", "exif", "status", "reason", "faces")


def _row(want_metadata: bool, r: Fingerprint) -> tuple[tuple[str, ...], tuple[object, ...]]:
    """Catalog columns to update from a read (metadata only when the item wanted it), and their values."""
    columns: tuple[str, ...] = ()
    values: tuple[object, ...] = ()
    if r.sha256:
        columns, values = ("sha256",), (r.sha256,)
    if r.headtail:
        columns, values = (*columns, "headtail"), (*values, r.headtail)
    if not want_metadata or (r.exif is None and r.format is None and r.error is None):
        return columns, values
    status = ObjectStatus.skipped if r.error else ObjectStatus.fingerprinted
    # A face count that failed leaves its reason on the object, which keeps its fingerprint.
    return (*columns, *_METADATA_COLUMNS), (*values, r.format, r.width, r.height, r.phash, r.dhash, r.near_sig,
                                            r.exif, status.value, r.error or r.faces_error, r.faces)


# What a worker answers for a whole read (`_read_whole`): a tag, then the tag's values.
_FAILED = 0  # (reason,): the read raised
_SHORT = 1  # (bytes read,): fewer bytes than listed
_HASHED = 2  # (bytes, headtail key, SHA-256, MD5): read for its SHA-256 alone
_DONE = 3  # (bytes, headtail key, SHA-256, pHash, dHash, signature, format, width, height, EXIF JSON, error,
#              thumbnail, faces, why faces were not analysed)


def _read_whole(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """In a worker: read an object whole with its connector's `worker_read` (every check of its reads
    holds), and fingerprint it as `ReadSession._full` would. `item`: (function, its arguments, size,
    want_metadata, want_perceptual, want_signature, want_thumbnail, want_faces). Once read, its size and key
    are `note`d: should the parse overrun the deadline, the read still counts."""
    read, args, size, want_metadata, perceptual, signatures, thumbnails, faces = item
    try:
        data = read(*args, 0, size)
    except ObjectError as exc:
        return (_FAILED, f"{exc.reason}: {exc}")
    if len(data) != size:
        return (_SHORT, len(data))
    key = headtail_key(size, data[:HEAD], data[-TAIL:])
    fingerprint_pool.note(f"{size} {key}".encode())
    if not want_metadata:
        return (_HASHED, size, key, *_sha256_and_md5(data))
    from tierscan.scanner.fingerprint.image import fingerprint_bytes  # loaded by the worker as it starts

    r = fingerprint_bytes(data, want_sha256=True, want_perceptual=perceptual, want_signature=signatures,
                          want_thumbnail=thumbnails, want_faces=faces)
    return (_DONE, size, key, r.sha256, r.phash, r.dhash, r.near_sig, r.format, r.width, r.height, r.exif,
            r.error, r.thumb, r.faces, r.faces_error)


class _Results:
    """The rows a session writes to the catalog, sent in batches of `_WRITE_BATCH`: each its columns and
    their values then the URI (`Catalog.record_rows`), made once a read, not a dict an object; and the
    read keys narrowing needs (`Catalog.record_read_keys`), sent with them."""

    def __init__(self, catalog: Catalog, stats: dict[str, int], progress: Progress):
        self.catalog, self.stats, self.progress = catalog, stats, progress
        self.pending: list[tuple[tuple[str, ...], tuple[object, ...]]] = []
        self.keys: list[tuple[str, str, str, int, str | None, str | None]] = []
        self.sizes: set[int] = set()  # of whole reads since the last flush
        self.thumbnails: list[tuple[str, bytes]] = []  # (URI, WebP) of the objects read, after their rows

    def flush(self) -> None:
        self.catalog.record_rows(self.pending)
        self.pending.clear()
        if self.thumbnails:
            self.catalog.record_thumbnails(self.thumbnails)
            self.thumbnails.clear()
        self.catalog.record_read_keys(self.keys, self.sizes)
        self.keys.clear()
        self.sizes.clear()

    def failed(self, uri: str, status: ObjectStatus, reason: str) -> None:
        """An object no read settled: `status` with the reason, and no head/tail key (read it again)."""
        self._put(_UNSETTLED_COLUMNS, (status.value, reason, None, uri))

    def skipped(self, uri: str, reason: str) -> None:
        """An object not read, for `reason`."""
        self._put(_SKIPPED_COLUMNS, (ObjectStatus.skipped.value, reason, uri))

    def unread(self, uri: str) -> None:
        """A copy left unread: no head/tail key, so the next scan reads it for its SHA-256."""
        self._put(_UNREAD_COLUMNS, (None, uri))

    def _put(self, columns: tuple[str, ...], values: tuple[object, ...]) -> None:
        self.pending.append((columns, values))
        if len(self.pending) >= _WRITE_BATCH:
            self.flush()

    def record(self, items: Iterable[WorkItem], r: Fingerprint, *, planned: bool = True) -> None:
        """`planned`: the items were planned reads (or their copies), which progress counts. A thumbnail
        goes with the object read (the first item) only: its copies are found through their exact group."""
        items = list(items)
        if r.thumb is not None and items:
            self.thumbnails.append((items[0].ref.uri, r.thumb))
        rows: dict[bool, tuple[tuple[str, ...], tuple[object, ...]]] = {}
        n = 0
        for item in items:
            want = item.want_metadata
            if want:
                self.stats["fingerprinted"] += 1
            columns, values = rows.get(want) or rows.setdefault(want, _row(want, r))
            self._put(columns, (*values, item.ref.uri))
            n += 1
        if planned:
            self.progress.settled(n)

    def fail(self, items: Iterable[WorkItem], reason: str) -> None:
        n = 0
        for item in items:
            self.failed(item.ref.uri, ObjectStatus.failed, reason)
            n += 1
        self.progress.settled(n)


class _WorkerReads:
    """Whole reads that the pool's workers make themselves, a batch of objects a message. Batches go out
    as soon as a worker has room (so a slow listing still keeps the workers busy) and grow while they
    are all busy; `put` waits while `_WORKER_BATCH` objects wait and every worker has its batches.

    A batch whose worker overran the deadline or died on an item (`BatchBroken`): that item is failed with
    the reason (counted as read if its bytes were), and the others go out again, in a new batch."""

    def __init__(self, session: ReadSession):
        self.session = session
        self.limit = _BATCHES_A_WORKER * session.pool.workers
        self.waiting: list[tuple[PlannedRead, float, tuple[Any, ...]]] = []  # (plan, fee estimate, message)
        self.out = 0  # batches in flight
        self.changed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.kicked = False
        self.failure: BaseException | None = None  # a batch's answer that could not be taken: raised by `drain`

    async def put(self, p: PlannedRead, estimate: float, read: tuple[Any, ...]) -> None:
        if self.failure is not None:
            raise self.failure
        while len(self.waiting) >= _WORKER_BATCH:
            if self.out < self.limit:
                self._send()
            else:
                self.changed.clear()
                await self.changed.wait()
        ref, session = p.ref, self.session
        self.waiting.append((p, estimate, (*read, ref.size, p.item.want_metadata, session.perceptual,
                                           session.signatures, session.thumbnails, session.faces)))
        if not self.kicked and self.out < self.limit:
            # Sent once the readers have added what they have at hand, not one message an object.
            self.kicked = True
            asyncio.get_running_loop().call_soon(self._kick)

    async def drain(self) -> None:
        """Send what waits and wait for every batch's answer."""
        while self.waiting or self.out:
            if self.waiting and self.out < self.limit:
                self._send()
                continue
            self.changed.clear()
            await self.changed.wait()
        if self.failure is not None:
            raise self.failure

    def _kick(self) -> None:
        self.kicked = False
        if self.waiting and self.out < self.limit:
            self._send()

    def _send(self, batch: list[tuple[PlannedRead, float, tuple[Any, ...]]] | None = None) -> None:
        if batch is None:
            batch, self.waiting = self.waiting[:_WORKER_BATCH], self.waiting[_WORKER_BATCH:]
        self.out += 1
        answer = self.session.pool.submit_batch(_read_whole, [message for *_, message in batch])
        task = asyncio.ensure_future(self._answered(batch, answer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answered(self, batch: list[tuple[PlannedRead, float, tuple[Any, ...]]],
                        answer: asyncio.Future[list[Any]]) -> None:
        try:
            try:
                results = await answer
            except BatchBroken as exc:
                p, estimate, _ = batch[exc.index]
                self.session._broken(p, estimate, str(exc), exc.note)
                rest = batch[:exc.index] + batch[exc.index + 1:]
                if rest:
                    self._send(rest)
                return
            for (p, estimate, _), result in zip(batch, results, strict=True):
                self.session._whole_answer(p, estimate, result)
        except BaseException as exc:
            self.failure = self.failure or exc
            raise
        finally:
            self.out -= 1
            self.changed.set()
            if self.waiting and self.out < self.limit:
                self._send()


class ReadSession:
    """The reads of one scan, and what they share (see the module's docstring)."""

    def __init__(self, config: Config, catalog: Catalog, connectors: dict[str, Connector],
                 pool: FingerprintPool, stats: dict[str, int], acct: _Accounts, progress: Progress,
                 shard: Shard | None):
        self.config, self.catalog, self.connectors, self.pool = config, catalog, connectors, pool
        self.stats, self.acct, self.progress, self.shard = stats, acct, progress, shard
        self.perceptual = config.scan.perceptual
        self.signatures = self.perceptual and config.scan.signatures
        self.thumbnails = self.perceptual and config.scan.thumbnails
        self.faces = self.perceptual and config.scan.faces
        self.budget = Budget(config.scan.max_retrieval_usd)
        self.results = _Results(catalog, stats, progress)
        self.worker_reads = _WorkerReads(self)
        # Narrowing state: the headtail key of every object this scan read, in the catalog (`_Results.keys`,
        # `Catalog.record_read_keys`), and the head/tail reads to settle with whole reads where keys collide.
        catalog.begin_read_keys()
        self.narrowed: list[PlannedRead] = []

    async def read_all(self, listing: asyncio.Task[None], early: asyncio.Queue[ObjectRef | None] | None) -> None:
        """Read `early` objects while `listing` runs; then the planned reads, then the narrowed ones."""
        if early is not None:
            await self._run_early(early)
        await listing  # a failed listing fails the scan here
        self.catalog.skip_empty()
        await self._fetch_checksums()
        if early is not None:
            self.stats["fingerprinted"] += self.catalog.fill_copies()  # copies of early reads, listed after them
        # Planned and read a run of size classes at a time (byte-identical copies share a size), so memory
        # holds one run. Under a retrieval budget every read is planned at once instead, hottest tier first
        # across the whole estate, so the budget goes to the cheapest reads. A shard plans over every object,
        # so that byte-identical copies pick the same representative in every shard and in one process; it
        # reads the plans whose representative it owns, and `tierscan merge` fills copies owned by others.
        work = (self.catalog.work_runs(signatures=self.signatures, faces=self.faces) if self.budget.limit is None
                else iter([list(self.catalog.work(signatures=self.signatures, faces=self.faces))]))
        for items in work:
            plans = plan_reads(items, perceptual=self.perceptual, price=self.acct.price)
            shard = self.shard
            if shard is not None:
                plans = [p for p in plans if shard.owns(p.ref.uri)]
                unowned = sum(1 for p in plans for c in p.copies if not shard.owns(c.ref.uri) and c.want_metadata)
                self.stats["fingerprinted"] += unowned  # counted where their twin is read, as one process does
                for p in plans:
                    p.copies = [c for c in p.copies if shard.owns(c.ref.uri)]
            self.progress.planned(sum(1 + len(p.copies) for p in plans))
            budgeted = self.budget.limit is not None
            await self._run(plans if budgeted else spread_decodes(plans, perceptual=self.perceptual))
        reads, fill = _still_colliding(self.catalog, self.narrowed)
        self.progress.planned(sum(1 + len(p.copies) for p in reads))
        await self._run(reads)
        for key, items in fill.items():  # MD5-trusted objects: the SHA-256 of the read object with their MD5
            for item in items:
                md5 = item.ref.checksums.get("md5")
                sha = self.catalog.read_sha256(key, md5) if md5 else None
                if sha is not None:
                    self.results.record([item], Fingerprint(sha256=sha), planned=False)
        self.results.flush()
        self.catalog.end_read_keys()

    async def _run(self, reads: list[PlannedRead]) -> None:
        queue = iter(reads)

        async def reader() -> None:
            for p in queue:  # the readers share one iterator: at most `concurrency` objects in flight
                await self._one(p)

        await asyncio.gather(*(reader() for _ in range(self.config.scan.concurrency)))
        await self.worker_reads.drain()
        self.results.flush()

    async def _run_early(self, queue: asyncio.Queue[ObjectRef | None]) -> None:
        async def reader() -> None:
            while (ref := await queue.get()) is not None:
                # Whether its size collides is known only once the listing ends. Without perceptual hashing,
                # read the tail as if it did; with it, read the image (the pixels of a JPEG only; whole
                # otherwise, SHA-256 and all): a collision found later is narrowed then (`Catalog.work`).
                item = WorkItem(ref, want_sha256=not self.perceptual, want_metadata=True)
                self.progress.planned(1)
                await self._one(PlannedRead(item, plan_kind(item, perceptual=self.perceptual, price=self.acct.price)))
            await queue.put(None)  # for the next reader; the listing has ended, so there is room

        await asyncio.gather(*(reader() for _ in range(self.config.scan.concurrency)))
        await self.worker_reads.drain()
        self.results.flush()

    async def _one(self, p: PlannedRead) -> None:
        ref, config = p.ref, self.config
        if p.kind in (ReadKind.full, ReadKind.image) and ref.size > config.scan.max_object_bytes:
            for item in [p.item, *p.copies]:
                self.results.skipped(item.ref.uri, f"larger than {config.scan.max_object_bytes} bytes")
            self.progress.settled(1 + len(p.copies))
            return
        _, nbytes = p.estimate()
        estimate = self.acct.retrieval(ref, nbytes)
        if not self.budget.admit(estimate):
            self._leave(p)
            return
        if p.kind == ReadKind.full and ref.readable:
            conn = self._connector(ref)
            read = conn.worker_read(ref) if conn.capabilities.worker_reads else None
            if read is not None:
                await self.worker_reads.put(p, estimate, read)
                return
        before = self.acct.retrieval_usd
        try:
            reader = {ReadKind.full: self._full, ReadKind.image: self._image, ReadKind.meta: self._meta,
                      ReadKind.narrow: self._narrow}[p.kind]
            r = await reader(p)
        except ObjectError as exc:
            self.results.fail([p.item, *p.copies], f"{exc.reason}: {exc}")
            return
        finally:
            self.budget.charge(self.acct.retrieval_usd - before - estimate)  # follow-up reads beyond the estimate
        if r is not None:
            self._settle(p, r)

    def _settle(self, p: PlannedRead, r: Fingerprint) -> None:
        """Keep what narrowing needs of a read, and record it for the object and its copies."""
        if r.headtail is not None:
            settled = 0
            if (p.item.want_sha256 or p.kind == ReadKind.full) and r.error is None:
                # Settled after the first pass: a whole read, or its key tells it apart. Whole reads count even
                # unasked (early reads, before anyone knew the size collides): their SHA-256 settles a key
                # (their size meets the catalog's objects of that size), unless the object has a trusted MD5.
                if p.kind != ReadKind.full:
                    self.narrowed.append(p)
                else:
                    settled = 1 if p.ref.checksums.get("md5") else 2
                    self.results.sizes.add(p.ref.size)
            # A whole read's objects need no row: their catalog rows have the key and SHA-256 narrowing reads.
            if not settled or r.md5:
                keys = self.results.keys
                keys.append((p.ref.uri, r.headtail, p.ref.content_id or p.ref.uri, settled, r.md5,
                             r.sha256 if r.md5 else None))
                for c in p.copies:
                    keys.append((c.ref.uri, r.headtail, c.ref.content_id or c.ref.uri, 0, None, None))
        self.results.record([p.item, *p.copies], r)

    def _leave(self, p: PlannedRead) -> None:
        for item in [p.item, *p.copies]:
            self.acct.left += 1
            self.acct.left_bytes += item.ref.size
            if item.want_metadata:
                self.results.failed(item.ref.uri, ObjectStatus.failed, "left unread: over the retrieval budget "
                                    f"({self.config.scan.max_retrieval_usd} USD)")
            else:
                self.results.unread(item.ref.uri)
        self.progress.settled(1 + len(p.copies))

    def _connector(self, ref: ObjectRef) -> Connector:
        """The connector of `ref`'s scheme (`parse_target`'s, without parsing the rest of the URI)."""
        scheme, found, _ = ref.uri.partition("://")
        return self.connectors[scheme.lower() if found else "file"]

    def _counted(self, p: PlannedRead, estimate: float, nbytes: int | None) -> None:
        """Account a worker's read of `p` (`nbytes` None: it failed before any byte), as `read_range`
        and `_fetch` would have."""
        ref = p.ref
        self._connector(ref).requests["read"] += 1
        if nbytes is None:
            self.budget.charge(-estimate)
            return
        fee = self.acct.retrieval(ref, nbytes)
        before = self.acct.retrieval_usd if fee else 0.0
        self.acct.add(ref, nbytes)
        self.progress.read(nbytes)
        self.budget.charge((self.acct.retrieval_usd - before if fee else 0.0) - estimate)

    def _whole_answer(self, p: PlannedRead, estimate: float, answer: Any) -> None:
        """A worker's answer for a whole read (`_read_whole`)."""
        items = [p.item, *p.copies]
        if isinstance(answer, WorkerFailed):
            self._counted(p, estimate, None)
            self.results.fail(items, str(answer))
            return
        tag = answer[0]
        if tag == _FAILED:
            self._counted(p, estimate, None)
            self.results.fail(items, answer[1])
            return
        self._counted(p, estimate, answer[1])
        if tag == _SHORT:
            self.results.fail(items, f"truncated read: {answer[1]} of {p.ref.size} bytes")
            return
        if tag == _HASHED:
            _, _, key, sha, md5 = answer
            self._settle(p, Fingerprint(sha256=sha, headtail=key, md5=md5))
            return
        _, _, key, sha, phash, dhash, near_sig, fmt, width, height, exif, error, thumb, faces, faces_error = answer
        self._settle(p, Fingerprint(sha, key, phash, dhash, near_sig, fmt, width, height, exif, error, thumb,
                                    faces=faces, faces_error=faces_error))

    def _broken(self, p: PlannedRead, estimate: float, reason: str, note: bytes) -> None:
        """The object a worker overran the deadline or died on: what `_full` records when the parse of its
        bytes fails so, once they were read (`note`: their size and key); else the read failed."""
        if not note:
            self._counted(p, estimate, None)
            self.results.fail([p.item, *p.copies], reason)
            return
        size, key = note.decode().split(" ")
        self._counted(p, estimate, int(size))
        self._settle(p, Fingerprint(headtail=key, error=reason))

    # ---- one object at a time, through the connector ---------------------------------------------------

    async def _fetch(self, ref: ObjectRef, start: int, end: int) -> bytes:
        data = await self._connector(ref).read_range(ref, start, end)
        self.acct.add(ref, len(data))
        self.progress.read(len(data))
        return data

    async def _full(self, p: PlannedRead) -> Fingerprint | None:
        item, ref = p.item, p.ref
        data = await self._fetch(ref, 0, ref.size)
        if len(data) != ref.size:
            self.results.fail([item, *p.copies], f"truncated read: {len(data)} of {ref.size} bytes")
            return None
        key = headtail_key(ref.size, data[:HEAD], data[-TAIL:])
        if not item.want_metadata:
            sha, md5 = await asyncio.to_thread(_sha256_and_md5, data)
            return Fingerprint(sha256=sha, headtail=key, md5=md5)
        # A whole read always gives the SHA-256 (1.8 GB/s: free beside the read), whoever asked.
        answer = self.pool.submit(data, want_sha256=True, want_perceptual=self.perceptual,
                                  want_signature=self.signatures, want_thumbnail=self.thumbnails,
                                  want_faces=self.faces)
        del data  # the pool has what it needs; drop ours before waiting
        return _keyed(await answer, key)

    async def _image(self, p: PlannedRead) -> Fingerprint | None:
        """A JPEG's primary image (`tierscan.scanner.scan.plan`, kind ``image``): chunks until its EOI, then
        fingerprinted."""
        ref = p.ref
        first = image_first_chunk(ref.size)
        data = await self._fetch(ref, 0, first)
        if len(data) != first:
            self.results.fail([p.item, *p.copies], f"truncated read: {len(data)} of {ref.size} bytes")
            return None
        end = primary_end(data)
        while end is None and len(data) < ref.size:
            # Not a JPEG after all (the key said so), or a damaged one: the rest in one read.
            upto = ref.size if data[:2] != b"\xff\xd8" else min(ref.size, 4 * len(data))
            more = await self._fetch(ref, len(data), upto)
            if len(more) != upto - len(data):
                self.results.fail([p.item, *p.copies], f"truncated read: {len(data) + len(more)} of {ref.size} bytes")
                return None
            data += more
            end = primary_end(data)
        whole = len(data) == ref.size
        key = headtail_key(ref.size, data[:HEAD], data[-TAIL:]) if whole else None
        pixels = data if whole or end is None else data[:end]  # whole: the SHA-256 is of every byte
        del data
        answer = self.pool.submit(pixels, want_sha256=whole, want_perceptual=True, want_signature=self.signatures,
                                  want_thumbnail=self.thumbnails, want_faces=self.faces)
        del pixels
        return _keyed(await answer, key)

    async def _meta(self, p: PlannedRead) -> Fingerprint:
        ref = p.ref
        try:  # walked in the pool: a hostile file must not hold the event loop, nor anything past the deadline
            found = await ranged_metadata(lambda s, e: self._fetch(ref, s, e), ref.size,
                                          want_tail=p.item.want_sha256, parse=self.pool.read_prefix)
        except WorkerFailed as exc:
            return Fingerprint(error=str(exc))
        key = headtail_key(ref.size, found.head, found.tail) if p.item.want_sha256 else None
        return Fingerprint(headtail=key, format=found.format, width=found.width, height=found.height,
                     exif=exif_json(found.exif) if found.error is None else None, error=found.error)

    async def _narrow(self, p: PlannedRead) -> Fingerprint:
        ref = p.ref
        head = await self._fetch(ref, 0, HEAD)
        tail = await self._fetch(ref, ref.size - TAIL, ref.size)
        return Fingerprint(headtail=headtail_key(ref.size, head, tail))

    async def _fetch_checksums(self) -> None:
        """HEADs for the whole-object checksums listings name without a value, where `plan_heads` finds
        them cheaper than the reads they spare; a failed HEAD leaves the object to be read."""
        kinds = {k for conn in self.connectors.values() for k, how in conn.capabilities.checksums.items()
                 if how == "head"}
        if not kinds:
            return
        heads = iter(plan_heads(self.catalog.pending_checksums(kinds), perceptual=self.perceptual,
                                price=self.acct.price))
        found: list[tuple[str, dict[str, str]]] = []
        identities: list[tuple[str, str]] = []

        async def header() -> None:
            for item, wanted in heads:
                ref = item.ref
                conn = self.connectors.get(parse_target(ref.uri).scheme)
                if conn is None:
                    continue  # listed by an earlier scan of other targets
                try:
                    values = await conn.head_checksums(ref, wanted)
                except ObjectError as exc:
                    log.debug("%s: no checksum (%s)", ref.uri, exc)
                    continue
                finally:
                    self.acct.add(ref, 0)
                if values:
                    found.append((ref.uri, values))
                    # Read early: narrowing compares its identity (a no-op for the objects not read).
                    identities.append((content_identity({**ref.checksums, **values}) or ref.uri, ref.uri))

        await asyncio.gather(*(header() for _ in range(self.config.scan.concurrency)))
        self.catalog.record_checksums(found)
        self.catalog.record_read_identities(identities)


def _still_colliding(catalog: Catalog, narrowed: list[PlannedRead]
                     ) -> tuple[list[PlannedRead], dict[str, list[WorkItem]]]:
    """Whole reads for SHA-256, after the head/tail pass: objects whose (size, head, tail) key another
    object shares, including the catalog's objects that share it without a SHA-256. An object of the same
    size whose key is unknown (fingerprinted before keys were kept) cannot be told apart, so it forces
    whole reads too.

    Objects with a trusted MD5 are not read when every object of their key without one is: those reads
    compute MD5 as well, and an MD5-trusted object takes the SHA-256 of the one whose MD5 equals its own
    (returned as key -> items to fill); objects that all have trusted MD5s need no read at all.

    `narrowed`: the head/tail reads; the keys of this scan's reads, and which whole reads settled theirs,
    are the catalog's (`Catalog.record_read_keys`). A key names its size, so size classes are settled a
    batch of them at a time: memory holds one batch's peers, not every object of every size."""
    by_size: dict[int, list[PlannedRead]] = defaultdict(list)
    for p in narrowed:
        by_size[p.ref.size].append(p)
    reads: list[PlannedRead] = []
    fill: dict[str, list[WorkItem]] = {}
    # A size class of whole reads alone needs a read only where some object still lacks its SHA-256 (an
    # object of an earlier scan, one this scan failed); the size classes of head/tail reads all count.
    for sizes in catalog.size_rounds(catalog.whole_read_sizes_unhashed() | set(by_size), _PEERS_A_ROUND):
        more, more_fill = _colliding_among(catalog, [p for size in sizes for p in by_size.get(size, ())], sizes)
        reads += more
        fill.update(more_fill)
    return reads, fill


def _colliding_among(catalog: Catalog, narrowed: list[PlannedRead], sizes: list[int]
                     ) -> tuple[list[PlannedRead], dict[str, list[WorkItem]]]:
    """`_still_colliding` for the objects of these sizes (`narrowed` holds only those)."""
    peers = list(catalog.size_peers(sizes))
    # This scan's reads of these sizes: uri -> (key, identity); and the keys its whole reads settled (an
    # object without MD5 whose SHA-256 is known).
    keys = {uri: (read[0], read[1]) for uri, _, _, _, read in peers if read is not None}
    settled_plain = {read[0] for *_, read in peers if read is not None and read[2] == 2}
    # Objects that provider checksums tell apart from every other object of their size (`Catalog.work`).
    need = catalog.needs_exact([p.ref.uri for p in narrowed] + [uri for uri, *_ in peers])
    narrowed = [p for p in narrowed if p.ref.uri in need]
    identities: dict[str, set[str]] = defaultdict(set)
    for uri in [p.ref.uri for p in narrowed] + [uri for uri, *_ in peers]:
        if uri in need and uri in keys:
            narrow_key, identity = keys[uri]
            identities[narrow_key].add(identity)
    unknown_sizes: set[int] = set()
    members: dict[str, list[tuple[WorkItem, list[WorkItem]]]] = defaultdict(list)
    for uri, ref, key, sha, _ in peers:
        if ref is None or uri not in need:  # None: read by this scan (in `keys`)
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
        reads += [PlannedRead(item, ReadKind.full, copies) for item, copies in _one_per_identity(plain + trusted)]
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

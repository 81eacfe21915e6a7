"""One scan, end to end: list every target, read what the catalog says is needed, fingerprint in a
process pool, group, evaluate policies, and store the results in the catalog for `report`.

Listing and reading are async; fingerprinting runs in worker processes. Reads are bounded by
`scan.concurrency`, and each object's bytes are released as soon as its fingerprint is back, so memory
stays bounded by concurrency x object size, not by the number of objects. A failing object is recorded
with its reason and the scan goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable

from connectors import Connector, connector_class, parse_target
from policies import Pricing, evaluate, load_policies

from .catalog import Catalog, WorkItem
from .cluster import exact_groups, near_groups
from .config import Config
from .errors import ObjectError, UsageError
from .fingerprint import FingerprintPool, FingerprintResult
from .models import ExifRecord, GPS, Group, InventoryRecord, ScanStats
from .pricing import PriceTable, price_as_from_config
from .progress import Progress
from .shard import Shard
from .tiers import JurisdictionMap

__all__ = ["evaluate_results", "policy_records", "run_scan"]

log = logging.getLogger("tierscan")

_WRITE_BATCH = 256  # catalog rows per transaction


def _exif_record(result: FingerprintResult) -> ExifRecord | None:
    info = result.exif
    if info is None:
        return None
    gps = GPS(lat=info.gps_lat, lon=info.gps_lon) if info.gps_lat is not None and info.gps_lon is not None else None
    return ExifRecord(
        gps=gps,
        serials=list(dict.fromkeys(value for _, value in info.serials)),
        make=info.make,
        model=info.model,
        datetime_original=info.datetime_original,
        software=info.software,
        owner=info.owner,
        orientation=info.orientation,
    )


def _result_fields(item: WorkItem, result: FingerprintResult) -> dict[str, object]:
    fields: dict[str, object] = {}
    if result.sha256:
        fields["sha256"] = result.sha256
    if not item.want_metadata:
        return fields
    fields.update(
        format=result.format, width=result.width, height=result.height,
        phash=result.phash, dhash=result.dhash, near_sig=result.near_sig, exif=_exif_record(result),
        status="skipped" if result.error else "fingerprinted", reason=result.error,
    )
    return fields


async def _list_all(config: Config, catalog: Catalog, targets: list[str], scan_id: int,
                    connectors: dict[str, Connector], stats: dict[str, int], progress: Progress) -> None:
    async def one(target_text: str) -> None:
        target = parse_target(target_text)
        conn = connectors[target.scheme]
        batch = []
        async for ref in conn.list_objects(target):
            batch.append(ref)
            if len(batch) >= _WRITE_BATCH:
                _store_listing(batch, target_text)
        _store_listing(batch, target_text)
        # Only a listing that completed may declare objects gone.
        stats["gone"] += catalog.mark_gone(target_text, scan_id)

    def _store_listing(batch: list, target_text: str) -> None:
        changed, unchanged = catalog.record_listing(batch, target_text, scan_id)
        stats["listed"] += changed + unchanged
        stats["unchanged"] += unchanged
        progress.listed(changed + unchanged)
        batch.clear()

    await asyncio.gather(*(one(t) for t in targets))


async def _read_all(config: Config, catalog: Catalog, connectors: dict[str, Connector],
                    pool: FingerprintPool, stats: dict[str, int], by_tier: dict[str, int],
                    progress: Progress, shard: Shard | None) -> None:
    # Materialised so that result writes never race the catalog cursor; a WorkItem is small.
    work = list(catalog.work(shard))
    progress.planned(len(work), sum(w.ref.size for w in work))
    loop = asyncio.get_running_loop()
    pending: list[tuple[str, dict[str, object]]] = []

    def flush() -> None:
        catalog.record_fingerprints(pending)
        pending.clear()

    async def one(item: WorkItem) -> None:
        ref = item.ref
        if ref.size > config.scan.max_object_bytes:
            pending.append((ref.uri, {"status": "skipped", "reason": f"larger than {config.scan.max_object_bytes} bytes"}))
            return
        conn = connectors[parse_target(ref.uri).scheme]
        try:
            data = await conn.read_range(ref, 0, ref.size)
        except ObjectError as exc:
            pending.append((ref.uri, {"status": "failed", "reason": f"{exc.reason}: {exc}"}))
            return
        stats["requests"] += 1
        stats["bytes_read"] += len(data)
        by_tier[ref.tier.value] += len(data)
        progress.read(len(data))
        if len(data) != ref.size:
            pending.append((ref.uri, {"status": "failed", "reason": f"truncated read: {len(data)} of {ref.size} bytes"}))
            return
        future = pool.submit(data, want_sha256=item.want_sha256, want_perceptual=config.scan.perceptual)
        del data  # the worker has its copy; drop ours before waiting
        result = await asyncio.wrap_future(future, loop=loop)
        if item.want_metadata:
            stats["fingerprinted"] += 1
        pending.append((ref.uri, _result_fields(item, result)))
        if len(pending) >= _WRITE_BATCH:
            flush()

    queue = iter(work)

    async def reader() -> None:
        for item in queue:  # the readers share one iterator: at most `concurrency` objects in flight
            await one(item)

    await asyncio.gather(*(reader() for _ in range(config.scan.concurrency)))
    flush()


def _policy_record(r: InventoryRecord, jurisdictions: JurisdictionMap) -> dict[str, object]:
    record = r.model_dump(mode="json")
    record["gba"] = jurisdictions.lookup(r.region).gba
    return record


def policy_records(config: Config, records: list[InventoryRecord],
                   groups: list[Group]) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """What policies see, keyed by URI and by group id: object records, and group records whose members
    are full object records. The scan evaluates these; `--output-dir` writes the matched ones out."""
    jurisdictions = JurisdictionMap.builtin(config.jurisdictions)
    objects = {r.uri: _policy_record(r, jurisdictions) for r in records}
    group_records = {}
    for g in groups:
        record = g.model_dump(mode="json")
        record["members"] = [{**objects[m.uri], "distance": m.distance} for m in g.members]
        group_records[g.id] = record
    return objects, group_records


def evaluate_results(config: Config, catalog: Catalog, now: datetime) -> None:
    """Group the catalog's objects, evaluate the configured policies (findings priced like the report),
    and store both."""
    policy_set = load_policies(packs=config.policies.packs, files=config.policies.files)
    records = list(catalog.records())
    exact = exact_groups(records, config.master)
    near = near_groups(records, exact, config.near, config.master, signatures=catalog.signatures(),
                       not_duplicates=catalog.not_duplicates())
    objects, groups = policy_records(config, records, exact + near)
    pricing = Pricing(PriceTable.load(config.prices), price_as_from_config(config))
    findings = evaluate(policy_set, objects=objects.values(), groups=groups.values(), now=now, pricing=pricing)
    catalog.replace_results(exact + near, findings)


async def run_scan(config: Config, catalog: Catalog, targets: list[str],
                   progress: Progress | None = None, now: Callable[[], datetime] | None = None,
                   shard: Shard | None = None) -> ScanStats:
    """List, read, fingerprint, group and evaluate; returns what the scan did and read.

    A `shard` scan lists everything but reads only its share (see `scanner.shard`) and stops before
    grouping: groups need every shard's fingerprints, so `tierscan merge` groups and evaluates.
    """
    clock = now or (lambda: datetime.now(timezone.utc))
    progress = progress or Progress()
    if not targets:
        raise UsageError("nothing to scan: name a path or URI, or set `targets:` in the config file")
    # Validate policies before any listing, so a bad policy file costs nothing.
    load_policies(packs=config.policies.packs, files=config.policies.files)
    started = clock()
    scan_id = catalog.begin_scan(targets, started)
    counters: dict[str, int] = defaultdict(int)
    by_tier: dict[str, int] = defaultdict(int)
    schemes = {parse_target(t).scheme for t in targets}
    connectors: dict[str, Connector] = {s: connector_class(s)(config) for s in schemes}
    try:
        await _list_all(config, catalog, targets, scan_id, connectors, counters, progress)
        catalog.skip_empty()
        with FingerprintPool(config.scan.workers) as pool:
            await _read_all(config, catalog, connectors, pool, counters, by_tier, progress, shard)
    finally:
        for conn in connectors.values():
            await conn.aclose()
    catalog.set_meta("shard", str(shard or ""))  # which rows `tierscan merge` takes from this catalog
    if shard is None:
        evaluate_results(config, catalog, clock())
    progress.done()
    stats = ScanStats(
        scan_id=scan_id, started=started, finished=clock(),
        listed=counters["listed"], fingerprinted=counters["fingerprinted"], unchanged=counters["unchanged"],
        gone=counters["gone"], requests=counters["requests"], bytes_read=counters["bytes_read"],
        bytes_read_by_tier=dict(by_tier),
    )
    catalog.finish_scan(stats)
    return stats

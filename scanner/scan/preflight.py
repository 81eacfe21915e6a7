"""`tierscan doctor`: check that each target can be scanned, before a scan, one line a check.

Each connector says what only it knows (`Connector.preflight`): where its credentials come from, whom they
resolve to, the endpoint and the region. Then this module runs the same checks for every target: the first
page of the listing (never more), a ranged read of at most `READ_BYTES` bytes of one listed object, the
bucket's versioning where the backend has any, and, where the config lists the bucket from inventory
reports, whether the newest report is found and how old it is.

A target's checks stop at its first failure (the later ones would fail for the same reason); every check
runs under the connectors' `check_timeout`, with few retries, so an endpoint that does not answer fails in
seconds. Nothing is written: no catalog, no object.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tierscan.connectors import Connector, connector_class, parse_target
from tierscan.connectors.base import Check, RetryPolicy, Target
from tierscan.scanner.core.config import Config, InventorySettings
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import ObjectRef

__all__ = ["FIRST_PAGE", "READ_BYTES", "Result", "as_json", "failed", "lines", "preflight", "summary"]

# Objects taken from a listing: one page of the largest backends' listings, whatever the bucket holds.
FIRST_PAGE = 1000
# Bytes read from one listed object.
READ_BYTES = 64
# Few retries: a fault that a retry mends shows as a slow check; one that stays shows quickly.
_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)
_NO_REPORT_FIX = ("check the inventory's uri (and rule) in the config, and that the provider has delivered a "
                  "report (the first one can take up to 48 hours)")

# One line of the output: the target as given and one of its checks.
Result = tuple[str, Check]


async def preflight(config: Config, targets: Sequence[str], *, timeout: float = 30.0) -> list[Result]:
    """Every check of every target, in the order of the targets. A target that does not parse, or whose
    scheme has no connector, is a `UsageError`."""
    parsed = [parse_target(text) for text in targets]
    # The listing check lists the bucket itself; inventory reports are checked on their own.
    listing = config.model_copy(update={"buckets": {pattern: settings.model_copy(update={"inventory": None})
                                                    for pattern, settings in config.buckets.items()}})
    connectors: dict[str, Connector] = {}
    try:
        for target in parsed:
            if target.scheme not in connectors:
                conn = connector_class(target.scheme)(listing, request_timeout=min(10.0, timeout), retry=_RETRY)
                conn.check_timeout = timeout
                connectors[target.scheme] = conn
        found = await asyncio.gather(*(_checks(connectors[t.scheme], t, config) for t in parsed))
    finally:
        for conn in connectors.values():
            await conn.aclose()
    return [(text, check) for text, checks in zip(targets, found, strict=True) for check in checks]


async def _checks(conn: Connector, target: Target, config: Config) -> list[Check]:
    checks = await conn.preflight(target)
    if any(check.status == "fail" for check in checks):
        return checks
    bucket = None if target.all_buckets else target.location
    inventory = None if bucket is None else config.bucket_settings(bucket, f"{target.scheme}://{bucket}/").inventory
    first: list[ObjectRef] = []
    listed = await conn.checked("list", _first_page(conn, target, first))
    if listed.status == "fail":
        if inventory is None:
            return [*checks, listed]
        listed = Check("list", "warn", listed.detail, "not needed while scans list this bucket from its inventory "
                       "reports; needed without them")
    checks.append(listed)
    if first:
        checks.append(await conn.checked("read", _read(conn, first[0])))
        if checks[-1].status == "fail":
            return checks
    elif listed.status == "ok":
        checks.append(Check("read", "warn", f"nothing read: no readable object among the first {FIRST_PAGE:,} listed"))
    bucket = bucket or (first[0].bucket if first else None)
    if conn.capabilities.versioning and bucket is not None:
        checks.append(await conn.checked("versioning", _versioning(conn, bucket)))
    if inventory is not None and bucket is not None:
        checks.append(await conn.checked("inventory", _inventory(conn, bucket, inventory)))
    elif bucket is not None and not target.all_buckets:
        checks.append(Check("inventory", "ok", "none configured: scans list the objects"))
    return checks


async def _first_page(conn: Connector, target: Target, first: list[ObjectRef]) -> str:
    """List until `FIRST_PAGE` objects have come; keep the first readable, non-empty one in `first`."""
    listed = 0
    stream = conn.list_objects(target)
    try:
        async for ref in stream:
            listed += 1
            if not first and ref.readable and ref.skipped is None and ref.size > 0:
                first.append(ref)
            if listed == FIRST_PAGE:
                return f"works: {FIRST_PAGE:,} objects listed, not further"
    finally:
        close = getattr(stream, "aclose", None)  # an async generator: end its listing (and its tasks) now
        if close is not None:
            await close()
    return f"works: {listed:,} object{'s' if listed != 1 else ''}" if listed else "works: no objects here"


async def _read(conn: Connector, ref: ObjectRef) -> str | Check:
    if not conn.capabilities.ranged_reads:
        return Check("read", "warn", f"not read: the {conn.capabilities.name} connector reads whole objects only")
    want = min(READ_BYTES, ref.size)
    data = await conn.read_range(ref, 0, want)
    if len(data) != want:
        return Check("read", "warn", f"{len(data)} of {want} bytes of {ref.uri}: shorter than listed")
    return f"{want} bytes of {ref.uri}"


async def _versioning(conn: Connector, bucket: str) -> str:
    if await conn.versioned(bucket):
        return "on: a delete leaves the old version, recoverable"
    return "off: a delete removes the data"


async def _inventory(conn: Connector, bucket: str, settings: InventorySettings) -> str | Check:
    try:
        report = await conn.inventory_report(bucket, settings)
    except UsageError as exc:  # no complete report, or settings the backend cannot use
        return Check("inventory", "fail", str(exc), _NO_REPORT_FIX)
    age = (datetime.now(UTC) - report.created).total_seconds() / 86400
    stamp = report.created.strftime("%Y-%m-%d %H:%M UTC")
    if age > settings.max_age_days:
        return Check("inventory", "warn", f"{settings.uri}: the newest report, of {stamp}, is {age:.1f} days old "
                     f"(more than {settings.max_age_days:g})",
                     "check that the inventory configuration still delivers reports: objects changed since the "
                     "report are read as changed, new ones are not listed")
    return f"{settings.uri}: newest report of {stamp} ({age:.1f} days old), {report.format}"


def failed(results: Sequence[Result]) -> bool:
    return any(check.status == "fail" for _, check in results)


def lines(results: Sequence[Result]) -> list[str]:
    """`STATUS  TARGET  check: detail`, the targets padded to one width; a failure or warning adds its fix."""
    width = max((len(target) for target, _ in results), default=0)
    return [f"{check.status:<4}  {target:<{width}}  {check.name}: {check.detail}"
            + (f" -- fix: {check.fix}" if check.fix and check.status != "ok" else "")
            for target, check in results]


def as_json(results: Sequence[Result]) -> dict[str, Any]:
    counts = Counter(check.status for _, check in results)
    return {
        "checks": [{"target": target, "check": check.name, "status": check.status, "detail": check.detail,
                    "fix": check.fix or None} for target, check in results],
        "summary": {status: counts[status] for status in ("ok", "warn", "fail")},
    }


def summary(results: Sequence[Result]) -> str:
    counts = Counter(check.status for _, check in results)
    targets = len({target for target, _ in results})
    return (f"doctor: {targets} target{'s' if targets != 1 else ''}: {counts['ok']} ok, {counts['warn']} warning"
            f"{'s' if counts['warn'] != 1 else ''}, {counts['fail']} failed")

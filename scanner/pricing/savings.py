"""What the redundant copies cost, what removing them saves, and what the scan itself cost.

Conventions (the report's figures depend on them):
- GB is GiB, 2^30 bytes (how S3, GCS and Azure meter storage); a month is 30 days.
- Only **exact** duplicates count: in every exact group, each member other than the master is a redundant
  copy. Near duplicates are candidates for review and never enter these figures.
- Monthly saving of removing a copy = size_GB x the storage price of that copy's own class and region.
- One-time cost of removing it = the early-deletion charge when the copy is younger than its class's
  minimum storage duration: remaining_days / 30 x size_GB x storage price. Deleting reads nothing, so no
  retrieval fee is added.
- A bucket is identified by its URI: the object URI without the key (`s3://bucket`, `gs://bucket`,
  `az://account/container`, `file:///data/photos/bucket`); see `bucket_uri`.
- Records with status `gone` no longer exist and are not counted.
- Break-even month = the first whole month whose cumulative savings exceed the one-time cost:
  floor(one_time / monthly) + 1 (month 1 when there is no one-time cost); None when nothing is saved.
  Per bucket the one-time cost is its early-deletion charges; in total the scan's own cost is added, since
  the budget holder paid for it too.
- Money is kept unrounded here; the report rounds it at output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from tierscan.scanner.core.models import Group, Holding, InventoryRecord, ObjectStatus, ScanStats, Tier
from tierscan.scanner.pricing.table import GIB, Price, PriceAs, PriceTable

# An object as the tally reads it: its inventory record, or the part of it the tally needs.
Stored = InventoryRecord | Holding

__all__ = [
    "MONTH_DAYS",
    "BucketTally",
    "RemovalCost",
    "ScanCost",
    "Sums",
    "Tally",
    "break_even_month",
    "bucket_uri",
    "redundant_copies",
    "removal_cost",
    "scan_cost",
    "scan_cost_parts",
    "tally",
    "tally_flagged",
]

MONTH_DAYS = 30
_SECONDS_PER_DAY = 86_400
_EPSILON = 1e-9


def bucket_uri(record: Stored) -> str:
    """The URI of the bucket (or local folder) holding `record`: its URI with the key and any query removed.

    Derived from the URI rather than rebuilt from `bucket`, because a local bucket is a folder whose full
    path only the URI carries, and an Azure bucket is an account plus a container.
    """
    parts = urlsplit(record.uri)
    path = unquote(parts.path)
    if record.key and path.endswith("/" + record.key):
        path = path[: -len(record.key) - 1]
    else:
        # Not a URI ending in the key: fall back to the listed bucket name.
        return f"{record.provider}://{record.bucket}"
    if parts.scheme == "file":
        return PurePosixPath(path or "/").as_uri()
    return urlunsplit((parts.scheme, parts.netloc, quote(path), "", ""))


class _BucketUris:
    """`bucket_uri` once per bucket: a URI that ends in "/" + its key as written (no query, no escape in
    the key) has a bucket URI that depends only on what comes before the key, so that prefix is the memo's
    key; any other URI is derived afresh."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def __call__(self, record: Stored) -> str:
        key, uri = record.key, record.uri
        if not key or "%" in key or "?" in uri or not uri.endswith("/" + key):
            return bucket_uri(record)
        head = uri[: -len(key) - 1]
        found = self._known.get(head)
        if found is None:
            found = self._known[head] = bucket_uri(record)
        return found


def redundant_copies(groups: Iterable[Group]) -> set[str]:
    """URIs of every redundant copy: exact-group members other than the group's master."""
    return {
        member.uri
        for group in groups
        if group.kind == "exact"
        for member in group.members
        if member.uri != group.master
    }


@dataclass(frozen=True)
class RemovalCost:
    """What deleting one redundant copy saves each month, and what it costs once."""

    monthly_saving_usd: float
    one_time_usd: float


def removal_cost(record: Stored, price: Price, now: datetime) -> RemovalCost:
    """What deleting `record` saves each month and what it costs once (the early-deletion charge)."""
    monthly = record.size / GIB * price.storage_gb_month
    age_days = (_aware(now) - _aware(record.modified)).total_seconds() / _SECONDS_PER_DAY
    remaining_days = max(0.0, price.min_days - age_days)
    return RemovalCost(monthly, remaining_days / MONTH_DAYS * monthly)


def _aware(moment: datetime) -> datetime:
    """Naive timestamps are taken as UTC, so that any two can be subtracted."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def break_even_month(monthly_savings: float, one_time: float) -> int | None:
    """The first whole month at whose end cumulative savings exceed `one_time` (see the module docstring);
    None when `monthly_savings` is not positive, because then it never pays back."""
    if monthly_savings <= 0:
        return None
    # The epsilon keeps a cost of exactly n months (6 x monthly, as rounding may leave it 5.9999...) at
    # month n + 1: savings must exceed the cost, not equal it.
    return math.floor(max(0.0, one_time) / monthly_savings + _EPSILON) + 1


@dataclass
class Sums:
    """Running totals of a set of objects: a bucket, a tier or a region."""

    objects: int = 0
    bytes: int = 0
    redundant_objects: int = 0
    redundant_bytes: int = 0
    monthly_cost_usd: float = 0.0
    monthly_savings_usd: float = 0.0
    one_time_cost_usd: float = 0.0

    def add(self, record: Stored, monthly_cost: float, count: int = 1) -> None:
        """Add `count` objects (a `Holding` of several: its `objects`) of `record.size` bytes in all."""
        self.objects += count
        self.bytes += record.size
        self.monthly_cost_usd += monthly_cost

    def add_redundant(self, record: Stored, cost: RemovalCost) -> None:
        self.redundant_objects += 1
        self.redundant_bytes += record.size
        self.monthly_savings_usd += cost.monthly_saving_usd
        self.one_time_cost_usd += cost.one_time_usd

    @property
    def break_even_month(self) -> int | None:
        return break_even_month(self.monthly_savings_usd, self.one_time_cost_usd)


@dataclass(kw_only=True)
class BucketTally(Sums):
    """Running totals for one bucket. Region and jurisdiction read "mixed", tier None, if objects differ."""

    uri: str
    name: str
    provider: str
    region: str
    jurisdiction: str
    tier: Tier | None

    def add(self, record: Stored, monthly_cost: float, count: int = 1) -> None:
        super().add(record, monthly_cost, count)
        if record.region != self.region:
            self.region = "mixed"
        if record.jurisdiction != self.jurisdiction:
            self.jurisdiction = "mixed"
        if record.tier != self.tier:
            self.tier = None


@dataclass
class Tally:
    """Per-bucket totals plus what was priced how (for the report's provenance)."""

    buckets: dict[str, BucketTally] = field(default_factory=dict)
    tiers: dict[Tier, Sums] = field(default_factory=dict)
    # Region -> (jurisdiction, totals); a region maps to one jurisdiction.
    regions: dict[str, tuple[str, Sums]] = field(default_factory=dict)
    # Key asked for ("provider/class/region", after price_as) -> the price used.
    prices: dict[str, Price] = field(default_factory=dict)
    # Per tier, the priciest retrieval/GET seen among the scanned objects: the scan-cost basis.
    tier_prices: dict[Tier, Price] = field(default_factory=dict)


def tally(
    records: Iterable[InventoryRecord],
    groups: Iterable[Group],
    prices: PriceTable,
    price_as: PriceAs | None,
    now: datetime,
) -> Tally:
    """One pass over `records` (a stream: memory grows with buckets and the redundant copies' URIs).

    Redundant copies are attributed to their own bucket, priced at their own class and region.
    """
    redundant = redundant_copies(groups)
    return tally_flagged(((r, r.uri in redundant) for r in records), prices, price_as, now)


def tally_flagged(
    records: Iterable[tuple[Stored, bool]],
    prices: PriceTable,
    price_as: PriceAs | None,
    now: datetime,
) -> Tally:
    """`tally` over records that come with whether each is a redundant copy (`Catalog.tally_records`
    flags them in SQL, and gives each as a `Holding`, or several alike as one): memory grows with buckets,
    tiers, regions and prices, not objects. A redundant copy must come alone (its own age prices it)."""
    result = Tally()
    bucket_of = _BucketUris()
    for record, is_redundant in records:
        if record.status == ObjectStatus.gone:
            continue
        # `price_as` reads the bucket and the URI, which a `Holding` has as an inventory record does.
        provider = (price_as(record) if price_as else None) or record.provider  # type: ignore[arg-type]
        price = prices.price_for(provider, record.storage_class, record.region, record.tier)
        result.prices[f"{provider}/{record.storage_class}/{record.region}"] = price
        best = result.tier_prices.get(record.tier)
        if best is None or (price.retrieval_gb, price.get_per_1000) > (best.retrieval_gb, best.get_per_1000):
            result.tier_prices[record.tier] = price
        uri = bucket_of(record)
        bucket = result.buckets.get(uri)
        if bucket is None:
            bucket = result.buckets[uri] = BucketTally(
                uri=uri,
                name=record.bucket,
                provider=record.provider,
                region=record.region,
                jurisdiction=record.jurisdiction,
                tier=record.tier,
            )
        sums = (
            bucket,
            result.tiers.setdefault(record.tier, Sums()),
            result.regions.setdefault(record.region, (record.jurisdiction, Sums()))[1],
        )
        monthly_cost = record.size / GIB * price.storage_gb_month
        cost = removal_cost(record, price, now) if is_redundant else None
        count = record.objects if isinstance(record, Holding) else 1
        for target in sums:
            target.add(record, monthly_cost, count)
            if cost is not None:
                target.add_redundant(record, cost)
    return result


@dataclass(frozen=True)
class ScanCost:
    """What the scan's reads cost, split as the providers bill it."""

    retrieval_usd: float
    request_usd: float

    @property
    def total_usd(self) -> float:
        return self.retrieval_usd + self.request_usd


def scan_cost(stats: ScanStats, tier_prices: Mapping[Tier, Price]) -> float:
    """What the scan's reads cost in total (see `scan_cost_parts`)."""
    return scan_cost_parts(stats, tier_prices).total_usd


def scan_cost_parts(stats: ScanStats, tier_prices: Mapping[Tier, Price]) -> ScanCost:
    """What the scan's reads cost: retrieval fees per tier plus request fees.

    Deliberately simple and never an understatement: each tier's bytes are charged at that tier's price
    (`tier_prices`, e.g. `Tally.tier_prices`, the priciest seen per tier); the scan counts requests only
    in total, so all of them are charged at the highest GET price among the tiers read (or among all tiers
    given, when no bytes were read).
    """
    if stats.requests_by_tier:  # priced per object by the scan itself: exact
        return ScanCost(stats.retrieval_usd, stats.request_usd)
    retrieval = 0.0
    read = []
    for tier_name, nbytes in stats.bytes_read_by_tier.items():
        price = tier_prices.get(Tier(tier_name))
        if price is not None and nbytes:
            retrieval += nbytes / GIB * price.retrieval_gb
            read.append(price)
    get = max((p.get_per_1000 for p in read or tier_prices.values()), default=0.0)
    return ScanCost(retrieval, stats.requests / 1000 * get)

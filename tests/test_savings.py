"""Savings arithmetic, checked against figures worked out by hand below.

Prices come from a test override (round numbers, so the arithmetic is readable and does not move when the
built-in table is updated); minimum durations come from the built-in table (DEEP_ARCHIVE 180 days,
NEARLINE 30 days). GB = 2^30 bytes, month = 30 days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tierscan.scanner.core.models import Group, GroupMember, InventoryRecord, ObjectRef, ScanStats, Tier
from tierscan.scanner.pricing.savings import (
    break_even_month,
    bucket_uri,
    redundant_copies,
    removal_cost,
    scan_cost,
    scan_cost_parts,
    tally,
    tally_flagged,
)
from tierscan.scanner.pricing.table import GIB, Price, PriceTable
from tierscan.scanner.scan.catalog import Catalog

NOW = datetime(2026, 1, 1, tzinfo=UTC)

OVERRIDE = """\
providers:
  s3:
    regions:
      ap-east-1:
        source: test
        as_of: 2026-01-01
        classes:
          STANDARD: {storage_gb_month: 0.03, get_per_1000: 0.0005}
          DEEP_ARCHIVE: {storage_gb_month: 0.003, retrieval_gb: 0.02, get_per_1000: 0.1}
  gcs:
    regions:
      us-central1:
        source: test
        as_of: 2026-01-01
        classes:
          STANDARD: {storage_gb_month: 0.02, get_per_1000: 0.0004}
          NEARLINE: {storage_gb_month: 0.01, retrieval_gb: 0.01, get_per_1000: 0.001}
"""


@pytest.fixture
def prices(tmp_path: Path) -> PriceTable:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDE, encoding="utf-8")
    return PriceTable.load(path)


def rec(uri: str, size: int, storage_class: str, age_days: float, **extra: object) -> InventoryRecord:
    scheme, rest = uri.split("://", 1)
    # A local bucket is a folder: its name is the folder's, the key is the file name.
    bucket, key = rest.rsplit("/", 2)[-2:] if scheme == "file" else rest.split("/", 1)
    provider = {"s3": "s3", "gs": "gs", "file": "local"}[scheme]
    region = {"s3": "ap-east-1", "gs": "us-central1", "file": "local"}[scheme]
    tier = {"STANDARD": Tier.hot, "NEARLINE": Tier.cool, "DEEP_ARCHIVE": Tier.archive}.get(
        storage_class, Tier.hot
    )
    fields: dict[str, object] = dict(
        uri=uri,
        provider=provider,
        bucket=bucket,
        key=key,
        size=size,
        tier=tier,
        storage_class=storage_class,
        region=region,
        jurisdiction="HK" if scheme == "s3" else "US",
        modified=NOW - timedelta(days=age_days),
        status="fingerprinted",
    )
    fields.update(extra)
    return InventoryRecord(**fields)


def member(r: InventoryRecord, distance: int = 0) -> GroupMember:
    return GroupMember(
        uri=r.uri, size=r.size, tier=r.tier, region=r.region, jurisdiction=r.jurisdiction, distance=distance
    )


def group(gid: str, kind: str, master: InventoryRecord, *others: InventoryRecord) -> Group:
    members = [master, *others]
    return Group(
        id=gid,
        kind=kind,
        master=master.uri,
        members=[member(m) for m in members],
        spans_tiers=len({m.tier for m in members}) > 1,
        spans_regions=len({m.region for m in members}) > 1,
        spans_jurisdictions=len({m.jurisdiction for m in members}) > 1,
        has_personal_data=False,
    )


# The scene: one photo (2 GiB) kept four times, plus a near-duplicate pair and a loner.
MASTER = rec("s3://hk-hot/photo.jpg", 2 * GIB, "STANDARD", 400)
DEEP_COPY = rec("s3://hk-archive/photo.jpg", 2 * GIB, "DEEP_ARCHIVE", 10)  # 10 days old: early deletion
OLD_COPY = rec("gs://us-media/photo.jpg", 2 * GIB, "STANDARD", 400)
NEARLINE_COPY = rec("gs://us-media/cold/photo.jpg", 2 * GIB, "NEARLINE", 20)  # 20 of 30 days
NEAR_A = rec("gs://us-media/near-a.jpg", GIB, "STANDARD", 400)
NEAR_B = rec("gs://us-media/near-b.jpg", GIB // 2, "STANDARD", 400)
LONER = rec("s3://hk-hot/other.jpg", GIB, "STANDARD", 5)
RECORDS = [MASTER, DEEP_COPY, OLD_COPY, NEARLINE_COPY, NEAR_A, NEAR_B, LONER]
GROUPS = [
    group("g1", "exact", MASTER, DEEP_COPY, OLD_COPY, NEARLINE_COPY),
    group("n1", "near", NEAR_A, NEAR_B),
]


def test_redundant_copies_are_exact_non_masters_only() -> None:
    assert redundant_copies(GROUPS) == {DEEP_COPY.uri, OLD_COPY.uri, NEARLINE_COPY.uri}


def test_early_deletion_of_a_ten_day_old_deep_archive_copy(prices: PriceTable) -> None:
    price = prices.price_for_object(DEEP_COPY, None)
    assert (price.storage_gb_month, price.min_days) == (0.003, 180)
    cost = removal_cost(DEEP_COPY, price, NOW)
    # 2 GiB x $0.003 = $0.006 a month; 180 - 10 = 170 days left: 170/30 x $0.006 = $0.034 once.
    assert cost.monthly_saving_usd == pytest.approx(0.006)
    assert cost.one_time_usd == pytest.approx(0.034)


def test_no_early_deletion_past_the_minimum(prices: PriceTable) -> None:
    old = rec("s3://hk-archive/old.jpg", 2 * GIB, "DEEP_ARCHIVE", 181)
    assert removal_cost(old, prices.price_for_object(old, None), NOW).one_time_usd == 0


def test_naive_timestamps_are_utc(prices: PriceTable) -> None:
    naive = DEEP_COPY.model_copy(update={"modified": (NOW - timedelta(days=10)).replace(tzinfo=None)})
    assert removal_cost(naive, prices.price_for_object(naive, None), NOW).one_time_usd == pytest.approx(0.034)


def test_per_bucket_attribution(prices: PriceTable) -> None:
    result = tally(iter(RECORDS), GROUPS, prices, None, NOW)
    assert set(result.buckets) == {"s3://hk-hot", "s3://hk-archive", "gs://us-media"}

    hot = result.buckets["s3://hk-hot"]  # the master and the loner: nothing redundant
    assert (hot.objects, hot.bytes, hot.redundant_objects, hot.redundant_bytes) == (2, 3 * GIB, 0, 0)
    assert hot.monthly_cost_usd == pytest.approx(3 * 0.03)  # 0.09
    assert (hot.monthly_savings_usd, hot.one_time_cost_usd) == (0, 0)
    assert (hot.tier, hot.region, hot.jurisdiction) == (Tier.hot, "ap-east-1", "HK")

    archive = result.buckets["s3://hk-archive"]
    assert (archive.objects, archive.redundant_objects, archive.redundant_bytes) == (1, 1, 2 * GIB)
    assert archive.monthly_cost_usd == pytest.approx(0.006)
    assert archive.monthly_savings_usd == pytest.approx(0.006)
    assert archive.one_time_cost_usd == pytest.approx(0.034)

    media = result.buckets["gs://us-media"]
    # Four objects: two exact copies (redundant) and the near pair (never redundant).
    assert (media.objects, media.bytes) == (4, 2 * GIB + 2 * GIB + GIB + GIB // 2)
    assert (media.redundant_objects, media.redundant_bytes) == (2, 4 * GIB)
    # Storage: 2 x 0.02 + 2 x 0.01 + 1 x 0.02 + 0.5 x 0.02 = 0.09
    assert media.monthly_cost_usd == pytest.approx(0.09)
    # Savings: the STANDARD copy 2 x 0.02 = 0.04, the NEARLINE copy 2 x 0.01 = 0.02.
    assert media.monthly_savings_usd == pytest.approx(0.06)
    # NEARLINE copy, 20 days old of 30: 10/30 x 0.02 = 0.006667; the old STANDARD copy costs nothing.
    assert media.one_time_cost_usd == pytest.approx(10 / 30 * 0.02)
    assert media.tier is None  # hot and cool objects


def test_master_is_never_counted_even_when_it_is_the_priciest(prices: PriceTable) -> None:
    result = tally(RECORDS, [group("g1", "exact", MASTER, DEEP_COPY)], prices, None, NOW)
    total = sum(b.monthly_savings_usd for b in result.buckets.values())
    assert total == pytest.approx(0.006)  # the DEEP_ARCHIVE copy only, not the $0.06 master


def test_near_groups_never_count(prices: PriceTable) -> None:
    result = tally(RECORDS, [GROUPS[1]], prices, None, NOW)
    assert all(b.redundant_objects == 0 and b.monthly_savings_usd == 0 for b in result.buckets.values())


def test_gone_records_are_not_counted(prices: PriceTable) -> None:
    gone = DEEP_COPY.model_copy(update={"status": "gone"})
    result = tally([MASTER, gone], GROUPS, prices, None, NOW)
    assert set(result.buckets) == {"s3://hk-hot"}


def test_local_folder_priced_as_s3(prices: PriceTable) -> None:
    local = rec("file:///data/photos/deep/photo.jpg", 2 * GIB, "DEEP_ARCHIVE", 10, region="ap-east-1")
    master = rec("file:///data/photos/hot/photo.jpg", 2 * GIB, "STANDARD", 400, region="ap-east-1")
    groups = [group("g", "exact", master, local)]
    free = tally([master, local], groups, prices, None, NOW)
    assert free.buckets["file:///data/photos/deep"].monthly_savings_usd == 0
    as_s3 = tally([master, local], groups, prices, lambda r: "s3", NOW)
    deep = as_s3.buckets["file:///data/photos/deep"]
    assert deep.monthly_savings_usd == pytest.approx(0.006)
    assert deep.one_time_cost_usd == pytest.approx(0.034)
    assert deep.provider == "local"
    assert "s3/DEEP_ARCHIVE/ap-east-1" in as_s3.prices


@pytest.mark.parametrize(
    ("provider", "uri", "key", "bucket", "expected"),
    [
        ("s3", "s3://b/dir/x.jpg", "dir/x.jpg", "b", "s3://b"),
        ("gs", "gs://b/x.jpg", "x.jpg", "b", "gs://b"),
        ("az", "az://acct/container/dir/x.jpg", "dir/x.jpg", "container", "az://acct/container"),
        (
            "local",
            "file:///data/my%20photos/trip/a%20b.jpg",
            "a b.jpg",
            "trip",
            "file:///data/my%20photos/trip",
        ),
        ("s3", "s3://b/x.jpg?versionId=3", "x.jpg", "b", "s3://b"),
        ("s3", "s3://b/elsewhere.jpg", "x.jpg", "b", "s3://b"),  # URI does not end in the key: the name
    ],
)
def test_bucket_uri(provider: str, uri: str, key: str, bucket: str, expected: str) -> None:
    r = MASTER.model_copy(update={"provider": provider, "uri": uri, "key": key, "bucket": bucket})
    assert bucket_uri(r) == expected


def test_tally_names_each_bucket_as_bucket_uri_does_for_every_record(prices: PriceTable) -> None:
    """The tally derives a bucket's URI once per bucket: records of one bucket that differ in how their keys
    are written (escapes, a query, a key the URI does not end in) still land where `bucket_uri` puts them."""
    cases = [
        ("local", "file:///data/trip/a.jpg", "a.jpg", "trip"),
        ("local", "file:///other/trip/a.jpg", "a.jpg", "trip"),  # a bucket of the same name elsewhere
        ("local", "file:///data/trip/sub/b.jpg", "sub/b.jpg", "trip"),
        ("local", "file:///data/trip/a%20b.jpg", "a b.jpg", "trip"),
        ("local", "file:///data/trip/100%25.jpg", "100%.jpg", "trip"),
        ("local", "file:///data/trip%2Fx/c.jpg", "c.jpg", "trip/x"),
        ("local", "file:///data/trip/%25/d.jpg", "%/d.jpg", "trip"),
        ("s3", "s3://b/x.jpg?versionId=3", "x.jpg", "b"),
        ("s3", "s3://b/x.jpg", "x.jpg", "b"),
        ("s3", "s3://b/elsewhere.jpg", "x.jpg", "b"),
        ("s3", "s3://c/x.jpg", "x.jpg", "c"),
    ]
    records = [MASTER.model_copy(update={"provider": p, "uri": u, "key": k, "bucket": b}) for p, u, k, b in cases]
    tallied = tally_flagged(((r, False) for r in records), prices, None, NOW)
    assert sorted(tallied.buckets) == sorted({bucket_uri(r) for r in records})
    assert len(tallied.buckets) == 5
    assert {u: t.objects for u, t in tallied.buckets.items()} == {
        u: sum(1 for r in records if bucket_uri(r) == u) for u in tallied.buckets}


def test_scan_cost_charges_retrieval_per_tier_and_requests_at_the_priciest_get() -> None:
    hot = Price(0.02, 0, 0.0, 0.0004, "test", None)
    cool = Price(0.01, 30, 0.01, 0.001, "test", None)
    stats = ScanStats(requests=5000, bytes_read_by_tier={"hot": GIB, "cool": 2 * GIB})
    # 2 GiB x $0.01 retrieval + 5,000 requests x $0.001 / 1,000 = 0.02 + 0.005
    assert scan_cost(stats, {Tier.hot: hot, Tier.cool: cool}) == pytest.approx(0.025)
    # Nothing read: requests at the priciest GET among the tiers given.
    assert scan_cost(ScanStats(requests=2000), {Tier.hot: hot, Tier.cool: cool}) == pytest.approx(0.002)
    assert scan_cost(ScanStats(), {}) == 0


def test_tally_tier_prices_take_the_priciest_seen(prices: PriceTable) -> None:
    result = tally(RECORDS, GROUPS, prices, None, NOW)
    assert result.tier_prices[Tier.archive].retrieval_gb == 0.02
    assert result.tier_prices[Tier.hot].get_per_1000 == 0.0005  # S3 STANDARD beats GCS STANDARD


@pytest.mark.parametrize(
    ("monthly", "one_time", "month"),
    [
        (0.006, 0.034, 6),  # 5 x 0.006 = 0.030 does not cover 0.034; 6 x 0.006 = 0.036 does
        (0.01, 0.03, 4),  # 3 months only equal it: break-even is when savings exceed the cost
        (0.05, 0.0, 1),  # nothing to pay back: the first month already saves
        (0.0, 0.0, None),  # nothing saved: never
        (0.0, 1.0, None),
    ],
)
def test_break_even_month(monthly: float, one_time: float, month: int | None) -> None:
    assert break_even_month(monthly, one_time) == month


def test_a_fresh_copy_pays_back_after_its_minimum_duration(prices: PriceTable) -> None:
    # A Deep Archive copy deleted on day 0 is charged its 180 days (6 months) at once; from month 7 on it
    # has saved more than that.
    fresh = rec("s3://hk-archive/new.jpg", 2 * GIB, "DEEP_ARCHIVE", 0)
    cost = removal_cost(fresh, prices.price_for_object(fresh, None), NOW)
    assert break_even_month(cost.monthly_saving_usd, cost.one_time_usd) == 7


def test_per_bucket_break_even_and_tier_and_region_sums(prices: PriceTable) -> None:
    result = tally(iter(RECORDS), GROUPS, prices, None, NOW)
    archive = result.buckets["s3://hk-archive"]  # 0.006 a month, 0.034 once
    assert archive.break_even_month == 6
    assert result.buckets["s3://hk-hot"].break_even_month is None
    # Tiers and regions partition the same objects as the buckets do.
    for parts in (result.tiers.values(), [sums for _, sums in result.regions.values()]):
        assert sum(p.objects for p in parts) == len(RECORDS)
        assert sum(p.monthly_savings_usd for p in parts) == pytest.approx(
            sum(b.monthly_savings_usd for b in result.buckets.values())
        )
    assert result.tiers[Tier.archive].redundant_bytes == 2 * GIB
    assert result.regions["ap-east-1"][0] == "HK"


def test_scan_cost_parts_split_retrieval_from_requests() -> None:
    hot = Price(0.03, 0, 0.0, 0.0005, "t", None)
    cool = Price(0.01, 30, 0.01, 0.001, "t", None)
    parts = scan_cost_parts(
        ScanStats(requests=1000, bytes_read_by_tier={"cool": 2 * GIB}), {Tier.hot: hot, Tier.cool: cool}
    )
    assert (parts.retrieval_usd, parts.request_usd) == pytest.approx((0.02, 0.001))
    assert parts.total_usd == pytest.approx(0.021)


def test_the_catalog_tally_sums_alike_objects_in_sql_and_agrees_with_pricing_them_one_by_one(
        prices: PriceTable, tmp_path: Path) -> None:
    """`Catalog.tally_records` gives objects the tally treats alike as one holding: the totals, and the
    order buckets, tiers, regions and prices are first seen in, are those of the records one by one."""
    alike = [rec(f"gs://us-media/batch/{i:03}.jpg", 1000 + i, "STANDARD", 400) for i in range(40)]
    escaped = [MASTER.model_copy(update={"provider": "local", "uri": u, "key": k, "bucket": "trip",
                                         "region": "local", "jurisdiction": "US"})
               for u, k in [("file:///data/trip/a%20b.jpg", "a b.jpg"), ("file:///data/trip/100%25.jpg", "100%.jpg"),
                            ("file:///data/trip/c.jpg", "c.jpg"), ("file:///other/trip/c.jpg", "c.jpg")]]
    records = [*RECORDS, *alike, *escaped]
    with Catalog(tmp_path / "c.db") as catalog:
        scan = catalog.begin_scan(["t"], NOW)
        catalog.record_listing([ObjectRef(**r.model_dump(include=set(ObjectRef.__dataclass_fields__)))
                                for r in records], "t", scan)
        catalog.replace_results(GROUPS, [])
        holdings = list(catalog.tally_records())
        summed = tally_flagged(holdings, prices, None, NOW)
        alone = tally_flagged(catalog.tally_records(alike=False), prices, None, NOW)
    assert len(holdings) < len(records) - 30 and sum(h.objects for h, _ in holdings) == len(records)
    expected = tally(sorted(records, key=lambda r: r.uri), GROUPS, prices, None, NOW)
    for found in (summed, alone):
        assert list(found.buckets) == list(expected.buckets)
        assert list(found.tiers) == list(expected.tiers) and list(found.regions) == list(expected.regions)
        assert list(found.prices) == list(expected.prices) and found.tier_prices == expected.tier_prices
        pairs = [*zip(found.buckets.values(), expected.buckets.values(), strict=True),
                 *zip(found.tiers.values(), expected.tiers.values(), strict=True),
                 *((a[1], b[1]) for a, b in zip(found.regions.values(), expected.regions.values(), strict=True))]
        for got, want in pairs:
            assert (got.objects, got.bytes, got.redundant_objects, got.redundant_bytes) == (
                want.objects, want.bytes, want.redundant_objects, want.redundant_bytes)
            assert got.monthly_cost_usd == pytest.approx(want.monthly_cost_usd, rel=1e-12)
            assert got.monthly_savings_usd == pytest.approx(want.monthly_savings_usd, rel=1e-12)
            assert got.one_time_cost_usd == pytest.approx(want.one_time_cost_usd, rel=1e-12)

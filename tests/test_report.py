"""The report: totals and ordering, the JSON contract round trip, the rich table, the CSV tables."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from tierscan.scanner.core.models import (
    GPS,
    BucketSummary,
    ExifRecord,
    Finding,
    Group,
    GroupMember,
    InventoryRecord,
    Report,
    ScanStats,
    Severity,
    Skipped,
    Tier,
)
from tierscan.scanner.pricing.savings import break_even_month
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.report.build import (
    build_report,
    human_bytes,
    money_text,
    render_csv,
    render_json,
    render_table,
    summary_line,
)

GIB = 1 << 30
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
      cn-north-1:
        source: test
        as_of: 2026-01-01
        currency: USD
        classes:
          STANDARD: {storage_gb_month: 0.025, get_per_1000: 0.0004}
"""


def rec(
    uri: str,
    size: int,
    storage_class: str,
    tier: Tier,
    region: str,
    jurisdiction: str,
    age_days: float,
    **extra: object,
) -> InventoryRecord:
    bucket, key = uri.split("://", 1)[1].split("/", 1)
    fields: dict[str, object] = dict(
        uri=uri,
        provider="s3",
        bucket=bucket,
        key=key,
        size=size,
        tier=tier,
        storage_class=storage_class,
        region=region,
        jurisdiction=jurisdiction,
        modified=NOW - timedelta(days=age_days),
        status="fingerprinted",
    )
    fields.update(extra)
    return InventoryRecord(**fields)


MASTER = rec(
    "s3://hk-photos/a.jpg",
    2 * GIB,
    "STANDARD",
    Tier.hot,
    "ap-east-1",
    "HK",
    400,
    exif=ExifRecord(gps=GPS(lat=22.285521, lon=114.157692), serials=["SN123"]),
)
CN_COPY = rec("s3://cn-photos/a.jpg", 2 * GIB, "STANDARD", Tier.hot, "cn-north-1", "CN", 400)
DEEP_COPY = rec("s3://hk-archive/a.jpg", 2 * GIB, "DEEP_ARCHIVE", Tier.archive, "ap-east-1", "HK", 10)
NEAR = rec("s3://hk-photos/a-crop.jpg", GIB, "STANDARD", Tier.hot, "ap-east-1", "HK", 400)
RECORDS = [MASTER, CN_COPY, DEEP_COPY, NEAR]


def member(r: InventoryRecord, distance: int = 0) -> GroupMember:
    return GroupMember(
        uri=r.uri, size=r.size, tier=r.tier, region=r.region, jurisdiction=r.jurisdiction, distance=distance
    )


GROUPS = [
    Group(
        id="x1",
        kind="exact",
        master=MASTER.uri,
        members=[member(MASTER), member(CN_COPY), member(DEEP_COPY)],
        spans_tiers=True,
        spans_regions=True,
        spans_jurisdictions=True,
        has_personal_data=True,
    ),
    Group(
        id="n1",
        kind="near",
        master=MASTER.uri,
        members=[member(MASTER), member(NEAR, 6)],
        spans_tiers=False,
        spans_regions=False,
        spans_jurisdictions=False,
        has_personal_data=True,
    ),
]
FINDINGS = [
    Finding(
        policy="pd-across-hk-cn",
        severity=Severity.high,
        action="notify",
        uris=[MASTER.uri, CN_COPY.uri],
        group="x1",
        reason="personal data on both sides of the HK/Mainland boundary",
    ),
    Finding(policy="gps-present", severity=Severity.medium, action="report", uris=[MASTER.uri], reason="GPS"),
    Finding(policy="gps-present", severity=Severity.medium, action="report", uris=[NEAR.uri], reason="GPS"),
]
SKIPPED = [
    Skipped(uri="s3://hk-archive/b.jpg", reason="unreadable tier"),
    Skipped(uri="s3://hk-photos/c.jpg", reason="corrupt image"),
]
STATS = ScanStats(requests=4000, bytes_read=3 * GIB, bytes_read_by_tier={"hot": 3 * GIB})


@pytest.fixture
def report(tmp_path: Path) -> Report:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDE, encoding="utf-8")
    return build_report(iter(RECORDS), GROUPS, FINDINGS, SKIPPED, STATS, PriceTable.load(path), None, NOW)


def test_totals(report: Report) -> None:
    t = report.totals
    assert (t.objects, t.bytes) == (4, 7 * GIB)
    assert (t.duplicate_groups, t.near_duplicate_groups) == (1, 1)
    assert (t.redundant_objects, t.redundant_bytes) == (2, 4 * GIB)
    # CN copy 2 x 0.025 = 0.05 a month; DEEP copy 2 x 0.003 = 0.006 a month, 170/30 x 0.006 = 0.034 once.
    assert t.monthly_savings_usd == 0.056
    assert t.one_time_cost_usd == 0.034
    # 4,000 GETs at the priciest hot-tier GET seen ($0.0005 per 1,000); hot reads carry no retrieval fee.
    assert t.scan_cost_usd == 0.002
    assert t.skipped == 2


def test_buckets_sorted_by_savings_and_money_rounded(report: Report) -> None:
    assert [b.uri for b in report.buckets] == ["s3://cn-photos", "s3://hk-archive", "s3://hk-photos"]
    hk = report.buckets[2]
    assert (hk.objects, hk.redundant_objects, hk.monthly_savings_usd) == (2, 0, 0)
    assert hk.monthly_cost_usd == 0.09  # 3 GiB x 0.03
    for b in report.buckets:
        for money in (b.monthly_cost_usd, b.monthly_savings_usd, b.one_time_cost_usd):
            assert money == round(money, 4)


def test_prices_provenance(report: Report) -> None:
    assert report.prices["table"].startswith("builtin + ")
    assert "2^30" in report.prices["units"]
    assert report.prices["s3/DEEP_ARCHIVE/ap-east-1"].startswith(
        "s3/DEEP_ARCHIVE/ap-east-1: test, as of 2026-01-01"
    )


def test_json_round_trip(report: Report) -> None:
    text = render_json(report)
    assert Report.model_validate_json(text) == report
    data = json.loads(text)
    assert data["schema_version"] == 1
    assert set(data) >= {"totals", "buckets", "groups", "findings", "skipped"}
    assert "22.285521" not in text  # the report carries no positions


def test_table_shows_buckets_totals_groups_findings_and_skips(report: Report) -> None:
    console = Console(record=True, width=140)
    render_table(report, console)
    text = console.export_text()
    for bucket in ("s3://cn-photos", "s3://hk-archive", "s3://hk-photos"):
        assert bucket in text
    assert "$0.06" in text  # monthly savings 0.056, shown in cents
    assert "$0.03" in text  # one-time cost 0.034
    assert "4.0 GiB" in text  # redundant bytes
    assert "x1" in text and "jurisdictions" in text  # the top group and what it spans
    assert "pd-across-hk-cn" in text and "gps-present" in text
    assert "unreadable tier 1" in text and "corrupt image 1" in text
    assert "22.285521" not in text and "114.157692" not in text


def test_table_flags_estimated_and_unpriced_prices() -> None:
    elsewhere = rec("s3://eu/a.jpg", GIB, "STANDARD", Tier.hot, "eu-west-1", "EU", 1)
    unknown = rec("s3://wasabi/a.jpg", GIB, "STANDARD", Tier.hot, "us-east-1", "US", 1, provider="wasabi")
    report = build_report([elsewhere, unknown], [], [], [], ScanStats(), PriceTable.builtin(), None, NOW)
    console = Console(record=True, width=140)
    render_table(report, console)
    assert "1 from a default region, 1 unpriced" in console.export_text()


def test_csv_buckets(report: Report) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(report, "buckets"))))
    assert rows[0] == list(BucketSummary.model_fields)
    assert len(rows) == 1 + len(report.buckets)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["uri"] == "s3://cn-photos" and first["monthly_savings_usd"] == "0.05"


def test_csv_groups_has_a_row_per_member(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report, "groups"))))
    assert len(rows) == 5
    masters = [r for r in rows if r["is_master"] == "True"]
    assert {r["group"] for r in masters} == {"x1", "n1"}
    assert [r["distance"] for r in rows if r["group"] == "n1"] == ["0", "6"]


def test_csv_findings(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report, "findings"))))
    assert len(rows) == 3
    assert rows[0]["uris"] == f"{MASTER.uri}|{CN_COPY.uri}"
    assert rows[0]["group"] == "x1" and rows[1]["group"] == ""


def test_csv_rejects_unknown_tables(report: Report) -> None:
    with pytest.raises(ValueError, match="buckets, groups or findings"):
        render_csv(report, "owners")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * GIB, "3.0 GiB")]
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_break_even_and_scan_cost_split(report: Report) -> None:
    t = report.totals
    # 0.056 a month against 0.034 once plus the scan's 0.002 (all GET fees): month 1 already exceeds it.
    assert (t.scan_retrieval_usd, t.scan_request_usd) == (0, 0.002)
    assert t.break_even_month == 1
    assert t.break_even_month_with_scan == 1
    by_uri = {b.uri: b for b in report.buckets}
    assert by_uri["s3://hk-archive"].break_even_month == 6  # 0.006 a month against 0.034 once
    assert by_uri["s3://cn-photos"].break_even_month == 1  # nothing to pay back
    assert by_uri["s3://hk-photos"].break_even_month is None  # nothing saved
    assert "break_even_month" in next(csv.reader(io.StringIO(render_csv(report, "buckets"))))


def test_total_break_even_agrees_with_the_rows_and_the_scan_cost_is_counted_apart() -> None:
    """Sub-cent savings, where the scan's own cost dominates: the total's break-even is the buckets' rule
    over their sums (between the rows' months), and counting the scan is a figure of its own."""
    rows = [(0.00000069, 0.0000021), (0.00000060, 0.0000036)]  # savings a month, one-time, per bucket
    months = [break_even_month(saved, once) for saved, once in rows]
    saved, once, scan = sum(r[0] for r in rows), sum(r[1] for r in rows), 0.00052
    total = break_even_month(saved, once)
    assert total is not None and min(m for m in months if m) <= total <= max(m for m in months if m)
    assert (break_even_month(saved, once + scan) or 0) > 50 * total


def test_report_totals_keep_both_break_evens(report: Report) -> None:
    heavy = report.model_copy(update={"totals": report.totals.model_copy(
        update={"break_even_month": 5, "break_even_month_with_scan": 405})})
    line = summary_line(heavy)
    assert "pays back in month 5" in line and "month 405 counting it" in line
    console = Console(record=True, width=200)
    render_table(heavy, console)
    text = console.export_text()
    assert "(with scan)" not in text and "month 405 counting it" in text


@pytest.mark.parametrize(("value", "text"), [(0, "$0.00"), (0.0000013, "<$0.01"), (-0.0000013, "-<$0.01"),
                                             (0.004999, "<$0.01"), (0.005, "$0.01"), (1234.5, "$1,234.50")])
def test_money_below_a_cent_reads_plainly(value: float, text: str) -> None:
    assert money_text(value) == text


def test_tiers_and_regions_add_up_to_the_totals(report: Report) -> None:
    assert [t.key for t in report.tiers] == ["hot", "archive"]  # hottest first
    assert [(r.key, r.jurisdiction) for r in report.regions] == [("ap-east-1", "HK"), ("cn-north-1", "CN")]
    for parts in (report.tiers, report.regions):
        assert sum(p.bytes for p in parts) == report.totals.bytes
        assert sum(p.redundant_bytes for p in parts) == report.totals.redundant_bytes
        assert sum(p.monthly_savings_usd for p in parts) == pytest.approx(report.totals.monthly_savings_usd)


def test_summary_line_has_the_headline_figures(report: Report) -> None:
    line = summary_line(report)
    assert "\n" not in line
    for text in ("4 objects", "2 redundant copies (4.0 GiB)", "$0.06/month", "one-time $0.03", "month 1"):
        assert text in line


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_tables_neutralise_formula_cells_and_keep_numbers(report: Report, start: str) -> None:
    """OWASP CSV injection: every text cell of every table; negative money stays a number."""
    hostile = f"{start}cmd|' /C calc'!A0"
    bucket = report.buckets[0].model_copy(update={"uri": hostile, "name": hostile, "region": hostile,
                                                  "monthly_savings_usd": -1.5})
    group = report.groups[0].model_copy(update={"id": hostile, "master": hostile,
                                                "members": [report.groups[0].members[0].model_copy(
                                                    update={"uri": hostile})]})
    finding = report.findings[0].model_copy(update={"policy": hostile, "uris": [hostile], "reason": hostile,
                                                    "group": hostile})
    hostile_report = report.model_copy(update={"buckets": [bucket], "groups": [group], "findings": [finding]})
    tables = {what: list(csv.DictReader(io.StringIO(render_csv(hostile_report, what), newline="")))
              for what in ("buckets", "groups", "findings")}
    ((b,), (g,), (f,)) = tables.values()
    quoted = "'" + hostile
    assert (b["uri"], b["name"], b["region"], b["monthly_savings_usd"]) == (quoted, quoted, quoted, "-1.5")
    assert (g["group"], g["master"], g["uri"], g["size"]) == (quoted, quoted, quoted, str(group.members[0].size))
    assert (f["policy"], f["uris"], f["reason"], f["group"]) == (quoted, quoted, quoted, quoted)
    assert b["jurisdiction"] == bucket.jurisdiction  # harmless text unchanged

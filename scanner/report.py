"""The savings report: built once from the catalog's records, groups and findings, then rendered as a rich
table for people, JSON for scripts (the `schema_version: 1` contract) or CSV for spreadsheets (the HTML
page is `scanner.html_report`).

Money is rounded to 6 significant digits (so a small estate's figures do not read as zero) here and only
here (see `scanner.savings` for the arithmetic). The report carries no GPS positions at all (those live in
the inventory, the audit record), so no renderer can print one unrounded.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from rich.console import Console
from rich.table import Table

from .models import (
    Breakdown,
    BucketSummary,
    Finding,
    Group,
    InventoryRecord,
    Report,
    ReportTotals,
    ScanStats,
    Skipped,
    Tier,
)
from .pricing import PriceAs, PriceTable
from .safe_text import CsvWriter, terminal_text
from .savings import BucketTally, Sums, break_even_month, scan_cost_parts, tally

__all__ = [
    "break_even_text",
    "build_report",
    "group_redundant_bytes",
    "group_spans",
    "human_bytes",
    "money_text",
    "price_caveat",
    "render_csv",
    "render_json",
    "render_table",
    "short_uri",
    "summary_line",
]

MONEY_DIGITS = 6  # significant digits of money in the report: a small estate's figures never read as zero
TOP_GROUPS = 10


def _money(value: float) -> float:
    return float(f"{value:.{MONEY_DIGITS}g}")


def build_report(
    records: Iterable[InventoryRecord],
    groups: Iterable[Group],
    findings: Iterable[Finding],
    skipped: Iterable[Skipped],
    stats: ScanStats,
    prices: PriceTable,
    price_as: PriceAs | None,
    now: datetime,
) -> Report:
    """The report for one catalog state. `records` is streamed once; the rest are kept whole (they are
    report content). Buckets are sorted by monthly savings, largest first."""
    groups = list(groups)
    result = tally(records, groups, prices, price_as, now)
    ordered = sorted(result.buckets.values(), key=lambda b: (-b.monthly_savings_usd, b.uri))
    skipped = list(skipped)
    scan = scan_cost_parts(stats, result.tier_prices)
    savings = sum(b.monthly_savings_usd for b in ordered)
    one_time = sum(b.one_time_cost_usd for b in ordered)
    totals = ReportTotals(
        objects=sum(b.objects for b in ordered),
        bytes=sum(b.bytes for b in ordered),
        duplicate_groups=sum(1 for g in groups if g.kind == "exact"),
        near_duplicate_groups=sum(1 for g in groups if g.kind == "near"),
        redundant_objects=sum(b.redundant_objects for b in ordered),
        redundant_bytes=sum(b.redundant_bytes for b in ordered),
        monthly_savings_usd=_money(savings),
        one_time_cost_usd=_money(one_time),
        scan_cost_usd=_money(scan.total_usd),
        skipped=len(skipped),
        scan_retrieval_usd=_money(scan.retrieval_usd),
        scan_request_usd=_money(scan.request_usd),
        break_even_month=break_even_month(savings, one_time + scan.total_usd),
    )
    provenance = {
        "table": prices.origin,
        "units": "USD; GB = 2^30 bytes; month = 30 days; exact duplicates only",
        **{asked: price.describe() for asked, price in sorted(result.prices.items())},
    }
    return Report(
        generated_at=now,
        scan=stats,
        totals=totals,
        buckets=[_summary(b) for b in ordered],
        groups=groups,
        findings=list(findings),
        skipped=skipped,
        tiers=[_breakdown(tier.value, None, sums) for tier, sums in sorted(result.tiers.items(), key=_rank)],
        regions=[
            _breakdown(region, jurisdiction, sums)
            for region, (jurisdiction, sums) in sorted(
                result.regions.items(), key=lambda kv: (-kv[1][1].bytes, kv[0])
            )
        ],
        prices=provenance,
    )


def _rank(item: tuple[Tier, Sums]) -> int:
    return item[0].rank


def _breakdown(key: str, jurisdiction: str | None, sums: Sums) -> Breakdown:
    return Breakdown(
        key=key,
        jurisdiction=jurisdiction,
        objects=sums.objects,
        bytes=sums.bytes,
        redundant_objects=sums.redundant_objects,
        redundant_bytes=sums.redundant_bytes,
        monthly_cost_usd=_money(sums.monthly_cost_usd),
        monthly_savings_usd=_money(sums.monthly_savings_usd),
        one_time_cost_usd=_money(sums.one_time_cost_usd),
    )


def _summary(bucket: BucketTally) -> BucketSummary:
    return BucketSummary(
        uri=bucket.uri,
        name=bucket.name,
        provider=bucket.provider,
        region=bucket.region,
        jurisdiction=bucket.jurisdiction,
        tier=bucket.tier,
        objects=bucket.objects,
        bytes=bucket.bytes,
        redundant_objects=bucket.redundant_objects,
        redundant_bytes=bucket.redundant_bytes,
        monthly_cost_usd=_money(bucket.monthly_cost_usd),
        monthly_savings_usd=_money(bucket.monthly_savings_usd),
        one_time_cost_usd=_money(bucket.one_time_cost_usd),
        break_even_month=bucket.break_even_month,
    )


# --- JSON and CSV ----------------------------------------------------------------------------------------


def render_json(report: Report) -> str:
    """The JSON contract (`schema_version: 1`); `Report.model_validate_json` reads it back."""
    return report.model_dump_json(indent=2)


_GROUP_COLUMNS = [
    "group",
    "kind",
    "master",
    "is_master",
    "uri",
    "size",
    "tier",
    "region",
    "jurisdiction",
    "distance",
    "spans_tiers",
    "spans_regions",
    "spans_jurisdictions",
    "has_personal_data",
]
_FINDING_COLUMNS = ["policy", "severity", "action", "group", "uris", "reason"]


def render_csv(report: Report, what: Literal["buckets", "groups", "findings"] = "buckets") -> str:
    """One table as CSV: a row per bucket, per group member (the master flagged), or per finding (URIs
    joined with `|`). Text cells a spreadsheet would run as a formula are neutralised (`CsvWriter`)."""
    out = io.StringIO()
    writer = CsvWriter(out)
    if what == "buckets":
        columns = list(BucketSummary.model_fields)
        writer.writerow(columns)
        for bucket in report.buckets:
            row = bucket.model_dump(mode="json")
            writer.writerow(row[c] for c in columns)
    elif what == "groups":
        writer.writerow(_GROUP_COLUMNS)
        for g in report.groups:
            for m in g.members:
                cells = [g.id, g.kind, g.master, m.uri == g.master, m.uri, m.size, m.tier.value, m.region,
                         m.jurisdiction, m.distance, g.spans_tiers, g.spans_regions, g.spans_jurisdictions,
                         g.has_personal_data]
                writer.writerow(cells)
    elif what == "findings":
        writer.writerow(_FINDING_COLUMNS)
        for f in report.findings:
            cells = [f.policy, f.severity.value, f.action, f.group, "|".join(f.uris), f.reason]
            writer.writerow(cells)
    else:
        raise ValueError(f"no CSV table {what!r} (choose buckets, groups or findings)")
    return out.getvalue()


# --- the table for people --------------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    """Binary units, as the providers bill: 1.5 GiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def money_text(value: float) -> str:
    """Cents for people; sub-cent amounts keep two significant digits so they do not read as zero."""
    if value == 0 or abs(value) >= 0.01:
        return f"${value:,.2f}"
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"${value:.{decimals}f}"


def short_uri(uri: str) -> str:
    """A local file's path relative to the working folder, when it is below it; any other URI as is."""
    if not uri.startswith("file://"):
        return uri
    path = Path(unquote(urlsplit(uri).path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_table(report: Report, console: Console) -> None:
    """Headline, per-bucket table, top duplicate groups, findings by policy and severity, skips by reason."""
    t = report.totals
    console.print(f"[bold]tierscan report[/bold]  {report.generated_at:%Y-%m-%d %H:%M %Z}".rstrip())
    console.print(
        f"{t.objects:,} objects ({human_bytes(t.bytes)}) in {len(report.buckets)} buckets; "
        f"{t.duplicate_groups:,} exact duplicate groups with {t.redundant_objects:,} redundant copies "
        f"({human_bytes(t.redundant_bytes)})"
    )
    console.print(
        f"Monthly savings [bold green]{money_text(t.monthly_savings_usd)}[/bold green], one-time cost "
        f"{money_text(t.one_time_cost_usd)}, this scan cost {money_text(t.scan_cost_usd)}; "
        f"{break_even_text(t.break_even_month)}; "
        f"{t.near_duplicate_groups:,} near-duplicate groups to review (not counted in savings); "
        f"{t.skipped:,} skipped"
    )
    _price_caveat(report, console)
    console.print(_bucket_table(report))
    exact = [g for g in report.groups if g.kind == "exact"]
    if exact:
        console.print(_group_table(exact))
    if report.findings:
        console.print(_findings_table(report.findings))
    if report.skipped:
        reasons = Counter(s.reason for s in report.skipped)
        console.print(terminal_text(
            f"Skipped {len(report.skipped):,}: " + ", ".join(f"{r} {n:,}" for r, n in reasons.most_common())
        ))


def summary_line(report: Report) -> str:
    """The closing line of a scan: the headline figures, plain text (it goes to stderr, next to JSON)."""
    t = report.totals
    return (
        f"tierscan: {t.objects:,} objects ({human_bytes(t.bytes)}) in {len(report.buckets):,} buckets; "
        f"{t.redundant_objects:,} redundant copies ({human_bytes(t.redundant_bytes)}) in "
        f"{t.duplicate_groups:,} exact groups; saves {money_text(t.monthly_savings_usd)}/month, one-time "
        f"{money_text(t.one_time_cost_usd)}, scan cost {money_text(t.scan_cost_usd)}, "
        f"{break_even_text(t.break_even_month)}; {len(report.findings):,} findings, {t.skipped:,} skipped"
    )


def break_even_text(month: int | None) -> str:
    """The break-even month in words, shared by every renderer for people."""
    return "never pays back (nothing to save)" if month is None else f"pays back in month {month}"


def price_caveat(report: Report) -> str | None:
    """How many prices behind the figures are estimates, fallbacks or missing; None when all are sound."""
    lines = report.prices.values()
    estimates = sum(1 for line in lines if "(estimate)" in line)
    unpriced = sum(1 for line in lines if line.startswith("unpriced"))
    fallbacks = sum(1 for line in lines if "not in the table" in line)
    if estimates or unpriced or fallbacks:
        return f"Prices: {estimates} estimated, {fallbacks} from a default region, {unpriced} unpriced"
    return None


def _price_caveat(report: Report, console: Console) -> None:
    caveat = price_caveat(report)
    if caveat:
        console.print(f"[yellow]{caveat} (see `prices` in the JSON report)[/yellow]")


def _bucket_table(report: Report) -> Table:
    table = Table(title="Buckets by monthly savings", title_justify="left")
    # On a narrow console cells fold rather than hide digits behind an ellipsis.
    table.add_column("Bucket", no_wrap=True)
    for name in ("Tier", "Region", "Jurisdiction"):
        table.add_column(name, overflow="fold")
    for name in ("Objects", "Size", "Redundant", "Monthly cost", "Savings/mo", "One-time cost", "Break-even"):
        table.add_column(name, justify="right", overflow="fold")
    for b in report.buckets:
        table.add_row(
            terminal_text(b.name if b.uri.startswith("file://") else b.uri),  # a local bucket: its folder name
            b.tier.value if b.tier else "mixed",
            terminal_text(b.region),
            terminal_text(b.jurisdiction),
            f"{b.objects:,}",
            human_bytes(b.bytes),
            f"{b.redundant_objects:,} ({human_bytes(b.redundant_bytes)})",
            money_text(b.monthly_cost_usd),
            money_text(b.monthly_savings_usd),
            money_text(b.one_time_cost_usd),
            "-" if b.break_even_month is None else f"month {b.break_even_month}",
        )
    t = report.totals
    table.add_section()
    table.add_row(
        "Total",
        "",
        "",
        "",
        f"{t.objects:,}",
        human_bytes(t.bytes),
        f"{t.redundant_objects:,} ({human_bytes(t.redundant_bytes)})",
        money_text(sum(b.monthly_cost_usd for b in report.buckets)),
        money_text(t.monthly_savings_usd),
        money_text(t.one_time_cost_usd),
        "-" if t.break_even_month is None else f"month {t.break_even_month} (with scan)",
    )
    return table


def group_redundant_bytes(g: Group) -> int:
    """Bytes held by a group's copies other than its master."""
    return sum(m.size for m in g.members if m.uri != g.master)


def group_spans(g: Group) -> list[str]:
    """What a group spans, in words: tiers, regions, jurisdictions."""
    flags = (("tiers", g.spans_tiers), ("regions", g.spans_regions), ("jurisdictions", g.spans_jurisdictions))
    return [name for name, on in flags if on]


def _group_table(groups: list[Group]) -> Table:
    top = sorted(groups, key=lambda g: (-group_redundant_bytes(g), g.id))[:TOP_GROUPS]
    table = Table(title=f"Top {len(top)} of {len(groups)} exact duplicate groups", title_justify="left")
    table.add_column("Group")
    table.add_column("Copies", justify="right")
    table.add_column("Redundant", justify="right")
    table.add_column("Master", overflow="fold")
    table.add_column("Spans")
    table.add_column("Personal data")
    for g in top:
        table.add_row(
            terminal_text(g.id),
            str(len(g.members)),
            human_bytes(group_redundant_bytes(g)),
            terminal_text(short_uri(g.master)),
            ", ".join(group_spans(g)) or "-",
            "yes" if g.has_personal_data else "no",
        )
    return table


def _findings_table(findings: list[Finding]) -> Table:
    counts = Counter((f.policy, f.severity) for f in findings)
    table = Table(title=f"Findings ({len(findings):,})", title_justify="left")
    table.add_column("Policy")
    table.add_column("Severity")
    table.add_column("Count", justify="right")
    for (policy, severity), n in sorted(counts.items(), key=lambda kv: (-kv[0][1].rank, kv[0][0])):
        table.add_row(terminal_text(policy), severity.value, f"{n:,}")
    return table

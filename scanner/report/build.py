"""The savings report: built once from the catalog's records, groups and findings, then rendered as a rich
table for people, JSON for scripts (the `schema_version: 1` contract) or CSV for spreadsheets (the HTML
page is `tierscan.scanner.report.html`).

A report of a catalog is a `ReportStream`: its totals, buckets, tiers and regions come from one pass over
the objects (O(buckets) state), and its groups, findings and skipped objects are read back from the
catalog as they are written out, so that no renderer holds a list as long as the estate. An in-memory
`Report` renders through the same code (`ReportStream.of`), so both give the same bytes.

Money is rounded to 6 significant digits (so a small estate's figures do not read as zero) here and only here (see
`tierscan.scanner.pricing.savings` for the arithmetic). The report carries no GPS positions at all (those live in
the inventory, the audit record), so no renderer can print one unrounded.
"""

from __future__ import annotations

import heapq
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from rich.console import Console
from rich.table import Table

from tierscan.scanner.core.models import (
    Breakdown,
    BucketSummary,
    Finding,
    Group,
    InventoryRecord,
    Report,
    ReportTotals,
    ScanStats,
    Severity,
    Skipped,
    Tier,
)
from tierscan.scanner.core.safe_text import CsvWriter, terminal_text
from tierscan.scanner.core.units import human_bytes
from tierscan.scanner.pricing.savings import BucketTally, Sums, Tally, break_even_month, scan_cost_parts, tally
from tierscan.scanner.pricing.table import PriceAs, PriceTable

if TYPE_CHECKING:
    from tierscan.scanner.scan.catalog import Catalog

__all__ = [
    "ReportStream",
    "break_even_text",
    "build_report",
    "catalog_report",
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
    "write_csv",
    "write_json",
]

MONEY_DIGITS = 6  # significant digits of money in the report: a small estate's figures never read as zero
TOP_GROUPS = 10


def _money(value: float) -> float:
    return float(f"{value:.{MONEY_DIGITS}g}")


@dataclass(frozen=True)
class ReportStream:
    """A report whose long parts are read when rendered: `head` is the report with no groups, findings or
    skipped objects, and each of `groups`, `findings` and `skipped` gives them afresh, in report order.
    `findings_by` counts findings by (policy, severity); `skip_reasons` counts skipped objects by reason,
    in the order each reason first appears."""

    head: Report
    groups: Callable[[], Iterable[Group]]
    findings: Callable[[], Iterable[Finding]]
    skipped: Callable[[], Iterable[Skipped]]
    findings_by: dict[tuple[str, Severity], int]
    skip_reasons: Counter[str]

    @classmethod
    def of(cls, report: Report) -> ReportStream:
        """An in-memory report as a stream."""
        return cls(
            head=report.model_copy(update={"groups": [], "findings": [], "skipped": []}),
            groups=lambda: report.groups, findings=lambda: report.findings, skipped=lambda: report.skipped,
            findings_by=dict(Counter((f.policy, f.severity) for f in report.findings)),
            skip_reasons=Counter(s.reason for s in report.skipped),
        )

    @property
    def finding_count(self) -> int:
        return sum(self.findings_by.values())

    def whole(self) -> Report:
        """Everything in memory: to compare whole reports (every renderer streams)."""
        return self.head.model_copy(update={"groups": list(self.groups()), "findings": list(self.findings()),
                                            "skipped": list(self.skipped())})


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
    skipped = list(skipped)
    head = _head(tally(records, groups, prices, price_as, now), Counter(g.kind for g in groups), len(skipped),
                 stats, prices, now)
    return head.model_copy(update={"groups": groups, "findings": list(findings), "skipped": skipped})


def catalog_report(catalog: Catalog, prices: PriceTable, price_as: PriceAs | None, now: datetime) -> ReportStream:
    """The report of a catalog's stored objects, groups and findings (as `build_report` would give it),
    with its groups, findings and skipped objects read back from the catalog when rendered: the catalog
    must stay open until then."""
    from tierscan.scanner.pricing.savings import tally_flagged

    # `price_as` reads each object's bucket and URI: with it, each object is priced alone.
    head = _head(tally_flagged(catalog.tally_records(alike=price_as is None), prices, price_as, now),
                 Counter(catalog.group_counts()), catalog.skipped_count(), catalog.last_scan(), prices, now)
    return ReportStream(
        head=head, groups=lambda: _with_copies(catalog), findings=catalog.each_finding,
        skipped=lambda: (Skipped(uri=uri, reason=reason) for uri, reason in catalog.skipped()),
        findings_by={(policy, Severity(severity)): n for policy, severity, n in catalog.finding_counts()},
        skip_reasons=Counter(dict(catalog.skip_reasons())),
    )


def _with_copies(catalog: Catalog) -> Iterator[Group]:
    """The stored groups, each near group with its members' byte-identical copies (`Group.copies`)."""
    for group in catalog.each_group():
        if group.kind == "near" and (copies := catalog.copies_of(m.uri for m in group.members)):
            group = group.model_copy(update={"copies": copies})
        yield group


def _head(result: Tally, kinds: Counter[str], skipped: int, stats: ScanStats, prices: PriceTable,
          now: datetime) -> Report:
    """The report without its groups, findings and skipped objects."""
    ordered = sorted(result.buckets.values(), key=lambda b: (-b.monthly_savings_usd, b.uri))
    scan = scan_cost_parts(stats, result.tier_prices)
    savings = sum(b.monthly_savings_usd for b in ordered)
    one_time = sum(b.one_time_cost_usd for b in ordered)
    totals = ReportTotals(
        objects=sum(b.objects for b in ordered),
        bytes=sum(b.bytes for b in ordered),
        duplicate_groups=kinds["exact"],
        near_duplicate_groups=kinds["near"],
        redundant_objects=sum(b.redundant_objects for b in ordered),
        redundant_bytes=sum(b.redundant_bytes for b in ordered),
        monthly_savings_usd=_money(savings),
        one_time_cost_usd=_money(one_time),
        scan_cost_usd=_money(scan.total_usd),
        skipped=skipped,
        scan_retrieval_usd=_money(scan.retrieval_usd),
        scan_request_usd=_money(scan.request_usd),
        break_even_month=break_even_month(savings, one_time),
        break_even_month_with_scan=break_even_month(savings, one_time + scan.total_usd),
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
        groups=[],
        findings=[],
        skipped=[],
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


def render_json(report: Report | ReportStream) -> str:
    """The JSON contract (`schema_version: 1`); `Report.model_validate_json` reads it back."""
    out = io.StringIO()
    write_json(report, out)
    return out.getvalue()


# Where the long arrays sit in the head's JSON (a raw newline is only ever the formatter's).
_EMPTY_ARRAYS = '\n  "groups": [],\n  "findings": [],\n  "skipped": [],\n'


def write_json(report: Report | ReportStream, fh: IO[str]) -> None:
    """`render_json`'s text written as it is produced: the head, then the groups, findings and skipped
    objects item by item, each laid out as `Report.model_dump_json(indent=2)` lays it out."""
    stream = _stream(report)
    before, after = stream.head.model_dump_json(indent=2).split(_EMPTY_ARRAYS)
    fh.write(before)
    for name, items in (("groups", stream.groups()), ("findings", stream.findings()), ("skipped", stream.skipped())):
        fh.write(f'\n  "{name}": [')
        separator = "\n"
        for item in items:
            fh.write(separator)
            fh.write("    " + item.model_dump_json(indent=2).replace("\n", "\n    "))
            separator = ",\n"
        fh.write("]," if separator == "\n" else "\n  ],")
    fh.write("\n" + after)


def _stream(report: Report | ReportStream) -> ReportStream:
    return report if isinstance(report, ReportStream) else ReportStream.of(report)


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


def render_csv(report: Report | ReportStream, what: Literal["buckets", "groups", "findings"] = "buckets") -> str:
    """One table as CSV: a row per bucket, per group member (the master flagged), or per finding (URIs
    joined with `|`). Text cells a spreadsheet would run as a formula are neutralised (`CsvWriter`)."""
    out = io.StringIO()
    write_csv(report, out, what)
    return out.getvalue()


def write_csv(report: Report | ReportStream, fh: IO[str],
              what: Literal["buckets", "groups", "findings"] = "buckets") -> None:
    """`render_csv`'s text written row by row."""
    stream = _stream(report)
    writer = CsvWriter(fh)
    if what == "buckets":
        columns = list(BucketSummary.model_fields)
        writer.writerow(columns)
        for bucket in stream.head.buckets:
            row = bucket.model_dump(mode="json")
            writer.writerow(row[c] for c in columns)
    elif what == "groups":
        writer.writerow(_GROUP_COLUMNS)
        for g in stream.groups():
            for m in g.members:
                cells = [g.id, g.kind, g.master, m.uri == g.master, m.uri, m.size, m.tier.value, m.region,
                         m.jurisdiction, m.distance, g.spans_tiers, g.spans_regions, g.spans_jurisdictions,
                         g.has_personal_data]
                writer.writerow(cells)
    elif what == "findings":
        writer.writerow(_FINDING_COLUMNS)
        for f in stream.findings():
            cells = [f.policy, f.severity.value, f.action, f.group, "|".join(f.uris), f.reason]
            writer.writerow(cells)
    else:
        raise ValueError(f"no CSV table {what!r} (choose buckets, groups or findings)")


# --- the table for people --------------------------------------------------------------------------------


def money_text(value: float) -> str:
    """Cents for people; an amount under half a cent that is not zero reads `<$0.01`, never `$0.00`
    (the JSON keeps every amount exactly)."""
    if value != 0 and abs(value) < 0.005:
        return "-<$0.01" if value < 0 else "<$0.01"
    return f"${value:,.2f}"


def short_uri(uri: str) -> str:
    """A local file's path relative to the working folder, when it is below it; any other URI as is."""
    if not uri.startswith("file://"):
        return uri
    path = Path(unquote(urlsplit(uri).path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_table(whole: Report | ReportStream, console: Console) -> None:
    """Headline, per-bucket table, top duplicate groups, findings by policy and severity, skips by reason."""
    stream = _stream(whole)
    report = stream.head
    t = report.totals
    console.print(f"[bold]tierscan report[/bold]  {report.generated_at:%Y-%m-%d %H:%M %Z}".rstrip())
    console.print(
        f"{t.objects:,} objects ({human_bytes(t.bytes)}) in {len(report.buckets)} buckets; "
        f"{t.duplicate_groups:,} exact duplicate groups with {t.redundant_objects:,} redundant copies "
        f"({human_bytes(t.redundant_bytes)})"
    )
    console.print(
        f"Monthly savings [bold green]{money_text(t.monthly_savings_usd)}[/bold green], one-time cost "
        f"{money_text(t.one_time_cost_usd)}, {break_even_text(t.break_even_month)}; this scan cost "
        f"{money_text(t.scan_cost_usd)}{_with_scan(t)}; "
        f"{t.near_duplicate_groups:,} near-duplicate groups to review (not counted in savings); "
        f"{t.skipped:,} skipped"
    )
    _price_caveat(report, console)
    console.print(_bucket_table(report))
    if t.duplicate_groups:
        console.print(_group_table((g for g in stream.groups() if g.kind == "exact"), t.duplicate_groups))
    if t.near_duplicate_groups:
        console.print(_near_table((g for g in stream.groups() if g.kind == "near"), t.near_duplicate_groups))
    if stream.findings_by:
        console.print(_findings_table(stream.findings_by))
    if stream.skip_reasons:
        reasons = stream.skip_reasons
        console.print(terminal_text(
            f"Skipped {reasons.total():,}: " + ", ".join(f"{r} {n:,}" for r, n in reasons.most_common())
        ))


def summary_line(whole: Report | ReportStream) -> str:
    """The closing line of a scan: the headline figures, plain text (it goes to stderr, next to JSON)."""
    stream = _stream(whole)
    report = stream.head
    t = report.totals
    return (
        f"tierscan: {t.objects:,} objects ({human_bytes(t.bytes)}) in {len(report.buckets):,} buckets; "
        f"{t.redundant_objects:,} redundant copies ({human_bytes(t.redundant_bytes)}) in "
        f"{t.duplicate_groups:,} exact groups; saves {money_text(t.monthly_savings_usd)}/month, one-time "
        f"{money_text(t.one_time_cost_usd)}, {break_even_text(t.break_even_month)}; scan cost "
        f"{money_text(t.scan_cost_usd)}{_with_scan(t)}; {stream.finding_count:,} findings, {t.skipped:,} skipped"
    )


def break_even_text(month: int | None) -> str:
    """The break-even month in words, shared by every renderer for people."""
    return "never pays back (nothing to save)" if month is None else f"pays back in month {month}"


def _with_scan(t: ReportTotals) -> str:
    """The break-even counting the scan's own cost, in words, when it differs from the one without."""
    if t.break_even_month_with_scan in (None, t.break_even_month):
        return ""
    return f", month {t.break_even_month_with_scan} counting it"


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
        "-" if t.break_even_month is None else f"month {t.break_even_month}",
    )
    return table


def group_redundant_bytes(g: Group) -> int:
    """Bytes held by a group's copies other than its master."""
    return sum(m.size for m in g.members if m.uri != g.master)


def group_spans(g: Group) -> list[str]:
    """What a group spans, in words: tiers, regions, jurisdictions."""
    flags = (("tiers", g.spans_tiers), ("regions", g.spans_regions), ("jurisdictions", g.spans_jurisdictions))
    return [name for name, on in flags if on]


def _group_table(groups: Iterable[Group], count: int) -> Table:
    """The `TOP_GROUPS` exact groups with the most redundant bytes, of `count`."""
    top = heapq.nsmallest(TOP_GROUPS, groups, key=lambda g: (-group_redundant_bytes(g), g.id))
    table = Table(title=f"Top {len(top)} of {count} exact duplicate groups", title_justify="left")
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


def _near_table(groups: Iterable[Group], count: int) -> Table:
    """The first `TOP_GROUPS` near groups by id, of `count`: each centre, and its other pictures with their
    byte-identical copies (the HTML report shows them all, side by side)."""
    table = Table(title=f"{min(count, TOP_GROUPS)} of {count} near-duplicate groups to review "
                        "(the HTML report shows every group with thumbnails)", title_justify="left")
    table.add_column("Group")
    table.add_column("Centre", overflow="fold")
    table.add_column("Other pictures (+ byte-identical copies)", overflow="fold")
    table.add_column("Spans")
    table.add_column("Personal data")
    for g in heapq.nsmallest(TOP_GROUPS, groups, key=lambda g: g.id):
        others = [short_uri(m.uri) + (f" (+{len(g.copies[m.uri])})" if m.uri in g.copies else "")
                  for m in g.members if m.uri != g.master]
        centre = short_uri(g.master) + (f" (+{len(g.copies[g.master])})" if g.master in g.copies else "")
        table.add_row(terminal_text(g.id), terminal_text(centre), terminal_text(", ".join(others)),
                      ", ".join(group_spans(g)) or "-", "yes" if g.has_personal_data else "no")
    return table


def _findings_table(counts: dict[tuple[str, Severity], int]) -> Table:
    table = Table(title=f"Findings ({sum(counts.values()):,})", title_justify="left")
    table.add_column("Policy")
    table.add_column("Severity")
    table.add_column("Count", justify="right")
    for (policy, severity), n in sorted(counts.items(), key=lambda kv: (-kv[0][1].rank, kv[0][0])):
        table.add_row(terminal_text(policy), severity.value, f"{n:,}")
    return table

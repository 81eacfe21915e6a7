"""The report as one HTML page: inline CSS, inline SVG charts, a few lines of inline script, nothing
fetched from elsewhere, so it opens offline. The groups' thumbnails (`tierscan.scanner.report.html_groups`)
are files in a folder beside the page (inline when the page goes to standard output): the page and that
folder travel together.

The charts are drawn here (see `tierscan.scanner.report.charts`), so the page reads fully without script; the script
only makes tables sortable and marks the page rendered (`<body data-ok="1">`, or `data-error` with the
message), which the headless-browser test checks. Headline figures carry their JSON value in `data-value`
next to the text people read, so a test can hold both against the JSON report.

The page is written part by part as it is produced, from a `ReportStream`: the groups pass by once (the
table keeps the top `TOP_ROWS`), skipped objects are shown as counts, so memory does not grow with the
estate. The sections for people who act on the page (what was scanned, the objects with personal data,
copies across jurisdictions, findings by policy, the print layout) are `tierscan.scanner.report.html_review`'s.

GPS positions appear only rounded to about 1 km (`tierscan.scanner.report.exposure`).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from html import escape
from typing import IO, Any

from tierscan.scanner.core.models import Group, Report, Severity
from tierscan.scanner.report.build import (
    ReportStream,
    break_even_text,
    group_redundant_bytes,
    group_spans,
    human_bytes,
    money_text,
    price_caveat,
    short_uri,
)
from tierscan.scanner.report.charts import Bar, Series, Step, bar_chart, grouped_bar_chart, waterfall_chart
from tierscan.scanner.report.exposure import GPS_DECIMALS, KINDS, Exposure
from tierscan.scanner.report.html_groups import GROUPS_CSS, GROUPS_SCRIPT, Pictures, picture_sections
from tierscan.scanner.report.html_review import (
    PRINT_CSS,
    REVIEW_CSS,
    cross_boundary_section,
    findings_sections,
    personal_data_section,
    review_script,
    scanned_section,
)
from tierscan.scanner.report.review import ReviewContext

__all__ = ["HEADLINE", "WATERFALL_MONTHS", "write_html"]

WATERFALL_MONTHS = 12
TOP_ROWS = 25  # rows of the groups and places tables
WATERFALL_BUCKETS = 5  # buckets drawn as their own savings step; the rest are merged

TIER_COLOURS = {"hot": "#e8590c", "cool": "#1c7ed6", "cold": "#5f3dc4", "archive": "#495057"}
JURISDICTION_COLOURS = {"HK": "#c92a2a", "CN": "#f08c00"}
KIND_COLOURS = {"gps": "#c92a2a", "serial": "#5f3dc4", "owner": "#2f9e44", "timestamp": "#1c7ed6",
                "people": "#d6336c", "caption": "#e67700", "place": "#0c8599", "faces": "#862e9c"}

# (totals field, label, formatter): the headline cards, in order. Each card's id is `total-<field>`.
HEADLINE: list[tuple[str, str, Callable[[Any], str]]] = [
    ("objects", "Objects", lambda v: f"{v:,}"),
    ("bytes", "Stored", human_bytes),
    ("duplicate_groups", "Exact duplicate groups", lambda v: f"{v:,}"),
    ("redundant_objects", "Redundant copies", lambda v: f"{v:,}"),
    ("redundant_bytes", "Redundant bytes", human_bytes),
    ("monthly_savings_usd", "Savings per month", money_text),
    ("one_time_cost_usd", "One-time cost (early deletion)", money_text),
    ("break_even_month", "Break-even", break_even_text),
    ("scan_cost_usd", "This scan cost", money_text),
    ("break_even_month_with_scan", "Break-even counting this scan", break_even_text),
    ("near_duplicate_groups", "Near-duplicate groups to review", lambda v: f"{v:,}"),
    ("skipped", "Skipped objects", lambda v: f"{v:,}"),
]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px}
.muted{color:#6c757d}.caveat{background:#fff3bf;padding:8px 12px;border-radius:6px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:12px}
.card .label{color:#6c757d;font-size:12px}.card .value{font-size:20px;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{background:#fff;border:1px solid #dee2e6;border-radius:8px;margin:0;padding:12px}
figcaption{font-weight:600;margin-bottom:8px}figure p{margin:4px 0 0;font-size:12px;color:#6c757d}
svg.chart{width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #dee2e6;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5;position:sticky;top:0}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#adb5bd}
td.uri{word-break:break-all}
"""

# Sorts a table by the clicked column: numbers by data-sort, text otherwise; click again to reverse.
_SCRIPT = """
window.addEventListener("error", function (e) { document.body.dataset.error = String(e.message); });
(function () {
  try {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th").forEach(function (th, col) {
        th.addEventListener("click", function () {
          var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
          var dir = th.dataset.dir === "asc" ? -1 : 1;
          th.dataset.dir = dir === 1 ? "asc" : "desc";
          function key(row) {
            var cell = row.cells[col], raw = cell.dataset.sort;
            return raw !== undefined ? parseFloat(raw) : cell.textContent.trim().toLowerCase();
          }
          rows.sort(function (a, b) { var x = key(a), y = key(b); return x < y ? -dir : x > y ? dir : 0; });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
    document.body.dataset.ok = "1";
  } catch (e) {
    document.body.dataset.error = String(e);
  }
})();
"""


def write_html(stream: ReportStream, exposure: Exposure, fh: IO[str], review: ReviewContext | None = None,
               pictures: Pictures | None = None) -> None:
    """The whole page, written to `fh` part by part. `exposure` comes from the inventory records (see
    `tierscan.scanner.report.exposure.exposure`); `review`, from the catalog, adds what was scanned and the
    objects with personal data (`tierscan.scanner.report.html_review`); `pictures`, the catalog's
    thumbnails and records for the groups' pictures (`tierscan.scanner.report.html_groups`; None: no picture
    sections)."""
    separator = ""
    for part in _parts(stream, exposure, review, pictures):
        if part:
            fh.write(separator + part)
            separator = "\n"


def _parts(stream: ReportStream, exposure: Exposure, review: ReviewContext | None,
           pictures: Pictures | None) -> Iterator[str]:
    """The page's parts in order (an empty one is left out), each made when it is reached."""
    report = stream.head
    caveat = price_caveat(report)
    yield from [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tierscan report</title>",
        f"<style>{_CSS}{REVIEW_CSS}{GROUPS_CSS if pictures else ''}{PRINT_CSS}</style></head><body><main>",
        "<h1>tierscan report</h1>",
        f'<div class="muted">Generated {escape(report.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip())}; '
        f"{len(report.buckets):,} buckets; schema version {report.schema_version}. Savings count exact "
        "redundant copies only. USD; GB = 2<sup>30</sup> bytes; month = 30 days.</div>",
        scanned_section(stream, review),
        _cards(report),
        f'<p class="caveat">{escape(caveat)} (see Prices below).</p>' if caveat else "",
        '<h2>Where the bytes are</h2><div class="charts">',
        _figure("Bytes by tier", _tier_chart(report)),
        _figure("Bytes by region", _region_chart(report)),
        "</div><h2>Savings</h2>",
        '<div class="charts">',
        _figure(
            "Duplicate share per bucket",
            _share_chart(report),
            "Redundant exact copies as a share of each bucket's bytes.",
        ),
        _figure(
            f"First {WATERFALL_MONTHS} months: savings less one-time costs",
            _waterfall(report),
            "Storage saved by removing redundant exact copies, per bucket, less the early-deletion charges "
            "and what this scan cost.",
        ),
        "</div>",
        _bucket_table(report),
        "<h2>Personal data</h2>",
        '<div class="charts">',
        _figure(
            "Personal data exposure by jurisdiction",
            _exposure_chart(exposure),
            "Objects whose metadata carries each kind of personal data, or whose pixels show faces (HK PDPO "
            "Cap. 486).",
        ),
        _places_figure(exposure),
        "</div>",
    ]
    if review is not None:
        yield from personal_data_section(review, exposure)
        yield review_script()
    yield cross_boundary_section(stream)
    yield _groups_table(stream.groups(), pictures is not None)
    if pictures is not None:
        yield from picture_sections(stream.groups, pictures,
                                    report.generated_at.isoformat().replace("+00:00", "Z"))
    yield _findings_table(stream.findings_by)
    yield findings_sections(stream, review)
    yield _skipped_table(stream.skip_reasons)
    yield _prices_list(report)
    yield f"</main><script>{_SCRIPT}</script>"
    if pictures is not None:
        yield f"<script>{GROUPS_SCRIPT}</script>"
    yield "</body></html>"


def _cards(report: Report) -> str:
    totals = report.totals.model_dump(mode="json")
    cards = []
    for name, label, fmt in HEADLINE:
        value = totals[name]
        cards.append(
            f'<div class="card" id="total-{name}" data-value="{escape(json.dumps(value))}">'
            f'<div class="label">{escape(label)}</div><div class="value">{escape(fmt(value))}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def _figure(caption: str, svg: str, note: str = "") -> str:
    note_html = f"<p>{escape(note)}</p>" if note else ""
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}{note_html}</figure>"


def _tier_chart(report: Report) -> str:
    bars = [
        Bar(t.key, t.bytes, f"{human_bytes(t.bytes)} ({t.objects:,})", TIER_COLOURS.get(t.key, "#1c7ed6"))
        for t in report.tiers
    ]
    return bar_chart(bars, "Bytes by tier")


def _region_chart(report: Report) -> str:
    bars = [
        Bar(
            f"{r.key} ({r.jurisdiction})",
            r.bytes,
            f"{human_bytes(r.bytes)} ({r.objects:,})",
            JURISDICTION_COLOURS.get(r.jurisdiction or "", "#1c7ed6"),
        )
        for r in report.regions
    ]
    return bar_chart(bars, "Bytes by region")


def _share_chart(report: Report) -> str:
    bars = []
    for b in sorted(report.buckets, key=lambda b: (-(b.redundant_bytes / b.bytes if b.bytes else 0), b.uri)):
        share = b.redundant_bytes / b.bytes if b.bytes else 0.0
        colour = TIER_COLOURS.get(b.tier.value, "#1c7ed6") if b.tier else "#868e96"
        bars.append(Bar(b.name, share, f"{share:.1%} ({human_bytes(b.redundant_bytes)})", colour))
    return bar_chart(bars, "Duplicate share per bucket", scale_max=1.0)


def _signed_money(value: float) -> str:
    """Money with its sign in front of the currency: -$0.50, +$1.20."""
    return ("-" if value < 0 else "+") + money_text(abs(value))


def _waterfall(report: Report) -> str:
    saving = [b for b in report.buckets if b.monthly_savings_usd > 0]  # already largest first
    shown, rest = saving[:WATERFALL_BUCKETS], saving[WATERFALL_BUCKETS:]
    months = WATERFALL_MONTHS
    steps = [
        Step(b.name, months * b.monthly_savings_usd, _signed_money(months * b.monthly_savings_usd))
        for b in shown
    ]
    if rest:
        other = months * sum(b.monthly_savings_usd for b in rest)
        steps.append(Step(f"{len(rest)} more buckets", other, _signed_money(other)))
    t = report.totals
    steps.append(Step("early deletion", -t.one_time_cost_usd, _signed_money(-t.one_time_cost_usd)))
    steps.append(Step("this scan", -t.scan_cost_usd, _signed_money(-t.scan_cost_usd)))
    net = months * t.monthly_savings_usd - t.one_time_cost_usd - t.scan_cost_usd
    steps.append(Step(f"net, {months} months", net, _signed_money(net), total=True))
    return waterfall_chart(steps, "Savings waterfall")


def _exposure_chart(exposure: Exposure) -> str:
    names = list(exposure.jurisdictions)
    series = [Series("any", "#212529", [exposure.jurisdictions[n].with_personal_data for n in names])]
    series += [
        Series(kind, KIND_COLOURS[kind], [exposure.jurisdictions[n].kinds[kind] for n in names])
        for kind in KINDS
    ]
    return grouped_bar_chart(names, series, "Personal data exposure by jurisdiction")


def _num(value: float, text: str) -> str:
    return f'<td class="num" data-sort="{value!r}">{escape(text)}</td>'


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def _bare_table(head: list[str], rows: Iterable[str], table_id: str, numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    cells = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(rows)
    head_html = f"<thead><tr>{cells}</tr></thead>"
    return f'<table class="sortable" id="{table_id}">{head_html}<tbody>{body}</tbody></table>'


def _table(
    title: str,
    head: list[str],
    rows: Iterable[str],
    table_id: str,
    note: str = "",
    numeric: Iterable[int] = (),
) -> str:
    note_html = f'<p class="muted">{escape(note)}</p>' if note else ""
    return f"<h2>{escape(title)}</h2>{note_html}" + _bare_table(head, rows, table_id, numeric)


def _bucket_table(report: Report) -> str:
    rows = []
    for b in report.buckets:
        rows.append(
            "<tr>"
            + _td(short_uri(b.uri), "uri")
            + _td(b.tier.value if b.tier else "mixed")
            + _td(b.region)
            + _td(b.jurisdiction)
            + _num(b.objects, f"{b.objects:,}")
            + _num(b.bytes, human_bytes(b.bytes))
            + _num(b.redundant_bytes, f"{b.redundant_objects:,} ({human_bytes(b.redundant_bytes)})")
            + _num(b.monthly_cost_usd, money_text(b.monthly_cost_usd))
            + _num(b.monthly_savings_usd, money_text(b.monthly_savings_usd))
            + _num(b.one_time_cost_usd, money_text(b.one_time_cost_usd))
            + _num(
                b.break_even_month if b.break_even_month is not None else 1e18,
                "-" if b.break_even_month is None else f"month {b.break_even_month}",
            )
            + "</tr>"
        )
    head = [
        "Bucket",
        "Tier",
        "Region",
        "Jurisdiction",
        "Objects",
        "Size",
        "Redundant",
        "Monthly cost",
        "Savings/mo",
        "One-time cost",
        "Break-even",
    ]
    return _table("Buckets", head, rows, "buckets", "Click a column to sort.", numeric=range(4, 11))


def _places_figure(exposure: Exposure) -> str:
    """Where photos were taken (the territory their position lies in, and the nearest place) beside the
    jurisdiction their copy is stored in."""
    places = Counter(
        {
            (name, *place): n
            for name, j in exposure.jurisdictions.items()
            for place, n in j.places.items()
        }
    )
    rows = [
        "<tr>"
        + _td(taken_in or "-")
        + _td(taken_near or "-")
        + _td(name)
        + _num(lat, f"{lat:.{GPS_DECIMALS}f}")
        + _num(lon, f"{lon:.{GPS_DECIMALS}f}")
        + _num(n, f"{n:,}")
        + "</tr>"
        for (name, lat, lon, taken_in, taken_near), n in places.most_common(TOP_ROWS)
    ]
    note = (
        "Taken in: the territory the GPS position lies in (- at sea or where the position is not usable), "
        "with the nearest populated place; stored in: the jurisdiction of the copy's region. "
        f"Positions rounded to {GPS_DECIMALS} decimals (about 1 km); the inventory holds the exact values. "
        f"Top {min(len(places), TOP_ROWS)} of {len(places)} places. "
        "Places from GeoNames (CC BY 4.0); territories from time-zone boundaries built from OpenStreetMap "
        "data (\u00a9 OpenStreetMap contributors, ODbL)."
    )
    table = _bare_table(
        ["Taken in", "Near", "Stored in", "Latitude", "Longitude", "Objects"], rows, "places", numeric=(3, 4, 5)
    )
    return _figure("Where GPS-tagged images were taken", table, note)


def _groups_table(groups: Iterable[Group], pictured: bool = False) -> str:
    """The `TOP_ROWS` exact groups with the most redundant bytes, of all exact groups (read once)."""
    exact = 0

    def counted() -> Iterator[Group]:
        nonlocal exact
        for g in groups:
            if g.kind == "exact":
                exact += 1
                yield g

    top = heapq.nsmallest(TOP_ROWS, counted(), key=lambda g: (-group_redundant_bytes(g), g.id))
    rows = [
        "<tr>"
        + _td(g.id)
        + _num(len(g.members), str(len(g.members)))
        + _num(group_redundant_bytes(g), human_bytes(group_redundant_bytes(g)))
        + _td(short_uri(g.master), "uri")
        + _td(", ".join(group_spans(g)) or "-")
        + _td("yes" if g.has_personal_data else "no")
        + "</tr>"
        for g in top
    ]
    where = "pictured below" if pictured else "in the JSON"
    note = f"Top {len(rows)} of {exact} exact groups by redundant bytes; near groups are {where}."
    return _table(
        "Exact duplicate groups",
        ["Group", "Copies", "Redundant", "Master", "Spans", "Personal data"],
        rows,
        "groups",
        note,
        numeric=(1, 2),
    )


def _findings_table(counts: dict[tuple[str, Severity], int]) -> str:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[0][1].rank, kv[0][0]))
    rows = [
        "<tr>"
        + _td(policy)
        + f'<td data-sort="{severity.rank}">{escape(severity.value)}</td>'
        + _num(n, f"{n:,}")
        + "</tr>"
        for (policy, severity), n in ordered
    ]
    return _table(
        f"Findings ({sum(counts.values()):,})",
        ["Policy", "Severity", "Count"],
        rows,
        "findings",
        numeric=(2,),
    )


def _skipped_table(reasons: Counter[str]) -> str:
    rows = ["<tr>" + _td(reason) + _num(n, f"{n:,}") + "</tr>" for reason, n in reasons.most_common()]
    return _table(f"Skipped ({reasons.total():,})", ["Reason", "Objects"], rows, "skipped", numeric=(1,))


def _prices_list(report: Report) -> str:
    items = "".join(f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in report.prices.items())
    return f'<h2>Prices</h2><ul class="muted">{items}</ul>'

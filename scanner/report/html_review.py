"""The HTML page's sections for the people who act on it: what was scanned (at the top of the page), every
object that carries personal data, copies across jurisdictions file by file, and each policy's findings.

Everything is written while it streams from the report and the catalog, and each list stops at a cap
(`PERSONAL_ROWS`, `CROSS_GROUPS`, `FINDING_ROWS`) with a line saying how many more there are and where they
are: a page of ten million rows would not open, and memory must not grow with the estate. The page reads
fully without script; a few lines of inline script add the personal-data table's filters. `PRINT_CSS` lays
the page out for print (Chromium's print-to-PDF): controls hidden, tables whole, rows never cut.

What people read is bounded the same way as the rest of the page: GPS rounded to about 1 km
(`tierscan.scanner.report.exposure`), device serials masked to their last characters (`mask_serial`); the
inventory keeps the exact values as the audit record.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from itertools import islice

from tierscan.scanner import __version__
from tierscan.scanner.core.models import BucketSummary, Finding, Group, InventoryRecord, Report, Severity
from tierscan.scanner.report.build import ReportStream, human_bytes, money_text, short_uri
from tierscan.scanner.report.exposure import GPS_DECIMALS, KINDS, Exposure
from tierscan.scanner.report.review import ReviewContext

__all__ = [
    "CROSS_GROUPS",
    "FINDING_ROWS",
    "PERSONAL_ROWS",
    "PRINT_CSS",
    "REVIEW_CSS",
    "cross_boundary_section",
    "findings_sections",
    "mask_serial",
    "personal_data_section",
    "review_script",
    "scanned_section",
]

PERSONAL_ROWS = 2000  # objects listed in the personal-data table; the inventory lists them all
CROSS_GROUPS = 200  # groups listed across jurisdictions
CROSS_MEMBERS = 20  # copies listed per group
FINDING_ROWS = 50  # findings listed per policy
FINDING_URIS = 5  # URIs listed per finding
SERIAL_SHOWN = 4  # trailing characters of a device serial people read
SKIP_REASONS_SHOWN = 8  # skip reasons named at the top of the page

KIND_LABELS = {"gps": "GPS", "serial": "device serial", "owner": "owner", "timestamp": "capture time",
               "people": "people named", "caption": "caption", "place": "place named", "faces": "faces"}
# What each action asks of people, in plain words.
ACTION_WORDS = {
    "report": "Review: nothing changes",
    "delete-redundant": "Delete the redundant copies (the master stays)",
    "transition": "Move to a colder storage class",
    "strip-metadata": "Strip the personal metadata (GPS, serials, owner, capture time, names, caption, place)",
    "relocate": "Move the copies to the named jurisdiction (the master stays)",
}

REVIEW_CSS = """
.scanned{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:8px 12px;margin-top:12px;font-size:12px}
.scanned h2{font-size:13px;margin:0 0 4px}
.scanned dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
.scanned dt{color:#6c757d}.scanned dd{margin:0}.scanned code,.digest{font-size:11px;word-break:break-all}
.kind{display:inline-block;border-radius:4px;padding:0 4px;margin:0 2px 2px 0;font-size:11px;color:#fff}
.kind-gps{background:#c92a2a}.kind-serial{background:#5f3dc4}.kind-owner{background:#2f9e44}
.kind-timestamp{background:#1c7ed6}.kind-people{background:#d6336c}.kind-caption{background:#e67700}
.kind-place{background:#0c8599}.kind-faces{background:#862e9c}
.filters{display:flex;gap:8px;align-items:center;margin:8px 0}.filters input{flex:1;max-width:420px;padding:4px}
tbody.group tr.head td{background:#f1f3f5;font-weight:600}
section.policy{margin-top:20px}section.policy h3{font-size:15px;margin:0 0 4px}
.sev{display:inline-block;border-radius:4px;padding:0 6px;font-size:11px;color:#fff;background:#868e96}
.sev-critical,.sev-high{background:#c92a2a}.sev-medium{background:#f08c00}.sev-low{background:#1c7ed6}
p.more{font-style:italic}#personal-data td.uri{width:30%}
"""

# Print (Chromium's print-to-PDF): white page, controls hidden, every row shown, no row or chart cut,
# headings kept with what follows, tables' heads repeated on each page, long URIs broken anywhere.
PRINT_CSS = """
@page{size:A4;margin:12mm 10mm}
@media print{
body{background:#fff;font-size:10px}main{max-width:none;padding:0}
h1{font-size:18px}h2{font-size:14px;margin:18px 0 6px;break-after:avoid}h3{break-after:avoid}
.filters{display:none !important}tr[hidden]{display:table-row !important}
th{position:static}thead{display:table-header-group}table{font-size:9px}
tr,figure,.card,.scanned,tbody.group{break-inside:avoid}
.charts{grid-template-columns:1fr 1fr;gap:8px}figure{margin:0;padding:6px}
.cards{grid-template-columns:repeat(4,1fr);gap:6px}.card{padding:6px}.card .value{font-size:14px}
section.major{break-before:page}
td,th{padding:3px 4px}td.uri,td.uri code{word-break:break-all}
table.sortable th:after{content:""}
}
"""


def mask_serial(serial: str) -> str:
    """A device serial as people read it: its last `SERIAL_SHOWN` characters behind bullets, fewer for a
    short serial so that at least half of it stays hidden (the inventory keeps it whole)."""
    shown = min(SERIAL_SHOWN, len(serial) // 2)
    return "\u2022" * 4 + (serial[-shown:] if shown else "")


def mask_name(name: str) -> str:
    """A person's name as people read it: the initial of each word ("Chan Tai Man" -> "C. T. M."; a name
    written without spaces, as Chinese is, keeps its first character: "陳大文" -> "陳."), so a report
    passed around names nobody in full (the inventory keeps the name whole)."""
    return " ".join(f"{word[0]}." for word in re.split(r"[\s\-\u00b7\u30fb.,]+", name) if word)


def mask_people(names: Iterable[str]) -> str:
    """`mask_name` of each name, the same initials shown once."""
    return ", ".join(dict.fromkeys(masked for name in names if (masked := mask_name(name))))


# --- what was scanned -------------------------------------------------------------------------------------


_AS_OF = re.compile(r"as of (\d{4}-\d{2}-\d{2})")


def _prices_summary(report: Report) -> str:
    """The price table's origin, how many prices, how many estimated or unpriced, and their dates."""
    lines = [v for k, v in report.prices.items() if k not in ("table", "units")]
    estimated = sum(1 for line in lines if "(estimate)" in line)
    unpriced = sum(1 for line in lines if line.startswith("unpriced"))
    fallback = sum(1 for line in lines if "not in the table" in line)
    dates = sorted({m for line in lines for m in _AS_OF.findall(line)})
    parts = [f"table <b>{escape(report.prices.get('table', '?'))}</b>", f"{len(lines)} prices"]
    parts.append(f"{estimated} estimated" if estimated else "none estimated")
    if fallback:
        parts.append(f"{fallback} from a default region")
    if unpriced:
        parts.append(f"{unpriced} unpriced")
    if dates:
        parts.append("as of " + ", ".join(dates))
    return "; ".join(parts) + " (each price is listed under Prices below)"


def _when(report: Report) -> str:
    scan = report.scan
    if scan.started is None:
        return "no finished scan"
    text = f"{scan.started:%Y-%m-%d %H:%M:%S %Z}".strip()
    if scan.finished is not None:
        text += f" to {scan.finished:%H:%M:%S} ({(scan.finished - scan.started).total_seconds():,.0f} s)"
    return text


def scanned_section(stream: ReportStream, review: ReviewContext | None) -> str:
    """What was scanned, when, with which tierscan, settings, policies and prices, and what was skipped."""
    report = stream.head
    scan = report.scan
    rows: list[tuple[str, str]] = []
    provenance = review.provenance if review else None
    version = f"tierscan {escape(__version__)} wrote this page"
    if provenance and provenance.scanned_with:
        version = f"scanned with tierscan {escape(provenance.scanned_with)}; " + version
    rows.append(("Tool", version))
    if provenance:
        targets = ", ".join(f"<code>{escape(short_uri(t))}</code>" for t in provenance.targets) or "none recorded"
        rows.append(("Targets", targets))
    rows.append(("When", f"scan {escape(_when(report))}; report {report.generated_at:%Y-%m-%d %H:%M:%S %Z}"))
    rows.append(("Scan", f"{scan.listed:,} listed, {scan.fingerprinted:,} read, {scan.unchanged:,} unchanged, "
                         f"{scan.gone:,} gone; {scan.requests:,} reads of {human_bytes(scan.bytes_read)} costing "
                         f"{money_text(scan.cost_usd)}"))
    if provenance:
        whole = provenance.digests.get("settings", "")
        aspects = ", ".join(f"{escape(k)} <code>{escape(v[:12])}</code>" for k, v in provenance.digests.items()
                            if k != "settings")
        origin = "stored with the scan" if provenance.stored else "of this report's config: the catalog stores none"
        rows.append(("Settings", f'SHA-256 <code class="digest">{escape(whole)}</code> ({origin}); {aspects}'))
        files = "; ".join(
            f"{escape(f.pack)} ({escape(f.file) if f.file else 'built in'}) <code>{escape(f.sha256[:16])}</code>"
            for f in provenance.policy_files
        ) or "packs " + escape(", ".join(provenance.packs))
        rows.append(("Policies", files))
    rows.append(("Prices", _prices_summary(report)))
    reasons = stream.skip_reasons
    shown = ", ".join(f"{escape(r)} {n:,}" for r, n in reasons.most_common(SKIP_REASONS_SHOWN))
    more = len(reasons) - SKIP_REASONS_SHOWN
    if more > 0:
        shown += f", {more:,} more reasons (Skipped below)"
    rows.append(("Skipped", f"{reasons.total():,} objects" + (f": {shown}" if shown else "")))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<section class="scanned" id="scanned"><h2>What was scanned</h2><dl>{items}</dl></section>'


# --- objects with personal data ---------------------------------------------------------------------------


def _kinds(kinds: Iterable[str]) -> str:
    return "".join(f'<span class="kind kind-{escape(k)}">{escape(KIND_LABELS.get(k, k))}</span>' for k in kinds)


def _taken(record: InventoryRecord) -> str:
    """Where the photo was taken: its territory and the nearest place, when its GPS position says."""
    return ", ".join(p for p in (record.taken_in, record.taken_near) if p)


def _personal_row(record: InventoryRecord) -> str:
    exif = record.exif
    gps = exif.gps if exif else None
    position = f"{gps.lat:.{GPS_DECIMALS}f}, {gps.lon:.{GPS_DECIMALS}f}" if gps else ""
    serials = ", ".join(mask_serial(s) for s in exif.serials) if exif else ""
    camera = " ".join(p for p in (exif.make, exif.model) if p) if exif else ""
    return (
        f'<tr data-uri="{escape(record.uri)}" data-kinds="{escape(" ".join(record.personal_data))}">'
        f'<td class="uri">{escape(short_uri(record.uri))}</td>'
        f"<td>{escape(record.bucket)}<br><span class=muted>{escape(record.region)}, "
        f"{escape(record.jurisdiction)}</span></td>"
        f"<td>{_kinds(record.personal_data)}</td><td>{escape(position)}</td><td>{escape(_taken(record))}</td>"
        f"<td>{escape(exif.datetime_original or '' if exif else '')}</td><td>{escape(serials)}</td>"
        f"<td>{escape(mask_name(exif.owner) if exif and exif.owner else '')}</td><td>{escape(camera)}</td>"
        f"<td>{escape(mask_people(exif.people) if exif else '')}</td>"
        f"<td>{'' if record.faces is None else record.faces}</td></tr>"
    )


def personal_data_section(review: ReviewContext, exposure: Exposure) -> Iterator[str]:
    """Every object whose metadata holds personal data, up to `PERSONAL_ROWS` of them, each row written as
    it streams from the catalog."""
    total = exposure.with_personal_data
    shown = min(total, PERSONAL_ROWS)
    yield (
        f'<section id="personal-data-objects"><h2>Objects with personal data ({total:,})</h2>'
        '<p class="muted">Every object whose metadata names a place, a device, a person or a time, or whose '
        f"pixels show faces, in URI order. Positions rounded to {GPS_DECIMALS} decimals (about 1 km); device "
        f"serials show their last {SERIAL_SHOWN} characters; owners and people named show their initials; the "
        "inventory (<code>tierscan inventory</code>) holds the exact values.</p>"
    )
    options = "".join(f'<option value="{k}">{escape(KIND_LABELS[k])}</option>' for k in KINDS)
    yield (
        '<div class="filters" id="personal-data-filters" hidden>'
        '<input type="search" placeholder="Filter by URI, bucket, owner, camera..." aria-label="Filter rows">'
        f'<select aria-label="Kind of personal data"><option value="">every kind</option>{options}</select>'
        '<span class="muted shown"></span></div>'
    )
    head = ["Object", "Stored in", "Personal data", "GPS (rounded)", "Taken in", "Captured", "Device serial",
            "Owner", "Camera", "People named", "Faces"]
    yield ('<table class="sortable" id="personal-data"><thead><tr>'
           + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>")
    written = 0
    for record in islice(review.personal(), PERSONAL_ROWS):
        written += 1
        yield _personal_row(record)
    yield "</tbody></table>"
    rest = max(total, written) - written
    if rest:
        yield (f'<p class="more">First {shown:,} of {total:,}: {rest:,} more in the inventory '
               "(<code>tierscan inventory</code>).</p>")
    yield "</section>"


# --- copies across jurisdictions --------------------------------------------------------------------------


class _Buckets:
    """A member's bucket from the report's buckets, by the longest bucket URI its URI starts with."""

    def __init__(self, buckets: Iterable[BucketSummary]):
        self._by_uri = {b.uri.rstrip("/"): b.name for b in buckets}

    def name(self, uri: str) -> str:
        prefix = uri
        while "/" in prefix:
            prefix = prefix.rsplit("/", 1)[0]
            if prefix in self._by_uri:
                return self._by_uri[prefix]
        return ""


def _sides(group: Group) -> str:
    """The jurisdictions a group's copies sit under, in member order: `HK / CN`."""
    return " / ".join(dict.fromkeys(m.jurisdiction for m in group.members))


def _cross_group(group: Group, buckets: _Buckets) -> str:
    members = group.members[:CROSS_MEMBERS]
    more = len(group.members) - len(members)
    badge = " · personal data" if group.has_personal_data else ""
    head = (f'<tr class="head"><td colspan="7">{escape(group.id)} · {escape(group.kind)} · '
            f"{len(group.members):,} copies under {escape(_sides(group))}{badge}</td></tr>")
    rows = "".join(
        f"<tr><td>{'master' if m.uri == group.master else 'copy'}</td>"
        f'<td class="uri">{escape(short_uri(m.uri))}</td><td>{escape(buckets.name(m.uri))}</td>'
        f"<td>{escape(m.region)}</td><td><b>{escape(m.jurisdiction)}</b></td><td>{escape(m.tier.value)}</td>"
        f'<td class="num">{escape(human_bytes(m.size))}</td></tr>'
        for m in members
    )
    if more:
        rows += f'<tr><td colspan="7" class="muted">{more:,} more copies in the JSON report</td></tr>'
    return f'<tbody class="group" data-group="{escape(group.id)}">{head}{rows}</tbody>'


def cross_boundary_section(stream: ReportStream) -> str:
    """Groups whose copies sit under more than one jurisdiction (the Hong Kong / Mainland boundary among
    them), copy by copy, up to `CROSS_GROUPS` groups; the groups are read once."""
    buckets = _Buckets(stream.head.buckets)
    total = 0
    bodies: list[str] = []
    for group in stream.groups():
        if group.spans_jurisdictions:
            total += 1
            if len(bodies) < CROSS_GROUPS:
                bodies.append(_cross_group(group, buckets))
    head = "".join(f"<th>{h}</th>" for h in ("Copy", "Object", "Bucket", "Region", "Jurisdiction", "Tier"))
    more = (f'<p class="more">First {len(bodies):,} of {total:,} groups: the rest are in the JSON report '
            "(<code>tierscan report --format json</code>, <code>groups[]</code>).</p>"
            if total > len(bodies) else "")
    table = (f'<table id="cross-boundary"><thead><tr>{head}<th class="num">Size</th></tr></thead>'
             + "".join(bodies) + "</table>") if bodies else '<p class="muted">No group has copies under more ' \
        "than one jurisdiction.</p>"
    return (f'<section id="cross-boundary-groups"><h2>Copies across jurisdictions ({total:,} groups)</h2>'
            '<p class="muted">Duplicate and near-duplicate groups with copies under more than one jurisdiction, '
            "such as Hong Kong and Mainland China: every copy with its bucket, region and jurisdiction.</p>"
            f"{table}{more}</section>")


# --- findings by policy -----------------------------------------------------------------------------------


@dataclass
class _Policy:
    """One policy's findings as they stream by: counts and money of all, rows of the first ones."""

    severity: Severity
    count: int = 0
    savings: float = 0.0
    one_time: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    rows: list[str] = field(default_factory=list)


def _uris(finding: Finding) -> str:
    shown = "<br>".join(escape(short_uri(u)) for u in finding.uris[:FINDING_URIS])
    more = len(finding.uris) - FINDING_URIS
    return shown + (f'<br><span class="muted">{more:,} more</span>' if more > 0 else "")


def _finding_row(finding: Finding) -> str:
    group = f'<br><span class="muted">group {escape(finding.group)}</span>' if finding.group else ""
    also = f'<br><span class="muted">also {escape(", ".join(finding.also))}</span>' if finding.also else ""
    return (
        f'<tr><td class="uri">{_uris(finding)}{group}</td><td>{escape(finding.reason)}{also}</td>'
        f"<td>{escape(ACTION_WORDS.get(finding.action, finding.action))}</td>"
        f'<td class="num">{escape(money_text(finding.monthly_savings_usd))}</td>'
        f'<td class="num">{escape(money_text(finding.one_time_cost_usd))}</td></tr>'
    )


def _policy_section(name: str, entry: _Policy, description: str) -> str:
    actions = "; ".join(f"{escape(ACTION_WORDS.get(a, a))} ({n:,})" for a, n in entry.actions.most_common())
    summary = (f"{entry.count:,} findings. Suggested: {actions}. Saves {escape(money_text(entry.savings))} a "
               f"month; one-time cost {escape(money_text(entry.one_time))}.")
    about = f"<p>{escape(description)}</p>" if description else ""
    head = "".join(f"<th>{h}</th>" for h in ("Objects", "Why", "Suggested action"))
    table = (f'<table><thead><tr>{head}<th class="num">Saves/mo</th><th class="num">One-time</th></tr></thead>'
             f"<tbody>{''.join(entry.rows)}</tbody></table>")
    rest = entry.count - len(entry.rows)
    more = (f'<p class="more">First {len(entry.rows):,} of {entry.count:,}: {rest:,} more in the JSON report '
            "(<code>findings[]</code>) and in this policy's folder of <code>--output-dir</code>.</p>"
            if rest else "")
    return (f'<section class="policy" data-policy="{escape(name)}"><h3>{escape(name)} '
            f'<span class="sev sev-{entry.severity.value}">{entry.severity.value}</span></h3>{about}'
            f'<p class="muted">{summary}</p>{table}{more}</section>')


def findings_sections(stream: ReportStream, review: ReviewContext | None) -> str:
    """A section per policy with findings, most severe first: what it is about, its findings' objects or
    groups, why, the suggested action and the money, up to `FINDING_ROWS` findings each."""
    policies: dict[str, _Policy] = {}
    for finding in stream.findings():
        entry = policies.setdefault(finding.policy, _Policy(finding.severity))
        entry.count += 1
        entry.savings += finding.monthly_savings_usd
        entry.one_time += finding.one_time_cost_usd
        entry.actions[finding.action] += 1
        if len(entry.rows) < FINDING_ROWS:
            entry.rows.append(_finding_row(finding))
    descriptions = review.policies if review else {}
    ordered = sorted(policies.items(), key=lambda kv: (-kv[1].severity.rank, kv[0]))
    sections = "".join(_policy_section(name, entry, descriptions.get(name, "")) for name, entry in ordered)
    return (f'<section id="findings-by-policy" class="major"><h2>Findings by policy</h2>'
            f"{sections or '<p class=muted>No findings.</p>'}</section>")


# --- script -----------------------------------------------------------------------------------------------

# Shows the personal-data filters and hides the rows that do not match the text and the kind chosen; the
# table reads whole without it.
_SCRIPT = """
(function () {
  try {
    var box = document.getElementById("personal-data-filters"), table = document.getElementById("personal-data");
    if (!box || !table) { return; }
    var text = box.querySelector("input"), kind = box.querySelector("select"), shown = box.querySelector(".shown");
    var rows = table.tBodies[0].rows;
    function apply() {
      var q = text.value.trim().toLowerCase(), k = kind.value, n = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var ok = (!k || (" " + row.dataset.kinds + " ").indexOf(" " + k + " ") >= 0) &&
          (!q || row.textContent.toLowerCase().indexOf(q) >= 0);
        row.hidden = !ok;
        if (ok) { n += 1; }
      });
      shown.textContent = n + " of " + rows.length + " rows shown";
    }
    text.addEventListener("input", apply);
    kind.addEventListener("change", apply);
    box.hidden = false;
    apply();
  } catch (e) {
    document.body.dataset.error = String(e);
  }
})();
"""


def review_script() -> str:
    return f"<script>{_SCRIPT}</script>"

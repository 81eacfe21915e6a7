"""The HTML page's review sections: what was scanned, every object with personal data (serials masked, GPS
rounded, capped with a count of the rest), copies across jurisdictions copy by copy, and a section per
policy; in memory here, and for the scanned sample estate rendered in headless Chromium."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_report import FINDINGS, GROUPS, NEAR, NOW, RECORDS, SKIPPED, STATS, rec
from test_report_outputs import CHROMIUM, _ensure_chromium

from tierscan.scanner.cli import cli
from tierscan.scanner.core.models import GPS, ExifRecord, Finding, InventoryRecord, Report, Severity, Tier
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.report import html_review
from tierscan.scanner.report.build import ReportStream, build_report
from tierscan.scanner.report.exposure import exposure
from tierscan.scanner.report.html import write_html
from tierscan.scanner.report.html_review import FINDING_ROWS, mask_serial
from tierscan.scanner.report.review import PolicyFile, Provenance, ReviewContext
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.settings import stored_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("length", range(1, 25))
def test_a_masked_serial_never_shows_whole_and_keeps_at_most_four_characters(length: int) -> None:
    serial = "".join(chr(ord("A") + i % 26) for i in range(length))
    masked = mask_serial(serial)
    assert serial not in masked
    shown = masked.lstrip("\u2022")
    assert len(shown) == min(4, length // 2) and serial.endswith(shown)


def context(records: list[InventoryRecord], descriptions: dict[str, str] | None = None) -> ReviewContext:
    provenance = Provenance(
        scanned_with="9.9.9", targets=["s3://hk-photos", "s3://cn-photos"],
        digests={"prices": "a" * 64, "settings": "b" * 64}, stored=True,
        policy_files=[PolicyFile("hk-pdpo", None, "c" * 64)], packs=["hk-pdpo"],
    )
    return ReviewContext(provenance, lambda: (r for r in records if r.personal_data), descriptions or {})


def page(report: Report, records: list[InventoryRecord], descriptions: dict[str, str] | None = None) -> str:
    out = io.StringIO()
    write_html(ReportStream.of(report), exposure(records), out, context(records, descriptions))
    return out.getvalue()


def with_personal_data(n: int) -> list[InventoryRecord]:
    """`n` objects, each with GPS, a long and a short device serial, an owner and a capture time."""
    return [
        rec(f"s3://hk-photos/p{i:03}.jpg", 1000, "STANDARD", Tier.hot, "ap-east-1", "HK", 10,
            exif=ExifRecord(gps=GPS(lat=22.285521 + i / 1000, lon=114.157692), serials=[f"SN{i:06}XYZ", f"S{i}"],
                            owner=f"Owner {i}", datetime_original="2024:01:02 03:04:05"),
            personal_data=["gps", "serial", "owner", "timestamp"])
        for i in range(n)
    ]


def built(records: list[InventoryRecord], findings: list[Finding] = FINDINGS) -> Report:
    return build_report(iter(records), GROUPS, findings, SKIPPED, STATS, PriceTable.builtin(), None, NOW)


def rows_of(text: str, table_id: str) -> list[str]:
    body = text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr data-uri=\"([^\"]*)\"", body)


def test_every_object_with_personal_data_is_listed_with_serials_masked_and_gps_rounded() -> None:
    people = with_personal_data(7)
    records = [*RECORDS, *people]
    text = page(built(records), records)
    listed = rows_of(text, "personal-data")
    assert listed == [r.uri for r in records if r.personal_data]  # URI order, as the catalog streams them
    for record in records:
        for serial in record.exif.serials if record.exif else []:
            assert serial not in unescape(text)
            assert mask_serial(serial) in unescape(text) or not record.personal_data
        gps = record.exif.gps if record.exif else None
        if gps:
            assert f"{gps.lat:.2f}, {gps.lon:.2f}" in text and f"{gps.lat:.4f}" not in text
    assert "Owner 3" not in text and "O. 3." in text and "2024:01:02 03:04:05" in text  # the owner's initials
    assert "more in the inventory" not in text


def test_the_personal_data_table_stops_at_its_cap_and_says_how_many_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_review, "PERSONAL_ROWS", 3)
    people = with_personal_data(8)
    text = page(built(people), people)
    assert rows_of(text, "personal-data") == [r.uri for r in people[:3]]
    assert "Objects with personal data (8)" in text
    assert "First 3 of 8: 5 more in the inventory (<code>tierscan inventory</code>)" in text


def test_the_personal_data_table_reads_without_script_and_its_filters_wait_for_it() -> None:
    people = with_personal_data(2)
    text = page(built(people), people)
    assert '<div class="filters" id="personal-data-filters" hidden>' in text
    body = text.split('id="personal-data"', 1)[1].split("</table>", 1)[0]
    assert " hidden" not in body  # every row shows until a script filters


def test_where_a_photo_was_taken_is_its_own_column() -> None:
    people = with_personal_data(2)
    placed = [people[0].model_copy(update={"taken_in": "HK", "taken_near": "Lok Ma Chau"}), people[1]]
    text = page(built(placed), placed)
    table = text.split('id="personal-data"', 1)[1].split("</table>", 1)[0]
    assert "<th>GPS (rounded)</th><th>Taken in</th>" in table
    assert "</td><td>HK, Lok Ma Chau</td><td>2024:01:02" in table and "</td><td></td><td>2024:01:02" in table


def test_copies_across_jurisdictions_name_every_copy_with_its_bucket_region_and_jurisdiction() -> None:
    records = list(RECORDS)
    text = page(built(records), records)
    section = text.split('id="cross-boundary-groups"', 1)[1].split("</section>", 1)[0]
    assert "(1 groups)" in section and 'data-group="x1"' in section and 'data-group="n1"' not in section
    group = next(g for g in GROUPS if g.id == "x1")
    rows = re.findall(r"<tr><td>(master|copy)</td><td class=\"uri\">([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td><td><b>([^<]*)</b></td>", section)
    assert [(uri, region, jurisdiction) for _, uri, _, region, jurisdiction in rows] == [
        (m.uri, m.region, m.jurisdiction) for m in group.members]
    assert [bucket for _, _, bucket, _, _ in rows] == ["hk-photos", "cn-photos", "hk-archive"]
    assert rows[0][0] == "master" and "HK / CN" in section


def test_cross_boundary_groups_stop_at_their_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_review, "CROSS_GROUPS", 0)
    text = page(built(list(RECORDS)), list(RECORDS))
    assert "First 0 of 1 groups: the rest are in the JSON report" in text


def test_each_policy_has_a_section_with_its_findings_reason_action_and_money(monkeypatch: pytest.MonkeyPatch) -> None:
    many = [Finding(policy="strip-gps", severity=Severity.medium, action="strip-metadata", uris=[f"s3://b/{i}.jpg"],
                    reason=f"GPS in metadata {i}", monthly_savings_usd=0.25, one_time_cost_usd=0.5)
            for i in range(FINDING_ROWS + 3)]
    findings = [*FINDINGS, *many]
    descriptions = {"strip-gps": "Photos that say where they were taken."}
    text = page(built(list(RECORDS), findings), list(RECORDS), descriptions)
    sections = dict(re.findall(r'<section class="policy" data-policy="([^"]*)">(.*?)</section>', text))
    assert list(sections) == ["pd-across-hk-cn", "gps-present", "strip-gps"]  # most severe first
    strip = sections["strip-gps"]
    assert strip.count("<tr><td") == FINDING_ROWS
    assert f"{FINDING_ROWS + 3} findings" in strip and "Saves $13.25 a month; one-time cost $26.50" in strip
    assert "Strip the personal metadata" in strip and "Photos that say where they were taken." in strip
    assert f"First {FINDING_ROWS} of {FINDING_ROWS + 3}: 3 more in the JSON report" in strip
    assert "GPS in metadata 0" in strip and f"GPS in metadata {FINDING_ROWS}" not in strip
    assert "personal data on both sides" in sections["pd-across-hk-cn"] and "group x1" in sections["pd-across-hk-cn"]


def test_what_was_scanned_comes_before_the_headline_cards() -> None:
    report = built(list(RECORDS))
    text = page(report, list(RECORDS))
    first = text.split('<div class="cards">', 1)[0]
    scanned = first.split('id="scanned"', 1)[1]
    prices = [line for key, line in report.prices.items() if key not in ("table", "units")]
    estimated = sum(1 for line in prices if "(estimate)" in line)
    assert estimated
    for expected in ("scanned with tierscan 9.9.9", "s3://hk-photos", "s3://cn-photos", "b" * 64,
                     "prices <code>aaaaaaaaaaaa</code>", "hk-pdpo (built in) <code>cccccccccccccccc</code>",
                     "2 objects: unreadable tier 1, corrupt image 1",
                     f"table <b>builtin</b>; {len(prices)} prices; {estimated} estimated; as of 2025-01-01"):
        assert expected in scanned, expected


def test_a_page_without_a_catalog_still_lists_groups_and_findings() -> None:
    out = io.StringIO()
    report = built(list(RECORDS))
    write_html(ReportStream.of(report), exposure(RECORDS), out)
    text = out.getvalue()
    assert 'id="personal-data"' not in text  # its rows stream from a catalog
    assert 'data-group="x1"' in text and 'data-policy="gps-present"' in text and 'id="scanned"' in text
    assert NEAR.uri in text


# --- the sample estate, rendered ---------------------------------------------------------------------------


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report, list[InventoryRecord]]:
    """(the HTML page, the JSON report, the inventory) of the scanned sample estate."""
    root = tmp_path_factory.mktemp("review")
    shutil.copytree(REPO / "examples" / "estate", root / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", root / "tierscan.yaml")
    db, config = str(root / "t.db"), str(root / "tierscan.yaml")
    run("scan", "--config", config, "--db", db, "--format", "none")
    report = Report.model_validate_json(run("report", "--db", db, "--format", "json"))
    lines = run("inventory", "--db", db, "--format", "jsonl").splitlines()
    run("report", "--db", db, "--format", "html", "--output", str(root / "report.html"))
    return root / "report.html", report, [InventoryRecord.model_validate_json(line) for line in lines]


def test_what_was_scanned_is_read_from_the_settings_the_scan_stored(
    estate: tuple[Path, Report, list[InventoryRecord]]
) -> None:
    page_path, report, _ = estate
    with Catalog(page_path.parent / "t.db") as catalog:
        stored = stored_settings(catalog)
        targets = catalog.last_scan_targets()
    assert stored and stored.config.embedded and targets
    scanned = page_path.read_text(encoding="utf-8").split('id="scanned"', 1)[1].split("</section>", 1)[0]
    assert f"scanned with tierscan {stored.version}" in scanned and stored.digests["settings"] in scanned
    for pack, _, text in stored.config.embedded.policies:
        assert f"{pack} (built in) <code>{hashlib.sha256(text.encode()).hexdigest()[:16]}</code>" in scanned
    assert all(unescape(f"<code>{t}</code>") in unescape(scanned) for t in targets)
    assert f"{report.totals.skipped} objects: " in scanned


def test_a_catalog_without_stored_settings_says_whose_digests_it_shows(
    estate: tuple[Path, Report, list[InventoryRecord]], tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    shutil.copy(estate[0].parent / "t.db", db)
    with Catalog(db) as catalog:
        catalog.db.execute("DELETE FROM meta WHERE key='settings'")
    out = tmp_path / "old.html"
    run("report", "--db", str(db), "--format", "html", "--output", str(out))
    scanned = out.read_text(encoding="utf-8").split('id="scanned"', 1)[1].split("</section>", 1)[0]
    assert "of this report's config: the catalog stores none" in scanned and "scanned with" not in scanned
    assert "<dt>Policies</dt><dd>packs builtin</dd>" in scanned


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran in headless Chromium; fails on a script error or any console
    message."""
    _ensure_chromium()
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Uncaught" not in done.stderr and ":CONSOLE(" not in done.stderr, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body and 'data-ok="1"' in body[1] and "data-error" not in body[1], body
    return done.stdout


@pytest.mark.slow
def test_the_rendered_page_names_every_object_with_personal_data_every_copy_and_every_policy(
    estate: tuple[Path, Report, list[InventoryRecord]], tmp_path: Path
) -> None:
    page_path, report, records = estate
    dom = dump_dom(page_path, tmp_path)
    table = dom.split('id="personal-data"', 1)[1].split("</table>", 1)[0]
    listed = [unescape(u) for u in re.findall(r'<tr data-uri="([^"]*)"', table)]
    with_gps = [r.uri for r in records if r.exif and r.exif.gps]
    assert with_gps and set(with_gps) <= set(listed)
    assert listed == [r.uri for r in records if r.personal_data]
    assert 'id="personal-data-filters">' in dom  # the script showed the filters
    serials = {s for r in records if r.exif for s in r.exif.serials}
    assert serials and not any(s in unescape(dom) for s in serials)
    assert any(s in "".join(r.model_dump_json() for r in records) for s in serials)  # the inventory keeps them
    crossing = [g for g in report.groups if g.spans_jurisdictions]
    assert crossing
    for group in crossing:
        body = dom.split(f'data-group="{group.id}"', 1)[1].split("</tbody>", 1)[0]
        sides = {m.jurisdiction for m in group.members}
        assert len(sides) > 1 and all(f"<b>{side}</b>" in body for side in sides)
        assert body.count("<tr><td>") == len(group.members)
    policies = {f.policy for f in report.findings}
    assert set(re.findall(r'<section class="policy" data-policy="([^"]*)"', dom)) == policies


@pytest.mark.slow
def test_the_filters_hide_the_rows_that_do_not_match(
    estate: tuple[Path, Report, list[InventoryRecord]], tmp_path: Path
) -> None:
    """The page with a script that types into the filter box and picks a kind, as a reader would."""
    page_path, _, records = estate
    typed = tmp_path / "typed.html"
    actions = ('var box = document.getElementById("personal-data-filters");'
               'box.querySelector("input").value = "hk-design-cool";'
               'box.querySelector("input").dispatchEvent(new Event("input"));'
               'box.querySelector("select").value = "owner";'
               'box.querySelector("select").dispatchEvent(new Event("change"));')
    typed.write_text(page_path.read_text(encoding="utf-8").replace("</body>", f"<script>{actions}</script></body>"),
                     encoding="utf-8")
    dom = dump_dom(typed, tmp_path)
    table = dom.split('id="personal-data"', 1)[1].split("</table>", 1)[0]
    shown = [unescape(u) for u in re.findall(r'<tr data-uri="([^"]*)" data-kinds="[^"]*">', table)]
    expected = [r.uri for r in records if r.bucket == "hk-design-cool" and "owner" in r.personal_data]
    assert expected and shown == expected
    assert f"{len(expected)} of {sum(1 for r in records if r.personal_data)} rows shown" in dom


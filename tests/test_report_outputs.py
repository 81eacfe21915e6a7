"""The report and inventory outputs of a scanned sample estate, through the CLI: CSV tables, the HTML page
(structure here, and rendered in headless Chromium), Parquet, and the scan's closing summary line."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.models import InventoryRecord, Report
from tierscan.scanner.report.html import HEADLINE

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CARD = re.compile(
    r'id="total-(\w+)" data-value="([^"]*)"><div class="label">[^<]*</div><div class="value">([^<]*)</div>'
)


def run(*args: str, expect: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout, result.stderr


NOW = datetime(2030, 1, 1, tzinfo=UTC)
MODIFIED = NOW - timedelta(days=31)  # young enough for early-deletion charges in cold and archive tiers


class _Frozen(datetime):
    """The report's clock, stopped: early-deletion charges depend on each copy's age, so the JSON and the
    HTML report must be built at the same instant to agree to the last digit."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        return cls.fromtimestamp(NOW.timestamp(), tz)


def report_at_a_fixed_time(*args: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tierscan.scanner.cli.datetime", _Frozen)
        return run("report", *args)[0]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Report, str]:
    """(db, config, JSON report, the scan's stderr) for the sample estate."""
    root = tmp_path_factory.mktemp("outputs")
    shutil.copytree(REPO / "examples" / "estate", root / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", root / "tierscan.yaml")
    for path in (root / "estate").rglob("*"):
        if path.is_file():
            os.utime(path, (MODIFIED.timestamp(), MODIFIED.timestamp()))
    db, config = root / "t.db", str(root / "tierscan.yaml")
    _, stderr = run("scan", "--config", config, "--db", str(db), "--format", "none")
    text = report_at_a_fixed_time("--db", str(db), "--config", config, "--format", "json")
    return db, config, Report.model_validate_json(text), stderr


@pytest.fixture(scope="module")
def page(scanned: tuple[Path, str, Report, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    db, config, _, _ = scanned
    out = tmp_path_factory.mktemp("html") / "report.html"
    report_at_a_fixed_time("--db", str(db), "--config", config, "--format", "html", "--output", str(out))
    return out


def records(db: Path) -> list[InventoryRecord]:
    lines = run("inventory", "--db", str(db), "--format", "jsonl")[0].splitlines()
    return [InventoryRecord.model_validate_json(line) for line in lines]


def expected_cards(report: Report) -> dict[str, tuple[str, str]]:
    """Headline field -> (data-value, shown text) that the page must carry for `report`."""
    totals = report.totals.model_dump(mode="json")
    return {name: (json.dumps(totals[name]), fmt(totals[name])) for name, _, fmt in HEADLINE}


def cards(dom: str) -> dict[str, tuple[str, str]]:
    return {m[1]: (html.unescape(m[2]), html.unescape(m[3])) for m in CARD.finditer(dom)}


def test_report_format_none_prints_nothing_and_still_fails_on_findings(
    scanned: tuple[Path, str, Report, str], tmp_path: Path
) -> None:
    db, config, _, _ = scanned
    stdout, _ = run("report", "--db", str(db), "--config", config, "--format", "none", "--fail-on", "high",
                    "--output-dir", str(tmp_path / "out"), expect=1)
    assert stdout == ""
    assert any((tmp_path / "out").iterdir())


def test_config_buckets_that_match_nothing_scanned_are_named(
    scanned: tuple[Path, str, Report, str], tmp_path: Path
) -> None:
    db, config, _, scan_stderr = scanned
    assert "matches no scanned" not in scan_stderr  # every bucket of the sample config is in the estate
    text = Path(config).read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("buckets:\n", "buckets:\n  hk-photo-hot: {region: ap-east-1}\n"
                                 "  '*/hk-photos-hot/events/*': {region: ap-east-1}\n"
                                 "  'file://*/[!h]*/*': {region: ap-east-1}\n", 1))
    _, stderr = run("report", "--db", str(db), "--config", str(typo), "--format", "none")
    assert [line.split("`")[1] for line in stderr.splitlines() if "matches no scanned" in line] == \
        ["buckets: hk-photo-hot"]


def test_scan_closes_with_a_summary_on_stderr(scanned: tuple[Path, str, Report, str]) -> None:
    _, _, report, stderr = scanned
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("tierscan: 21 objects") and f"{report.totals.redundant_objects} redundant" in last


@pytest.mark.parametrize(
    ("table", "first_column"), [("buckets", "uri"), ("groups", "group"), ("findings", "policy")]
)
def test_csv_tables(scanned: tuple[Path, str, Report, str], table: str, first_column: str) -> None:
    """A row per bucket, per group member, per finding: as many as the JSON report has."""
    db, config, report, _ = scanned
    text = run("report", "--db", str(db), "--config", config, "--format", "csv", "--csv-table", table)[0]
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert next(iter(parsed[0])) == first_column
    expected = {
        "buckets": len(report.buckets),
        "groups": sum(len(g.members) for g in report.groups),
        "findings": len(report.findings),
    }
    assert len(parsed) == expected[table]


def test_html_is_one_self_contained_file_with_the_json_totals(
    scanned: tuple[Path, str, Report, str], page: Path
) -> None:
    _, _, report, _ = scanned
    assert report.totals.one_time_cost_usd > 0 and report.totals.monthly_savings_usd > 0
    text = page.read_text(encoding="utf-8")
    assert cards(text) == expected_cards(report)
    # Nothing is fetched from elsewhere: no external scripts, styles, images or fonts; the pictures the
    # page's script shows come only from the thumbnails folder beside the page.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|url\(|@import", text)
    sources = re.findall(r'"src":"([^"]*)"', text)
    assert sources and all(re.fullmatch(r"report_files/[0-9a-f]{32}\.webp", src) for src in sources)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text.split("<h2>Prices</h2>")[0])
    assert text.count("<svg") == 5  # tier, region, duplicate share, waterfall, exposure
    for chart in (
        "Bytes by tier",
        "Bytes by region",
        "Duplicate share per bucket",
        "Savings waterfall",
        "Personal data exposure by jurisdiction",
    ):
        assert f'aria-label="{chart}"' in text


def test_html_rounds_gps_to_about_a_kilometre(scanned: tuple[Path, str, Report, str], page: Path) -> None:
    db = scanned[0]
    text = page.read_text(encoding="utf-8")
    gps = [r.exif.gps for r in records(db) if r.exif and r.exif.gps]
    assert gps
    for position in gps:
        assert f"{position.lat:.2f}" in text and f"{position.lon:.2f}" in text
        assert f"{position.lat:.4f}" not in text and f"{position.lon:.4f}" not in text


def test_html_places_say_where_each_photo_was_taken_beside_where_it_is_stored(page: Path) -> None:
    """The sample's GoPro photo was taken in New York; one copy is stored in Beijing, one in Hong Kong."""
    text = page.read_text(encoding="utf-8")
    table = text[text.index('<table class="sortable" id="places">'):]
    table = table[:table.index("</table>")]
    head = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert head == ["Taken in", "Near", "Stored in", "Latitude", "Longitude", "Objects"]
    rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    new_york = sorted(row[2] for row in rows if row[3:5] == ["40.66", "-73.99"])
    assert new_york == ["CN", "HK"]
    assert {row[0] for row in rows if row[3:5] == ["40.66", "-73.99"]} == {"US"}
    assert {row[0] for row in rows} == {"US", "IT"} and all(row[1] for row in rows)
    assert "GeoNames (CC BY 4.0)" in text and "OpenStreetMap contributors" in text


def test_parquet_round_trip_in_batches(scanned: tuple[Path, str, Report, str], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from tierscan.scanner.report.inventory_parquet import write_parquet

    db = scanned[0]
    expected = records(db)
    path = tmp_path / "inv.parquet"
    assert write_parquet(iter(expected), path, batch_rows=5) == len(expected)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-len(expected) // 5)
    rows = {row["uri"]: row for row in pq.read_table(path).to_pylist()}
    assert len(rows) == len(expected)
    for record in expected:
        row = rows[record.uri]
        assert (row["size"], row["tier"], row["sha256"], row["status"]) == (
            record.size,
            record.tier.value,
            record.sha256,
            record.status,
        )
        assert row["modified"] == record.modified
        assert row["personal_data"] == record.personal_data
        gps = record.exif.gps if record.exif else None
        assert (row["gps_lat"], row["gps_lon"]) == ((gps.lat, gps.lon) if gps else (None, None))  # exact
        assert row["serials"] == (record.exif.serials if record.exif else [])
        assert (row["taken_in"], row["taken_near"]) == (record.taken_in, record.taken_near)
    cli_out = tmp_path / "cli.parquet"
    run("inventory", "--db", str(db), "--format", "parquet", "--output", str(cli_out))
    assert pq.read_table(cli_out).num_rows == len(expected)
    _, err = run("inventory", "--db", str(db), "--format", "parquet", expect=2)
    assert "--output" in err


def _ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(
    scanned: tuple[Path, str, Report, str], page: Path, tmp_path: Path
) -> None:
    """The page loads offline without a script error, and the rendered DOM shows the JSON's totals.
    Debian's chromium is installed on first use, as the emulator fixtures install Azurite; never skipped."""
    _ensure_chromium()
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body and 'data-ok="1"' in body[1] and "data-error" not in body[1], (body, done.stderr[-2000:])
    assert "Uncaught" not in done.stderr
    assert cards(dom) == expected_cards(scanned[2])


def test_parquet_without_pyarrow_names_the_extra(
    scanned: tuple[Path, str, Report, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.delitem(sys.modules, "tierscan.scanner.report.inventory_parquet", raising=False)
    _, err = run(
        "inventory", "--db", str(scanned[0]), "--format", "parquet", "-o", str(tmp_path / "x"), expect=2
    )
    assert "tierscan[parquet]" in err

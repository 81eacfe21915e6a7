"""The whole pipeline on the sample estate in `examples/`, through the CLI: groups, EXIF against exiftool's
ground truth, policy findings, savings arithmetic, skipped objects, incremental rescans and exit codes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.models import InventoryRecord, Report
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.scan.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).parent / "data" / "exif" / "MANIFEST.csv"
DAY = 86400

# Sample file -> the exiftool ground-truth row it is a byte-for-byte copy of.
GROUND_TRUTH = {
    "hk-photos-hot/events/harbour-walk-001.jpg": "exifpy__DSCN0010.jpg",
    "hk-photos-hot/events/harbour-walk-002.jpg": "exifpy__DSCN0012.jpg",
    "hk-photos-hot/events/action-cam.jpg": "exiftool__GoPro.jpg",
    "hk-photos-hot/events/iphone.heic": "exifpy__iphone_13_pro_max.heic",
    "hk-design-cool/canon-sample.jpg": "exiftool__Canon.jpg",
    "hk-design-cool/chelsea.png": "skimage__chelsea.png",
    "hk-design-cool/flower.webp": "pillow__flower.webp",
    "hk-backup-archive/2023/panasonic.jpg": "exifpy__Panasonic_DMC-FZ30.jpg",
    "hk-backup-archive/2023/scan.tiff": "exifpy__Tless0.tiff",
    "cn-marketing-cold/campaign/stereo.mpo": "pillow__sugarshack.mpo",
    "cn-marketing-cold/campaign/action-cam.jpg": "exiftool__GoPro.jpg",
}


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample estate with known ages: most files 400 days old, two fresh cold copies."""
    root = tmp_path_factory.mktemp("sample")
    shutil.copytree(REPO / "examples" / "estate", root / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", root / "tierscan.yaml")
    now = time.time()
    for path in (root / "estate").rglob("*"):
        if path.is_file():
            os.utime(path, (now - 400 * DAY, now - 400 * DAY))
    for rel in ("cn-marketing-cold/campaign/hero-shot.jpg", "cn-marketing-cold/campaign/action-cam.jpg"):
        os.utime(root / "estate" / rel, (now - 10 * DAY, now - 10 * DAY))
    return root


@pytest.fixture(scope="module")
def scanned(estate: Path) -> tuple[Report, dict[str, InventoryRecord], Path]:
    db = estate / "t.db"
    out = run("scan", "--config", str(estate / "tierscan.yaml"), "--db", str(db), "--format", "json")
    report = Report.model_validate_json(out)
    inventory = run("inventory", "--db", str(db), "--format", "jsonl")
    records = [InventoryRecord.model_validate_json(line) for line in inventory.splitlines()]
    return report, {rel(r.uri, estate): r for r in records}, db


def rel(uri: str, estate: Path) -> str:
    return uri.split("/estate/", 1)[1]


def members(report: Report, kind: str, estate: Path) -> list[set[str]]:
    return sorted(({rel(m.uri, estate) for m in g.members} for g in report.groups if g.kind == kind), key=sorted)


def test_exact_groups(scanned, estate):
    report, _, _ = scanned
    assert members(report, "exact", estate) == sorted(
        [
            {"cn-marketing-cold/campaign/action-cam.jpg", "hk-photos-hot/events/action-cam.jpg"},
            {"cn-marketing-cold/campaign/hero-shot.jpg", "hk-backup-archive/2023/harbour-walk-001.jpg",
             "hk-photos-hot/events/harbour-walk-001.jpg"},
            {"hk-backup-archive/2023/harbour-walk-002.jpg", "hk-photos-hot/events/harbour-walk-002.jpg"},
        ],
        key=sorted,
    )
    # The configured master location wins over the (equally old) other copies.
    assert {rel(g.master, estate) for g in report.groups if g.kind == "exact"} == {
        "hk-photos-hot/events/action-cam.jpg", "hk-photos-hot/events/harbour-walk-001.jpg",
        "hk-photos-hot/events/harbour-walk-002.jpg"}
    harbour = next(g for g in report.groups if len(g.members) == 3)
    assert harbour.spans_tiers and harbour.spans_jurisdictions and harbour.has_personal_data


def test_the_scans_report_is_the_one_its_catalog_gives(scanned, estate):
    """A scan builds its report from what it has just evaluated instead of reading it back: the same
    report, group for group and finding for finding, as `tierscan report` builds from the catalog."""
    report, _, db = scanned
    again = Report.model_validate_json(run("report", "--config", str(estate / "tierscan.yaml"), "--db", str(db),
                                           "--format", "json"))
    assert report.groups and report.findings
    assert again.model_dump(exclude={"generated_at"}) == report.model_dump(exclude={"generated_at"})


def test_sha256_wherever_sizes_collide(scanned):
    # Objects read whole get a SHA-256 whatever their size (it costs no read); ranged reads get none.
    _, records, _ = scanned
    sizes: dict[int, int] = {}
    for r in records.values():
        sizes[r.size] = sizes.get(r.size, 0) + 1
    colliding = [r for r in records.values() if r.size > 0 and r.status == "fingerprinted" and sizes[r.size] > 1]
    assert colliding and all(r.sha256 is not None for r in colliding)


def test_near_groups(scanned, estate):
    report, _, _ = scanned
    near = members(report, "near", estate)
    assert {"hk-photos-hot/events/ixus-original.jpg", "hk-design-cool/ixus-web.jpg",
            "cn-marketing-cold/campaign/ixus-thumb.jpg"} in near
    # The crop is near the harbour photo, represented by its exact group's master.
    assert {"hk-photos-hot/events/harbour-walk-001.jpg", "hk-design-cool/harbour-crop.jpg"} in near
    ixus = next(g for g in report.groups if g.kind == "near" and "ixus-original" in g.master)
    assert all(0 <= m.distance <= 10 for m in ixus.members)
    # No image joins two near groups, and no near group holds only copies of one exact group.
    seen = [m.uri for g in report.groups if g.kind == "near" for m in g.members]
    assert len(seen) == len(set(seen))


@pytest.mark.slow
def test_without_signatures_near_groups_come_from_the_global_hashes_and_a_later_scan_adds_them(tmp_path):
    root = tmp_path / "estate"
    shutil.copytree(REPO / "examples" / "estate", root)
    db, config = str(tmp_path / "t.db"), str(REPO / "examples" / "tierscan.yaml")
    scan = ("scan", str(root), "--config", config, "--db", db, "--format", "json")
    first = Report.model_validate_json(run(*scan, "--no-signatures"))
    # The resized copies are still found by pHash and dHash.
    assert {"hk-photos-hot/events/ixus-original.jpg", "hk-design-cool/ixus-web.jpg",
            "cn-marketing-cold/campaign/ixus-thumb.jpg"} in members(first, "near", tmp_path)
    assert run("inventory", "--db", db, "--format", "jsonl").count('"phash":"') >= 10
    with Catalog(Path(db)) as catalog:
        assert catalog.signatures() == {}
    again = Report.model_validate_json(run(*scan, "--no-signatures"))
    assert again.scan.requests == 0
    # Signatures on again: the images are read once more for theirs.
    full = Report.model_validate_json(run(*scan))
    assert full.scan.requests > 0
    with Catalog(Path(db)) as catalog:
        assert len(catalog.signatures()) >= 10


def test_bad_input_is_skipped_with_a_reason(scanned, estate):
    report, _, _ = scanned
    reasons = {rel(s.uri, estate): s.reason for s in report.skipped}
    assert reasons["hk-photos-hot/events/empty.jpg"] == "zero-byte object"
    assert reasons["cn-marketing-cold/campaign/notes.txt"] == "not an image"
    assert reasons["hk-photos-hot/events/upload-interrupted.jpg"].startswith("corrupt image (JPEG)")
    assert len(reasons) == 3


def truth_rows() -> dict[str, dict[str, str]]:
    with MANIFEST.open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("sample", sorted(GROUND_TRUTH))
def test_exif_agrees_with_exiftool(scanned, sample):
    _, records, _ = scanned
    truth = truth_rows()[GROUND_TRUTH[sample]]
    exif = records[sample].exif
    assert exif is not None
    if truth["has_gps"] == "1":
        assert exif.gps is not None
        assert exif.gps.lat == pytest.approx(float(truth["gps_lat"]), abs=1e-6)
        assert exif.gps.lon == pytest.approx(float(truth["gps_lon"]), abs=1e-6)
    else:
        assert exif.gps is None
    expected_serials = {t.split("=", 1)[1] for t in truth["serial_tags"].split("|") if t}
    assert set(exif.serials) == expected_serials
    assert exif.datetime_original == (truth["datetime_original"] or truth["datetime_original_any"] or None)


def test_personal_data_findings(scanned, estate):
    report, _, _ = scanned
    by_policy: dict[str, list[set[str]]] = {}
    for f in report.findings:
        by_policy.setdefault(f.policy, []).append({rel(u, estate) for u in f.uris})
    flagged = set().union(*by_policy["images-with-gps-or-serials"])
    assert {"hk-photos-hot/events/harbour-walk-001.jpg", "hk-design-cool/canon-sample.jpg",
            "hk-backup-archive/2023/panasonic.jpg", "cn-marketing-cold/campaign/action-cam.jpg"} <= flagged
    assert "hk-design-cool/chelsea.png" not in flagged  # no GPS, no serial
    across = set().union(*by_policy["personal-data-across-boundary"])  # Hong Kong and Mainland copies
    assert "cn-marketing-cold/campaign/hero-shot.jpg" in across
    assert "hk-backup-archive/2023/harbour-walk-002.jpg" not in across  # both copies in Hong Kong
    spanning = set().union(*by_policy["duplicates-spanning-tiers"])
    # No recommendation to remove copies ever names a master.
    masters = {rel(g.master, estate) for g in report.groups}
    for f in report.findings:
        if f.action in ("delete-redundant", "transition", "relocate"):
            assert not masters & {rel(u, estate) for u in f.uris}
    assert "hk-backup-archive/2023/harbour-walk-002.jpg" in spanning


def test_savings_arithmetic(scanned, estate):
    report, records, _ = scanned
    prices = PriceTable.builtin()
    settings = {"hk-backup-archive": ("s3", "DEEP_ARCHIVE", "ap-east-1"),
                "cn-marketing-cold": ("s3", "GLACIER_IR", "cn-north-1")}
    now = report.generated_at
    expected_monthly = expected_once = 0.0
    redundant = ["cn-marketing-cold/campaign/action-cam.jpg", "cn-marketing-cold/campaign/hero-shot.jpg",
                 "hk-backup-archive/2023/harbour-walk-001.jpg", "hk-backup-archive/2023/harbour-walk-002.jpg"]
    for sample in redundant:
        record = records[sample]
        price = prices.price_for(*settings[record.bucket])
        monthly = record.size / 2**30 * price.storage_gb_month
        age = (now - record.modified).total_seconds() / DAY
        expected_monthly += monthly
        expected_once += max(0.0, price.min_days - age) / 30 * monthly
    assert price.storage_gb_month > 0
    t = report.totals
    assert t.redundant_objects == 4
    assert t.redundant_bytes == sum(records[s].size for s in redundant)
    assert t.monthly_savings_usd == pytest.approx(expected_monthly, rel=1e-5)  # 6 significant digits
    assert t.one_time_cost_usd == pytest.approx(expected_once, rel=1e-4)
    assert t.one_time_cost_usd > 0  # the two 10-day-old Glacier IR copies are inside their 90 days
    by_bucket = {b.name: b for b in report.buckets}
    assert by_bucket["hk-photos-hot"].monthly_savings_usd == 0  # masters only
    assert by_bucket["cn-marketing-cold"].redundant_objects == 2
    assert sum(b.monthly_savings_usd for b in report.buckets) == pytest.approx(t.monthly_savings_usd, rel=1e-5)


def test_rescan_reads_nothing_unchanged_and_only_what_changed(scanned, estate):
    _, _, db = scanned
    config = str(estate / "tierscan.yaml")
    again = Report.model_validate_json(run("scan", "--config", config, "--db", str(db), "--format", "json"))
    assert again.scan.requests == 0 and again.scan.bytes_read == 0
    assert again.scan.unchanged == again.scan.listed == 21
    changed = estate / "estate" / "hk-design-cool" / "flower.webp"
    shutil.copy(REPO / "examples" / "estate" / "hk-design-cool" / "chelsea.png", changed)
    (estate / "estate" / "hk-backup-archive" / "2023" / "scan.tiff").unlink()
    third = Report.model_validate_json(run("scan", "--config", config, "--db", str(db), "--format", "json"))
    # The changed file only: the same-size file it now collides with has a SHA-256 from its first whole read.
    assert third.scan.requests == 1
    assert third.scan.gone == 1
    assert third.totals.objects == 20
    assert any({m.uri.rsplit("/", 1)[1] for m in g.members} == {"chelsea.png", "flower.webp"}
               for g in third.groups if g.kind == "exact")


def test_report_formats_and_fail_on(scanned, estate):
    _, _, db = scanned
    as_json = json.loads(run("report", "--db", str(db), "--format", "json"))
    assert as_json["schema_version"] == 1
    assert set(as_json["totals"]) >= {"objects", "bytes", "duplicate_groups", "redundant_objects",
                                      "redundant_bytes", "monthly_savings_usd", "one_time_cost_usd",
                                      "scan_cost_usd"}
    table = run("report", "--db", str(db))
    assert "Buckets by monthly savings" in table and "hk-photos-hot" in table
    run("report", "--db", str(db), "--format", "json", "--fail-on", "high", expect=1)
    run("report", "--db", str(db), "--format", "json", "--fail-on", "critical")
    csv_text = run("inventory", "--db", str(db), "--format", "csv")
    assert csv_text.splitlines()[0].startswith("uri,")


@pytest.mark.slow
def test_the_console_script_and_its_exit_codes(estate, tmp_path):
    """Run as users do: a separate process, with a bad config (exit 2) and a missing catalog (exit 2)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("buckets:\n  hk: {tier: lukewarm}\n")
    done = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", str(estate / "estate"),
                           "--config", str(bad), "--db", str(tmp_path / "x.db")], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"{bad}:2: buckets.hk.tier" in done.stderr
    missing = subprocess.run([sys.executable, "-m", "tierscan.scanner", "report", "--db", str(tmp_path / "none.db")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no catalog here" in missing.stderr
    helped = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--config" in helped.stdout


@pytest.mark.slow
def test_not_a_duplicate_survives_rescans(tmp_path):
    root = tmp_path / "estate"
    shutil.copytree(REPO / "examples" / "estate" / "hk-photos-hot", root / "hot")
    shutil.copytree(REPO / "examples" / "estate" / "hk-design-cool", root / "cool")
    db = str(tmp_path / "n.db")

    def near_sets() -> list[set[str]]:
        report = Report.model_validate_json(run("scan", str(root), "--db", db, "--format", "json"))
        return [{m.uri.rsplit("/", 1)[1] for m in g.members} for g in report.groups if g.kind == "near"]

    assert {"ixus-original.jpg", "ixus-web.jpg"} in near_sets()
    run("near", "ignore", str(root / "hot" / "events" / "ixus-original.jpg"), str(root / "cool" / "ixus-web.jpg"),
        "--db", db)
    assert "ixus-web.jpg" in run("near", "ignored", "--db", db)
    assert not any({"ixus-original.jpg", "ixus-web.jpg"} <= s for s in near_sets())
    run("near", "ignore", str(root / "nope.jpg"), str(root / "cool" / "ixus-web.jpg"), "--db", db, expect=2)


def test_files_that_are_no_image_form_no_group_whatever_their_copies(tmp_path):
    """Two identical text files are not an exact duplicate group of images; the photo's copies still are."""
    estate = tmp_path / "estate"
    photo = (REPO / "examples" / "estate" / "hk-photos-hot" / "events" / "action-cam.jpg").read_bytes()
    for bucket in ("a", "b"):
        (estate / bucket).mkdir(parents=True)
        (estate / bucket / "notes.txt").write_text("meeting notes, not a picture\n")
        (estate / bucket / "photo.jpg").write_bytes(photo)
    report = Report.model_validate_json(run("scan", str(estate), "--db", str(tmp_path / "t.db"), "--format", "json"))
    assert [sorted(rel(m.uri, estate) for m in g.members) for g in report.groups] == [["a/photo.jpg", "b/photo.jpg"]]
    assert report.totals.redundant_objects == 1
    assert sorted(rel(s.uri, estate) for s in report.skipped) == ["a/notes.txt", "b/notes.txt"]

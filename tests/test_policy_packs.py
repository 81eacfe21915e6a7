"""Every built-in policy on real scans of the sample estate: a scan where it must fire and a scan where it
must not, each run through the CLI like a user's. Also the findings' money against the price table, the
engine's master protection on real groups, and the dry-run output folders.

Three scans, shared by all tests (about 2 s each):
- `sample`: the estate as shipped (files 400 days old, two fresh Mainland copies), with objects over
  2 MB left unread so that one object is never scanned, and a user policy file that uses `transition`.
- `one_place`: every bucket configured as S3 STANDARD in Hong Kong, and the bad files removed: the same
  duplicates, now in one tier, one region and one jurisdiction.
- `scrubbed`: only images without GPS, serials or owner names, one of them copied twice, and the archive
  bucket behind a connector that needs restores (as S3 Deep Archive does), so its objects are unreadable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tierscan.connectors.local import LocalConnector
from tierscan.policies import describe_packs, load_policies
from tierscan.scanner.cli import cli
from tierscan.scanner.core.models import Finding, InventoryRecord, Report
from tierscan.scanner.pricing.savings import GIB, MONTH_DAYS
from tierscan.scanner.pricing.table import PriceTable

REPO = Path(__file__).resolve().parents[1]
DAY = 86400
BUILTIN = [p.name for p in load_policies(packs=["builtin"])]

# A user policy in the `sample` scan's config, so that `transition` is priced on a real scan.
EXTRA = {"policies": [{"name": "cold-to-archive", "resource": "object",
                       "filters": [{"type": "tier", "tiers": ["cold"]}],
                       "actions": [{"type": "transition", "to": "archive"}]}]}


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


def make_estate(root: Path, drop: tuple[str, ...] = (), copies: tuple[tuple[str, str], ...] = ()) -> Path:
    """A copy of the sample estate under `root`: files 400 days old, the two Mainland copies 10 days old."""
    estate = root / "estate"
    shutil.copytree(REPO / "examples" / "estate", estate)
    for rel in drop:
        (estate / rel).unlink()
    for source, target in copies:
        (estate / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / "estate" / source, estate / target)
    now = time.time()
    for path in estate.rglob("*"):
        if path.is_file():
            os.utime(path, (now - 400 * DAY, now - 400 * DAY))
    for rel in ("cn-marketing-cold/campaign/hero-shot.jpg", "cn-marketing-cold/campaign/action-cam.jpg"):
        if (estate / rel).exists():
            os.utime(estate / rel, (now - 10 * DAY, now - 10 * DAY))
    return estate


def write_config(root: Path, **changes: Any) -> Path:
    config = yaml.safe_load((REPO / "examples" / "tierscan.yaml").read_text())
    config.update(changes)
    path = root / "tierscan.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Scan:
    """One real scan: its report, inventory and dry-run folder, with helpers to read findings by policy."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.db = root / "t.db"
        self.out = root / "out"
        self.report = Report.model_validate_json(
            run("scan", "--config", str(config), "--db", str(self.db), "--format", "json",
                "--output-dir", str(self.out)))
        lines = run("inventory", "--db", str(self.db)).splitlines()
        self.records = {self.rel(r.uri): r for r in map(InventoryRecord.model_validate_json, lines)}

    @staticmethod
    def rel(uri: str) -> str:
        return uri.split("/estate/", 1)[1]

    def findings(self, policy: str, action: str | None = None) -> list[Finding]:
        """The findings `policy` made: named by it, or by a more severe policy recommending the same."""
        return [f for f in self.report.findings if policy in (f.policy, *f.also) and action in (None, f.action)]

    def uris(self, policy: str, action: str | None = None) -> list[set[str]]:
        return [{self.rel(u) for u in f.uris} for f in self.findings(policy, action)]

    def flagged(self, policy: str, action: str | None = None) -> set[str]:
        return set().union(*self.uris(policy, action))

    def masters(self) -> set[str]:
        return {self.rel(g.master) for g in self.report.groups}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    root = tmp_path_factory.mktemp("sample")
    make_estate(root)
    (root / "extra.yaml").write_text(yaml.safe_dump(EXTRA))
    config = write_config(root, scan={"max_object_bytes": 2_000_000},
                          policies={"packs": ["builtin"], "files": ["extra.yaml"]})
    return Scan(root, config)


@pytest.fixture(scope="module")
def one_place(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    root = tmp_path_factory.mktemp("one-place")
    make_estate(root, drop=("hk-photos-hot/events/empty.jpg", "hk-photos-hot/events/upload-interrupted.jpg"))
    hk_hot = {"price_as": "s3", "storage_class": "STANDARD", "region": "ap-east-1"}
    buckets = {name: hk_hot for name in ("hk-photos-hot", "hk-backup-archive", "cn-marketing-cold", "hk-design-cool")}
    return Scan(root, write_config(root, buckets=buckets))


@pytest.fixture(scope="module")
def abroad(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """The sample with the Mainland bucket in Singapore instead: copies across jurisdictions, none across
    the Hong Kong / Mainland boundary."""
    root = tmp_path_factory.mktemp("abroad")
    make_estate(root)
    buckets = yaml.safe_load((REPO / "examples" / "tierscan.yaml").read_text())["buckets"]
    buckets["cn-marketing-cold"]["region"] = "ap-southeast-1"
    return Scan(root, write_config(root, buckets=buckets))


def with_gps(path: Path, lat: float, lon: float) -> None:
    """Rewrite a JPEG's GPS position (north and east only)."""
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    def dms(degrees: float) -> tuple[IFDRational, IFDRational, IFDRational]:
        minutes = (degrees - int(degrees)) * 60
        return IFDRational(int(degrees), 1), IFDRational(int(minutes), 1), IFDRational(
            round((minutes - int(minutes)) * 60_000), 1000)

    with Image.open(path) as image:
        exif = image.getexif()
        exif.get_ifd(0x8825).update({1: "N", 2: dms(lat), 3: "E", 4: dms(lon)})
        image.load()
        image.save(path, exif=exif)


@pytest.fixture(scope="module")
def taken_across(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Photos taken a few hundred metres from the Shenzhen River, each stored on the other side of it:
    one taken in Shenzhen (Luohu) kept in Hong Kong, one taken in Lo Wu kept in Beijing; and one taken in
    Lo Wu kept in Hong Kong."""
    root = tmp_path_factory.mktemp("taken-across")
    photo = "hk-photos-hot/events/harbour-walk-002.jpg"
    estate = make_estate(root, copies=((photo, "hk-photos-hot/events/luohu.jpg"),
                                       (photo, "cn-marketing-cold/campaign/lo-wu.jpg"),
                                       (photo, "hk-design-cool/lo-wu.jpg")))
    with_gps(estate / "hk-photos-hot/events/luohu.jpg", 22.5330, 114.1130)
    with_gps(estate / "cn-marketing-cold/campaign/lo-wu.jpg", 22.5270, 114.1130)
    with_gps(estate / "hk-design-cool/lo-wu.jpg", 22.5272, 114.1128)
    return Scan(root, write_config(root))


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """The sample with one photo whose IPTC and XMP name its photographer and caption writer (one of
    exiftool's test files)."""
    root = tmp_path_factory.mktemp("named")
    estate = make_estate(root)
    shutil.copy(REPO / "tests" / "data" / "exif-makers" / "exiftool__IPTC.jpg",
                estate / "hk-photos-hot" / "events" / "byline.jpg")
    return Scan(root, write_config(root))


@pytest.fixture(scope="module")
def scrubbed(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    root = tmp_path_factory.mktemp("scrubbed")
    keep = {"hk-design-cool/chelsea.png", "hk-design-cool/harbour-crop.jpg", "hk-backup-archive/2023/scan.tiff",
            "hk-design-cool/ixus-web.jpg"}  # no GPS, serial or owner; chelsea.png has a capture time
    every = {str(p.relative_to(REPO / "examples" / "estate"))
             for p in (REPO / "examples" / "estate").rglob("*") if p.is_file()}
    make_estate(root, drop=tuple(sorted(every - keep)),
                copies=(("hk-backup-archive/2023/scan.tiff", "hk-photos-hot/scans/scan.tiff"),
                        ("hk-backup-archive/2023/scan.tiff", "hk-design-cool/scans/scan.tiff")))
    restoring = dataclasses.replace(LocalConnector.capabilities, restores=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalConnector, "capabilities", restoring)
        return Scan(root, write_config(root))


# ------------------------------------------------------------------------------ positive and negative

# policy -> (the scan where it must fire, what it must flag; the scan where it must not fire)
CASES: dict[str, tuple[str, set[str], str]] = {
    "images-with-gps-or-serials": ("sample", {
        "hk-photos-hot/events/harbour-walk-001.jpg", "cn-marketing-cold/campaign/action-cam.jpg",
        "hk-design-cool/canon-sample.jpg", "hk-backup-archive/2023/panasonic.jpg"}, "scrubbed"),
    "images-naming-people": ("named", {"hk-photos-hot/events/byline.jpg"}, "sample"),
    "images-with-owner-name": ("sample", {
        "hk-design-cool/canon-sample.jpg", "hk-design-cool/flower.webp", "hk-photos-hot/events/ixus-original.jpg"},
        "scrubbed"),
    "personal-data-duplicated": ("sample", {
        "cn-marketing-cold/campaign/action-cam.jpg", "cn-marketing-cold/campaign/hero-shot.jpg",
        "hk-backup-archive/2023/harbour-walk-001.jpg", "hk-backup-archive/2023/harbour-walk-002.jpg"}, "scrubbed"),
    # Hong Kong and the Mainland are personal-data-across-boundary's: one finding a group.
    "personal-data-across-jurisdictions": ("abroad", {
        "cn-marketing-cold/campaign/hero-shot.jpg", "cn-marketing-cold/campaign/action-cam.jpg"}, "sample"),
    "personal-data-across-boundary": ("sample", {
        "cn-marketing-cold/campaign/hero-shot.jpg", "cn-marketing-cold/campaign/action-cam.jpg"}, "one_place"),
    "personal-data-outside-gba": ("sample", {
        "cn-marketing-cold/campaign/hero-shot.jpg", "cn-marketing-cold/campaign/action-cam.jpg",
        "cn-marketing-cold/campaign/stereo.mpo"}, "one_place"),
    "duplicates-spanning-tiers": ("sample", {
        "cn-marketing-cold/campaign/hero-shot.jpg", "hk-backup-archive/2023/harbour-walk-002.jpg"}, "one_place"),
    "duplicates-spanning-regions": ("sample", {
        "hk-photos-hot/events/action-cam.jpg", "cn-marketing-cold/campaign/action-cam.jpg"}, "one_place"),
    "redundant-hot-copy": ("sample", {"cn-marketing-cold/campaign/hero-shot.jpg"}, "one_place"),
    "near-duplicate-review": ("sample", {
        "hk-photos-hot/events/ixus-original.jpg", "hk-design-cool/ixus-web.jpg", "hk-design-cool/harbour-crop.jpg"},
        "scrubbed"),
    "unreadable-objects": ("scrubbed", {"hk-backup-archive/2023/scan.tiff"}, "sample"),
    "corrupt-images": ("sample", {
        "hk-photos-hot/events/upload-interrupted.jpg", "hk-photos-hot/events/empty.jpg"}, "one_place"),
    "never-scanned-objects": ("sample", {"hk-photos-hot/events/iphone.heic"}, "one_place"),
    "mainland-photos-stored-in-hk": ("taken_across", {"hk-photos-hot/events/luohu.jpg"}, "sample"),
    "hk-photos-stored-in-mainland": ("taken_across", {"cn-marketing-cold/campaign/lo-wu.jpg"}, "sample"),
}


def test_every_builtin_policy_has_a_case():
    assert sorted(CASES) == sorted(BUILTIN)


@pytest.mark.parametrize("policy", sorted(CASES))
def test_builtin_policy_fires_on_a_real_scan(policy, request):
    where, expected, _ = CASES[policy]
    scan: Scan = request.getfixturevalue(where)
    assert scan.findings(policy), f"{policy} found nothing in the {where} scan"
    assert expected <= scan.flagged(policy)
    assert all(f.reason for f in scan.findings(policy))


@pytest.mark.parametrize("policy", sorted(CASES))
def test_builtin_policy_is_silent_on_a_real_scan(policy, request):
    _, _, where = CASES[policy]
    scan: Scan = request.getfixturevalue(where)
    assert scan.findings(policy) == []


def test_negative_scans_still_hold_what_the_policies_look_at(one_place, scrubbed):
    """The negatives are not empty by accident: the duplicates, images and near copies are still there."""
    assert len([g for g in one_place.report.groups if g.kind == "exact"]) == 3
    assert not any(g.spans_tiers or g.spans_regions or g.spans_jurisdictions for g in one_place.report.groups)
    assert any(r.personal_data for r in one_place.records.values())
    [exact] = [g for g in scrubbed.report.groups if g.kind == "exact"]
    assert {scrubbed.rel(m.uri) for m in exact.members} == {"hk-design-cool/scans/scan.tiff",
                                                             "hk-photos-hot/scans/scan.tiff"}
    assert not exact.has_personal_data
    assert scrubbed.records["hk-design-cool/chelsea.png"].personal_data == ["timestamp"]
    assert {scrubbed.rel(f.uris[0]) for f in scrubbed.findings("unreadable-objects")} == {
        "hk-backup-archive/2023/scan.tiff"}
    assert scrubbed.records["hk-backup-archive/2023/scan.tiff"].status == "unreadable"
    assert one_place.records["hk-photos-hot/events/iphone.heic"].status == "fingerprinted"


def test_precise_findings_of_the_sample(sample):
    # The harbour photo: master hot in Hong Kong, copies cold in Beijing and archived in Hong Kong.
    assert sample.uris("redundant-hot-copy") == [{"cn-marketing-cold/campaign/hero-shot.jpg"}]
    [boundary] = [f for f in sample.findings("personal-data-across-boundary", "relocate")
                  if "hero-shot" in f.uris[0]]
    assert boundary.severity.value == "high"
    assert boundary.reason.endswith("one-time cost excludes data transfer between regions (not in the price table)")
    assert sample.records["hk-photos-hot/events/iphone.heic"].reason == "larger than 2000000 bytes"
    assert "cn-marketing-cold/campaign/notes.txt" not in sample.flagged("corrupt-images")  # not an image: not corrupt


def test_where_photos_were_taken_against_where_they_are_stored(taken_across):
    records = taken_across.records
    assert [records[p].taken_in for p in ("hk-photos-hot/events/luohu.jpg", "cn-marketing-cold/campaign/lo-wu.jpg",
                                          "hk-design-cool/lo-wu.jpg")] == ["CN", "HK", "HK"]
    [mainland] = taken_across.findings("mainland-photos-stored-in-hk")
    assert mainland.reason.startswith("taken in CN (near ") and mainland.reason.endswith(", stored in HK")
    [hk] = taken_across.findings("hk-photos-stored-in-mainland")
    assert (hk.action, hk.severity.value) == ("relocate", "high")
    # The Lo Wu photo kept in Hong Kong crossed no boundary: neither policy names it.
    flagged = set().union(*map(taken_across.flagged, ("mainland-photos-stored-in-hk", "hk-photos-stored-in-mainland")))
    assert "hk-design-cool/lo-wu.jpg" not in flagged


def test_no_finding_recommends_removing_a_master(sample, one_place, scrubbed):
    for scan in (sample, one_place, scrubbed):
        masters = scan.masters()
        for f in scan.report.findings:
            if f.action in ("delete-redundant", "transition", "relocate") and f.group is not None:
                assert not masters & {scan.rel(u) for u in f.uris}, f


def test_policy_list_shows_the_packs_and_the_config_selects_them(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("policies: {packs: [hygiene, cost]}\n")
    out = run("policy", "list", "--config", str(config))
    assert all(name in out for name in ("Packs", "hk-pdpo", "cross-boundary", "cost", "hygiene"))
    rows = {row["name"]: row for row in describe_packs(["hygiene", "cost"])}
    assert sorted(rows) == ["cost", "cross-boundary", "hk-pdpo", "hygiene"]
    assert [n for n, row in sorted(rows.items()) if row["selected"]] == ["cost", "hygiene"]
    assert rows["hygiene"]["policies"] == ["unreadable-objects", "corrupt-images", "never-scanned-objects"]
    assert all(row["description"] for row in rows.values())
    assert all(row["selected"] for row in describe_packs(["builtin"]))
    assert {p.pack for p in load_policies(packs=["hygiene", "cost"])} == {"hygiene", "cost"}


# ------------------------------------------------------------------------------------------- money


def test_delete_findings_price_like_the_report(sample):
    """Each exact group spans tiers, so deleting its redundant copies is exactly the report's savings."""
    found = sample.findings("duplicates-spanning-tiers", "delete-redundant")
    totals = sample.report.totals
    assert sum(f.monthly_savings_usd for f in found) == pytest.approx(totals.monthly_savings_usd, rel=1e-5)
    assert sum(f.one_time_cost_usd for f in found) == pytest.approx(totals.one_time_cost_usd, rel=1e-4)
    assert totals.one_time_cost_usd > 0  # the fresh Glacier IR copies are inside their 90 days
    for f in sample.report.findings:
        if f.action in ("report", "strip-metadata"):
            assert f.monthly_savings_usd == f.one_time_cost_usd == 0


def test_transition_and_relocate_are_priced_from_the_table(sample):
    prices = PriceTable.builtin()
    cold = prices.price_for("s3", "GLACIER_IR", "cn-north-1")
    archive = prices.price_for("s3", "GLACIER", "cn-north-1")  # S3's first class of the archive tier
    assert cold.storage_gb_month > archive.storage_gb_month > 0

    record = sample.records["cn-marketing-cold/campaign/hero-shot.jpg"]
    age = (sample.report.generated_at - record.modified).total_seconds() / DAY
    gb = record.size / GIB
    early = max(0.0, cold.min_days - age) / MONTH_DAYS * gb * cold.storage_gb_month
    [transition] = [f for f in sample.findings("cold-to-archive") if "hero-shot" in f.uris[0]]
    assert transition.monthly_savings_usd == pytest.approx(gb * (cold.storage_gb_month - archive.storage_gb_month))
    assert transition.one_time_cost_usd == pytest.approx(early, rel=1e-3)
    [stereo] = [f for f in sample.findings("cold-to-archive") if "stereo" in f.uris[0]]
    assert stereo.one_time_cost_usd == 0  # 400 days old: past Glacier IR's 90-day minimum

    [relocate] = [f for f in sample.findings("personal-data-across-boundary", "relocate") if "hero-shot" in f.uris[0]]
    assert relocate.monthly_savings_usd == 0
    assert relocate.one_time_cost_usd == pytest.approx(
        early + gb * cold.retrieval_gb + cold.get_per_1000 / 1000, rel=1e-3)


# ------------------------------------------------------------------------------------ dry-run output


def _resources(out: Path, policy: str) -> list[dict[str, Any]]:
    return json.loads((out / policy / "resources.json").read_text())


def test_output_dir_has_a_folder_per_policy(sample, scrubbed):
    assert sorted(p.name for p in sample.out.iterdir() if p.is_dir()) == sorted([*BUILTIN, "cold-to-archive"])
    assert Report.model_validate_json((sample.out / "report.json").read_text()) == sample.report
    assert _resources(scrubbed.out, "redundant-hot-copy") == []  # no match is written, not left out

    objects = _resources(sample.out, "images-with-owner-name")
    by_uri = {Scan.rel(r["uri"]): r for r in objects}
    assert set(by_uri) == CASES["images-with-owner-name"][1]
    canon = by_uri["hk-design-cool/canon-sample.jpg"]
    assert canon["exif"]["owner"] and canon["gba"] is True  # the record the filters saw, exact values
    assert [f["action"] for f in canon["findings"]] == ["strip-metadata"]

    [group] = _resources(sample.out, "redundant-hot-copy")
    assert {Scan.rel(m["uri"]) for m in group["members"]} == {
        "hk-photos-hot/events/harbour-walk-001.jpg", "cn-marketing-cold/campaign/hero-shot.jpg",
        "hk-backup-archive/2023/harbour-walk-001.jpg"}
    assert all("sha256" in m and "distance" in m for m in group["members"])
    [finding] = group["findings"]
    assert finding["action"] == "delete-redundant" and finding["monthly_savings_usd"] > 0
    assert [Scan.rel(u) for u in finding["uris"]] == ["cn-marketing-cold/campaign/hero-shot.jpg"]

    meta = json.loads((sample.out / "redundant-hot-copy" / "metadata.json").read_text())
    assert meta["policy"]["pack"] == "cost" and meta["resources"] == 1
    assert meta["actions"]["delete-redundant"]["monthly_savings_usd"] == finding["monthly_savings_usd"]


def test_report_writes_the_same_output_dir(sample, tmp_path):
    out = tmp_path / "again"
    run("report", "--config", str(sample.config), "--db", str(sample.db), "--format", "json",
        "--output-dir", str(out))
    for policy in BUILTIN:
        assert _resources(out, policy) == _resources(sample.out, policy), policy
    assert json.loads((out / "report.json").read_text())["findings"] == json.loads(
        (sample.out / "report.json").read_text())["findings"]

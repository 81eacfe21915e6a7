"""Thumbnails (made by the fingerprint workers, kept in the catalog, switched off, merged), the near groups'
byte-identical copies in the JSON report, the terminal's near-group table, the HTML picture sections, and
the reviewer's decisions file read back by `near ignore --decisions` and `apply --decisions`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.decisions import MAX_DECISIONS_BYTES
from tierscan.scanner.core.models import InventoryRecord, ObjectRef, Tier
from tierscan.scanner.fingerprint.image import THUMB_SIDE, fingerprint_bytes, init_worker
from tierscan.scanner.report.html_groups import how_it_differs
from tierscan.scanner.scan.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "tests" / "data" / "exif" / "exifpy__DSCN0010.jpg"  # a real 640x480 camera photo
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(autouse=True, scope="module")
def worker_setup() -> None:
    init_worker()


def run(*args: str, expect: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout, result.stderr


def jpeg(img: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **{"quality": 90, **kw})
    return buf.getvalue()


def photo(w: int = 320, h: int = 240) -> Image.Image:
    with Image.open(PHOTO) as img:
        return img.convert("RGB").resize((w, h))


# ---- the worker's thumbnail ----------------------------------------------------------------------------

@pytest.mark.parametrize("faces", [False, True])  # with faces, squeezed from the detector's larger copy
def test_a_thumbnail_is_a_small_upright_colour_webp_and_leaves_the_hashes_as_they_were(faces: bool) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown turned 90 degrees clockwise
    data = jpeg(photo(640, 480).transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    plain = fingerprint_bytes(data, want_sha256=False, want_perceptual=True)
    made = fingerprint_bytes(data, want_sha256=False, want_perceptual=True, want_thumbnail=True, want_faces=faces)
    assert plain.thumb is None and made.thumb is not None
    assert (made.phash, made.dhash, made.near_sig) == (plain.phash, plain.dhash, plain.near_sig)
    assert len(made.thumb) < 12_000
    with Image.open(io.BytesIO(made.thumb)) as thumb:
        assert thumb.format == "WEBP" and thumb.mode == "RGB"
        assert thumb.size == (THUMB_SIDE, THUMB_SIDE * 3 // 4)  # upright: landscape, as displayed
        red, green, blue = thumb.convert("RGB").resize((1, 1)).getpixel((0, 0))
    with Image.open(PHOTO) as original:
        expected = original.convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert max(abs(a - b) for a, b in zip((red, green, blue), expected, strict=True)) < 24  # colours kept


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16"])
def test_thumbnails_of_other_formats_and_modes(mode: str) -> None:
    img = photo().convert(mode if mode != "I;16" else "L")
    if mode == "I;16":  # 16-bit grey, as scanners and microscopes write
        img = Image.fromarray(np.asarray(img).astype("<u2") * 256)
        assert img.mode == "I;16"
    buf = io.BytesIO()
    img.save(buf, "PNG")
    made = fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True, want_thumbnail=True)
    assert made.error is None and made.thumb is not None
    with Image.open(io.BytesIO(made.thumb)) as thumb:
        assert max(thumb.size) == THUMB_SIDE


def test_no_thumbnail_without_perceptual_hashes_or_for_an_icon() -> None:
    data = jpeg(photo())
    assert fingerprint_bytes(data, want_sha256=True, want_perceptual=False, want_thumbnail=True).thumb is None
    icon = fingerprint_bytes(jpeg(photo(16, 16)), want_sha256=False, want_perceptual=True, want_thumbnail=True)
    assert icon.thumb is None and icon.phash is None


# ---- the catalog's table -------------------------------------------------------------------------------

def _ref(uri: str, size: int, etag: str) -> ObjectRef:
    return ObjectRef(provider="local", bucket="b", key=uri.rsplit("/", 1)[1], uri=uri, size=size, etag=etag,
                     modified=datetime(2030, 1, 1, tzinfo=UTC), tier=Tier.hot, storage_class="STANDARD",
                     region="local", jurisdiction="HK")


def test_a_thumbnail_counts_while_its_object_keeps_its_bytes_and_is_pruned_after(tmp_path: Path) -> None:
    with Catalog(tmp_path / "c.db") as catalog:
        scan = catalog.begin_scan(["t"], datetime(2030, 1, 1, tzinfo=UTC))
        catalog.record_listing([_ref("file:///b/a.jpg", 10, "1"), _ref("file:///b/c.jpg", 10, "1")], "t", scan)
        catalog.record_thumbnails([("file:///b/a.jpg", b"A"), ("file:///nowhere.jpg", b"X")])
        assert catalog.thumbnail(["file:///b/a.jpg"]) == b"A"
        assert catalog.thumbnail(["file:///b/c.jpg", "file:///b/a.jpg"]) == b"A"  # a copy's picture
        assert catalog.thumbnail(["file:///nowhere.jpg"]) is None  # no object: nothing stored
        catalog.record_thumbnails([("file:///b/a.jpg", b"B")])  # read again: replaced
        assert catalog.thumbnail(["file:///b/a.jpg"]) == b"B"
        scan = catalog.begin_scan(["t"], datetime(2030, 1, 2, tzinfo=UTC))
        catalog.record_listing([_ref("file:///b/a.jpg", 11, "2"), _ref("file:///b/c.jpg", 10, "1")], "t", scan)
        assert catalog.thumbnail(["file:///b/a.jpg"]) is None  # changed: its old picture no longer counts
        assert catalog.prune_thumbnails() == 1
        catalog.record_thumbnails([("file:///b/c.jpg", b"C")])
        assert catalog.drop_thumbnails() == 1
        assert catalog.thumbnail(["file:///b/c.jpg"]) is None


# ---- scans, the switch, merge ----------------------------------------------------------------------------

@pytest.fixture
def estate(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(REPO / "examples" / "estate", tmp_path / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", tmp_path / "tierscan.yaml")
    return tmp_path / "estate", tmp_path / "tierscan.yaml"


def thumbnails(db: Path) -> dict[str, bytes]:
    with Catalog(db) as catalog:
        return {r[0]: bytes(r[1]) for r in catalog.db.execute("SELECT uri, data FROM thumbnails")}


def test_a_scan_keeps_thumbnails_and_the_switch_turns_them_off_and_deletes_them(estate: tuple[Path, Path]) -> None:
    _, config = estate
    db = config.parent / "t.db"
    run("scan", "--config", str(config), "--db", str(db), "--format", "none", "--workers", "1")
    made = thumbnails(db)
    with Catalog(db) as catalog:
        hashed = {r[0] for r in catalog.db.execute("SELECT uri FROM objects WHERE phash IS NOT NULL")}
    assert made and set(made) <= hashed
    assert all(data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) < 12_000 for data in made.values())
    run("scan", "--config", str(config), "--db", str(db), "--format", "none", "--no-thumbnails")
    assert thumbnails(db) == {}
    switched = config.parent / "off.yaml"
    switched.write_text(config.read_text() + "\nscan:\n  thumbnails: false\n")
    other = config.parent / "off.db"
    run("scan", "--config", str(switched), "--db", str(other), "--format", "none", "--workers", "1")
    assert thumbnails(other) == {}
    run("scan", "--config", str(config), "--db", str(config.parent / "np.db"), "--format", "none",
        "--no-perceptual")
    assert thumbnails(config.parent / "np.db") == {}


def test_a_rescan_replaces_the_thumbnail_of_a_changed_image_and_drops_that_of_a_gone_one(
        estate: tuple[Path, Path]) -> None:
    root, config = estate
    db = config.parent / "t.db"
    run("scan", "--config", str(config), "--db", str(db), "--format", "none", "--workers", "1")
    before = thumbnails(db)
    changed, gone = root / "hk-design-cool" / "ixus-web.jpg", root / "hk-design-cool" / "harbour-crop.jpg"
    assert {changed.resolve().as_uri(), gone.resolve().as_uri()} <= set(before)
    changed.write_bytes(jpeg(photo(300, 200)))
    gone.unlink()
    run("scan", "--config", str(config), "--db", str(db), "--format", "none", "--workers", "1")
    after = thumbnails(db)
    assert gone.resolve().as_uri() not in after
    assert after[changed.resolve().as_uri()] != before[changed.resolve().as_uri()]
    with Image.open(io.BytesIO(after[changed.resolve().as_uri()])) as thumb:
        assert thumb.size == (THUMB_SIDE, round(THUMB_SIDE * 200 / 300))
    assert {u: d for u, d in after.items() if u != changed.resolve().as_uri()} == \
        {u: d for u, d in before.items() if u not in (changed.resolve().as_uri(), gone.resolve().as_uri())}


def test_the_thumbnails_switch_is_validated_like_the_other_settings() -> None:
    assert Config.model_validate({"scan": {"thumbnails": False}}).scan.thumbnails is False
    assert Config.model_validate({}).scan.thumbnails is True
    with pytest.raises(ValueError, match="thumbnails"):
        Config.model_validate({"scan": {"thumbnails": "sometimes"}})


@pytest.mark.slow
def test_merged_shards_carry_the_thumbnails_one_process_makes(estate: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = estate
    cli_ = [sys.executable, "-m", "tierscan.scanner"]
    one = tmp_path / "one.db"
    subprocess.run([*cli_, "scan", "--config", str(config), "--db", str(one), "--format", "none"], check=True,
                   capture_output=True)
    for i in range(2):
        subprocess.run([*cli_, "scan", "--config", str(config), "--db", str(tmp_path / f"p{i}.db"), "--shard",
                        f"{i}/2", "--workers", "1"], check=True, capture_output=True)
    merged = tmp_path / "all.db"
    subprocess.run([*cli_, "merge", str(tmp_path / "p0.db"), str(tmp_path / "p1.db"), "--db", str(merged),
                    "--config", str(config)], check=True, capture_output=True)
    assert set(thumbnails(merged)) == set(thumbnails(one)) and thumbnails(one)
    assert all(thumbnails(p) for p in (tmp_path / "p0.db", tmp_path / "p1.db"))  # each part made some


# ---- the report -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The sample estate scanned: (catalog, JSON report)."""
    root = tmp_path_factory.mktemp("pictures")
    shutil.copytree(REPO / "examples" / "estate", root / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", root / "tierscan.yaml")
    db = root / "t.db"
    run("scan", "--config", str(root / "tierscan.yaml"), "--db", str(db), "--format", "none")
    return db, json.loads(run("report", "--db", str(db), "--format", "json")[0])


def test_near_groups_name_every_byte_identical_copy_of_their_members(scanned: tuple[Path, dict[str, Any]]) -> None:
    _, report = scanned
    exact = {g["master"]: [m["uri"] for m in g["members"] if m["uri"] != g["master"]]
             for g in report["groups"] if g["kind"] == "exact"}
    near = [g for g in report["groups"] if g["kind"] == "near"]
    assert near and any(g["copies"] for g in near)
    for group in report["groups"]:
        expected = {m["uri"]: exact[m["uri"]] for m in group["members"] if m["uri"] in exact} \
            if group["kind"] == "near" else {}
        assert group["copies"] == expected
    harbour = next(g for g in near if g["master"].endswith("harbour-walk-001.jpg"))
    assert sorted(Path(u).name for u in harbour["copies"][harbour["master"]]) == ["harbour-walk-001.jpg",
                                                                                  "hero-shot.jpg"]


def test_the_terminal_table_lists_near_groups(scanned: tuple[Path, dict[str, Any]]) -> None:
    db, report = scanned
    text = run("report", "--db", str(db), "--format", "table")[0]
    near = [g for g in report["groups"] if g["kind"] == "near"]
    assert f"of {len(near)} near-duplicate groups" in text
    assert all(g["id"] in text for g in near)
    assert "(+2)" in text  # the harbour walk's two byte-identical copies


def _record(**kw: Any) -> InventoryRecord:
    base: dict[str, Any] = {"uri": "file:///b/x.jpg", "provider": "local", "bucket": "b", "key": "x.jpg",
                            "size": 1000, "tier": "hot", "storage_class": "STANDARD", "region": "local",
                            "jurisdiction": "HK", "modified": "2030-01-01T00:00:00Z", "status": "fingerprinted",
                            "format": "JPEG", "width": 640, "height": 480}
    return InventoryRecord.model_validate({**base, **kw})


def test_how_a_member_differs_from_its_centre() -> None:
    centre = _record(personal_data=["gps", "timestamp"])
    assert how_it_differs(centre, _record(width=320, height=240, size=300, format="WEBP")) == [
        "re-encoded as WEBP", "resized or cropped to 50% (320\u00d7240)", "metadata removed (gps, timestamp)"]
    assert how_it_differs(centre, _record(width=480, height=480, personal_data=["gps", "timestamp"])) == [
        "cropped or reshaped (480\u00d7480 of 640\u00d7480)"]
    assert how_it_differs(centre, _record(width=480, height=640, personal_data=["gps", "timestamp"])) == ["rotated"]
    assert how_it_differs(centre, _record(size=900, personal_data=["gps", "timestamp"])) == [
        "re-encoded (same size in pixels)"]
    assert how_it_differs(centre, None) == []
    flipped = _record(phash="00000000000000ff", personal_data=["gps", "timestamp"])
    centre_hashed = centre.model_copy(update={"phash": "ffffffffffffff00"})
    assert how_it_differs(centre_hashed, flipped, centre_mirror=0xFF) == ["flipped (mirror image)"]
    unflipped = flipped.model_copy(update={"phash": "ffffffffffffff0f"})  # 4 bits from the centre's own
    assert how_it_differs(centre_hashed, unflipped, centre_mirror=0xFF) == []
    same = _record(personal_data=["gps", "timestamp"])
    assert how_it_differs(centre, same, grey=(False, True)) == ["made grey"]
    assert how_it_differs(centre, same, grey=(True, False)) == ["colour added"]
    assert how_it_differs(centre, same, grey=(True, True)) == []


def test_the_thumbnails_folder_is_replaced_and_someone_else_s_is_refused(
        scanned: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db, _ = scanned
    page, folder = tmp_path / "report.html", tmp_path / "report_files"
    run("report", "--db", str(db), "--format", "html", "--output", str(page))
    made = {p.name for p in folder.glob("*.webp")}
    stale = folder / ("0" * 32 + ".webp")
    stale.write_bytes(b"old")
    run("report", "--db", str(db), "--format", "html", "--output", str(page))
    assert {p.name for p in folder.glob("*.webp")} == made  # an earlier report's thumbnail is gone
    other = tmp_path / "photos.html"
    (tmp_path / "photos_files").mkdir()
    (tmp_path / "photos_files" / "mine.webp").write_bytes(b"a user's file")
    _, err = run("report", "--db", str(db), "--format", "html", "--output", str(other), expect=2)
    assert "is not a tierscan report's thumbnails folder" in err
    assert (tmp_path / "photos_files" / "mine.webp").read_bytes() == b"a user's file"


def test_the_mirror_phash_is_read_from_a_signature_without_the_image_libraries() -> None:
    from tierscan.scanner.fingerprint.layout import mirror_phash
    from tierscan.scanner.fingerprint.signatures import Signature

    made = fingerprint_bytes(jpeg(photo()), want_sha256=False, want_perceptual=True)
    assert made.near_sig is not None
    assert mirror_phash(made.near_sig) == Signature.from_blob(made.near_sig).mirror
    assert mirror_phash(b"\x00" * 64) is None and mirror_phash(made.near_sig[:10]) is None


def test_flips_and_grey_copies_are_named_from_what_the_catalog_keeps(tmp_path: Path) -> None:
    """A mirror image and a grey copy of a photo, scanned: the page's data says how each differs."""
    bucket = tmp_path / "estate" / "b"
    bucket.mkdir(parents=True)
    original = photo(640, 480)
    (bucket / "original.jpg").write_bytes(jpeg(original, subsampling=0))  # the largest file: the centre
    (bucket / "flipped.jpg").write_bytes(jpeg(original.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=70))
    (bucket / "grey.jpg").write_bytes(jpeg(original.convert("L").convert("RGB"), quality=70))
    db = tmp_path / "t.db"
    run("scan", str(tmp_path / "estate"), "--db", str(db), "--format", "none", "--workers", "1")
    page = run("report", "--db", str(db), "--format", "html")[0]
    groups = json.loads(re.search(r'id="near-groups-data">(.*?)</script>', page, re.S)[1])
    assert len(groups) == 1 and groups[0]["centre"].endswith("/original.jpg")
    how = {p["uri"].rsplit("/", 1)[1]: p.get("how", "") for p in groups[0]["pictures"]}
    assert "flipped (mirror image)" in how["flipped.jpg"] and "grey" not in how["flipped.jpg"]
    assert "made grey" in how["grey.jpg"] and "flipped" not in how["grey.jpg"]


def test_html_on_standard_output_inlines_the_thumbnails(scanned: tuple[Path, dict[str, Any]]) -> None:
    db, report = scanned
    page = run("report", "--db", str(db), "--format", "html")[0]
    near = [g for g in report["groups"] if g["kind"] == "near"]
    assert page.count("data:image/webp;base64,") >= sum(len(g["members"]) for g in near)
    assert "--no-thumbnails" in page and "copy of the image" in page


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)")
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    """Console messages at warning level or above that the page logged (Chromium's own start-up noise, such
    as a missing D-Bus, is not the page's)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.slow
def test_every_near_group_renders_with_a_loaded_picture_per_member(
        scanned: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db, report = scanned
    page = tmp_path / "report.html"
    run("report", "--db", str(db), "--format", "html", "--output", str(page))
    assert any((tmp_path / "report_files").glob("*.webp"))
    done = _chromium(page.as_uri() + "#all", tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not _console_errors(done.stderr), done.stderr[-2000:]
    dom = done.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body and 'data-ok="1"' in body[1] and "data-error" not in body[1]
    near = [g for g in report["groups"] if g["kind"] == "near"]
    for group in near:
        section = re.search(rf'<section class="grp[^"]*" id="{group["id"]}".*?</section>', dom, re.S)
        assert section, group["id"]
        figures = re.findall(r'<figure class="pic" data-uri="([^"]*)">(.*?)</figure>', section[0], re.S)
        assert [html_unescape(uri) for uri, _ in figures] == [m["uri"] for m in group["members"]]
        for _, figure in figures:
            width = re.search(r'<img [^>]*data-width="(\d+)"', figure)
            assert width and int(width[1]) > 0, figure[:300]  # loaded, not a placeholder


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# ---- decisions ---------------------------------------------------------------------------------------------

_MARK = """<script>
(function () {
  function mark(group, index, what) {
    var figure = document.getElementById(group).querySelectorAll("figure.pic")[index];
    var box = figure.querySelector(".decide input[data-d=" + what + "]");
    box.checked = true;
    box.dispatchEvent(new Event("change", {bubbles: true}));
  }
  %s
  var out = document.createElement("pre");
  out.id = "decisions-out";
  out.textContent = JSON.stringify(window.tierscanDecisions());
  document.body.appendChild(out);
})();
</script></body>"""


@pytest.mark.slow
def test_the_page_s_decisions_file_is_read_back_by_near_ignore_and_apply(
        scanned: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The reviewer's marks, made in the page as a person would (checkboxes), give the file the download
    button saves; `near ignore --decisions` records its pair and `apply --decisions` narrows a plan."""
    source, report = scanned
    db = tmp_path / "t.db"
    shutil.copy(source, db)
    page = tmp_path / "report.html"
    run("report", "--db", str(db), "--format", "html", "--output", str(page))
    trio = next(g for g in report["groups"] if g["kind"] == "near" and len(g["members"]) == 3)
    exact = next(g for g in report["groups"] if g["kind"] == "exact" and g["master"].endswith("002.jpg"))
    marks = (f'mark("{trio["id"]}", 1, "not_duplicate"); mark("{exact["id"]}", 0, "keep");')
    page.write_text(page.read_text().replace("</body>", _MARK % marks))
    done = _chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert not _console_errors(done.stderr), done.stderr[-2000:]
    found = re.search(r'<pre id="decisions-out">(.*?)</pre>', done.stdout, re.S)
    assert found
    decisions = json.loads(html_unescape(found[1]))
    assert decisions["format"] == "tierscan-decisions" and decisions["report"].endswith("Z")
    assert datetime.fromisoformat(decisions["report"]) >= datetime.fromisoformat(report["generated_at"])
    assert {g["id"]: (g["keep"], g["not_duplicate"]) for g in decisions["groups"]} == {
        trio["id"]: ([], [trio["members"][1]["uri"]]), exact["id"]: ([exact["master"]], [])}
    file = tmp_path / "decisions.json"
    file.write_text(json.dumps(decisions))

    _, err = run("near", "ignore", "--db", str(db), "--decisions", str(file))
    assert "recorded 1 new not-a-duplicate pair" in err
    pairs = run("near", "ignored", "--db", str(db))[0].splitlines()
    assert pairs == ["\t".join(sorted([trio["master"], trio["members"][1]["uri"]]))]

    before = tmp_path / "all.json"
    run("apply", "--db", str(db), "--action", "tag", "--plan", str(before))
    narrowed = tmp_path / "reviewed.json"
    run("apply", "--db", str(db), "--action", "tag", "--plan", str(narrowed), "--decisions", str(file))
    every = {i["uri"] for i in json.loads(before.read_text())["items"]}
    plan = json.loads(narrowed.read_text())
    kept = {i["uri"] for i in plan["items"]}
    copies = {m["uri"] for m in exact["members"] if m["uri"] != exact["master"]}
    assert kept == copies and kept <= every  # only the reviewed group's copies, never more than without
    assert plan["scope"]["decisions"]["groups"] == 2


def test_apply_decisions_excludes_marked_files_and_reports_unknown_ones(
        scanned: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db, report = scanned
    exact = [g for g in report["groups"] if g["kind"] == "exact"]
    marked = exact[0]["members"][1]["uri"]
    file = tmp_path / "d.json"
    file.write_text(json.dumps({"format": "tierscan-decisions", "version": 1, "groups": [
        {"id": g["id"], "kind": "exact", "centre": g["master"], "keep": [marked] if g is exact[0] else []}
        for g in exact] + [{"id": "e-0123456789ab", "kind": "exact", "centre": "file:///gone.jpg",
                            "keep": ["file:///gone.jpg"]}]}))
    plan = tmp_path / "p.json"
    _, err = run("apply", "--db", str(db), "--action", "tag", "--plan", str(plan), "--decisions", str(file))
    assert "not in the catalog, not acted on: file:///gone.jpg" in err
    assert "group e-0123456789ab is not among the catalog's groups" in err
    written = json.loads(plan.read_text())
    assert marked not in {i["uri"] for i in written["items"]}
    assert {"uri": marked, "policy": next(e["policy"] for e in written["excluded"] if e["uri"] == marked),
            "reason": "the reviewer marked it keep"} in written["excluded"]
    copies = {m["uri"] for g in exact for m in g["members"] if m["uri"] != g["master"]} - {marked}
    assert {i["uri"] for i in written["items"]} == copies


def test_near_ignore_decisions_leaves_out_unknown_files(scanned: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    source, report = scanned
    db = tmp_path / "t.db"
    shutil.copy(source, db)
    near = next(g for g in report["groups"] if g["kind"] == "near")
    file = tmp_path / "d.json"
    file.write_text(json.dumps({"format": "tierscan-decisions", "version": 1, "groups": [
        {"id": near["id"], "kind": "near", "centre": near["master"], "not_duplicate": ["file:///elsewhere.jpg"]}]}))
    _, err = run("near", "ignore", "--db", str(db), "--decisions", str(file))
    assert "not in the catalog, left out: file:///elsewhere.jpg" in err and "nothing changed" in err
    assert run("near", "ignored", "--db", str(db))[0] == ""
    run("near", "ignore", "a", "--db", str(db), "--decisions", str(file), expect=2)


_GOOD = {"format": "tierscan-decisions", "version": 1, "groups": [
    {"id": "n-0123456789ab", "kind": "near", "centre": "file:///a.jpg", "not_duplicate": ["file:///b.jpg"]}]}


def _with(**change: Any) -> dict[str, Any]:
    group = {**_GOOD["groups"][0], **change}
    return {**_GOOD, "groups": [group]}


@pytest.mark.parametrize(("content", "says"), [
    (b"", "Invalid JSON"),
    (b"\xff\xfe not json", "Invalid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not a tierscan decisions file"),
    (json.dumps({**_GOOD, "format": "tierscan-plan"}).encode(), "format"),
    (json.dumps({**_GOOD, "version": 2}).encode(), "version"),
    (json.dumps({**_GOOD, "delete_everything": True}).encode(), "delete_everything"),
    (json.dumps(_with(id="n-../../etc")).encode(), "groups.0.id"),
    (json.dumps(_with(kind="exact")).encode(), "does not match its id"),
    (json.dumps(_with(not_duplicate=["file:///a.jpg"])).encode(), "the centre cannot"),
    (json.dumps({**_GOOD, "groups": [_GOOD["groups"][0]] * 2}).encode(), "a group appears twice"),
    (json.dumps(_with(keep=[""])).encode(), "groups.0.keep.0"),
    (json.dumps(_with(keep=["x" * 5000])).encode(), "groups.0.keep.0"),
    (json.dumps(_with(keep="file:///a.jpg")).encode(), "groups.0.keep"),
    (json.dumps({"format": "tierscan-decisions", "version": 1, "groups": [
        {"id": "e-0123456789ab", "kind": "exact", "centre": "file:///a.jpg",
         "not_duplicate": ["file:///b.jpg"]}]}).encode(), "byte-identical copies cannot"),
])
def test_a_hostile_decisions_file_is_refused_with_exit_status_2(
        scanned: tuple[Path, dict[str, Any]], tmp_path: Path, content: bytes, says: str) -> None:
    db, _ = scanned
    file = tmp_path / "d.json"
    file.write_bytes(content)
    for command in (["near", "ignore"], ["apply", "--action", "tag", "--plan", str(tmp_path / "p.json")]):
        _, err = run(*command, "--db", str(db), "--decisions", str(file), expect=2)
        assert "not a tierscan decisions file" in err and says in err, err
        assert "x" * 100 not in err  # the file's content is not echoed
    assert not (tmp_path / "p.json").exists()


def test_an_oversized_or_missing_decisions_file_is_refused(scanned: tuple[Path, dict[str, Any]],
                                                           tmp_path: Path) -> None:
    db, _ = scanned
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(MAX_DECISIONS_BYTES + 1)
    _, err = run("near", "ignore", "--db", str(db), "--decisions", str(big), expect=2)
    assert "decisions files are limited to" in err
    _, err = run("near", "ignore", "--db", str(db), "--decisions", str(tmp_path / "none.json"), expect=2)
    assert "none.json: cannot read" in err
    assert os.path.getsize(big) > MAX_DECISIONS_BYTES

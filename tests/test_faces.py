"""Faces in the pixels: the detector on the perceptual decode (upright by the EXIF orientation), hostile
pixels, the catalog column and the switch, the inventory's JSONL/CSV/Parquet, the HTML personal-data
table, and policies on faces."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tierscan.policies import load_policy_sources
from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import FACES_NOT_ANALYSED
from tierscan.scanner.fingerprint import faces as faces_module, image as image_module
from tierscan.scanner.fingerprint.image import MAX_PIXELS, fingerprint_bytes, init_worker
from tierscan.scanner.scan.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
# Eileen Collins, NASA (public domain), and Chelsea the cat (CC0): scikit-image's sample images.
ASTRONAUT = REPO / "tests" / "data" / "faces" / "astronaut.jpg"
CAT = REPO / "tests" / "data" / "exif" / "skimage__chelsea.png"
LANDSCAPE = REPO / "tests" / "data" / "exif" / "exifpy__DSCN0010.jpg"  # leaves, no people
# The transpose that stores an upright picture so that EXIF orientation O shows it upright again.
STORED = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


@pytest.fixture(autouse=True, scope="module")
def worker_setup() -> None:
    init_worker()


def faces_of(data: bytes, **kw: Any) -> tuple[int | None, str | None]:
    r = fingerprint_bytes(data, want_sha256=False, want_perceptual=True, want_faces=True, **kw)
    assert r.error is None and r.phash is not None
    return r.faces, r.faces_error


def encoded(img: Image.Image, fmt: str = "JPEG", **kw: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def astronaut() -> Image.Image:
    with Image.open(ASTRONAUT) as img:
        return img.convert("RGB")


# ---- the detector ----------------------------------------------------------------------------------------

def test_a_face_is_counted_and_only_when_asked() -> None:
    data = ASTRONAUT.read_bytes()
    assert faces_of(data) == (1, None)
    plain = fingerprint_bytes(data, want_sha256=False, want_perceptual=True)
    assert plain.faces is None and plain.faces_error is None
    # Counting faces changes no hash: the grey decode is the colour decode's Y channel.
    counted = fingerprint_bytes(data, want_sha256=False, want_perceptual=True, want_faces=True)
    assert (counted.phash, counted.dhash, counted.near_sig) == (plain.phash, plain.dhash, plain.near_sig)


def test_the_cat_and_a_landscape_show_no_face() -> None:
    assert faces_of(CAT.read_bytes()) == (0, None)
    assert faces_of(LANDSCAPE.read_bytes()) == (0, None)


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_a_face_stored_sideways_is_found_once_the_orientation_turns_it_upright(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    turned = astronaut().transpose(STORED[orientation])
    assert faces_of(encoded(turned, quality=90, exif=exif.tobytes())) == (1, None)


def test_without_its_orientation_tag_the_sideways_face_is_not_found() -> None:
    """The orientation is what finds it: the same stored pixels, untagged, show no upright face."""
    assert faces_of(encoded(astronaut().transpose(STORED[8]), quality=90)) == (0, None)


def test_a_thumbnail_and_faces_come_from_one_decode() -> None:
    r = fingerprint_bytes(ASTRONAUT.read_bytes(), want_sha256=False, want_perceptual=True, want_thumbnail=True,
                          want_faces=True)
    assert r.faces == 1 and r.thumb is not None


# ---- hostile and odd pixels ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "LA", "RGBA", "1", "I;16", "I", "F"])
def test_odd_modes_give_a_count_or_a_reason_and_keep_the_fingerprint(mode: str) -> None:
    img = astronaut()
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(img.convert("L"), np.float32) * 200
        img = Image.fromarray(grey.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        data = encoded(img, "TIFF" if mode != "I;16" else "PNG")
    else:
        data = encoded(img.convert(mode), "TIFF" if mode in ("CMYK", "LA", "1") else "PNG")
    r = fingerprint_bytes(data, want_sha256=False, want_perceptual=True, want_faces=True)
    assert r.error is None and r.phash is not None
    assert (r.faces is None) == (r.faces_error is not None)
    if mode in ("CMYK", "P", "L", "RGBA", "I;16"):
        assert r.faces == 1, (mode, r.faces_error)


def test_cmyk_jpeg_is_counted() -> None:
    assert faces_of(encoded(astronaut().convert("CMYK"), quality=90)) == (1, None)


def test_tiny_images_are_not_analysed_and_bombs_are_refused_before_decoding() -> None:
    tiny = fingerprint_bytes(encoded(Image.new("RGB", (1, 1))), want_sha256=False, want_perceptual=True,
                             want_faces=True)
    assert tiny.error is None and tiny.faces is None and tiny.faces_error is None
    # A header claiming more pixels than the limit: refused before any pixel is decoded.
    side = int(MAX_PIXELS ** 0.5) + 100
    header = encoded(Image.new("1", (side, side)), "PNG")
    bomb = fingerprint_bytes(header, want_sha256=False, want_perceptual=True, want_faces=True)
    assert bomb.error is not None and bomb.faces is None


def test_a_large_picture_is_shrunk_before_the_detector_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    real = faces_module.face_scores

    def spy(colour: Image.Image, **kw: Any) -> np.ndarray:
        seen.append(colour.size)
        return real(colour, **kw)

    monkeypatch.setattr(faces_module, "face_scores", spy)
    big = encoded(astronaut().resize((4000, 3000)), "PNG", compress_level=1)
    assert faces_of(big)[0] == 1
    assert seen == [(faces_module.FACE_SIDE, faces_module.FACE_SIDE * 3 // 4)]


def test_a_detector_failure_costs_the_count_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> np.ndarray:
        raise ValueError("bad pixels")

    monkeypatch.setattr(faces_module, "face_scores", broken)
    r = fingerprint_bytes(ASTRONAUT.read_bytes(), want_sha256=True, want_perceptual=True, want_faces=True)
    assert r.error is None and r.phash is not None and r.sha256 is not None
    assert r.faces is None and r.faces_error == f"{FACES_NOT_ANALYSED}: ValueError: bad pixels"


def test_a_colour_copy_that_cannot_be_made_costs_the_faces_and_thumbnail_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any, **__: Any) -> Image.Image:
        raise OSError("conversion refused")

    monkeypatch.setattr(image_module, "upright_colour", refused)
    data = ASTRONAUT.read_bytes()
    r = fingerprint_bytes(data, want_sha256=True, want_perceptual=True, want_thumbnail=True, want_faces=True)
    assert r.error is None and r.phash is not None and r.near_sig is not None
    assert r.thumb is None and r.faces is None and r.faces_error == f"{FACES_NOT_ANALYSED}: OSError: conversion refused"
    r = fingerprint_bytes(data, want_sha256=False, want_perceptual=True, want_thumbnail=True)
    assert r.error is None and r.thumb is None and r.faces is None and r.faces_error is None


# ---- the package ships the model -------------------------------------------------------------------------

def test_the_model_and_its_licence_are_package_data() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert "data/yunet/*.onnx" in text and "data/yunet/LICENSE" in text
    folder = REPO / "scanner" / "data" / "yunet"
    assert (folder / faces_module.MODEL).stat().st_size > 100_000
    assert "Apache License" in (folder / "LICENSE").read_text()


@pytest.mark.slow
def test_the_built_wheel_holds_the_model_and_its_licence(tmp_path: Path) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(REPO)], check=True,
                   capture_output=True)
    (wheel,) = tmp_path.glob("tierscan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"tierscan/scanner/data/yunet/{faces_module.MODEL}", "tierscan/scanner/data/yunet/LICENSE",
            "tierscan/scanner/data/yunet/README.md"} <= names


# ---- scans: the catalog, the switch, the inventory, the report, policies -----------------------------------

def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """Two buckets: a face photo with a copy in each (Hong Kong and Mainland China), and the cat."""
    for bucket in ("hk-photos", "cn-photos"):
        (tmp_path / "estate" / bucket).mkdir(parents=True)
        shutil.copy(ASTRONAUT, tmp_path / "estate" / bucket / "astronaut.jpg")
    shutil.copy(CAT, tmp_path / "estate" / "hk-photos" / "cat.png")
    (tmp_path / "estate" / "hk-photos" / "notes.txt").write_text("not an image")
    config = tmp_path / "tierscan.yaml"
    config.write_text("buckets:\n  hk-photos: {price_as: s3, storage_class: STANDARD, region: ap-east-1}\n"
                      "  cn-photos: {price_as: s3, storage_class: STANDARD, region: cn-north-1}\n")
    return tmp_path


def records(db: Path) -> dict[str, Any]:
    with Catalog(db) as catalog:
        return {r.key: r for r in catalog.records()}


def scan(root: Path, *extra: str) -> Path:
    db = root / "t.db"
    run("scan", str(root / "estate"), "--config", str(root / "tierscan.yaml"), "--db", str(db), "--format", "none",
        "--workers", "1", *extra)
    return db


def test_the_inventory_counts_faces_and_names_the_kind(estate: Path) -> None:
    db = scan(estate)
    found = records(db)
    assert found["astronaut.jpg"].faces == 1 and "faces" in found["astronaut.jpg"].personal_data
    assert found["cat.png"].faces == 0 and "faces" not in found["cat.png"].personal_data
    assert found["notes.txt"].faces is None
    lines = [json.loads(line) for line in run("inventory", "--db", str(db)).splitlines()]
    assert {r["key"]: r["faces"] for r in lines} == {"astronaut.jpg": 1, "cat.png": 0, "notes.txt": None}
    rows = list(csv.DictReader(io.StringIO(run("inventory", "--db", str(db), "--format", "csv"))))
    assert sorted((r["key"], r["faces"], r["personal_data"]) for r in rows) == [
        ("astronaut.jpg", "1", "faces"), ("astronaut.jpg", "1", "faces"), ("cat.png", "0", "timestamp"),
        ("notes.txt", "", "")]


def test_parquet_has_an_integer_faces_column(estate: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    db = scan(estate)
    out = estate / "inv.parquet"
    run("inventory", "--db", str(db), "--format", "parquet", "--output", str(out))
    table = pq.read_table(out)
    assert str(table.schema.field("faces").type) == "int32"
    assert sorted(zip(table.column("key").to_pylist(), table.column("faces").to_pylist(), strict=True)) == [
        ("astronaut.jpg", 1), ("astronaut.jpg", 1), ("cat.png", 0), ("notes.txt", None)]


def test_the_switch_forgets_the_counts_and_turning_it_on_again_reads_the_images_once_more(estate: Path) -> None:
    db = scan(estate)
    assert records(db)["astronaut.jpg"].faces == 1
    scan(estate, "--no-faces")
    off = records(db)
    assert {k: r.faces for k, r in off.items()} == {"astronaut.jpg": None, "cat.png": None, "notes.txt": None}
    assert "faces" not in off["astronaut.jpg"].personal_data
    with Catalog(db) as catalog:  # unchanged images without a count are read again for one
        assert {w.ref.key for w in catalog.work(faces=True)} == {"astronaut.jpg", "cat.png"}
        assert list(catalog.work(faces=False)) == []
    scan(estate)
    assert {k: r.faces for k, r in records(db).items()} == {"astronaut.jpg": 1, "cat.png": 0, "notes.txt": None}
    # The config's switch does the same as the option.
    config = estate / "off.yaml"
    config.write_text("scan:\n  faces: false\n")
    run("scan", str(estate / "estate"), "--config", str(config), "--db", str(db), "--format", "none")
    assert all(r.faces is None for r in records(db).values())
    no_perceptual = estate / "np.db"
    run("scan", str(estate / "estate"), "--db", str(no_perceptual), "--format", "none", "--no-perceptual")
    assert all(r.faces is None for r in records(no_perceptual).values())


def test_a_failed_count_is_kept_with_its_reason_and_not_read_again(estate: Path) -> None:
    db = scan(estate)
    with Catalog(db) as catalog:
        catalog.db.execute("UPDATE objects SET faces=NULL, reason=? WHERE key='cat.png'",
                           (f"{FACES_NOT_ANALYSED}: ValueError: x",))
        catalog.db.commit()
        assert list(catalog.work(faces=True)) == []
        cat = next(r for r in catalog.records() if r.key == "cat.png")
        assert cat.status == "fingerprinted" and cat.faces is None and cat.reason.startswith(FACES_NOT_ANALYSED)
        assert catalog.drop_faces() == 3  # two counts and one reason
        assert next(r for r in catalog.records() if r.key == "cat.png").reason is None


def test_the_switch_is_validated_like_the_other_settings() -> None:
    assert Config.model_validate({"scan": {"faces": False}}).scan.faces is False
    assert Config.model_validate({}).scan.faces is True
    with pytest.raises(ValueError, match="faces"):
        Config.model_validate({"scan": {"faces": "sometimes"}})


def test_an_older_catalog_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with Catalog(db) as catalog:
        catalog.db.execute("ALTER TABLE objects DROP COLUMN faces")
        catalog.db.commit()
    with Catalog(db) as catalog:
        assert "faces" in {r[1] for r in catalog.db.execute("PRAGMA table_info(objects)")}


FACES_POLICIES = """
policies:
  - name: faces-across-boundary
    resource: group
    severity: high
    filters:
      - {type: personal-data, kinds: [faces]}
      - cross-boundary
    actions: [report]
  - name: group-photos
    resource: object
    filters: [{type: faces, gte: 1, lte: 5}]
    actions: [report]
"""


def test_policies_find_faces_across_the_boundary_and_by_count(estate: Path) -> None:
    policies = estate / "faces.yaml"
    policies.write_text(FACES_POLICIES)
    config = estate / "tierscan.yaml"
    config.write_text(config.read_text() + f"policies:\n  packs: []\n  files: [{policies}]\n")
    db = estate / "t.db"
    report = json.loads(run("scan", str(estate / "estate"), "--config", str(config), "--db", str(db),
                            "--format", "json", "--workers", "1"))
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for finding in report["findings"]:
        by_policy.setdefault(finding["policy"], []).append(finding)
    (boundary,) = by_policy["faces-across-boundary"]
    assert "faces in the pixels" in boundary["reason"]
    assert sorted(Path(u).name for u in boundary["uris"]) == ["astronaut.jpg", "astronaut.jpg"]
    assert sorted(Path(f["uris"][0]).name for f in by_policy["group-photos"]) == ["astronaut.jpg"] * 2
    assert all("1 face in the pixels" in f["reason"] for f in by_policy["group-photos"])


def test_the_shipped_example_policy_loads() -> None:
    path = REPO / "examples" / "policies" / "faces.yaml"
    loaded = load_policy_sources([("faces", str(path), path.read_text())])
    assert {p.name for p in loaded.policies} == {"faces-across-boundary", "group-photos-in-hot-tier"}


def test_the_html_personal_data_table_shows_faces(estate: Path) -> None:
    db = scan(estate)
    page = run("report", "--db", str(db), "--format", "html")
    table = page[page.index('id="personal-data"'):page.index("</table>", page.index('id="personal-data"'))]
    assert "<th>Faces</th>" in table
    assert table.count('class="kind kind-faces"') == 2  # both copies of the astronaut; the cat has none
    assert '<option value="faces">faces</option>' in page


@pytest.mark.slow
def test_merged_shards_carry_the_counts_one_process_makes(estate: Path) -> None:
    import subprocess
    import sys

    cli_ = [sys.executable, "-m", "tierscan.scanner"]
    config = str(estate / "tierscan.yaml")
    one = estate / "one.db"
    subprocess.run([*cli_, "scan", str(estate / "estate"), "--config", config, "--db", str(one), "--format", "none"],
                   check=True, capture_output=True)
    for i in range(2):
        subprocess.run([*cli_, "scan", str(estate / "estate"), "--config", config, "--db", str(estate / f"p{i}.db"),
                        "--shard", f"{i}/2", "--workers", "1"], check=True, capture_output=True)
    merged = estate / "all.db"
    subprocess.run([*cli_, "merge", str(estate / "p0.db"), str(estate / "p1.db"), "--db", str(merged), "--config",
                    config], check=True, capture_output=True)
    def counts(db: Path) -> dict[str, tuple[int | None, list[str]]]:
        with Catalog(db) as catalog:
            return {r.uri: (r.faces, r.personal_data) for r in catalog.records()}

    assert counts(merged) == counts(one)
    assert sorted(faces for faces, _ in counts(merged).values() if faces is not None) == [0, 1, 1]


def test_a_near_copy_with_fewer_faces_found_lost_no_metadata() -> None:
    from tierscan.scanner.core.models import InventoryRecord
    from tierscan.scanner.report.html_groups import how_it_differs

    base: dict[str, Any] = {"uri": "file:///b/x.jpg", "provider": "local", "bucket": "b", "key": "x.jpg",
                            "size": 1000, "tier": "hot", "storage_class": "STANDARD", "region": "local",
                            "jurisdiction": "HK", "modified": "2030-01-01T00:00:00Z", "status": "fingerprinted",
                            "format": "JPEG", "width": 640, "height": 480}
    centre = InventoryRecord.model_validate({**base, "faces": 2, "personal_data": ["gps", "faces"]})
    member = InventoryRecord.model_validate({**base, "size": 900, "faces": 0, "personal_data": []})
    assert how_it_differs(centre, member) == ["re-encoded (same size in pixels)", "metadata removed (gps)"]

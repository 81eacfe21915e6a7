"""The HTML report's picture sections at scale: write a catalog of G near-duplicate groups with thumbnails,
then time the HTML report and its rendering in headless Chromium, and print the sizes.

    python benchmarks/picture_report.py G DIR [--chromium /usr/bin/chromium]

The estate: G near groups of three pictures (a centre and two variants: one resized, one cropped and
re-encoded as WebP), spread over four S3 buckets in Hong Kong and Mainland China regions, every fourth
centre with a byte-identical copy in another bucket (an exact group too), a third of the centres with GPS
and a capture time. Every object has its own thumbnail (a random crop of a real photo, colour-shifted, so
no two are the same bytes), made and stored as a scan does (`fingerprint.image.thumbnail_of`,
`Catalog.record_thumbnails`). The groups are stored directly, not found by grouping: this measures the
report, not the near search. A figure-printing script, not a test.

Prints: the time to write the catalog; `tierscan report --format html --output DIR/report.html` (wall, CPU,
peak RSS); the page's size and its thumbnails folder's; headless Chromium's wall time, browser start
included, to load the page and take a screenshot (the first page of groups drawn, their images loaded
lazily), to load it and dump its DOM (which serialises the groups' JSON too), and to screenshot an empty
page (the browser's own start).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/connectors.py would shadow the
# `connectors` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from PIL import Image  # noqa: E402

from tierscan.scanner.core.models import GPS, ExifRecord, Group, GroupMember, Tier  # noqa: E402
from tierscan.scanner.fingerprint.faces import upright_colour  # noqa: E402
from tierscan.scanner.fingerprint.image import thumbnail_of  # noqa: E402
from tierscan.scanner.scan.catalog import Catalog  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "exif" / "exifpy__DSCN0010.jpg"
BUCKETS = (
    ("hk-photos-hot", "STANDARD", Tier.hot, "ap-east-1", "HK"),
    ("hk-design-cool", "STANDARD_IA", Tier.cool, "ap-east-1", "HK"),
    ("cn-marketing-cold", "GLACIER_IR", Tier.cold, "cn-north-1", "CN"),
    ("hk-backup-archive", "DEEP_ARCHIVE", Tier.archive, "ap-east-1", "HK"),
)
_COLUMNS = ("uri, target, provider, bucket, key, size, checksums, tier, storage_class, readable, region, "
            "jurisdiction, modified, identity, last_seen, status, sha256, phash, dhash, format, width, height, exif")


def _thumbnail(photo: Image.Image, rng: random.Random) -> bytes:
    """A distinct picture: a random crop of the photo, its colours shifted, as a scan's thumbnail."""
    w, h = photo.size
    cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = photo.crop((x, y, x + cw, y + ch))
    shift = Image.new("RGB", crop.size, (rng.randint(0, 80), rng.randint(0, 80), rng.randint(0, 80)))
    return thumbnail_of(upright_colour(Image.blend(crop, shift, 0.3), None))


def write_catalog(groups: int, path: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    with Image.open(PHOTO) as img:
        photo = img.convert("RGB")
    modified = datetime(2025, 1, 1, tzinfo=UTC).isoformat()
    with Catalog(path) as catalog:
        scan = catalog.begin_scan([f"s3://{b[0]}" for b in BUCKETS], datetime.now(UTC))
        db = catalog.db
        rows, thumbs, stored = [], [], []
        for g in range(groups):
            personal = g % 3 == 0
            exif = ExifRecord(gps=GPS(lat=22.28 + rng.random() / 10, lon=114.15 + rng.random() / 10),
                              datetime_original="2024:05:01 10:00:00") if personal else ExifRecord()
            members = []
            for k, (fmt, width, height, size) in enumerate((("JPEG", 4000, 3000, 3_000_000),
                                                            ("JPEG", 2000, 1500, 900_000),
                                                            ("WEBP", 3000, 3000, 700_000))):
                bucket, klass, tier, region, jurisdiction = BUCKETS[(g + k) % len(BUCKETS)]
                key = f"albums/{g // 1000:03d}/img-{g:06d}-{k}.{fmt.lower()}"
                uri = f"s3://{bucket}/{key}"
                record = exif if k == 0 else ExifRecord()
                rows.append((uri, f"s3://{bucket}", "s3", bucket, key, size + g, "{}", tier.value, klass, 1, region,
                             jurisdiction, modified, f"{size + g}:{g}:{k}", scan, "fingerprinted",
                             f"{g:056x}{k:08x}", f"{g:016x}", f"{g:016x}", fmt, width, height,
                             record.model_dump_json()))
                thumbs.append((uri, _thumbnail(photo, rng)))
                members.append(GroupMember(uri=uri, size=size + g, tier=tier, region=region,
                                           jurisdiction=jurisdiction, distance=0 if k == 0 else 3 + k))
            exact_copy = None
            if g % 4 == 0:  # the centre's byte-identical copy in the next bucket
                bucket, klass, tier, region, jurisdiction = BUCKETS[(g + 3) % len(BUCKETS)]
                key = f"backup/img-{g:06d}-0.jpg"
                exact_copy = GroupMember(uri=f"s3://{bucket}/{key}", size=members[0].size, tier=tier, region=region,
                                         jurisdiction=jurisdiction)
                rows.append((exact_copy.uri, f"s3://{bucket}", "s3", bucket, key, members[0].size, "{}", tier.value,
                             klass, 1, region, jurisdiction, modified, f"copy:{g}", scan, "fingerprinted",
                             f"{g:056x}{0:08x}", f"{g:016x}", f"{g:016x}", "JPEG", 4000, 3000,
                             exif.model_dump_json()))
            stored.append((members, exact_copy, personal))
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO objects ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(', ')))})",
                       rows)
        db.execute("COMMIT")
        catalog.record_thumbnails(thumbs)
        with catalog.writing_results() as out:
            for g, (members, exact_copy, personal) in enumerate(stored):
                spans = {"spans_tiers": len({m.tier for m in members}) > 1,
                         "spans_regions": len({m.region for m in members}) > 1,
                         "spans_jurisdictions": len({m.jurisdiction for m in members}) > 1}
                out.group(Group(id=f"n-{g:012x}", kind="near", master=members[0].uri, members=members,
                                has_personal_data=personal, **spans))
                if exact_copy is not None:
                    pair = [members[0], exact_copy]
                    out.group(Group(id=f"e-{g:012x}", kind="exact", master=members[0].uri, members=pair,
                                    has_personal_data=personal, spans_tiers=pair[0].tier != pair[1].tier,
                                    spans_regions=pair[0].region != pair[1].region,
                                    spans_jurisdictions=pair[0].jurisdiction != pair[1].jurisdiction))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _chromium(chromium: str, url: str, profile: Path, *how: str) -> float:
    started = time.perf_counter()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", *how, url],
                   check=True, capture_output=True, timeout=900)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=int, help="near-duplicate groups")
    parser.add_argument("dir", type=Path, help="a new folder for the catalog and the report")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=False)
    db, page = args.dir / "catalog.db", args.dir / "report.html"
    started = time.perf_counter()
    write_catalog(args.groups, db)
    figures: dict[str, object] = {"groups": args.groups, "catalog_s": round(time.perf_counter() - started, 1)}
    shot = (f"--screenshot={args.dir / 'page.png'}", "--window-size=1280,1400")
    # Under /usr/bin/time: a child's peak RSS from getrusage would count the memory of this process, which
    # the fork copies before the exec.
    timed = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "tierscan.scanner", "report",
                            "--db", str(db), "--format", "html", "--output", str(page)],
                           check=True, capture_output=True, text=True)
    wall, user, system, peak = timed.stderr.split()[-4:]
    figures.update({
        "report_wall_s": float(wall),
        "report_cpu_s": round(float(user) + float(system), 1),
        "report_peak_rss_mb": round(int(peak) / 1024),
        "page_mb": round(page.stat().st_size / 2**20, 1),
        "thumbnails_mb": round(_size(args.dir / "report_files") / 2**20, 1),
        "thumbnail_files": sum(1 for _ in (args.dir / "report_files").iterdir()),
        "chromium_blank_s": round(_chromium(args.chromium, "about:blank", args.dir / "profile", *shot), 1),
        "chromium_screenshot_s": round(_chromium(args.chromium, page.as_uri(), args.dir / "profile", *shot), 1),
        "chromium_dump_dom_s": round(_chromium(args.chromium, page.as_uri(), args.dir / "profile", "--dump-dom"), 1),
    })
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

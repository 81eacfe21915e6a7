"""Scale benchmark: generate a local estate of N small JPEGs, then time each phase of tierscan on it.

    python benchmarks/scale.py N [--keep DIR] [--workers W] [--phases scan,list,rescan,report,inventory]
    python benchmarks/scale.py N --phases report,inventory --db CATALOG   # a catalog made by other means
    python benchmarks/scale.py N --s3-inventory [--format Parquet] [--rows-per-file R]   # from an S3 Inventory

The estate: 4 buckets; 25% of the objects are byte copies of an object in another bucket; 10% carry GPS
and a camera serial number in their EXIF. Files are one of two small real JPEGs (with and without that
EXIF) with a comment segment of varying length and content after SOI, so every original is distinct
bytes and sizes spread over a few thousand values; a million of them are written in minutes.

Each phase runs `python -m tierscan.scanner` as a child process (`scan --no-perceptual`; `plan`, which lists the
unchanged estate into the catalog and plans, the listing part of a rescan; the same scan again with nothing
changed; `report --format json`; `inventory --format parquet`) and prints its wall seconds, CPU
seconds (user + system) and peak RSS (of the child and the processes it waited for, from `os.wait4`),
bytes of peak RSS per object and objects/s. With `--keep DIR` the estate (and its catalog, DIR/catalog.db)
is kept and reused by the next run with the same N; without it both live in a temporary folder. `--db`
names another catalog: a copy of DIR/catalog.db to time `list` and `rescan` on without changing the kept
one, or, with only the report and inventory phases, a catalog written some other way (N then only divides
the figures).
With `--s3-inventory` the N objects exist only as an S3 Inventory report (benchmarks/inventory_report.py's
synthetic rows, in the layout S3 publishes, in data files of R rows) for an empty bucket on a moto server
started for the run (the listing holds the rows of the file it reads: a Parquet row group, an ORC stripe); the
phases are `list` twice (`plan` of `s3://estate` from the report into an empty catalog, then again,
unchanged), and the LIST requests of the data bucket in moto's request log (expected: 0).
A figure-printing script, not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

BUCKETS = ("hk-photos-hot", "hk-backup-archive", "cn-marketing-cold", "hk-design-cool")
COPY_SHARE = 0.25
PERSONAL_SHARE = 0.10
PER_FOLDER = 1000
PHASES = ("scan", "list", "rescan", "report", "inventory")


def templates() -> tuple[bytes, bytes]:
    """Two small JPEGs: plain, and with GPS and a body serial number in EXIF."""
    rng = random.Random(7)
    img = Image.new("RGB", (64, 48))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(64 * 48)])
    plain = io.BytesIO()
    img.save(plain, "JPEG", quality=80)
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS R5"  # Model
    exif.get_ifd(0x8769)[0xA431] = "0123456789"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (22.0, 17.0, 30.0), 3: "E", 4: (114.0, 10.0, 12.0)})
    personal = io.BytesIO()
    img.save(personal, "JPEG", quality=80, exif=exif.tobytes())
    return plain.getvalue(), personal.getvalue()


def jpeg(template: bytes, n: int) -> bytes:
    """`template` with a comment segment after SOI naming `n`, padded to vary the size."""
    text = b"tierscan-scale %d " % n
    body = text + b"." * ((n * 2654435761) % 4096)
    return template[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + template[2:]


def generate(root: Path, n: int) -> None:
    """N files under root/BUCKET/DDDDD/ (PER_FOLDER a folder), with the shares of copies and EXIF above."""
    plain, personal = templates()
    rng = random.Random(n)
    made = array("q")  # seeds of originals (an original's seed is its index, its bucket seed % 4)
    made_folders: set[Path] = set()
    for i in range(n):
        bucket = i % len(BUCKETS)
        if made and rng.random() < COPY_SHARE:
            seed = made[rng.randrange(len(made))]
            bucket = (seed + 1 + rng.randrange(len(BUCKETS) - 1)) % len(BUCKETS)
        else:
            seed = i
            made.append(seed)
        template = personal if (seed * 40503) % 100 < PERSONAL_SHARE * 100 else plain
        folder = root / BUCKETS[bucket] / f"{i // (PER_FOLDER * len(BUCKETS)):05d}"
        if folder not in made_folders:
            folder.mkdir(parents=True, exist_ok=True)
            made_folders.add(folder)
        fd = os.open(folder / f"img-{i:08d}.jpg", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, jpeg(template, seed))
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Phase:
    name: str
    wall: float
    peak_rss: int  # bytes
    cpu: float  # user + system seconds of the child and the processes it waited for


def run(name: str, args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> Phase:
    """Run `python -m tierscan.scanner ARGS` and measure it; its output is discarded, a failure stops the benchmark."""
    env = {**os.environ, **(extra_env or {})}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "tierscan.scanner", *args], cwd=cwd, env=env,
                                 stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode != 0:  # --fail-on is not given, so 1 is a failure too
            err.seek(0)
            sys.exit(f"{name} failed ({child.returncode}): {err.read().decode(errors='replace')[-2000:]}")
    return Phase(name, wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="objects to generate (10000 .. 10000000)")
    parser.add_argument("--keep", type=Path, help="keep the estate and catalog here, reused by the next run")
    parser.add_argument("--workers", type=int, help="fingerprint processes for the scans")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--s3-inventory", action="store_true", help="list N objects from an S3 Inventory "
                        "report on a moto server (no objects, no reads), counting LIST calls on the bucket")
    parser.add_argument("--format", default="Parquet", choices=("CSV", "ORC", "Parquet"),
                        help="the inventory report's format, with --s3-inventory")
    parser.add_argument("--rows-per-file", type=int, default=100_000,
                        help="rows of each of the report's data files, with --s3-inventory (default 100000)")
    parser.add_argument("--db", type=Path, help="the catalog to use (default: DIR/catalog.db): a copy to time "
                        "the list and rescan phases on; with only the report and inventory phases, an existing "
                        "catalog made by any means, and no estate")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="tierscan-scale-"))
    try:
        if args.s3_inventory:
            _bench_inventory(base, args.n, args.format, args.rows_per_file)
        else:
            _bench(base, args.n, phases, args.workers, args.db)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _bench(base: Path, n: int, phases: list[str], workers: int | None, db: Path | None) -> None:
    estate, db = base / "estate", db or base / "catalog.db"
    stamp = base / "estate.n"
    if {"scan", "list", "rescan"} & set(phases) and (not stamp.exists() or stamp.read_text() != str(n)):
        shutil.rmtree(estate, ignore_errors=True)
        db.unlink(missing_ok=True)
        start = time.perf_counter()
        generate(estate, n)
        stamp.write_text(str(n))
        print(f"generated {n} objects in {time.perf_counter() - start:.1f} s", flush=True)
    scan = ["scan", str(estate), "--db", str(db), "--no-perceptual", "--format", "none",
            *(["--workers", str(workers)] if workers else [])]
    commands = {
        "scan": scan,
        # The rescan's listing alone: compared with the catalog, nothing read, grouped or reported.
        "list": ["plan", str(estate), "--db", str(db), "--no-perceptual", "--format", "json"],
        "rescan": scan,
        "report": ["report", "--db", str(db), "--format", "json", "--output", str(base / "report.json")],
        "inventory": ["inventory", "--db", str(db), "--format", "parquet", "--output", str(base / "inv.parquet")],
    }
    if "scan" in phases:
        db.unlink(missing_ok=True)  # a first scan starts from an empty catalog
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    _header()
    for name in phases:
        _row(run(name, commands[name], base), n)


def _header(extra: str = "") -> None:
    print(f"{'phase':<10} {'wall s':>9} {'CPU s':>7} {'peak RSS MB':>12} {'RSS B/object':>13} {'objects/s':>11}{extra}")


def _row(phase: Phase, n: int, extra: str = "") -> None:
    print(f"{phase.name:<10} {phase.wall:>9.1f} {phase.cpu:>7.1f} {phase.peak_rss / 1e6:>12.0f} "
          f"{phase.peak_rss / n:>13.0f} {n / phase.wall:>11.0f}{extra}", flush=True)


def _bucket_lists(log: Path, bucket: str) -> int:
    """LIST requests of `bucket` in a moto server's request log (path style: a GET of the bucket itself,
    not one of its settings)."""
    found = 0
    for line in log.read_text(errors="replace").splitlines():
        if '"GET /' not in line:
            continue
        path, _, query = line.split('"GET ', 1)[1].split(" ", 1)[0].partition("?")
        settings = ("location", "encryption", "versioning", "tagging", "policy", "lifecycle", "inventory")
        found += path.strip("/") == bucket and not query.startswith(settings)
    return found


def _bench_inventory(base: Path, n: int, fmt: str, per_file: int) -> None:
    """List N objects of bucket `estate` from an S3 Inventory report on moto, twice, counting LISTs of it."""
    import boto3
    from emulators import start_moto
    from inventory_report import put_s3_report, synthetic_rows

    moto = start_moto(log_dir=base)
    try:
        s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        for bucket in ("estate", "inventory"):
            s3.create_bucket(Bucket=bucket)
        start = time.perf_counter()
        put_s3_report(s3, dest="inventory", prefix="reports", bucket="estate", config_id="daily",
                      files=synthetic_rows("estate", n, per_file), fmt=fmt,
                      when=datetime.now(UTC) - timedelta(hours=1))
        print(f"wrote a {fmt} S3 Inventory report of {n} objects in {time.perf_counter() - start:.1f} s", flush=True)
        config = base / "inventory.yaml"
        config.write_text("buckets:\n  estate:\n    inventory:\n      uri: s3://inventory/reports/estate/daily\n")
        db = base / "inventory-catalog.db"
        db.unlink(missing_ok=True)
        env = {**moto.env, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        command = ["plan", "s3://estate", "--config", str(config), "--db", str(db), "--no-perceptual",
                   "--format", "json"]
        _header(f" {'LISTs of the bucket':>20}")
        for name in ("list", "relist"):
            before = _bucket_lists(moto.log, "estate")
            phase = run(name, command, base, extra_env=env)
            _row(phase, n, f" {_bucket_lists(moto.log, 'estate') - before:>20}")
    finally:
        moto.stop()


_REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO / "tests"))  # the emulators

if __name__ == "__main__":
    main()

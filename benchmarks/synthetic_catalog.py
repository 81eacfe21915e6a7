"""Write a synthetic catalog of N objects straight into SQLite, without a scan, so that grouping, policies,
the report and the inventory can be measured at estate sizes.

    python benchmarks/synthetic_catalog.py N PATH [--seed S]

The estate: four S3 buckets (hot, cool, cold and archive classes in Hong Kong and Mainland China regions),
a quarter of the objects byte copies of an object in another bucket (same size and SHA-256), a fifth with
perceptual hashes of which every third is a near variant (a few bits off) of the one before, a tenth with
GPS and a camera serial in the EXIF, and one in a hundred skipped as corrupt. Rows go in by `executemany`
in large batches, one transaction each. A figure-printing script, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/connectors.py would shadow the
# `connectors` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from scanner.catalog import Catalog  # noqa: E402
from scanner.models import ScanStats  # noqa: E402

BATCH = 50_000
# (bucket, storage class, tier, region, jurisdiction)
BUCKETS = (
    ("hk-photos-hot", "STANDARD", "hot", "ap-east-1", "HK"),
    ("hk-design-cool", "STANDARD_IA", "cool", "ap-east-1", "HK"),
    ("cn-marketing-cold", "GLACIER_IR", "cold", "cn-north-1", "CN"),
    ("hk-backup-archive", "DEEP_ARCHIVE", "archive", "ap-east-1", "HK"),
)
_COLUMNS = ("uri, target, provider, bucket, key, version, size, etag, checksums, tier, storage_class, readable, "
            "region, jurisdiction, modified, identity, last_seen, status, reason, sha256, phash, dhash, near_sig, "
            "headtail, format, width, height, exif")
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
_KEPT = 100_000  # originals a copy may be taken from (bounds this script's own memory)


def _flip(value: int, rng: random.Random, bits: int) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _rows(n: int, seed: int, scan_id: int):  # type: ignore[no-untyped-def]
    """The object rows, one tuple each, in a stable order for a given seed."""
    rng = random.Random(seed)
    originals: list[tuple[int, str, str | None, str | None, str | None]] = []  # size, sha, phash, dhash, exif
    last_phash: tuple[int, int] | None = None
    for i in range(n):
        b = i % len(BUCKETS)
        bucket, storage_class, tier, region, jurisdiction = BUCKETS[b]
        key = f"photos/{i // 1000:05d}/img-{i:08d}.jpg"
        uri = f"s3://{bucket}/{key}"
        modified = (_EPOCH + timedelta(seconds=rng.randrange(60 * 86_400 * 12))).isoformat()
        if originals and rng.random() < 0.25:  # a byte copy of an earlier object, in this bucket
            size, sha, phash, dhash, exif = originals[rng.randrange(len(originals))]
        else:
            size = rng.randrange(20_000, 4_000_000)
            sha = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
            phash = dhash = None
            if rng.random() < 0.2:
                if last_phash is not None and rng.random() < 1 / 3:  # a near variant of the last one
                    p, d = _flip(last_phash[0], rng, 3), _flip(last_phash[1], rng, 3)
                else:
                    p, d = rng.getrandbits(64), rng.getrandbits(64)
                last_phash = (p, d)
                phash, dhash = f"{p:016x}", f"{d:016x}"
            exif = None
            if rng.random() < 0.1:
                exif = json.dumps({"gps": {"lat": 22.3 + rng.random() / 10, "lon": 114.1 + rng.random() / 10},
                                   "serials": [f"SN{rng.randrange(1000):04d}"], "make": "Canon",
                                   "model": "EOS R5", "datetime_original": "2024:01:01 10:00:00"})
            if len(originals) < _KEPT:
                originals.append((size, sha, phash, dhash, exif))
            else:
                originals[rng.randrange(_KEPT)] = (size, sha, phash, dhash, exif)
        status, reason, fmt = "fingerprinted", None, "jpeg"
        if rng.random() < 0.01:
            status, reason, sha, phash, dhash, exif, fmt = "skipped", "corrupt image", None, None, None, None, None
        etag = (sha or "0" * 32)[:32]
        yield (uri, f"s3://{bucket}", "s3", bucket, key, None, size, etag, "{}", tier, storage_class,
               int(tier != "archive"), region, jurisdiction, modified, f"{size}|{modified}|{etag}|", scan_id,
               status, reason, sha, phash, dhash, None, None, fmt, 4000 if fmt else None, 3000 if fmt else None,
               exif)


def write(n: int, path: Path, seed: int = 1) -> None:
    """A new catalog at `path` holding `n` synthetic objects and one finished scan."""
    if path.exists():
        raise SystemExit(f"{path} exists: give a new file")
    with Catalog(path) as catalog:
        catalog.db.execute("PRAGMA synchronous=OFF")  # a file made from scratch: nothing to lose on a crash
        started = datetime.now(timezone.utc)
        scan_id = catalog.begin_scan([f"s3://{b[0]}" for b in BUCKETS], started)
        rows = _rows(n, seed, scan_id)
        marks = ", ".join("?" for _ in _COLUMNS.split(", "))
        while True:
            batch = [row for _, row in zip(range(BATCH), rows)]
            if not batch:
                break
            with catalog.db:
                catalog.db.executemany(f"INSERT INTO objects ({_COLUMNS}) VALUES ({marks})", batch)
        catalog.finish_scan(ScanStats(scan_id=scan_id, started=started, finished=datetime.now(timezone.utc),
                                      listed=n, fingerprinted=n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="objects")
    parser.add_argument("path", type=Path, help="the catalog file to create")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    write(args.n, args.path, args.seed)
    print(f"{args.n:,} objects into {args.path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

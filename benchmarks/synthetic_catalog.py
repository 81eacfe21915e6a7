"""Write a synthetic catalog of N objects straight into SQLite, without a scan, so that grouping, policies,
the report and the inventory can be measured at estate sizes.

    python benchmarks/synthetic_catalog.py N PATH [--seed S]

The estate: four S3 buckets (hot, cool, cold and archive classes in Hong Kong and Mainland China regions),
a quarter of the objects byte copies of an object in another bucket (same size and SHA-256), a fifth with
perceptual hashes of which every third is a near variant (a few bits off) of the one before, a tenth with
GPS and a camera serial in the EXIF, and one in a hundred skipped as corrupt. A figure-printing script,
not a test.

Rows are drawn a chunk at a time with numpy (a copy takes its content from one of the last `_KEPT` objects
that are not copies), and go in with the secondary indexes dropped (built once at
the end, by sorting), no rollback journal and one transaction per chunk: a file made from scratch has
nothing to lose on a crash.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

# Run as a script, this folder comes first on sys.path, and benchmarks/connectors.py would shadow the
# `connectors` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tierscan.scanner.core.models import ScanStats  # noqa: E402
from tierscan.scanner.scan.catalog import Catalog  # noqa: E402

CHUNK = 50_000
_KEPT = 100_000  # originals a copy may be taken from (bounds this script's own memory)
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
_EPOCH = np.datetime64("2024-01-01T00:00:00", "s")
_SPAN = 60 * 86_400 * 12  # modified times: seconds after _EPOCH


class _Originals(NamedTuple):
    """The content of the last objects that are not copies (at most `_KEPT`): what a copy may take."""

    size: np.ndarray
    sha: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray
    exif: np.ndarray


def _flips(rng: np.random.Generator, n: int, bits: int) -> list[int]:
    """`n` 64-bit masks of `bits` distinct set bits each."""
    positions = np.argsort(rng.random((n, 64)), axis=1)[:, :bits].astype(np.uint64)
    return np.bitwise_or.reduce(np.left_shift(np.uint64(1), positions), axis=1).tolist()


def _chunk(base: int, n: int, seed: int, kept: _Originals | None, last_phash: list[int] | None
           ) -> tuple[_Originals, list[int] | None, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Rows base..base+n-1: the originals kept afterwards, the last perceptual hash pair drawn, each row's
    content (size, sha, phash, dhash, exif), modified time (seconds after _EPOCH) and skipped flag."""
    rng = np.random.default_rng((seed, base))
    copy = rng.random(n) < 0.25
    if kept is None:
        copy[0] = False  # nothing to copy yet
    original = ~copy
    index = np.arange(base, base + n)[original]
    size = rng.integers(20_000, 4_000_000, len(index))
    sha = np.array([hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in index.tolist()], dtype=object)
    phash, dhash, exif = (np.full(len(index), None, dtype=object) for _ in range(3))
    hashed = np.flatnonzero(rng.random(len(index)) < 0.2)
    variant = (rng.random(len(hashed)) < 1 / 3).tolist()
    fresh = rng.integers(0, 2**64, (len(hashed), 2), dtype=np.uint64).tolist()
    pairs = []
    p_flips, d_flips = _flips(rng, len(hashed), 3), _flips(rng, len(hashed), 3)
    for near, (p, d), fp, fd in zip(variant, fresh, p_flips, d_flips, strict=True):
        if near and last_phash is not None:  # a near variant of the last one
            p, d = last_phash[0] ^ fp, last_phash[1] ^ fd
        last_phash = [p, d]
        pairs.append((f"{p:016x}", f"{d:016x}"))
    if pairs:
        phash[hashed], dhash[hashed] = zip(*pairs, strict=True)
    gps = np.flatnonzero(rng.random(len(index)) < 0.1)
    lat, lon = (22.3 + rng.random(len(gps)) / 10).tolist(), (114.1 + rng.random(len(gps)) / 10).tolist()
    exif[gps] = [f'{{"gps": {{"lat": {a!r}, "lon": {o!r}}}, "serials": ["SN{s:04d}"], "make": "Canon", '
                 '"model": "EOS R5", "datetime_original": "2024:01:01 10:00:00"}'
                 for a, o, s in zip(lat, lon, rng.integers(0, 1000, len(gps)).tolist(), strict=True)]
    pool = _Originals(size, sha, phash, dhash, exif)
    earlier = 0
    if kept is not None:
        earlier = len(kept.size)
        pool = _Originals(*(np.concatenate([old, new]) for old, new in zip(kept, pool, strict=True)))
    # Each row's content: its own when an original, else that of one of the _KEPT originals before it.
    before = earlier + np.cumsum(original) - original
    low = np.maximum(before - _KEPT, 0)
    at = np.where(copy, low + (rng.random(n) * (before - low)).astype(np.int64), before)
    content = tuple(column[at] for column in pool)
    kept = _Originals(*(column[-_KEPT:] for column in pool))
    return kept, last_phash, content, rng.integers(0, _SPAN, n), rng.random(n) < 0.01


def _rows(n: int, seed: int, scan_id: int):  # type: ignore[no-untyped-def]
    """The object rows, a chunk (list of tuples) at a time, in a stable order for a given seed."""
    kept: _Originals | None = None
    last_phash: list[int] | None = None
    for base in range(0, n, CHUNK):
        count = min(CHUNK, n - base)
        kept, last_phash, content, seconds, skipped = _chunk(base, count, seed, kept, last_phash)
        modified = (_EPOCH + seconds).astype("U19").tolist()
        rows = []
        columns = (column.tolist() for column in content)
        for i, size, sha, phash, dhash, exif, when, skip in zip(
                range(base, base + count), *columns, modified, skipped.tolist(), strict=True):
            bucket, storage_class, tier, region, jurisdiction = BUCKETS[i % 4]
            key = f"photos/{i // 1000:05d}/img-{i:08d}.jpg"
            when += "+00:00"
            status, reason, fmt = "fingerprinted", None, "jpeg"
            if skip:
                status, reason, sha, phash, dhash, exif, fmt = "skipped", "corrupt image", None, None, None, None, None
            etag = (sha or "0" * 32)[:32]
            rows.append((f"s3://{bucket}/{key}", f"s3://{bucket}", "s3", bucket, key, None, size, etag, "{}", tier,
                         storage_class, int(tier != "archive"), region, jurisdiction, when,
                         f"{size}|{when}|{etag}|", scan_id, status, reason, sha, phash, dhash, None, None, fmt,
                         4000 if fmt else None, 3000 if fmt else None, exif))
        yield rows


def write(n: int, path: Path, seed: int = 1) -> None:
    """A new catalog at `path` holding `n` synthetic objects and one finished scan."""
    if path.exists():
        raise SystemExit(f"{path} exists: give a new file")
    with Catalog(path) as catalog:
        db = catalog.db
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "locking_mode=EXCLUSIVE"):
            db.execute(f"PRAGMA {pragma}")
        indexes = [sql for (sql,) in db.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='objects' AND sql IS NOT NULL")]
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='objects' "
                                  "AND sql IS NOT NULL").fetchall():
            db.execute(f'DROP INDEX "{name}"')
        started = datetime.now(UTC)
        scan_id = catalog.begin_scan([f"s3://{b[0]}" for b in BUCKETS], started)
        marks = ", ".join("?" for _ in _COLUMNS.split(", "))
        for rows in _rows(n, seed, scan_id):
            db.execute("BEGIN")  # the connection autocommits: without it, every row is a transaction
            db.executemany(f"INSERT INTO objects ({_COLUMNS}) VALUES ({marks})", rows)
            db.execute("COMMIT")
        for sql in indexes:
            db.execute(sql)
        catalog.finish_scan(ScanStats(scan_id=scan_id, started=started, finished=datetime.now(UTC),
                                      listed=n, fingerprinted=n))
        db.execute("PRAGMA locking_mode=NORMAL")
        db.execute("PRAGMA journal_mode=WAL")


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

"""Near grouping of a long burst: N frames of one scene whose subjects move, each close to every other by
its hashes and confirmed by few. Not a test.

    python benchmarks/burst_grouping.py N [N ...] [--seed 1]

Each frame is the test photo (tests/data/exif/exifpy__DSCN0010.jpg, 640 x 480) with five discs of 100 px
in random places and colours, JPEG q85, fingerprinted as a scan does. Prints, per N, the candidate pairs
the index gives, the groups made and the wall time of `near_groups` (one process per core), and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tierscan.scanner.core.config import NearSettings  # noqa: E402
from tierscan.scanner.core.models import InventoryRecord, Tier  # noqa: E402
from tierscan.scanner.fingerprint.image import fingerprint_bytes, init_worker  # noqa: E402
from tierscan.scanner.group.cluster import _Candidate, _hash_pairs, near_groups  # noqa: E402

PHOTO = REPO / "tests" / "data" / "exif" / "exifpy__DSCN0010.jpg"


def _frames(n: int, rng: np.random.Generator) -> list[bytes]:
    with Image.open(PHOTO) as img:
        scene = img.convert("RGB").resize((640, 480))
    frames = []
    for _ in range(n):
        frame = scene.copy()
        draw = ImageDraw.Draw(frame)
        for _ in range(5):
            x, y = int(rng.integers(0, 540)), int(rng.integers(0, 380))
            draw.ellipse((x, y, x + 100, y + 100), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        out = io.BytesIO()
        frame.save(out, "JPEG", quality=85)
        frames.append(out.getvalue())
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    init_worker()
    near = NearSettings()
    print("| frames | candidate pairs | groups | grouping wall |\n|---|---|---|---|")
    for n in args.sizes:
        records, blobs = [], {}
        for k, data in enumerate(_frames(n, np.random.default_rng(args.seed))):
            fp = fingerprint_bytes(data, want_sha256=False, want_perceptual=True)
            uri = f"s3://burst/f{k:06d}.jpg"
            records.append(InventoryRecord(
                uri=uri, provider="s3", bucket="burst", key=uri.rsplit("/", 1)[1], size=len(data), tier=Tier.hot,
                storage_class="STANDARD", region="ap-east-1", jurisdiction="HK",
                modified=datetime(2020, 1, 1, tzinfo=UTC), phash=fp.phash, dhash=fp.dhash, width=fp.width,
                height=fp.height, status="fingerprinted"))
            blobs[uri] = fp.near_sig
        cands = [_Candidate(r, int(r.phash or "0", 16), int(r.dhash or "0", 16), blobs[r.uri]) for r in records]
        pairs = len(_hash_pairs(cands, max(near.candidate_radius, near.phash_max_distance)))
        start = time.perf_counter()
        groups = near_groups(records, [], near, signatures=blobs)
        print(f"| {n:,} | {pairs:,} | {len(groups):,} | {time.perf_counter() - start:.1f} s |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()

"""pHash/dHash distance between a reduced JPEG decode (Pillow `draft`, as `scanner.fingerprint` does) and a
full decode, over every JPEG under the given folders (default: tests/data and examples). Prints the
distribution; not a test.

    python benchmarks/draft_distance.py [FOLDER ...]
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

import imagehash
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def hashes(data: bytes, draft: bool) -> tuple[imagehash.ImageHash, imagehash.ImageHash] | None:
    img = Image.open(io.BytesIO(data))
    if img.format not in ("JPEG", "MPO") or min(img.size) < 32:
        return None
    if draft:
        img.draft("L", (256, 256))
    img.load()
    pixels = img.convert("L")
    if max(pixels.size) > 512:
        pixels = pixels.reduce(max(1, max(pixels.size) // 256))
    return imagehash.phash(pixels), imagehash.dhash(pixels)


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or [REPO / "tests" / "data", REPO / "examples"]
    dp, dd = Counter(), Counter()
    for path in sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".mpo")):
        try:
            full, small = hashes(path.read_bytes(), False), hashes(path.read_bytes(), True)
        except Exception:
            continue
        if full is None or small is None:
            continue
        dp[int(full[0] - small[0])] += 1
        dd[int(full[1] - small[1])] += 1
    n = sum(dp.values())
    for name, c in (("pHash", dp), ("dHash", dd)):
        mean = sum(k * v for k, v in c.items()) / max(n, 1)
        print(f"{name}: {n} JPEGs, distance draft vs full: mean {mean:.2f}, max {max(c, default=0)}, "
              f"distribution {dict(sorted(c.items()))}")


if __name__ == "__main__":
    main()

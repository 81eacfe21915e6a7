"""pHash/dHash distance between a reduced JPEG decode (Pillow `draft`, as `tierscan.scanner.fingerprint.image` does) and
a
full decode, hashed the way tierscan hashes (`tierscan.scanner.fingerprint.signatures.whole_hashes`), over every JPEG
under the
given folders (default: tests/data and examples); and, for reference, between tierscan's hashes of the
reduced decode and imagehash's (Lanczos) of the full decode. Prints the distributions; not a test.

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
sys.path.insert(0, str(REPO))

from tierscan.scanner.fingerprint.signatures import grey_of, hash_copy, whole_hashes  # noqa: E402


def decode(data: bytes, draft: bool) -> Image.Image | None:
    """The grey picture the fingerprint worker hashes (`draft`) or the full decode, reduced as it does."""
    img = Image.open(io.BytesIO(data))
    if img.format not in ("JPEG", "MPO") or min(img.size) < 32:
        return None
    if draft:
        img.draft("L", (256, 256))
    img.load()
    pixels = img.convert("L")
    if max(pixels.size) > 512:
        pixels = pixels.reduce(max(1, max(pixels.size) // 256))
    return pixels


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or [REPO / "tests" / "data", REPO / "examples"]
    counts: dict[str, Counter[int]] = {name: Counter() for name in
                                       ("pHash", "dHash", "pHash vs imagehash", "dHash vs imagehash")}
    for path in sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".mpo")):
        data = path.read_bytes()
        try:
            full, small = decode(data, False), decode(data, True)
            with Image.open(io.BytesIO(data)) as whole:
                plain = whole.convert("L")
        except Exception:
            continue
        if full is None or small is None:
            continue
        full_p, full_d = whole_hashes(hash_copy(grey_of(full)))
        small_p, small_d = whole_hashes(hash_copy(grey_of(small)))
        counts["pHash"][distance(full_p, small_p)] += 1
        counts["dHash"][distance(full_d, small_d)] += 1
        counts["pHash vs imagehash"][distance(small_p, int(str(imagehash.phash(plain)), 16))] += 1
        counts["dHash vs imagehash"][distance(small_d, int(str(imagehash.dhash(plain)), 16))] += 1
    for name, c in counts.items():
        n = sum(c.values())
        mean = sum(k * v for k, v in c.items()) / max(n, 1)
        what = ("tierscan's hashes of the draft vs imagehash's of the full decode" if "imagehash" in name
                else "draft vs full decode, both hashed as tierscan does")
        print(f"{name}: {n} JPEGs, {what}: mean {mean:.2f}, max {max(c, default=0)}, "
              f"distribution {dict(sorted(c.items()))}")


if __name__ == "__main__":
    main()

"""Near-duplicate quality on a labelled folder: tierscan's groups against plain pHash and PDQ.

    python benchmarks/neardup_eval.py DIR [--workers N] [--folds K] [--no-synthesised]
                                          [--keep-synthesised OUT]

DIR holds `GROUND_TRUTH.csv` (file, group_id, transform, and optionally hardneg_set), as
shared/data/neardup does. Two files are near duplicates iff they share a group_id; hard negatives are
pairs of different groups sharing a hardneg_set. Prints pair precision, recall and F1, overall and per
transform (a pair counts for the transform of each of its files, `original` excepted), and the
false-positive rate on hard-negative pairs, for:

- tierscan: exact groups plus near groups as a scan makes them, with the configured defaults;
- pHash: plain `imagehash.phash` of each file, pairs within the threshold that maximises F1 here;
- PDQ (`pdqhash`, if installed): likewise.

Then, as a separate "synthesised" table, the same comparison on variants the dev set lacks, generated
(seeded by group, never looked at one by one) from each group's original: crops to 60% of the area,
centred and pushed off centre; screenshots (downscaled, on a viewer-like canvas with bars, PNG);
social-media reposts (slight crop, 1080 px long side, no EXIF, JPEG q75); rotations of 2-5 degrees either
way, and of 8-35 degrees within the frame (black corners); and EXIF-orientation rotations (pixels stored
turned, Orientation 2-8 set). Its positives are pairs
within a group of the original and its synthesised variants; hard negatives as in DIR.

The baselines' thresholds are chosen on the very set they are scored on, which flatters them. With
`--folds K`, tierscan's `min_agreement` is also chosen per fold on the other folds (split by group, hard
negative sets kept whole; `_choose`) and the held-out figures are printed:
what to expect on unseen photos.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import random
import shutil
import tempfile
import zlib
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from tierscan.scanner.core.config import Config, NearSettings
from tierscan.scanner.core.models import ExifRecord, InventoryRecord, Tier
from tierscan.scanner.fingerprint.pool import FingerprintPool
from tierscan.scanner.fingerprint.record import Fingerprint
from tierscan.scanner.group.cluster import exact_groups, near_groups

Pair = tuple[str, str]
_AGREEMENT_GRID = (0.80, 0.84, 0.88, 0.90, 0.92, 0.94, 0.96)


def _truth(folder: Path) -> list[dict[str, str]]:
    with open(folder / "GROUND_TRUTH.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _fingerprint(folder: Path, rows: list[dict[str, str]], workers: int | None
                 ) -> tuple[list[InventoryRecord], dict[str, bytes]]:
    """Inventory records as a scan would store them (all the same age, so masters go by resolution and
    size; with their EXIF, which keeps different shots apart), and the signature blobs."""
    records, blobs = [], {}

    async def fingerprints(pool: FingerprintPool) -> list[Fingerprint]:
        # A few objects in flight at a time, as a scan sends them: the pool is not made for a whole
        # folder's bytes submitted at once (a thousand files can fill its pipes both ways).
        room = asyncio.Semaphore(64)

        async def one(name: str) -> Fingerprint:
            async with room:
                return await pool.submit((folder / name).read_bytes(), want_sha256=True, want_perceptual=True)

        return list(await asyncio.gather(*[one(r["file"]) for r in rows]))

    with FingerprintPool(workers) as pool:
        for name, fp in zip([r["file"] for r in rows], asyncio.run(fingerprints(pool)), strict=True):
            records.append(InventoryRecord(
                uri=name, provider="local", bucket="eval", key=name, size=(folder / name).stat().st_size,
                tier=Tier.hot, storage_class="local", region="local", jurisdiction="local",
                modified=datetime(2020, 1, 1, tzinfo=UTC), sha256=fp.sha256, phash=fp.phash,
                dhash=fp.dhash, format=fp.format, width=fp.width, height=fp.height,
                exif=ExifRecord.model_validate_json(fp.exif) if fp.exif else None,
                status="skipped" if fp.error else "fingerprinted", reason=fp.error,
            ))
            if fp.near_sig:
                blobs[name] = fp.near_sig
    return records, blobs


def _tierscan_pairs(records: list[InventoryRecord], blobs: dict[str, bytes], near: NearSettings) -> set[Pair]:
    """Pairs that end up in one group: an exact group, or a near group with every member's exact copies."""
    config = Config()
    exact = exact_groups(records, config.master)
    copies = {g.master: [m.uri for m in g.members] for g in exact}
    pairs: set[Pair] = set()
    for g in exact:
        pairs.update(_all_pairs(m.uri for m in g.members))
    for g in near_groups(records, exact, near, config.master, signatures=blobs):
        pairs.update(_all_pairs(u for m in g.members for u in copies.get(m.uri, [m.uri])))
    return pairs


def _all_pairs(uris: object) -> set[Pair]:
    return {(a, b) for a, b in itertools.combinations(sorted(set(uris)), 2)}  # type: ignore[call-overload]


def _baseline_codes(folder: Path, rows: list[dict[str, str]]) -> dict[str, dict[str, np.ndarray]]:
    """Plain pHash (imagehash, EXIF orientation applied as a user would) and PDQ bits of every file."""
    try:
        import pdqhash
    except ImportError:
        pdqhash = None
    codes: dict[str, dict[str, np.ndarray]] = {}
    for r in rows:
        with Image.open(folder / r["file"]) as img:
            img = ImageOps.exif_transpose(img)
            entry = {"pHash": imagehash.phash(img).hash.ravel()}
            if pdqhash is not None:
                entry["PDQ"] = pdqhash.compute(np.asarray(img.convert("RGB")))[0].astype(bool)
        codes[r["file"]] = entry
    return codes


def _threshold_pairs(codes: dict[str, dict[str, np.ndarray]], kind: str) -> tuple[list[Pair], np.ndarray]:
    names = sorted(n for n in codes if kind in codes[n])
    bits = np.array([codes[n][kind] for n in names])
    dist = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    i, j = np.triu_indices(len(names), 1)
    return [(names[a], names[b]) for a, b in zip(i, j, strict=True)], dist[i, j]


class Scorer:
    """Pair metrics against the ground truth, optionally restricted to some groups (a fold)."""

    def __init__(self, rows: list[dict[str, str]]):
        self.group = {r["file"]: r["group_id"] for r in rows}
        self.transform = {r["file"]: r["transform"] for r in rows}
        self.hardneg = {r["file"]: r.get("hardneg_set") or "" for r in rows}
        by_group = defaultdict(list)
        for r in rows:
            by_group[r["group_id"]].append(r["file"])
        self.positives = set().union(*(_all_pairs(files) for files in by_group.values()))
        self.hard = {
            (a, b) for a, b in itertools.combinations(sorted(self.group), 2)
            if self.hardneg[a] and self.hardneg[a] == self.hardneg[b] and self.group[a] != self.group[b]
        }

    def _keep(self, pairs: set[Pair], groups: set[str] | None) -> set[Pair]:
        if groups is None:
            return pairs
        return {p for p in pairs if self.group[p[0]] in groups and self.group[p[1]] in groups}

    def _of_transform(self, pairs: set[Pair], transform: str) -> set[Pair]:
        return {p for p in pairs if transform in (self.transform[p[0]], self.transform[p[1]])}

    def scores(self, predicted: set[Pair], groups: set[str] | None = None) -> dict[str, tuple[float, ...]]:
        """name -> (precision, recall, F1, positives) for 'overall' and each transform; and 'hard
        negatives' -> (false-positive rate, false pairs, hard pairs, different photos joined)."""
        pos, pred, hard = (self._keep(pairs, groups) for pairs in (self.positives, predicted, self.hard))
        out = {"overall": _prf(pred, pos)}
        for t in sorted(set(self.transform.values()) - {"original"}):
            out[t] = _prf(self._of_transform(pred, t), self._of_transform(pos, t))
        false_hard = pred & hard
        joined = {frozenset((self.group[a], self.group[b])) for a, b in false_hard}
        out["hard negatives"] = (len(false_hard) / max(1, len(hard)), len(false_hard), len(hard), len(joined))
        return out


def _prf(pred: set[Pair], pos: set[Pair]) -> tuple[float, float, float, float]:
    tp = len(pred & pos)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(pos) if pos else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), len(pos)


def _best_threshold(pairs: list[Pair], dist: np.ndarray, scorer: Scorer, top: int) -> tuple[int, set[Pair]]:
    best = (-1.0, 0)
    for t in range(top + 1):
        f1 = _prf({p for p, d in zip(pairs, dist, strict=True) if d <= t}, scorer.positives)[2]
        best = max(best, (f1, t))
    t = best[1]
    return t, {p for p, d in zip(pairs, dist, strict=True) if d <= t}


def _table(columns: dict[str, dict[str, tuple[float, ...]]]) -> None:
    names = list(columns)
    print(f"{'':24s}" + "".join(f"{n:>24s}" for n in names))
    print(f"{'(precision recall F1)':24s}" + "".join(f"{'':>24s}" for _ in names))
    for key in columns[names[0]]:
        if key == "hard negatives":
            continue
        n = int(columns[names[0]][key][3])
        cells = "".join(f"   {v[0]:6.3f} {v[1]:6.3f} {v[2]:6.3f}" for v in (columns[c][key] for c in names))
        print(f"{key + f' ({n})':24s}{cells}")
    hard = (columns[c]["hard negatives"] for c in names)
    cells = "".join(f"   {v[0]:6.3f} {v[1]:4d}/{v[2]:<4d} {v[3]:2d}j" for v in hard)
    print(f"{'hard-neg FP rate':24s}{cells}")
    print("(hard-neg: false-positive rate, false pairs/hard pairs, pairs of different photos joined)")


def _folds(rows: list[dict[str, str]], k: int) -> list[set[str]]:
    """Groups split into k folds; a hard-negative set stays in one fold."""
    folds: list[set[str]] = [set() for _ in range(k)]
    for r in rows:
        unit = r.get("hardneg_set") or r["group_id"]
        folds[zlib.crc32(unit.encode()) % k].add(r["group_id"])
    return folds


def _choose(overall: dict[float, tuple[float, ...]]) -> float:
    """The min_agreement to use, given each one's (precision, recall, ...): precision first (up to the
    0.99 target), then recall, and on a tie the strictest, since users ask most for fewer false positives
    and the hard negatives that would tell the thresholds apart are few."""
    return max(overall, key=lambda a: (min(0.99, overall[a][0]), overall[a][1], a))


def _cross_validate(records: list[InventoryRecord], blobs: dict[str, bytes], rows: list[dict[str, str]],
                    scorer: Scorer, k: int) -> None:
    base = Config().near
    predicted = {a: _tierscan_pairs(records, blobs, base.model_copy(update={"min_agreement": a}))
                 for a in _AGREEMENT_GRID}
    held_pred: set[Pair] = set()
    chosen = []
    everything = set(scorer.group.values())
    for fold in _folds(rows, k):
        train = everything - fold
        best = _choose({a: scorer.scores(predicted[a], train)["overall"] for a in _AGREEMENT_GRID})
        chosen.append(best)
        held_pred |= scorer._keep(predicted[best], fold)
    whole = _choose({a: scorer.scores(predicted[a])["overall"] for a in _AGREEMENT_GRID})
    print(f"\n{k}-fold cross-validation by group: min_agreement chosen per fold {chosen}, "
          f"on the whole set {whole} (configured {base.min_agreement})")
    overall = scorer.scores(held_pred)
    p, r, f1, _ = overall["overall"]
    hn = overall["hard negatives"]
    print(f"held-out (within-fold pairs): precision {p:.3f} recall {r:.3f} F1 {f1:.3f}; "
          f"hard-neg FP rate {hn[0]:.3f} ({hn[1]}/{hn[2]})")
    for a in _AGREEMENT_GRID:
        p, r, f1, _ = scorer.scores(predicted[a])["overall"]
        print(f"  min_agreement {a:.2f}: precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")
    print("held-out, by transform (precision recall F1):")
    for key, (p, r, f1, n) in overall.items():
        if key not in ("overall", "hard negatives"):
            print(f"  {key + f' ({int(n)})':28s} {p:6.3f} {r:6.3f} {f1:6.3f}")


def _crop_area(img: Image.Image, area: float, fx: float, fy: float) -> Image.Image:
    side = area ** 0.5
    w, h = round(img.width * side), round(img.height * side)
    x, y = round((img.width - w) * fx), round((img.height - h) * fy)
    return img.crop((x, y, x + w, y + h))


def _screenshot(img: Image.Image, rng: random.Random) -> Image.Image:
    """The photo downscaled in an image viewer: a title/tool bar with a few controls and some text above,
    a status bar below, grey margins around it."""
    scale = rng.uniform(0.5, 0.8)
    photo = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    margin, top, bottom = round(photo.width * 0.03), round(photo.height * 0.1), round(photo.height * 0.05)
    canvas = Image.new("RGB", (photo.width + 2 * margin, photo.height + top + bottom + margin), (45, 45, 48))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, canvas.width, top - margin // 2), fill=(236, 236, 236))
    r = max(3, top // 8)
    for k, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        x = margin + 3 * r * k
        draw.ellipse((x, top // 4, x + 2 * r, top // 4 + 2 * r), fill=colour)
    draw.rectangle((canvas.width // 4, top // 5, 3 * canvas.width // 4, top // 2), fill=(255, 255, 255),
                   outline=(200, 200, 200))
    draw.text((canvas.width // 4 + 6, top // 5 + 2), f"IMG_{rng.randrange(10000):04d}.jpg", fill=(30, 30, 30))
    draw.rectangle((0, canvas.height - bottom, canvas.width, canvas.height), fill=(30, 30, 32))
    draw.text((margin, canvas.height - bottom + 2), f"{img.width} x {img.height}  {rng.randrange(20, 100)}%",
              fill=(200, 200, 200))
    canvas.paste(photo, (margin, top))
    return canvas


def _padded(img: Image.Image, rng: random.Random, fill: str) -> Image.Image:
    """The photo, at its own size, on a bigger canvas: `white` a uniform white border (5-25% of the long
    side on every edge), `black` a non-uniform black one (0-30% on each edge, at least one edge 10%),
    `blurred` centred on a square or 4:5 canvas filled with a blurred enlargement of itself."""
    w, h = img.size
    side = max(w, h)
    if fill == "blurred":
        aspect = rng.choice((1.0, 0.8))  # width / height of the canvas: square or 4:5 portrait
        ch = round(1.1 * max(h, w / aspect))
        cw = round(ch * aspect)
        scale = max(cw / w, ch / h)
        back = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
        x, y = (back.width - cw) // 2, (back.height - ch) // 2
        back = back.crop((x, y, x + cw, y + ch)).filter(ImageFilter.GaussianBlur(side / 40))
        back.paste(img, ((cw - w) // 2, (ch - h) // 2))
        return back
    if fill == "white":
        left = top = right = bottom = round(rng.uniform(0.05, 0.25) * side)
    else:
        left, top, right, bottom = (round(rng.uniform(0, 0.3) * side) for _ in range(4))
        left = max(left, round(0.1 * side))
    canvas = Image.new("RGB", (w + left + right, h + top + bottom), (255, 255, 255) if fill == "white" else (0, 0, 0))
    canvas.paste(img, (left, top))
    return canvas


def _stretched(img: Image.Image, rng: random.Random, axis: str) -> Image.Image:
    """The photo resized to another aspect ratio, bigger: one axis scaled by 1.2-1.6, the other kept."""
    factor = rng.uniform(1.2, 1.6)
    w, h = img.size
    return img.resize((round(w * factor), h) if axis == "x" else (w, round(h * factor)), Image.Resampling.LANCZOS)


def _watermarked(img: Image.Image, rng: random.Random) -> Image.Image:
    """A diagonal watermark: semi-transparent text tiled over the whole photo at 30-45 degrees."""
    size = max(12, img.width // 12)
    font = ImageFont.load_default(size)
    text = rng.choice(("SAMPLE", "© Studio", "PREVIEW", "stock photo"))
    tile = Image.new("L", (size * len(text), size * 2), 0)
    ImageDraw.Draw(tile).text((0, size // 4), text, fill=255, font=font)
    tile = tile.rotate(rng.uniform(30, 45), expand=True)
    mask = Image.new("L", img.size, 0)
    for y in range(-tile.height, img.height, round(tile.height * 0.6)):
        for x in range(-tile.width, img.width, tile.width):
            mask.paste(tile, (x + (y // tile.height % 2) * tile.width // 2, y), tile)
    alpha = rng.uniform(0.35, 0.5)
    white = Image.new("RGB", img.size, (255, 255, 255))
    return Image.composite(white, img, mask.point(lambda v: round(v * alpha)))


def _hue_shifted(img: Image.Image, rng: random.Random) -> Image.Image:
    """The hue turned by 60-180 degrees either way (saturation and value kept)."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(rng.uniform(43, 128)) * rng.choice((-1, 1))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _synthesise(folder: Path, rows: list[dict[str, str]], out: Path) -> list[dict[str, str]]:
    """Write the synthesised variants of every group's original under `out`; their ground truth."""
    truth = []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        if r["transform"] != "original":
            continue
        group, source = r["group_id"], folder / r["file"]
        rng = random.Random(zlib.crc32(group.encode()))
        with Image.open(source) as opened:
            img = ImageOps.exif_transpose(opened).convert("RGB")
        original = out / r["file"]
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, original)
        truth.append(r)
        # Off centre: towards a random corner, up to a fifth of the free room away from it on each axis.
        fx, fy = (rng.uniform(0, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 1) for _ in "xy")
        repost = _crop_area(img, rng.uniform(0.9, 1.0), rng.random(), rng.random())
        scale = 1080 / max(repost.size)
        repost = repost.resize((round(repost.width * scale), round(repost.height * scale)),
                               Image.Resampling.LANCZOS)
        angle = rng.choice((-1, 1)) * rng.uniform(2, 5)
        orientation = rng.randrange(2, 9)
        exif = Image.Exif()
        exif[0x0112] = orientation
        contradicting = Image.Exif()
        contradicting[0x0112] = 6
        # Stored pixels that the Orientation tag turns back upright (the inverse of what a viewer applies).
        stored = img.transpose({2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                                6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
                                8: Image.Transpose.ROTATE_270}[orientation])
        variants = {
            "crop60_center": (_crop_area(img, 0.6, 0.5, 0.5), "jpg", {"quality": 85}),
            "crop60_offset": (_crop_area(img, 0.6, fx, fy), "jpg", {"quality": 85}),
            "screenshot": (_screenshot(img, rng), "png", {}),
            "social_repost": (repost, "jpg", {"quality": 75}),
            "rotate_small": (img.rotate(angle, Image.Resampling.BICUBIC), "jpg", {"quality": 85}),
            "exif_orientation": (stored, "jpg", {"quality": 85, "exif": exif.tobytes()}),
            "pad_border_white": (_padded(img, rng, "white"), "jpg", {"quality": 85}),
            "pad_border_black": (_padded(img, rng, "black"), "jpg", {"quality": 85}),
            "pad_border_blurred": (_padded(img, rng, "blurred"), "jpg", {"quality": 85}),
            "stretch_x": (_stretched(img, rng, "x"), "jpg", {"quality": 85}),
            "stretch_y": (_stretched(img, rng, "y"), "jpg", {"quality": 85}),
            "watermark_diagonal": (_watermarked(img, rng), "jpg", {"quality": 85}),
            "hue_shift_strong": (_hue_shifted(img, rng), "jpg", {"quality": 85}),
            # Upright pixels whose Orientation tag says they are stored turned (as when an editor turned
            # the pixels and kept the tag); CMYK, as a print workflow writes it (Pillow: Adobe, inverted).
            "cmyk_orientation": (img.convert("CMYK"), "jpg", {"quality": 85, "exif": contradicting.tobytes()}),
            # Turned within its own frame, black corners (a straightening tool, a careless scan); drawn last,
            # so that adding it left every other variant as it was.
            "rotate_large": (img.rotate(rng.choice((-1, 1)) * rng.uniform(8, 35), Image.Resampling.BICUBIC), "jpg",
                             {"quality": 85}),
        }
        for transform, (variant, ext, options) in variants.items():
            name = f"images/{group}__{transform}.{ext}"
            variant.save(out / name, **options)
            truth.append({"file": name, "group_id": group, "transform": transform,
                          "hardneg_set": r.get("hardneg_set") or ""})
    with open(out / "GROUND_TRUTH.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["file", "group_id", "transform", "hardneg_set"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(truth)
    return truth


def _compare(folder: Path, rows: list[dict[str, str]], workers: int | None, title: str
             ) -> tuple[Scorer, list[InventoryRecord], dict[str, bytes]]:
    """Print tierscan's, pHash's and PDQ's table for one labelled folder."""
    scorer = Scorer(rows)
    records, blobs = _fingerprint(folder, rows, workers)
    columns = {"tierscan": scorer.scores(_tierscan_pairs(records, blobs, Config().near))}
    codes = _baseline_codes(folder, rows)
    thresholds = {}
    for kind, top in (("pHash", 32), ("PDQ", 128)):
        if not any(kind in c for c in codes.values()):
            continue
        pairs, dist = _threshold_pairs(codes, kind)
        thresholds[kind], predicted = _best_threshold(pairs, dist, scorer, top)
        columns[f"{kind} (t<={thresholds[kind]})"] = scorer.scores(predicted)
    print(f"{title}: {len(rows)} files, {len(scorer.positives)} positive pairs, "
          f"{len(scorer.hard)} hard-negative pairs")
    _table(columns)
    return scorer, records, blobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--folds", type=int, default=0, help="cross-validate tierscan's thresholds (0: no)")
    parser.add_argument("--no-synthesised", action="store_true", help="skip the synthesised table")
    parser.add_argument("--keep-synthesised", type=Path, default=None, help="write the synthesised set here")
    args = parser.parse_args()
    rows = _truth(args.folder)
    scorer, records, blobs = _compare(args.folder, rows, args.workers, str(args.folder))
    if args.folds:
        _cross_validate(records, blobs, rows, scorer, args.folds)
    if args.no_synthesised:
        return
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep_synthesised or Path(scratch)
        synthetic = _synthesise(args.folder, rows, out)
        print()
        scorer, records, blobs = _compare(out, synthetic, args.workers,
                                          f"synthesised (from {args.folder}'s originals)")
        if args.folds:
            _cross_validate(records, blobs, synthetic, scorer, args.folds)


if __name__ == "__main__":
    main()

"""All pairs within a Hamming radius among N 64-bit hashes with planted near pairs.

    python -P benchmarks/index_scale.py N [N ...] [--radius 8] [--pairs 10000] [--workers 2]
        [--bands 0] [--brute-queries 20000] [--phash-images DIR] [--noise 0.3]

Prints, per N and code distribution: index build time, query wall time and CPU seconds, peak memory of
the run, pairs found, the recall of the planted pairs (each planted pair differs in `radius` bits or
fewer), and the candidates the index compares (the work: pairs of codes whose band values are within
the band radius, counted from the bucket sizes). Each run is a forked child, so its peak is its own.

Distributions: "uniform" random codes; with --phash-images, also "phash": the pHashes of the images in
DIR as seeds, each code a random seed with every bit flipped with probability --noise (0.3: two copies
of one seed are 27 bits apart on average; two hashes of shared/data/neardup, 31). Real pHashes are not
uniform (imagehash's top bit is always 1, others lean to 0.26..0.66), and copies of one seed crowd the
same buckets: the candidate count shows what that costs.

For comparison, brute-force numpy (XOR + popcount) is timed on a sample of query rows against all N
codes and extrapolated to N²/2 pairs; the sample shrinks above 1M codes (--brute-queries * 1M / N rows)
so that it stays about a minute. A figure-printing script.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

from tierscan.scanner.group.hamming_index import HammingIndex, _masks


def plant(codes: np.ndarray, pairs: int, radius: int,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The last `pairs` codes become copies of the first ones with 1..radius bits flipped."""
    n = len(codes)
    flips = np.zeros(pairs, np.uint64)
    for k in range(pairs):
        for bit in rng.choice(64, int(rng.integers(1, radius + 1)), replace=False):
            flips[k] |= np.uint64(1) << np.uint64(bit)
    codes[n - pairs:] = codes[:pairs] ^ flips
    return codes, np.stack([np.arange(pairs), np.arange(n - pairs, n)], axis=1)


def uniform_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)


def phash_codes(n: int, seeds: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Random seeds with each bit flipped with probability `noise`."""
    codes = seeds[rng.integers(0, len(seeds), n)]
    for bit in range(64):
        codes ^= (rng.random(n) < noise).astype(np.uint64) << np.uint64(bit)
    return codes


def image_phashes(folder: Path) -> np.ndarray:
    import imagehash
    from PIL import Image

    hashes = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            hashes.append(int(str(imagehash.phash(image)), 16))
    return np.array(hashes, np.uint64)


def candidates(index: HammingIndex, radius: int) -> int:
    """Pairs the self-join compares: per band and mask, Σ_v |bucket v|·|bucket v^mask| over v < v^mask
    (half the sum over all v), and the pairs inside each bucket for mask 0."""
    layout, bands = index._bands_for(len(index), radius)
    band_radius = radius // len(layout)
    total = 0
    for band, (_, width) in zip(bands, layout, strict=True):
        size = np.diff(band.offsets)
        values = np.arange(len(size))
        total += int((size * (size - 1) // 2).sum())
        for mask in _masks(width, band_radius, width)[1:]:
            total += int(np.dot(size, size[values ^ mask])) // 2
    return total


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process, all threads: the cost, whatever else shares the cores."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def brute_force(codes: np.ndarray, sample: int, radius: int) -> float:
    """Seconds brute force would take for all N²/2 pairs, timed on `sample` query rows."""
    rows = max(1, 2**24 // len(codes))  # a 128 MB XOR block at most
    t0 = time.perf_counter()
    for start in range(0, sample, rows):
        block = codes[start:min(start + rows, sample)]
        np.count_nonzero(np.bitwise_count(block[:, None] ^ codes[None, :]) <= radius)
    per_pair = (time.perf_counter() - t0) / (sample * len(codes))
    return per_pair * len(codes) * (len(codes) - 1) / 2


def run(n: int, dist: str, seeds: np.ndarray | None, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    codes = uniform_codes(n, rng) if seeds is None else phash_codes(n, seeds, args.noise, rng)
    codes, truth = plant(codes, min(args.pairs, n // 2), args.radius, rng)
    t0 = time.perf_counter()
    index = HammingIndex(codes, args.bands or None)
    build = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    i, j, _ = index.search(codes, args.radius, workers=args.workers, self_join=True)
    query, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    peak = peak_mb()
    recall = np.isin(truth[:, 0] * n + truth[:, 1], i * n + j).mean()
    print(f"N={n:>11,}  {dist:7}  r={args.radius}  bands {len(index.layout or ())}  build {build:5.1f} s  "
          f"query {query:6.1f} s ({args.workers} threads, {cpu:.0f} CPU s)  peak {peak:5.0f} MB  "
          f"pairs {len(i):,}  planted recall {recall:.4f}  candidates {candidates(index, args.radius):.2e}",
          flush=True)
    if args.brute_queries and seeds is None:
        sample = max(256, min(args.brute_queries, args.brute_queries * 1_000_000 // n))
        est = brute_force(codes, sample, args.radius)
        print(f"N={n:>11,}  brute-force numpy (1 core), extrapolated from {sample:,} query rows: "
              f"{est:,.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=float, nargs="+")
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bands", type=int, default=0,
                        help="bands to split codes into (0: the index chooses)")
    parser.add_argument("--brute-queries", type=int, default=0, help="0: skip brute force")
    parser.add_argument("--phash-images", type=Path, help="also run pHash-seeded codes from these images")
    parser.add_argument("--noise", type=float, default=0.3, help="bit flip probability around a pHash seed")
    args = parser.parse_args()
    dists: list[tuple[str, np.ndarray | None]] = [("uniform", None)]
    if args.phash_images:
        dists.append(("phash", image_phashes(args.phash_images)))
    # Load the compiled kernels once (numba's cache) so that the children's build time is the build's.
    warm = np.zeros(2, np.uint64)
    HammingIndex(warm).search(warm, args.radius, workers=1, self_join=True)
    ctx = multiprocessing.get_context("fork")
    for n in (int(s) for s in args.sizes):
        for dist, seeds in dists:
            child = ctx.Process(target=run, args=(n, dist, seeds, args))
            child.start()
            child.join()


if __name__ == "__main__":
    main()

"""All pairs within a Hamming radius among N random 64-bit hashes with planted near pairs.

    python benchmarks/index_scale.py N [N ...] [--radius 8] [--pairs 10000] [--workers 2] [--brute-queries 20000]

Prints, per N: index build time, query wall time and CPU seconds, peak memory (this process and its workers), pairs found and
the recall of the planted pairs (each planted pair differs in `radius` bits or fewer), and for comparison
brute-force numpy (XOR + popcount) timed on a sample of queries against all N codes and extrapolated to
N²/2 pairs: a full brute-force run at 1M takes about 25 min of a core. A figure-printing script.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from scanner.hamming_index import HammingIndex


def planted(n: int, pairs: int, radius: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uniform codes; the last `pairs` are copies of the first ones with 1..radius bits flipped."""
    codes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    flips = np.zeros(pairs, np.uint64)
    for k in range(pairs):
        for bit in rng.choice(64, int(rng.integers(1, radius + 1)), replace=False):
            flips[k] |= np.uint64(1) << np.uint64(bit)
    codes[n - pairs:] = codes[:pairs] ^ flips
    return codes, np.stack([np.arange(pairs), np.arange(n - pairs, n)], axis=1)


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its finished workers: the cost, whatever else shares the cores."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def brute_force(codes: np.ndarray, sample: int, radius: int) -> float:
    """Seconds brute force would take for all N²/2 pairs, timed on `sample` query rows."""
    t0 = time.perf_counter()
    for start in range(0, sample, 256):
        block = codes[start:min(start + 256, sample)]
        np.count_nonzero(np.bitwise_count(block[:, None] ^ codes[None, :]) <= radius)
    per_pair = (time.perf_counter() - t0) / (sample * len(codes))
    return per_pair * len(codes) * (len(codes) - 1) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=float, nargs="+")
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--brute-queries", type=int, default=0, help="0: skip brute force")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    for n in (int(s) for s in args.sizes):
        codes, truth = planted(n, args.pairs, args.radius, rng)
        t0 = time.perf_counter()
        index = HammingIndex(codes)
        build = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        i, j, _ = index.search(codes, args.radius, workers=args.workers, self_join=True)
        query, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        found = set(zip(i.tolist(), j.tolist())) if len(i) < 5_000_000 else None
        recall = (sum((a, b) in found for a, b in truth.tolist()) / len(truth)) if found is not None else float("nan")
        print(f"N={n:>11,}  r={args.radius}  build {build:7.1f} s  query {query:7.1f} s ({args.workers} procs, {cpu:.0f} CPU s)  "
              f"peak {peak_mb():7.0f} MB  pairs {len(i):,}  planted recall {recall:.4f}")
        if args.brute_queries:
            est = brute_force(codes, args.brute_queries, args.radius)
            print(f"N={n:>11,}  brute-force numpy (1 core), extrapolated from {args.brute_queries:,} query rows: "
                  f"{est:,.0f} s")
        del index, codes


if __name__ == "__main__":
    main()

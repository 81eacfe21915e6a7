"""Where-a-photo-was-taken benchmark (prints figures; not a test).

Measures `tierscan.scanner.core.places` in a fresh process: what loading the resolver costs (importing
timezonefinder and reverse_geocode, opening the zone polygons, reading the GeoNames places: wall and CPU
time, and the resident memory it adds), then the CPU time per position resolved, in batches of `BATCH`
as `located` resolves them, for random positions over the whole world (land and sea, where most fall
outside any territory and cost only the zone lookup) and inside the box around Hong Kong, Shenzhen, Macau
and Zhuhai (every one on land or in territorial waters, near the boundaries' many polygon edges).

    python benchmarks/places.py                 # 200,000 positions of each kind
    python benchmarks/places.py --positions 50000

The figures are in docs/benchmarks.md ("Where photos were taken").
"""

from __future__ import annotations

import argparse
import random
import resource
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=200_000)
    args = parser.parse_args()

    from tierscan.scanner.core.places import BATCH, resolver

    before = _rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    places = resolver()
    print(f"load: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU, "
          f"+{_rss_mb() - before:.0f} MB resident (process {_rss_mb():.0f} MB; peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")

    rng = random.Random(27)
    kinds = {
        "world": lambda: (rng.uniform(-60.0, 75.0), rng.uniform(-180.0, 180.0)),
        "Pearl River Delta": lambda: (rng.uniform(22.10, 22.56), rng.uniform(113.50, 114.45)),
    }
    for name, draw in kinds.items():
        positions = [draw() for _ in range(args.positions)]
        cpu = time.process_time()
        placed = 0
        for start in range(0, len(positions), BATCH):
            placed += sum(p is not None for p in places.resolve(positions[start:start + BATCH]))
        spent = time.process_time() - cpu
        print(f"{name}: {len(positions):,} positions, {placed:,} placed, "
              f"{spent / len(positions) * 1e6:.1f} us CPU per position")


if __name__ == "__main__":
    main()

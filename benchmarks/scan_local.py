"""Scan a local folder from scratch and print throughput and how busy the cores were.

    python benchmarks/scan_local.py DIR [--workers N]

Prints objects/s, MB/s, wall time, CPU seconds in the main process and in the fingerprint workers, and
core utilisation = CPU seconds / (wall seconds x cores). A figure-printing script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/connectors.py would shadow the
# `connectors` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tierscan.scanner.core.config import Config  # noqa: E402
from tierscan.scanner.scan.catalog import Catalog  # noqa: E402
from tierscan.scanner.scan.pipeline import run_scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    config = Config()
    if args.workers:
        config = config.model_copy(update={"scan": config.scan.model_copy(update={"workers": args.workers})})
    with tempfile.TemporaryDirectory() as tmp, Catalog(Path(tmp) / "bench.db") as catalog:
        wall0, self0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        stats = asyncio.run(run_scan(config, catalog, [str(args.folder)]))
        wall = time.perf_counter() - wall0
        self1, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        again0 = time.perf_counter()
        rescan = asyncio.run(run_scan(config, catalog, [str(args.folder)]))
        again = time.perf_counter() - again0
    cpu_main = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    cpu_workers = kids.ru_utime + kids.ru_stime
    cores = os.cpu_count() or 1
    print(f"objects listed      {stats.listed}")
    print(f"objects read        {stats.requests}  ({stats.bytes_read / 1e6:.1f} MB)")
    print(f"wall time           {wall:.2f} s")
    print(f"objects/s           {stats.requests / wall:.1f}")
    print(f"MB/s                {stats.bytes_read / 1e6 / wall:.1f}")
    print(f"CPU main process    {cpu_main:.2f} s")
    print(f"CPU workers         {cpu_workers:.2f} s")
    print(f"core utilisation    {100 * (cpu_main + cpu_workers) / (wall * cores):.0f}% of {cores} cores")
    print(f"rescan (unchanged)  {again:.2f} s, {rescan.requests} reads, {rescan.unchanged} unchanged")


if __name__ == "__main__":
    main()

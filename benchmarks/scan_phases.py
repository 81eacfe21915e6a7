"""Where the wall time of a whole `tierscan scan` of a small folder goes, from a cold start.

    python benchmarks/scan_phases.py DIR [--runs 3]

Each run is a fresh process scanning DIR into a new catalog and writing the JSON report, as
`benchmarks/czkawka_compare.py` runs it (`tierscan scan DIR --db NEW --format json -o OUT`), with marks
at the scan's phases: the interpreter's start, the imports of the command line, the set-up before the
reads (config, policies, catalog), numba's set-up with the index kernels, the workers' fork, the reads
with their fingerprints (hashes, signatures, faces and thumbnails in the workers), grouping with the
policies, and the report with the process's exit. Prints each phase's median over the runs, and the CPU
seconds of the scanning process and of its workers (median).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs in the scan's process: marks each phase's end (time.perf_counter is one monotonic clock for every
# process here), then prints them and the CPU of the process and of its reaped workers.
_DRIVER = """
import json, resource, sys, time
marks = {"started": time.perf_counter()}
from tierscan.scanner import cli
from tierscan.scanner.fingerprint.pool import FingerprintPool
from tierscan.scanner.scan import pipeline
from tierscan.scanner.scan.read_session import ReadSession
marks["imports"] = time.perf_counter()

def marked(before, after, call):
    def wrapped(*args, **kwargs):
        if before:
            marks[before] = time.perf_counter()
        out = call(*args, **kwargs)
        marks[after] = time.perf_counter()
        return out
    return wrapped

def marked_async(after, call):
    async def wrapped(*args, **kwargs):
        out = await call(*args, **kwargs)
        marks[after] = time.perf_counter()
        return out
    return wrapped

pipeline._load_kernels = marked("set-up", "kernels", pipeline._load_kernels)
FingerprintPool.__init__ = marked(None, "workers forked", FingerprintPool.__init__)
ReadSession.read_all = marked_async("reads and fingerprints", ReadSession.read_all)
pipeline.evaluate_results = marked(None, "grouping and policies", pipeline.evaluate_results)
sys.argv = ["tierscan", "scan", sys.argv[1], "--db", sys.argv[2], "--format", "json", "-o", sys.argv[3]]
try:
    cli.main()
except SystemExit:
    pass
marks["report"] = time.perf_counter()
usage = {"process": resource.getrusage(resource.RUSAGE_SELF), "workers": resource.getrusage(resource.RUSAGE_CHILDREN)}
cpu = {who: u.ru_utime + u.ru_stime for who, u in usage.items()}
print(json.dumps({"marks": marks, "cpu": cpu}))
"""
_PHASES = ("started", "imports", "set-up", "kernels", "workers forked", "reads and fingerprints",
           "grouping and policies", "report")


def _run(folder: Path, scratch: Path) -> tuple[dict[str, float], dict[str, float]]:
    """One cold scan: each phase's seconds, and the CPU seconds of the process and of its workers."""
    for leftover in scratch.glob("catalog.db*"):
        leftover.unlink()
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(folder), str(scratch / "catalog.db"),
                          str(scratch / "report.json")], check=True, capture_output=True, text=True).stdout
    end = time.perf_counter()
    found = json.loads(out.strip().splitlines()[-1])
    marks = found["marks"]
    times = [start] + [marks[phase] for phase in _PHASES] + [end]
    names = ["interpreter start", *_PHASES[1:], "process exit"]
    durations = {name: b - a for name, a, b in zip(names, times[:-1], times[1:], strict=True)}
    durations["whole scan"] = end - start
    return durations, found["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.runs):
            runs.append(_run(args.folder.resolve(), Path(scratch)))
    print(f"| phase | wall, median of {args.runs} |\n|---|---|")
    for phase in runs[0][0]:
        print(f"| {phase} | {statistics.median(r[0][phase] for r in runs):.2f} s |")
    for who in ("process", "workers"):
        print(f"| CPU of the {'scanning process' if who == 'process' else 'workers'} | "
              f"{statistics.median(r[1][who] for r in runs):.2f} s |")


if __name__ == "__main__":
    main()

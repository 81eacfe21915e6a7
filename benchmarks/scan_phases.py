"""Where the wall time of a whole `tierscan scan` of a small folder goes, from a cold start.

    python benchmarks/scan_phases.py DIR [--runs 3]

Each run is a fresh process scanning DIR into a new catalog and writing the JSON report, as
`benchmarks/czkawka_compare.py` runs it (`tierscan scan DIR --db NEW --format json -o OUT`), with marks
at the scan's phases: the interpreter's start, the imports of the command line, the set-up before the
reads (config, policies, catalog), numba's set-up with the index kernels, the workers' fork, the reads
with their fingerprints (hashes, signatures, faces and thumbnails in the workers), grouping with the
policies, the report, and the process's exit. Prints, per phase, the median over the runs of its wall
seconds and of the scanning process's CPU seconds in it, and the CPU seconds of the workers.
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
marks = {"started": (time.perf_counter(), time.process_time())}
from tierscan.scanner import cli
from tierscan.scanner.fingerprint.pool import FingerprintPool
from tierscan.scanner.scan import pipeline
from tierscan.scanner.scan.read_session import ReadSession
marks["imports"] = (time.perf_counter(), time.process_time())

def marked(before, after, call):
    def wrapped(*args, **kwargs):
        if before:
            marks[before] = (time.perf_counter(), time.process_time())
        out = call(*args, **kwargs)
        marks[after] = (time.perf_counter(), time.process_time())
        return out
    return wrapped

def marked_async(after, call):
    async def wrapped(*args, **kwargs):
        out = await call(*args, **kwargs)
        marks[after] = (time.perf_counter(), time.process_time())
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
marks["report"] = (time.perf_counter(), time.process_time())
usage = {"process": resource.getrusage(resource.RUSAGE_SELF), "workers": resource.getrusage(resource.RUSAGE_CHILDREN)}
cpu = {who: u.ru_utime + u.ru_stime for who, u in usage.items()}
print(json.dumps({"marks": marks, "cpu": cpu}))
"""
_PHASES = ("started", "imports", "set-up", "kernels", "workers forked", "reads and fingerprints",
           "grouping and policies", "report")


def _run(folder: Path, scratch: Path) -> dict[str, tuple[float, float | None]]:
    """One cold scan: each phase's wall seconds and the scanning process's CPU seconds in it (None where
    the process was not yet measuring), the whole scan's, and the workers' CPU as a phase of its own."""
    for leftover in scratch.glob("catalog.db*"):
        leftover.unlink()
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(folder), str(scratch / "catalog.db"),
                          str(scratch / "report.json")], check=True, capture_output=True, text=True).stdout
    end = time.perf_counter()
    found = json.loads(out.strip().splitlines()[-1])
    marks = [(start, None)] + [tuple(found["marks"][phase]) for phase in _PHASES] + [(end, None)]
    names = ["interpreter start", *_PHASES[1:], "process exit"]
    phases: dict[str, tuple[float, float | None]] = {}
    for name, (wall_a, cpu_a), (wall_b, cpu_b) in zip(names, marks[:-1], marks[1:], strict=True):
        phases[name] = (wall_b - wall_a, None if cpu_a is None or cpu_b is None else cpu_b - cpu_a)
    phases["whole scan"] = (end - start, found["cpu"]["process"])
    phases["(the workers' CPU)"] = (0.0, found["cpu"]["workers"])
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs = [_run(args.folder.resolve(), Path(scratch)) for _ in range(args.runs)]
    print(f"| phase | wall (median of {args.runs}) | CPU of the scanning process |\n|---|---|---|")
    for phase in runs[0]:
        wall = statistics.median(r[phase][0] for r in runs)
        cpus = [cpu for r in runs if (cpu := r[phase][1]) is not None]
        print(f"| {phase} | {f'{wall:.2f} s' if wall else ''} | "
              f"{f'{statistics.median(cpus):.2f} s' if cpus else ''} |")


if __name__ == "__main__":
    main()

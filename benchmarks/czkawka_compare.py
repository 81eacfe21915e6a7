"""A whole tierscan scan of a folder of photos against czkawka's similar-images search, from a cold start.

    python benchmarks/czkawka_compare.py DIR [--truth GROUND_TRUTH.csv] [--runs 3] [--similarity 15]

Each run starts a fresh process for each tool, alternately, so both pay their imports and start-up:
tierscan scans DIR into a new catalog and writes its JSON report (`tierscan scan DIR --db NEW --format
json`); czkawka (`pip install czkawka`, the bench extra) finds similar images in DIR at `--similarity`
(0-50, czkawka's "similarity level"; 15 by default). Prints each tool's wall-time median over the runs,
the ratio, and, given `--truth` (a CSV whose `file` column is relative to its own folder, and `group_id`:
two files are duplicates iff they share one, as shared/data/neardup's GROUND_TRUTH.csv), pair precision,
recall and F1 of what each found (tierscan: the members and copies of its exact and near groups).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

Pair = tuple[str, str]

_CZKAWKA = """
import json, sys
from czkawka import ImageSimilarity
finder = ImageSimilarity()
finder.set_directories([sys.argv[1]])
finder.set_similarity(int(sys.argv[2]))
print(json.dumps([[str(p) for p in group] for group in finder.find_similar()]))
"""


def _pairs(groups: list[list[str]]) -> set[Pair]:
    """Every pair of files within one group, each pair sorted."""
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


def _run_czkawka(folder: Path, similarity: int) -> tuple[float, set[Pair]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CZKAWKA, str(folder), str(similarity)], check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    return wall, _pairs([[str(Path(p).resolve()) for p in g] for g in json.loads(out)])


def _path(uri: str) -> str:
    return str(Path(unquote(urlsplit(uri).path)).resolve())


def _run_tierscan(folder: Path, scratch: Path) -> tuple[float, set[Pair]]:
    db, report = scratch / "catalog.db", scratch / "report.json"
    for leftover in scratch.glob("catalog.db*"):
        leftover.unlink()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", str(folder), "--db", str(db), "--format",
                    "json", "-o", str(report)], check=True, capture_output=True)
    wall = time.perf_counter() - start
    groups = []
    for group in json.loads(report.read_text(encoding="utf-8"))["groups"]:
        files = [m["uri"] for m in group["members"]]
        files += [uri for copies in (group.get("copies") or {}).values() for uri in copies]
        groups.append([_path(uri) for uri in files])
    return wall, _pairs(groups)


def _truth(path: Path, scanned: set[str]) -> set[Pair]:
    """Pairs of files (of those scanned) that share a group_id."""
    groups: dict[str, list[str]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            file = str((path.parent / row["file"]).resolve())
            if file in scanned:
                groups[row["group_id"]].append(file)
    return _pairs(list(groups.values()))


def _scores(found: set[Pair], truth: set[Pair]) -> str:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f"{len(found):>6} {precision:9.3f} {recall:7.3f} {f1:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--truth", type=Path, default=None, help="GROUND_TRUTH.csv for pair precision/recall")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--similarity", type=int, default=15, help="czkawka's similarity level (0-50)")
    args = parser.parse_args()
    folder = args.folder.resolve()
    walls: dict[str, list[float]] = {"tierscan": [], "czkawka": []}
    found: dict[str, set[Pair]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.runs):
            wall, found["tierscan"] = _run_tierscan(folder, Path(scratch))
            walls["tierscan"].append(wall)
            wall, found["czkawka"] = _run_czkawka(folder, args.similarity)
            walls["czkawka"].append(wall)
    medians = {tool: statistics.median(w) for tool, w in walls.items()}
    print(f"{'tool':<9} {'median s':>8}  runs (s)")
    for tool, w in walls.items():
        print(f"{tool:<9} {medians[tool]:8.2f}  {' '.join(f'{x:.2f}' for x in w)}")
    print(f"tierscan / czkawka: {medians['tierscan'] / medians['czkawka']:.2f}x")
    if args.truth is not None:
        scanned = {str(p.resolve()) for p in folder.rglob("*") if p.is_file()}
        truth = _truth(args.truth.resolve(), scanned)
        print(f"\n{'tool':<9} {'pairs':>6} {'precision':>9} {'recall':>7} {'F1':>6}   ({len(truth)} true pairs)")
        for tool, pairs in found.items():
            print(f"{tool:<9} {_scores(pairs, truth)}")


if __name__ == "__main__":
    main()

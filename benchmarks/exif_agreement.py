"""Agreement of tierscan.scanner.fingerprint.exif with exiftool on a directory of files described by a MANIFEST.csv.

Usage: python benchmarks/exif_agreement.py [DIR]   (default: tests/data/exif)

Prints agree/total for GPS, serials, capture time and make/model, lists every disagreement, then the
parse throughput on whole files and on 64 KiB prefixes (the planner's first read), in CPU time, the best
of a few repeats. The manifest holds exiftool 12.57's values (see the README next to it).
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tierscan.scanner.fingerprint.exif import ImageMeta, read_metadata
from tierscan.scanner.fingerprint.exif.reader import read_prefix

__all__ = ["CHECKS", "main"]

GPS_TOLERANCE = 1e-6
PREFIX = 64 << 10
REPEATS = 7  # the best of these: CPU time, so that other processes on the machine do not count


def _gps(row: dict[str, str], meta: ImageMeta) -> tuple[bool, str]:
    got = (meta.exif.gps_lat, meta.exif.gps_lon)
    if row["has_gps"] != "1":
        return got == (None, None), f"expected no GPS, got {got}"
    want = (float(row["gps_lat"]), float(row["gps_lon"]))
    ok = None not in got and all(
        abs(g - w) <= GPS_TOLERANCE for g, w in zip(got, want, strict=True)  # type: ignore[operator]
    )
    return ok, f"expected {want}, got {got}"


def serial_values(row: dict[str, str]) -> set[str]:
    """The serial values of a manifest row ("Group:Tag=value|..."), whatever group they came from."""
    return {item.split("=", 1)[1] for item in row["serial_tags"].split("|") if "=" in item}


def _serials(row: dict[str, str], meta: ImageMeta) -> tuple[bool, str]:
    want, got = serial_values(row), {value for _, value in meta.exif.serials}
    return want == got, f"expected {sorted(want)}, got {sorted(got)}"


def capture_time(row: dict[str, str]) -> str | None:
    """EXIF DateTimeOriginal, else exiftool's any-group DateTimeOriginal/CreateDate."""
    return row["datetime_original"] or row["datetime_original_any"] or None


def _time(row: dict[str, str], meta: ImageMeta) -> tuple[bool, str]:
    want, got = capture_time(row), meta.exif.datetime_original
    return want == got, f"expected {want!r}, got {got!r}"


def _make_model(row: dict[str, str], meta: ImageMeta) -> tuple[bool, str]:
    want = (row["make"] or None, row["model"] or None)
    got = (meta.exif.make, meta.exif.model)
    return want == got, f"expected {want}, got {got}"


CHECKS: dict[str, Callable[[dict[str, str], ImageMeta], tuple[bool, str]]] = {
    "GPS": _gps, "serials": _serials, "capture time": _time, "make/model": _make_model,
}


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "tests/data/exif")
    with open(folder / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    files = {row["file"]: (folder / row["file"]).read_bytes() for row in rows}
    results = {row["file"]: read_metadata(files[row["file"]]) for row in rows}
    for name, check in CHECKS.items():
        outcomes = [(row["file"], *check(row, results[row["file"]])) for row in rows]
        misses = [(file, why) for file, ok, why in outcomes if not ok]
        print(f"{name:13s} {len(rows) - len(misses)}/{len(rows)}")
        for file, why in misses:
            print(f"    {file}: {why}")
    rounds = max(1, 1000 // max(len(files), 1))
    for label, parse in (("whole files", read_metadata), ("64 KiB prefixes", _prefix)):
        best = float("inf")
        for _ in range(REPEATS):
            began = time.process_time()
            for _ in range(rounds):
                for data in files.values():
                    parse(data)
            best = min(best, time.process_time() - began)
        print(f"throughput    {rounds * len(files) / best:,.0f} files/s ({label}, in memory, 1 core, CPU time)")
    return 0


def _prefix(data: bytes) -> object:
    """What the scanner does first: parse the head of the object, learn which ranges it still needs."""
    return read_prefix(data[:PREFIX])


if __name__ == "__main__":
    sys.exit(main(sys.argv))

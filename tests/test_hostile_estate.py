"""Every hostile file and name at once in one local folder (tests/hostile_estate.py): the scan finishes, each
entry that is not a regular file inside the root is skipped with its reason, every regular file ends as a
result, nothing outside the root reaches the inventory, and no name reaches the terminal or a CSV raw."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hostile_estate import build

CLI = [sys.executable, "-m", "tierscan.scanner"]
# Metadata of the photo outside the root (exiftool's values): none may appear in any output.
OUTSIDE_SERIAL = "C3221324657219"


def _key(uri: str) -> str:
    return unquote(urlsplit(uri).path).rsplit("/bucket/", 1)[1]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--no-perceptual"]], ids=["perceptual", "no-perceptual"])
def test_a_folder_of_every_hostile_entry_is_scanned_and_contained(tmp_path: Path, mode: list[str]) -> None:
    est = build(tmp_path)
    db = tmp_path / "h.db"
    # A guard, not a speed assertion: the old code never finished (FIFO) or took hours (XMP regex).
    scan = subprocess.run([*CLI, "scan", str(est.root), "--db", str(db), "--format", "json",
                           "--object-timeout", "20", *mode], capture_output=True, timeout=600)
    assert scan.returncode == 0, scan.stderr.decode(errors="replace")[-3000:]
    report = json.loads(scan.stdout)
    skipped = {_key(s["uri"]): s["reason"] for s in report["skipped"]}
    for key, word in est.skipped.items():
        assert key in skipped, f"{key!r} not in skipped: {sorted(skipped)}"
        assert word in skipped[key].lower(), (key, skipped[key])

    inventory = tmp_path / "inv.jsonl"
    subprocess.run([*CLI, "inventory", "--db", str(db), "--format", "jsonl", "--output", str(inventory)],
                   check=True, capture_output=True, timeout=120)
    records = [json.loads(line) for line in inventory.read_text(encoding="utf-8").splitlines()]
    listed = {_key(r["uri"]) for r in records}
    for key in est.scanned:
        assert key in listed, f"{key!r} lost: not in the inventory"
    text = inventory.read_text(encoding="utf-8")
    assert OUTSIDE_SERIAL not in text and str(est.outside) not in text
    assert all(r.get("status") != "fingerprinted" or _key(r["uri"]) in est.scanned for r in records)


@pytest.mark.slow
def test_hostile_names_reach_neither_terminal_nor_spreadsheet_raw(tmp_path: Path) -> None:
    est = build(tmp_path)
    db = tmp_path / "h.db"
    table = subprocess.run([*CLI, "scan", str(est.root), "--db", str(db), "--format", "table",
                            "--object-timeout", "20"], capture_output=True, timeout=600)
    assert table.returncode == 0, table.stderr.decode(errors="replace")[-3000:]
    for stream in (table.stdout, table.stderr):
        assert b"\x1b]8;;https:example.invalid" not in stream  # no hidden hyperlink
        assert b"\x07" not in stream and "\u202e".encode() not in stream
    out = tmp_path / "inv.csv"
    subprocess.run([*CLI, "inventory", "--db", str(db), "--format", "csv", "--output", str(out)],
                   check=True, capture_output=True, timeout=120)
    with out.open(newline="", encoding="utf-8") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [c for c in cells if c[:1] == "-" and not _number(c)]


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True

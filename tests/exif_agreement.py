"""What the exif agreement tests hold of each file: the metadata tierscan reads equals exiftool's values in
a test folder's MANIFEST.csv row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tierscan.scanner.fingerprint.exif import ExifInfo, ImageMeta, read_metadata


def assert_agrees(exif: ExifInfo, row: dict[str, str]) -> None:
    """GPS, serials (values, trimmed and named), capture time and make/model as exiftool read them."""
    if row["has_gps"] == "1":
        assert exif.gps_lat == pytest.approx(float(row["gps_lat"]), abs=1e-6)
        assert exif.gps_lon == pytest.approx(float(row["gps_lon"]), abs=1e-6)
    else:
        assert (exif.gps_lat, exif.gps_lon) == (None, None)
    want_serials = {item.split("=", 1)[1] for item in row["serial_tags"].split("|") if "=" in item}
    assert {value for _, value in exif.serials} == want_serials
    assert all(name and value == value.strip() for name, value in exif.serials)
    assert exif.datetime_original == (row["datetime_original"] or row["datetime_original_any"] or None)
    assert (exif.make, exif.model) == (row["make"] or None, row["model"] or None)


def manifest(folder: Path) -> list[dict[str, str]]:
    """The rows of a test folder's MANIFEST.csv: one a file, with exiftool's values."""
    with open(folder / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def files_in(folder: Path) -> set[str]:
    """The test files of a folder (its manifest and README aside)."""
    return {p.name for p in folder.iterdir() if p.suffix.lower() not in (".csv", ".md")}


def read_all(folder: Path, rows: list[dict[str, str]]) -> dict[str, ImageMeta]:
    """What tierscan reads of each file the rows name, whole files in memory."""
    return {row["file"]: read_metadata((folder / row["file"]).read_bytes()) for row in rows}

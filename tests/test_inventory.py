"""Inventory writers: exact values, flattened EXIF, one row per object, written as the records stream."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tierscan.scanner.core.models import GPS, ExifRecord, InventoryRecord, Tier
from tierscan.scanner.report.inventory import CSV_COLUMNS, write_csv, write_jsonl

WITH_EXIF = InventoryRecord(
    uri="s3://hk-photos/2024/a.jpg",
    provider="s3",
    bucket="hk-photos",
    key="2024/a.jpg",
    version="v1",
    size=123456,
    tier=Tier.hot,
    storage_class="STANDARD",
    region="ap-east-1",
    jurisdiction="HK",
    modified=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
    etag="0" * 32,
    md5="0" * 32,
    sha256="a" * 64,
    phash="8f0f0f0f0f0f0f0f",
    dhash="0123456789abcdef",
    format="JPEG",
    width=4000,
    height=3000,
    exif=ExifRecord(
        gps=GPS(lat=22.285521, lon=114.157692),
        serials=["SN123", "LENS-9"],
        make="Canon",
        model="EOS R5",
        datetime_original="2024:05:01 16:30:00",
        software="fw 1.8",
        owner="Chan Tai Man",
    ),
    personal_data=["gps", "serial", "owner", "timestamp"],
    taken_in="HK",
    taken_near="Central",
    status="fingerprinted",
)
WITHOUT_EXIF = InventoryRecord(
    uri="s3://hk-archive/b.jpg",
    provider="s3",
    bucket="hk-archive",
    key="b.jpg",
    size=99,
    tier=Tier.archive,
    storage_class="DEEP_ARCHIVE",
    region="ap-east-1",
    jurisdiction="HK",
    modified=datetime(2025, 1, 2, tzinfo=UTC),
    status="unreadable",
    reason="unreadable tier",
)
RECORDS = [WITH_EXIF, WITHOUT_EXIF]


def streamed(buffer: io.StringIO, lines_before: int) -> Iterator[InventoryRecord]:
    """Yields the records, checking that each was written before the next one is asked for."""
    for i, record in enumerate(RECORDS):
        yield record
        assert buffer.getvalue().count("\n") == lines_before + i + 1


def test_jsonl_round_trip_and_streaming() -> None:
    buffer = io.StringIO()
    assert write_jsonl(streamed(buffer, 0), buffer) == 2
    lines = buffer.getvalue().splitlines()
    assert [InventoryRecord.model_validate_json(line) for line in lines] == RECORDS
    assert "22.285521" in lines[0]  # exact, not rounded: this is the audit record


def test_csv_header_rows_and_flattened_exif() -> None:
    buffer = io.StringIO(newline="")
    assert write_csv(streamed(buffer, 1), buffer) == 2
    buffer.seek(0)
    reader = csv.DictReader(buffer)
    assert reader.fieldnames == CSV_COLUMNS
    rows = list(reader)
    assert len(rows) == 2
    first, second = rows
    assert float(first["gps_lat"]) == 22.285521 and float(first["gps_lon"]) == 114.157692
    assert first["serials"] == "SN123|LENS-9"
    assert first["personal_data"] == "gps|serial|owner|timestamp"
    assert (first["make"], first["model"], first["owner"]) == ("Canon", "EOS R5", "Chan Tai Man")
    assert first["datetime_original"] == "2024:05:01 16:30:00" and first["software"] == "fw 1.8"
    assert (first["taken_in"], first["taken_near"]) == ("HK", "Central")
    assert datetime.fromisoformat(first["modified"]) == WITH_EXIF.modified
    assert (first["size"], first["tier"], first["width"]) == ("123456", "hot", "4000")
    # No EXIF: empty cells, not "None".
    assert all(
        second[c] == ""
        for c in ("gps_lat", "gps_lon", "taken_in", "taken_near", "serials", "make", "owner", "personal_data", "sha256",
                  "version")
    )
    assert (second["status"], second["reason"]) == ("unreadable", "unreadable tier")


def test_csv_round_trips_every_scalar_field() -> None:
    buffer = io.StringIO(newline="")
    write_csv(iter(RECORDS), buffer)
    buffer.seek(0)
    for row, record in zip(csv.DictReader(buffer), RECORDS, strict=True):
        dumped = record.model_dump(mode="json")
        for column in CSV_COLUMNS:
            if column in dumped and not isinstance(dumped[column], (list, dict)) and column != "modified":
                expected = "" if dumped[column] is None else str(dumped[column])
                assert row[column] == expected, column


def test_empty_inventory_writes_only_the_header() -> None:
    buffer = io.StringIO()
    assert write_csv(iter(()), buffer) == 0
    assert buffer.getvalue() == ",".join(CSV_COLUMNS) + "\n"
    jsonl = io.StringIO()
    assert write_jsonl(iter(()), jsonl) == 0 and jsonl.getvalue() == ""


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_formula_cells_and_keeps_negative_numbers(start: str) -> None:
    """OWASP CSV injection: text a spreadsheet would run gets a leading quote; numbers stay numbers."""
    hostile = f"{start}HYPERLINK(\"http://evil.example\",\"x\")"
    exif = WITH_EXIF.exif.model_copy(update={"gps": GPS(lat=-33.86, lon=-73.99), "owner": hostile,
                                             "make": hostile, "model": hostile, "serials": [hostile]})
    record = WITH_EXIF.model_copy(update={"bucket": hostile, "key": hostile, "exif": exif, "reason": hostile})
    buffer = io.StringIO(newline="")
    write_csv(iter([record]), buffer)
    buffer.seek(0)
    (row,) = csv.DictReader(buffer)
    for column in ("bucket", "key", "owner", "make", "model", "serials", "reason"):
        assert row[column] == "'" + hostile, column
    assert (row["gps_lat"], row["gps_lon"], row["size"]) == ("-33.86", "-73.99", str(record.size))
    assert row["uri"] == record.uri  # text that starts harmlessly is left as it is


def test_csv_carriage_return_inside_a_cell_cannot_start_a_row() -> None:
    """A lone CR mid-cell would end the row in a spreadsheet and start an unneutralised formula cell."""
    record = WITHOUT_EXIF.model_copy(update={"key": "b.jpg\r=1+cmd|calc!A0"})
    buffer = io.StringIO(newline="")
    write_csv(iter([record]), buffer)
    buffer.seek(0)
    (row,) = csv.DictReader(buffer)  # one row: the CR is quoted inside its cell
    assert row["key"] == record.key and row["size"] == str(record.size)

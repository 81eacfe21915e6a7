"""The audit inventory: one record per object, written as JSON Lines or CSV while the records stream in.

This is the audit record, so values are exact (GPS is not rounded here, unlike in human reports). Writers
take an iterator and hold one record at a time, so memory stays flat however many objects there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.core.safe_text import CsvWriter

__all__ = ["CSV_COLUMNS", "flat_record", "write_csv", "write_jsonl"]

# EXIF is flattened to columns; list fields (serials, people, personal_data) are joined with "|".
CSV_COLUMNS = [
    "uri",
    "provider",
    "bucket",
    "key",
    "version",
    "size",
    "tier",
    "storage_class",
    "region",
    "jurisdiction",
    "modified",
    "etag",
    "md5",
    "sha256",
    "phash",
    "dhash",
    "format",
    "width",
    "height",
    "faces",
    "gps_lat",
    "gps_lon",
    "taken_in",
    "taken_near",
    "serials",
    "make",
    "model",
    "datetime_original",
    "software",
    "owner",
    "people",
    "caption",
    "place",
    "personal_data",
    "status",
    "reason",
]
LIST_SEPARATOR = "|"
_RECORD_FIELDS = frozenset(InventoryRecord.model_fields)


def write_jsonl(records: Iterable[InventoryRecord], fh: IO[str]) -> int:
    """One JSON object per line, exactly the `InventoryRecord` fields. Returns the number written."""
    count = 0
    for record in records:
        fh.write(record.model_dump_json())
        fh.write("\n")
        count += 1
    return count


def write_csv(records: Iterable[InventoryRecord], fh: IO[str]) -> int:
    """A header and one row per object (`CSV_COLUMNS`); empty cells for missing values; text cells that a
    spreadsheet would run as a formula (a key or EXIF owner starting with `=`, `+`, `-`, `@`, tab or CR)
    get a leading `'` (`CsvWriter`). Returns the row count. Open `fh` with `newline=""`, as the csv module
    requires."""
    writer = CsvWriter(fh)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(_row(record))
        count += 1
    return count


def flat_record(r: InventoryRecord) -> dict[str, Any]:
    """One record as the flat `CSV_COLUMNS`, typed (lists stay lists, `modified` a datetime): the one
    flattening that the CSV and Parquet exports share."""
    exif = r.exif
    gps = exif.gps if exif else None
    return {
        **{name: getattr(r, name) for name in CSV_COLUMNS if name in _RECORD_FIELDS},
        "tier": r.tier.value,
        "gps_lat": gps.lat if gps else None,
        "gps_lon": gps.lon if gps else None,
        "serials": list(exif.serials) if exif else [],
        "make": exif.make if exif else None,
        "model": exif.model if exif else None,
        "datetime_original": exif.datetime_original if exif else None,
        "software": exif.software if exif else None,
        "owner": exif.owner if exif else None,
        "people": list(exif.people) if exif else [],
        "caption": exif.caption if exif else None,
        "place": exif.place if exif else None,
        "personal_data": list(r.personal_data),
    }


def _row(r: InventoryRecord) -> list[object]:
    flat = flat_record(r)
    cells = []
    for name in CSV_COLUMNS:
        value = flat[name]
        if isinstance(value, list):
            value = LIST_SEPARATOR.join(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        cells.append(value)
    return cells

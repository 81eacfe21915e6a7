"""The audit inventory: one record per object, written as JSON Lines or CSV while the records stream in.

This is the audit record, so values are exact (GPS is not rounded here, unlike in human reports). Writers
take an iterator and hold one record at a time, so memory stays flat however many objects there are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from .models import InventoryRecord

__all__ = ["CSV_COLUMNS", "write_csv", "write_jsonl"]

# EXIF is flattened to columns; list fields (serials, personal_data) are joined with "|".
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
    "gps_lat",
    "gps_lon",
    "serials",
    "make",
    "model",
    "datetime_original",
    "software",
    "owner",
    "personal_data",
    "status",
    "reason",
]
LIST_SEPARATOR = "|"


def write_jsonl(records: Iterable[InventoryRecord], fh: TextIO) -> int:
    """One JSON object per line, exactly the `InventoryRecord` fields. Returns the number written."""
    count = 0
    for record in records:
        fh.write(record.model_dump_json())
        fh.write("\n")
        count += 1
    return count


def write_csv(records: Iterable[InventoryRecord], fh: TextIO) -> int:
    """A header and one row per object (`CSV_COLUMNS`); empty cells for missing values. Returns the row
    count. Open `fh` with `newline=""`, as the csv module requires."""
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(_row(record))
        count += 1
    return count


def _row(r: InventoryRecord) -> list[object]:
    exif = r.exif
    gps = exif.gps if exif else None
    values: list[object] = [
        r.uri,
        r.provider,
        r.bucket,
        r.key,
        r.version,
        r.size,
        r.tier.value,
        r.storage_class,
        r.region,
        r.jurisdiction,
        r.modified.isoformat(),
        r.etag,
        r.md5,
        r.sha256,
        r.phash,
        r.dhash,
        r.format,
        r.width,
        r.height,
        gps.lat if gps else None,
        gps.lon if gps else None,
        LIST_SEPARATOR.join(exif.serials) if exif else None,
        exif.make if exif else None,
        exif.model if exif else None,
        exif.datetime_original if exif else None,
        exif.software if exif else None,
        exif.owner if exif else None,
        LIST_SEPARATOR.join(r.personal_data),
        r.status,
        r.reason,
    ]
    return ["" if v is None else v for v in values]

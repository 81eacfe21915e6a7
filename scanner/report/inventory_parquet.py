"""The audit inventory as Parquet, for loading into a warehouse (BigQuery, Athena, Snowflake, DuckDB).

Layout choice: **flattened columns**, the same names as the CSV export
(`tierscan.scanner.report.inventory.CSV_COLUMNS`),
but typed: sizes int64, dimensions int32, GPS float64, `modified` a UTC timestamp, and the list fields
(`serials`, `personal_data`) real `list<string>` columns rather than "|"-joined text. Flat columns load into
every warehouse without a nested-type mapping and keep a query like `WHERE gps_lat IS NOT NULL` simple;
the nested `exif` struct of the JSONL export stays available for tools that prefer it.

Records are written in row groups of `BATCH_ROWS` as they stream from the catalog, so memory stays
bounded by one batch however large the inventory is. GPS is exact, as in every inventory export.

pyarrow is an optional extra (`pip install 'tierscan[parquet]'`); importing this module without it raises UsageError
naming the extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.report.inventory import CSV_COLUMNS, flat_record

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - exercised only where pyarrow is absent
    raise UsageError(
        "Parquet export needs pyarrow: pip install 'tierscan[parquet]' (or pyarrow>=15)"
    ) from exc

__all__ = ["BATCH_ROWS", "SCHEMA", "write_parquet"]

BATCH_ROWS = 10_000

_STRING_LIST = pa.list_(pa.string())
_TYPES: dict[str, pa.DataType] = {
    "size": pa.int64(),
    "width": pa.int32(),
    "height": pa.int32(),
    "faces": pa.int32(),
    "modified": pa.timestamp("us", tz="UTC"),
    "gps_lat": pa.float64(),
    "gps_lon": pa.float64(),
    "serials": _STRING_LIST,
    "people": _STRING_LIST,
    "personal_data": _STRING_LIST,
}
SCHEMA = pa.schema(
    [
        pa.field(name, _TYPES.get(name, pa.string()), nullable=name not in ("uri", "size"))
        for name in CSV_COLUMNS
    ]
)


def _batches(records: Iterable[InventoryRecord], size: int) -> Iterator[list[InventoryRecord]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


def write_parquet(records: Iterable[InventoryRecord], path: Path, batch_rows: int = BATCH_ROWS) -> int:
    """Write `records` to `path` (one row group per batch, replacing the file only once it is whole) and
    return the number of rows."""
    count = 0
    with atomic_write(path, "wb") as fh, pq.ParquetWriter(fh, SCHEMA, compression="zstd") as writer:
        for batch in _batches(records, batch_rows):
            rows = [flat_record(r) for r in batch]
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
            count += len(rows)
    return count

"""Inventory reports instead of LIST: the providers' scheduled listings of a bucket (S3 Inventory, GCS Storage
Insights inventory reports, Azure Blob Inventory), read from their destination instead of listing the data
bucket, which at hundreds of millions of objects costs days and a LIST request per 1,000 objects.

This module knows the reports' layouts and formats; each connector finds the newest complete report in its
own store (one delimited LIST per date level of the destination, never a LIST of the data bucket), fetches
its data files one at a time into a temporary file, and turns the rows into `ObjectRef`s as its listing
would. Layouts, as each provider documents them:

- **S3:** `DEST-PREFIX/SOURCE-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/manifest.json` and `manifest.checksum` (the
  MD5 of manifest.json, hex); the manifest names the data files (`files[].key`, `MD5checksum`), their format
  (`fileFormat`: CSV gzip without a header, ORC or Parquet) and, for CSV, the columns (`fileSchema`). CSV keys
  are URL-encoded. A report is complete when both files are there and the checksum verifies.
- **GCS:** `DEST-PATH/` holds `CONFIG-ID_SNAPSHOT_manifest.json` and the shards `CONFIG-ID_SNAPSHOT_N.csv` or
  `.parquet` (a date-patterned destination path puts each run in a folder of its own); the manifest names
  the shards (`report_shards_file_names`) and the snapshot time. CSV has a header row.
- **Azure:** `DEST-CONTAINER/YYYY/MM/DD/HH-MM-SS/RULE/RULE-manifest.json` with `status` and `files[].blob`;
  a run is complete when the manifest is there and says `Succeeded`. CSV has a header row; `Name` is the
  blob's path within the account, container first.

Rows are streamed a batch at a time (pyarrow: a CSV block, a Parquet row group's batch, an ORC stripe), so
memory holds one batch, never a report. Column names are compared without case or punctuation, so S3's
`LastModifiedDate` (CSV) and `last_modified_date` (ORC, Parquet) are one column.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tierscan.scanner.core.errors import UsageError

__all__ = [
    "FETCH_BYTES",
    "MAX_TRIED",
    "DataFile",
    "Report",
    "announce",
    "azure_report",
    "canonical",
    "falsy",
    "gcs_report",
    "is_gzip",
    "report_refs",
    "rows",
    "s3_report",
    "s3_report_folder",
    "truthy",
]

log = logging.getLogger("tierscan.connectors.inventory")
T = TypeVar("T")

_BATCH_ROWS = 8192  # rows turned into Python objects at a time
# Reports tried, newest first, before giving up: a destination whose newest reports are all incomplete is
# misconfigured, and each one tried costs requests.
MAX_TRIED = 10
FETCH_BYTES = 32 << 20  # a data file is fetched in ranges of this many bytes
_S3_FOLDER = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)Z$")


@dataclass(frozen=True)
class DataFile:
    """One data file of a report: its name in the destination and, where the manifest gives it, its MD5."""

    name: str
    size: int
    md5: str | None = None


@dataclass(frozen=True)
class Report:
    """The newest complete report of a bucket: what to read and how."""

    manifest: str  # the manifest's URI, for messages
    created: datetime
    format: str  # "csv", "parquet" or "orc"
    files: tuple[DataFile, ...]
    columns: tuple[str, ...] | None = None  # a CSV without a header row: its columns, in order


def canonical(name: str) -> str:
    """A column name without case or punctuation: `Last-Modified`, `LastModified`, `last_modified` agree."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _format(name: str, where: str) -> str:
    fmt = name.strip().lower()
    if fmt not in ("csv", "parquet", "orc"):
        raise UsageError(f"{where}: inventory format {name!r} is not supported (CSV, Parquet or ORC)")
    return fmt


def s3_report_folder(name: str) -> datetime | None:
    """The time an S3 report folder (`YYYY-MM-DDTHH-MMZ`) names, or None for other folders (`data`, `hive`)."""
    if _S3_FOLDER.match(name) is None:
        return None
    try:
        return datetime.strptime(name, "%Y-%m-%dT%H-%MZ").replace(tzinfo=UTC)
    except ValueError:  # a month 13, a day 32
        return None


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{where}: not a valid inventory manifest: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where}: not a valid inventory manifest")
    return value


def _files(entries: Any, name: str, md5: str | None, where: str) -> tuple[DataFile, ...]:
    """A manifest's list of data files: each with its name and size (and MD5, where the provider gives one)."""
    try:
        return tuple(DataFile(str(e[name]), int(e["size"]), str(e[md5]) if md5 and e.get(md5) else None)
                     for e in entries)
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{where}: the manifest's file list is not valid (each needs {name} and size)") from None


def s3_report(manifest: bytes, checksum: bytes, where: str, bucket: str, folder_time: datetime) -> Report | None:
    """An S3 Inventory report from its manifest.json and manifest.checksum, or None when the checksum does
    not verify (a report still being written, or damaged). A manifest for another bucket is a usage error."""
    if checksum.strip().decode("ascii", "replace").lower() != hashlib.md5(manifest).hexdigest():
        return None
    data = _json(manifest, where)
    source = data.get("sourceBucket")
    if source != bucket:
        raise UsageError(f"{where}: the inventory is of bucket {source!r}, not {bucket!r}")
    fmt = _format(str(data.get("fileFormat", "")), where)
    columns = None
    if fmt == "csv":
        columns = tuple(c.strip() for c in str(data.get("fileSchema", "")).split(","))
        if not {"Key", "Size"} <= set(columns):
            raise UsageError(f"{where}: the inventory's fileSchema has no Key or Size")
    created = folder_time
    stamp = data.get("creationTimestamp")
    if isinstance(stamp, str) and stamp.isdigit():
        created = datetime.fromtimestamp(int(stamp) / 1000, tz=UTC)
    files = _files(data.get("files"), "key", "MD5checksum", where)
    return Report(manifest=where, created=created, format=fmt, files=files, columns=columns)


def gcs_report(manifest: bytes, where: str, folder: str, sizes: dict[str, int]) -> Report | None:
    """A GCS Storage Insights report from its manifest, or None while a shard it names is missing from the
    manifest's folder (`sizes`: the folder's object names and sizes). Shard names are relative to it."""
    data = _json(manifest, where)
    names = data.get("report_shards_file_names")
    if not isinstance(names, list) or not names:
        raise UsageError(f"{where}: the manifest names no report shards")
    prefix = f"{folder}/" if folder else ""
    paths = [str(n) if "/" in str(n) else prefix + str(n) for n in names]
    if any(p not in sizes for p in paths):
        return None
    try:
        created = datetime.fromisoformat(str(data.get("snapshot_time") or ""))
    except ValueError:
        raise UsageError(f"{where}: the manifest has no valid snapshot_time") from None
    fmt = "parquet" if all(p.endswith(".parquet") for p in paths) else "csv"
    return Report(manifest=where, created=created, format=fmt, files=tuple(DataFile(p, sizes[p]) for p in paths))


def azure_report(manifest: bytes, where: str) -> Report | None:
    """An Azure Blob Inventory run from its manifest, or None when the run did not succeed."""
    data = _json(manifest, where)
    if str(data.get("status", "")).lower() != "succeeded":
        return None
    rule = data.get("ruleDefinition") or {}
    fmt = _format(str(rule.get("format", "csv")), where)
    stamp = str(data.get("inventoryCompletionTime") or data.get("inventoryStartTime") or "")
    try:
        created = datetime.fromisoformat(stamp)
    except ValueError:
        raise UsageError(f"{where}: the manifest has no valid inventory time") from None
    files = _files(data.get("files"), "blob", None, where)
    return Report(manifest=where, created=created, format=fmt, files=files)


def announce(target: str, report: Report, max_age_days: float, now: datetime | None = None) -> None:
    """One line saying which report lists `target` and how old it is; a warning of its own when it is
    older than `max_age_days` (objects changed since are read as changed and taken up by the next scan)."""
    now = now or datetime.now(UTC)
    age = (now - report.created).total_seconds() / 86400
    stamp = report.created.strftime("%Y-%m-%d %H:%M UTC")
    if age > max_age_days:
        log.warning("%s: the inventory report of %s is %.1f days old (more than %g): objects changed since "
                    "it are read as changed, new ones are not listed", target, stamp, age, max_age_days)
    else:
        log.warning("%s: listed from the inventory report of %s (%.1f days old)", target, stamp, age)


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def rows(path: Path, report: Report, wanted: frozenset[str]) -> Iterator[list[dict[str, Any]]]:
    """The rows of one downloaded data file, a batch at a time, as dicts keyed by `canonical` column names
    (only the `wanted` ones). CSV values are strings; Parquet and ORC keep their types."""
    for batch in _arrow_batches(path, report, wanted):
        for start in range(0, batch.num_rows, _BATCH_ROWS):
            yield _dicts(batch.slice(start, _BATCH_ROWS))


def _arrow_batches(path: Path, report: Report, wanted: frozenset[str]) -> Iterator[Any]:
    """Arrow record batches of the `wanted` columns: a Parquet batch, an ORC stripe, a CSV block."""
    import pyarrow as pa

    if report.format == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        names = [n for n in parquet.schema_arrow.names if canonical(n) in wanted]
        yield from parquet.iter_batches(batch_size=_BATCH_ROWS, columns=names)
        return
    if report.format == "orc":
        from pyarrow import orc

        orc_file = orc.ORCFile(path)
        names = [n for n in orc_file.schema.names if canonical(n) in wanted]
        for stripe in range(orc_file.nstripes):
            yield orc_file.read_stripe(stripe, columns=names)
        return
    import pyarrow.csv as pacsv

    gz = is_gzip(path)
    columns, skip = (list(report.columns), 0) if report.columns else (_header(path, gz), 1)
    include = [c for c in columns if canonical(c) in wanted]
    read = pacsv.ReadOptions(column_names=columns, skip_rows=skip, block_size=1 << 20)
    # Every column as text: no type inference that a later block could contradict.
    convert = pacsv.ConvertOptions(include_columns=include, column_types={c: pa.string() for c in include},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    stream = pa.input_stream(str(path), compression="gzip" if gz else None)
    yield from pacsv.open_csv(stream, read_options=read, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                              convert_options=convert)


def _header(path: Path, gz: bool) -> list[str]:
    """A CSV's header row (its column names)."""
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def _dicts(batch: Any) -> list[dict[str, Any]]:
    names = [canonical(n) for n in batch.schema.names]
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


async def report_refs(report: Report, fetch: Callable[[DataFile, int, int], Awaitable[bytes]],
                      wanted: frozenset[str], convert: Callable[[dict[str, Any]], T | None]) -> AsyncIterator[T]:
    """What `convert` makes of each row of `report` (rows it returns None for are left out).

    Each data file is fetched into a temporary file in ranges of `FETCH_BYTES` (`fetch(file, start, end)`
    is one retried request: a data file of gigabytes never rides on one request's timeout), checked against
    the manifest's size and MD5 where it gives them, read a batch at a time off the event loop, and removed
    before the next file is fetched. A file or row that cannot be read ends the listing with an error
    naming it: skipping it would let the scan mark its objects gone."""
    try:
        import pyarrow as pa
    except ImportError:
        raise UsageError("reading inventory reports needs pyarrow: pip install 'tierscan[parquet]'") from None
    with tempfile.TemporaryDirectory(prefix="tierscan-inventory-") as folder:
        path = Path(folder) / "data"
        for data_file in report.files:
            where = f"{report.manifest}: data file {data_file.name}"
            await _fetch_file(data_file, fetch, path, where)
            batches = rows(path, report, wanted)
            while True:
                try:
                    batch = await asyncio.to_thread(next, batches, None)
                except (pa.ArrowException, ValueError, OSError) as exc:
                    raise UsageError(f"{where}: not a valid {report.format.upper()} file: {exc}") from None
                if batch is None:
                    break
                for row in batch:
                    try:
                        item = convert(row)
                    except (AttributeError, KeyError, TypeError, ValueError) as exc:
                        raise UsageError(f"{where}: a row is not valid ({type(exc).__name__}: {exc})") from None
                    if item is not None:
                        yield item
            path.unlink()


async def _fetch_file(data_file: DataFile, fetch: Callable[[DataFile, int, int], Awaitable[bytes]], path: Path,
                      where: str) -> None:
    digest = hashlib.md5()
    with path.open("wb") as sink:
        for start in range(0, data_file.size, FETCH_BYTES):
            end = min(data_file.size, start + FETCH_BYTES)
            chunk = await fetch(data_file, start, end)
            if len(chunk) != end - start:
                raise UsageError(f"{where}: shorter than the manifest says (replaced or damaged)")
            digest.update(chunk)
            sink.write(chunk)
    if data_file.md5 is not None and digest.hexdigest() != data_file.md5.lower():
        raise UsageError(f"{where}: does not match the manifest's MD5 (replaced or damaged)")


def truthy(value: Any) -> bool:
    """A boolean column's value: a bool (Parquet, ORC) or its text (CSV)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def falsy(value: Any) -> bool:
    """A boolean column that is there and false (an absent or empty one is neither)."""
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")

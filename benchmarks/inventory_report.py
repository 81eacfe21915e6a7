"""Write an S3 Inventory report into an S3-compatible store (moto), in the layout S3 publishes:
`DEST-PREFIX/SOURCE-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/manifest.json` and `manifest.checksum`, data files
under `DEST-PREFIX/SOURCE-BUCKET/CONFIG-ID/data/`, as gzip CSV (URL-encoded keys, no header), ORC or Parquet.

The scale benchmark lists a bucket of N objects from such a report without a LIST of the bucket:

    python benchmarks/inventory_report.py --endpoint http://127.0.0.1:PORT --bucket estate \\
        --dest inventory --objects 10000000 --format Parquet

writes N synthetic rows (sizes, ETags and times derived from the row number; no objects are created), a
data file per `--rows-per-file` rows, each built and uploaded before the next, so memory holds one file.
The tests and `benchmarks/inventory_scan.py` build reports from the rows of a real listing: `s3_rows` and
`put_s3_report` (S3 Inventory), `gcs_rows` and `put_gcs_report` (GCS Storage Insights inventory reports),
`azure_rows` and `put_azure_report` (Azure Blob Inventory).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import orc

# (CSV fileSchema name, ORC/Parquet column name, Arrow type)
FIELDS = (
    ("Bucket", "bucket", pa.string()),
    ("Key", "key", pa.string()),
    ("VersionId", "version_id", pa.string()),
    ("IsLatest", "is_latest", pa.bool_()),
    ("IsDeleteMarker", "is_delete_marker", pa.bool_()),
    ("Size", "size", pa.int64()),
    ("LastModifiedDate", "last_modified_date", pa.timestamp("ms", tz="UTC")),
    ("ETag", "e_tag", pa.string()),
    ("StorageClass", "storage_class", pa.string()),
    ("IsMultipartUploaded", "is_multipart_uploaded", pa.bool_()),
    ("IntelligentTieringAccessTier", "intelligent_tiering_access_tier", pa.string()),
)
_SCHEMA_TEXT = {
    "CSV": ", ".join(f[0] for f in FIELDS),
    "ORC": "struct<" + ",".join(f"{f[1]}:{_t}" for f, _t in zip(FIELDS, (
        "string", "string", "string", "boolean", "boolean", "bigint", "timestamp", "string", "string", "boolean",
        "string"), strict=True)) + ">",
    "Parquet": "message s3.inventory { " + " ".join(f"optional {f[1]};" for f in FIELDS) + " }",
}


def data_file(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """One data file of `rows` (dicts keyed by the CSV field names) in `fmt`: CSV, ORC or Parquet."""
    if fmt == "CSV":
        columns = {name: [_csv_text(name, r.get(name)) for r in rows] for name, _, _ in FIELDS}
        table = pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()})
        out = io.BytesIO()
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
        return gzip.compress(out.getvalue())
    table = pa.table({snake: pa.array([r.get(name) for r in rows], kind) for name, snake, kind in FIELDS})
    out = io.BytesIO()
    if fmt == "ORC":
        orc.write_table(table, out)
    else:
        pq.write_table(table, out)
    return out.getvalue()


def _csv_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name == "Key":
        return quote_plus(value, safe="")  # S3 URL-encodes keys in CSV reports
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


def put_s3_report(s3: Any, *, dest: str, prefix: str, bucket: str, config_id: str,
                  files: Iterable[list[dict[str, Any]]], fmt: str, when: datetime, manifest: bool = True,
                  checksum: bool = True) -> str:
    """Upload a report whose data files hold `files` (one list of rows each) and, unless told not to, its
    manifest.json and manifest.checksum; returns the report folder's key."""
    base = f"{prefix.strip('/')}/{bucket}/{config_id}".lstrip("/")
    extension = {"CSV": "csv.gz", "ORC": "orc", "Parquet": "parquet"}[fmt]
    listed = []
    for rows in files:
        body = data_file(rows, fmt)
        key = f"{base}/data/{uuid.uuid4()}.{extension}"
        s3.put_object(Bucket=dest, Key=key, Body=body)
        listed.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    folder = f"{base}/{when.strftime('%Y-%m-%dT%H-%MZ')}"
    document = json.dumps({
        "sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{dest}", "version": "2016-11-30",
        "creationTimestamp": str(int(when.timestamp() * 1000)), "fileFormat": fmt,
        "fileSchema": _SCHEMA_TEXT[fmt], "files": listed,
    }).encode()
    if manifest:
        s3.put_object(Bucket=dest, Key=f"{folder}/manifest.json", Body=document)
    if checksum:
        s3.put_object(Bucket=dest, Key=f"{folder}/manifest.checksum", Body=hashlib.md5(document).hexdigest().encode())
    return folder


def s3_rows(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Report rows for what a LIST of `bucket` shows now (what S3 Inventory would write)."""
    rows = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            rows.append({"Bucket": bucket, "Key": item["Key"], "IsLatest": True, "IsDeleteMarker": False,
                         "Size": item["Size"], "LastModifiedDate": item["LastModified"],
                         "ETag": item["ETag"].strip('"'), "StorageClass": item.get("StorageClass", "STANDARD"),
                         "IsMultipartUploaded": False})
    return rows


def table_bytes(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """Rows (dicts of column -> value) as a CSV with a header row (`csv`), or as Parquet: the GCS and Azure
    reports' data files."""
    table = pa.Table.from_pylist(rows)
    out = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_style="all_valid"))
    else:
        pq.write_table(table, out)
    return out.getvalue()


def azure_rows(service: Any, container: str) -> list[dict[str, Any]]:
    """Blob Inventory rows for what a listing of `container` shows now (Name holds the container)."""
    rows = []
    for blob in service.get_container_client(container).list_blobs():
        md5 = blob.content_settings.content_md5
        rows.append({"Name": f"{container}/{blob.name}", "Creation-Time": blob.creation_time.isoformat(),
                     "Last-Modified": blob.last_modified.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                     "Etag": blob.etag.strip('"'), "Content-Length": blob.size,
                     "Content-MD5": base64.b64encode(bytes(md5)).decode() if md5 else "",
                     "BlobType": "BlockBlob", "AccessTier": str(blob.blob_tier)})
    return rows


def put_azure_report(reports: Any, rule: str, rows: list[dict[str, Any]], fmt: str, when: datetime,
                     status: str = "Succeeded", manifest: bool = True) -> None:
    """One run of Blob Inventory rule `rule` into container client `reports`: `YYYY/MM/DD/HH-MM-SS/RULE/` holds
    the data file and, unless told not to, `RULE-manifest.json` with the run's `status`."""
    folder = when.strftime("%Y/%m/%d/%H-%M-%S") + f"/{rule}"
    name = f"{folder}/{rule}_1.{fmt}"
    body = table_bytes(rows, fmt)
    reports.upload_blob(name, body, overwrite=True)
    if manifest:
        document = {"destinationContainer": reports.container_name, "files": [{"blob": name, "size": len(body)}],
                    "inventoryCompletionTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "inventoryStartTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ruleDefinition": {"format": fmt, "objectType": "blob", "schedule": "daily",
                                       "schemaFields": list(rows[0])},
                    "ruleName": rule, "status": status, "version": "1.0"}
        reports.upload_blob(f"{folder}/{rule}-manifest.json", json.dumps(document).encode(), overwrite=True)


def gcs_rows(bucket: Any) -> list[dict[str, Any]]:
    """Inventory report rows for what a listing of `bucket` shows now (values as the JSON API gives them)."""
    rows = []
    for blob in bucket.list_blobs():
        item = blob._properties
        rows.append({"project": "test", "bucket": bucket.name, "name": item["name"], "size": str(item["size"]),
                     "updated": item["updated"], "storageClass": item.get("storageClass", "STANDARD"),
                     "etag": item.get("etag", ""), "crc32c": item.get("crc32c", ""), "md5Hash": item.get("md5Hash", ""),
                     "generation": str(item.get("generation", "")), "contentType": item.get("contentType", "")})
    return rows


def put_gcs_report(dest: Any, folder: str, config_id: str, rows: list[dict[str, Any]], fmt: str, when: datetime,
                   shards: int = 2, drop_shard: bool = False) -> None:
    """One Storage Insights report snapshot into bucket `dest` under `folder`: `shards` data files and the
    manifest naming them (`drop_shard`: the last file missing, as while the report is still being written)."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    names = [f"{config_id}_{stamp}_{n}.{fmt}" for n in range(shards)]
    for n, name in enumerate(names):
        if not (drop_shard and n == shards - 1):
            dest.blob(f"{folder}/{name}").upload_from_string(table_bytes(rows[n::shards], fmt))
    manifest = {"report_config": {"name": config_id}, "records_processed": len(rows), "snapshot_time": stamp,
                "shard_count": shards, "report_shards_file_names": names}
    dest.blob(f"{folder}/{config_id}_{stamp}_manifest.json").upload_from_string(json.dumps(manifest))


def synthetic_rows(bucket: str, count: int, per_file: int) -> Iterator[list[dict[str, Any]]]:
    """`count` rows of made-up objects, `per_file` a list."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, count, per_file):
        yield [{"Bucket": bucket, "Key": f"photos/{i % 1000:03d}/{i:010d}.jpg", "IsLatest": True,
                "IsDeleteMarker": False, "Size": 20_000 + i % 50_000,
                "LastModifiedDate": start + timedelta(seconds=i),
                "ETag": hashlib.md5(i.to_bytes(8, "big")).hexdigest(), "StorageClass": "STANDARD",
                "IsMultipartUploaded": False}
               for i in range(first, min(count, first + per_file))]


def main() -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True, help="the source bucket the report describes")
    parser.add_argument("--dest", required=True, help="the destination bucket (created if missing)")
    parser.add_argument("--prefix", default="inventory")
    parser.add_argument("--config-id", default="daily")
    parser.add_argument("--objects", type=int, required=True)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("CSV", "ORC", "Parquet"), default="CSV")
    args = parser.parse_args()
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if args.dest not in existing:
        s3.create_bucket(Bucket=args.dest)
    folder = put_s3_report(s3, dest=args.dest, prefix=args.prefix, bucket=args.bucket, config_id=args.config_id,
                           files=synthetic_rows(args.bucket, args.objects, args.rows_per_file), fmt=args.format,
                           when=datetime.now(UTC))
    print(f"s3://{args.dest}/{folder.rpartition('/')[0]}")


if __name__ == "__main__":
    main()

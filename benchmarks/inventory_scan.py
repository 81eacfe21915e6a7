"""Scan a bucket through its inventory report on each emulator, counting the requests the scan makes.

    python benchmarks/inventory_scan.py [--objects N] [--providers s3,gcs,azure]

For each provider: starts its emulator (moto, fake-gcs-server, Azurite), uploads N small JPEGs (a quarter of
them byte copies of another, a tenth with GPS and a camera serial), writes the provider's inventory report of
the bucket in each of its formats (S3 Inventory CSV, ORC and Parquet; GCS Storage Insights CSV and Parquet;
Azure Blob Inventory CSV and Parquet), then replaces one object in a hundred, as happens between a report and
a scan. Each scan is `tierscan scan TARGET --no-perceptual` in a child process with a fresh catalog, through
a logging proxy: first one that lists the bucket, then one per report format. Printed per scan: LISTs of the
data bucket (0 when the listing comes from a report), LISTs of the report's location, reads of data objects
and of report files, the objects read as changed since the report (left for the next scan), and whether every
other object's record equals the list-based scan's. A figure-printing script, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO / "tests"))  # the emulators and the logging proxy

from emulators import AZURITE_ACCOUNT, Emulator, azurite_connection_string, start_azurite, start_fakegcs, start_moto  # noqa: E402
from faultproxy import FaultProxy, Request  # noqa: E402
from inventory_report import azure_rows, gcs_rows, put_azure_report, put_gcs_report, put_s3_report, s3_rows  # noqa: E402
from scale import jpeg, templates  # noqa: E402

from tierscan.scanner.scan.catalog import Catalog  # noqa: E402

DATA, REPORTS = "estate", "estate-reports"
REPORT_AGE = timedelta(hours=6)


@dataclass
class Provider:
    """One store: how to fill it, write its reports, point a child process at it and read its requests."""

    name: str
    start: Callable[[Path], Emulator]
    formats: tuple[str, ...]
    target: str
    bucket_key: str  # the config's `buckets:` entry
    create: Callable[[Emulator], None]  # the data and report buckets
    upload: Callable[[Emulator, dict[str, bytes]], None]
    write_report: Callable[[Emulator, str, datetime], dict[str, str]]  # -> the bucket's `inventory:` settings
    env: Callable[[str], dict[str, str]]  # proxy endpoint -> the child's environment
    kind: Callable[[Request], str]  # list-data, list-report, read-data, read-report or other


def _path(request: Request) -> tuple[str, str]:
    path, _, query = request.target.partition("?")
    return path.rstrip("/"), query


# ---- S3 (moto) -------------------------------------------------------------------------------------

def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _s3_create(emu: Emulator) -> None:
    for bucket in (DATA, REPORTS):
        _s3(emu.endpoint).create_bucket(Bucket=bucket)


def _put_all(put: Callable[[str, bytes], object], objects: dict[str, bytes]) -> None:
    """`put(key, body)` for every object, eight at a time."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: put(*item), objects.items()))


def _s3_upload(emu: Emulator, objects: dict[str, bytes]) -> None:
    s3 = _s3(emu.endpoint)
    _put_all(lambda key, body: s3.put_object(Bucket=DATA, Key=key, Body=body), objects)


def _s3_report(emu: Emulator, fmt: str, when: datetime) -> dict[str, str]:
    s3 = _s3(emu.endpoint)
    rows = s3_rows(s3, DATA)
    files = [rows[i:i + 400] for i in range(0, len(rows), 400)]
    put_s3_report(s3, dest=REPORTS, prefix=fmt.lower(), bucket=DATA, config_id="daily", files=files, fmt=fmt,
                  when=when)
    return {"uri": f"s3://{REPORTS}/{fmt.lower()}/{DATA}/daily"}


def _s3_kind(request: Request) -> str:
    path, query = _path(request)
    parts = path.strip("/").split("/", 1)
    settings = ("location", "encryption", "versioning", "tagging", "policy", "lifecycle", "inventory")
    if len(parts) == 1 and request.method == "GET" and not query.startswith(settings):
        return {DATA: "list-data", REPORTS: "list-report"}.get(parts[0], "other")
    if len(parts) == 2:
        return {DATA: "read-data", REPORTS: "read-report"}.get(parts[0], "other")
    return "other"


# ---- GCS (fake-gcs-server) -------------------------------------------------------------------------

def _gcs(endpoint: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})


def _gcs_create(emu: Emulator) -> None:
    for bucket in (DATA, REPORTS):
        _gcs(emu.endpoint).create_bucket(bucket)


def _gcs_upload(emu: Emulator, objects: dict[str, bytes]) -> None:
    bucket = _gcs(emu.endpoint).bucket(DATA)
    _put_all(lambda key, body: bucket.blob(key).upload_from_string(body), objects)


def _gcs_report(emu: Emulator, fmt: str, when: datetime) -> dict[str, str]:
    gcs = _gcs(emu.endpoint)
    put_gcs_report(gcs.bucket(REPORTS), f"{fmt}/{when:%Y-%m-%d}", fmt, gcs_rows(gcs.bucket(DATA)), fmt, when)
    return {"uri": f"gs://{REPORTS}/{fmt}"}


def _gcs_kind(request: Request) -> str:
    path, _ = _path(request)
    for bucket, what in ((DATA, "data"), (REPORTS, "report")):
        if path.endswith(f"/b/{bucket}/o"):
            return f"list-{what}"
        if f"/b/{bucket}/o/" in path:
            return f"read-{what}"
    return "other"


# ---- Azure Blob (Azurite) --------------------------------------------------------------------------

def _azure(endpoint: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite_connection_string(endpoint))


def _azure_create(emu: Emulator) -> None:
    for container in (DATA, REPORTS):
        _azure(emu.endpoint).create_container(container)


def _azure_upload(emu: Emulator, objects: dict[str, bytes]) -> None:
    data = _azure(emu.endpoint).get_container_client(DATA)
    _put_all(lambda key, body: data.upload_blob(key, body, overwrite=True), objects)


def _azure_report(emu: Emulator, fmt: str, when: datetime) -> dict[str, str]:
    service = _azure(emu.endpoint)
    put_azure_report(service.get_container_client(REPORTS), fmt, azure_rows(service, DATA), fmt, when)
    return {"uri": f"az://{AZURITE_ACCOUNT}/{REPORTS}", "rule": fmt}


def _azure_kind(request: Request) -> str:
    path, query = _path(request)
    parts = path.strip("/").split("/")  # account, container[, blob...]
    what = {DATA: "data", REPORTS: "report"}.get(parts[1] if len(parts) > 1 else "")
    if what is None:
        return "other"
    if len(parts) == 2 and "comp=list" in query:
        return f"list-{what}"
    return f"read-{what}" if len(parts) > 2 else "other"


PROVIDERS = {
    "s3": Provider("s3", lambda log: start_moto(log_dir=log), ("CSV", "ORC", "Parquet"), f"s3://{DATA}", DATA,
                   _s3_create, _s3_upload, _s3_report,
                   lambda at: {"AWS_ENDPOINT_URL": at, "AWS_ACCESS_KEY_ID": "testing",
                               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                               "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"},
                   _s3_kind),
    "gcs": Provider("gcs", lambda log: start_fakegcs(log_dir=log), ("csv", "parquet"), f"gs://{DATA}", DATA,
                    _gcs_create, _gcs_upload, _gcs_report, lambda at: {"STORAGE_EMULATOR_HOST": at}, _gcs_kind),
    "azure": Provider("azure", lambda log: start_azurite(log_dir=log), ("csv", "parquet"),
                      f"az://{AZURITE_ACCOUNT}/{DATA}", f"{AZURITE_ACCOUNT}/{DATA}",
                      _azure_create, _azure_upload, _azure_report,
                      lambda at: {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(at),
                                  "AZURE_STORAGE_REGION": "eastasia"},
                      _azure_kind),
}


def estate(n: int) -> dict[str, bytes]:
    """N small JPEGs under photos/: a quarter byte copies of an earlier one, a tenth with GPS and a serial."""
    plain, personal = templates()
    rng = random.Random(n)
    objects: dict[str, bytes] = {}
    for i in range(n):
        seed = rng.randrange(i) if i and rng.random() < 0.25 else i
        objects[f"photos/{i // 100:03d}/img-{i:06d}.jpg"] = jpeg(personal if seed % 10 == 0 else plain, seed)
    return objects


def _config(path: Path, provider: Provider, inventory: dict[str, str] | None) -> Path:
    lines = ["buckets:", f"  {provider.bucket_key}:"]
    if inventory:
        lines += ["    inventory:", *(f"      {key}: {value}" for key, value in inventory.items())]
    else:
        lines[-1] += " {}"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class ScanResult:
    wall: float
    requests: Counter[str]
    records: dict[str, dict[str, Any]]
    said: list[str]  # what the scan said about the report


def _scan(provider: Provider, emu: Emulator, config: Path, db: Path) -> ScanResult:
    proxy = FaultProxy(emu.endpoint).start()
    try:
        env = {**os.environ, **provider.env(proxy.endpoint)}
        command = [sys.executable, "-m", "tierscan.scanner", "scan", provider.target, "--config", str(config),
                   "--db", str(db), "--no-perceptual", "--format", "none"]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        requests = Counter(provider.kind(r) for r in proxy.requests)
    finally:
        proxy.stop()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with Catalog(db) as catalog:
        records = {r.key: r.model_dump() for r in catalog.records()}
    said = [line.strip() for line in done.stderr.splitlines() if "inventory report" in line]
    return ScanResult(wall, requests, records, said)


def bench(provider: Provider, n: int, base: Path) -> None:
    objects = estate(n)
    emu = provider.start(base)
    try:
        provider.create(emu)
        provider.upload(emu, objects)
        when = datetime.now(UTC) - REPORT_AGE
        inventories = {fmt: provider.write_report(emu, fmt, when) for fmt in provider.formats}
        changed = {key: objects[key] + b"changed since the report" for key in list(objects)[1::100]}
        provider.upload(emu, changed)  # replaced after the reports were written
        old_sha = {key: hashlib.sha256(objects[key]).hexdigest() for key in changed}
        listed = _scan(provider, emu, _config(base / "list.yaml", provider, None), base / f"{provider.name}-list.db")
        _row(provider.name, "LIST", n, listed, "", "")
        for fmt, inventory in inventories.items():
            got = _scan(provider, emu, _config(base / f"{fmt}.yaml", provider, inventory),
                        base / f"{provider.name}-{fmt}.db")
            # A changed object is either left for the next scan (its read, pinned to the listed version, found
            # it gone) or, when the report's checksum matches a copy's, fingerprinted as listed without a read.
            left = sum(got.records[k]["status"] != "fingerprinted" for k in changed)
            as_listed = sum(got.records[k]["sha256"] == old_sha[k] for k in changed)
            wrong = len(changed) - left - as_listed  # the new bytes recorded under the old listing
            same = all(got.records.get(k) == r for k, r in listed.records.items() if k not in changed)
            _row(provider.name, fmt, n, got, f"{left} + {as_listed}" + (f" ({wrong} WRONG)" if wrong else ""),
                 "yes" if same and len(got.records) == len(listed.records) else "NO")
            for line in got.said[:2]:
                print(f"    {line}")
    finally:
        emu.stop()


def _row(provider: str, source: str, n: int, got: ScanResult, left: str, same: str) -> None:
    r = got.requests
    print(f"{provider:<6} {source:<8} {n:>8} {r['list-data']:>11} {r['list-report']:>13} {r['read-data']:>10} "
          f"{r['read-report']:>12} {sum(r.values()):>9} {left:>26} {same:>12} {got.wall:>7.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000, help="objects in the data bucket (default 1000)")
    parser.add_argument("--providers", default="s3,gcs,azure", help="comma-separated, of s3, gcs, azure")
    args = parser.parse_args()
    print(f"{'store':<6} {'listing':<8} {'objects':>8} {'LISTs data':>11} {'LISTs report':>13} "
          f"{'data reads':>10} {'report reads':>12} {'requests':>9} {'changed: left + as listed':>26} "
          f"{'rest as LIST':>12} {'wall s':>7}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tierscan-inventory-") as tmp:
        for name in args.providers.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            bench(PROVIDERS[name], args.objects, folder)


if __name__ == "__main__":
    main()

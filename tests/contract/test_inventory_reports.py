"""Listing from inventory reports instead of LIST, against the emulators: reports written with pyarrow in each
provider's documented layout list the same objects, with the same fingerprints, as a LIST does, with no LIST
of the data bucket (every request goes through a logging proxy). Also: an incomplete newest report is
passed over, an old one is flagged, awkward keys round-trip, shards split the listing, and an object changed
since the report is recorded for the next scan instead of being read as something else."""

from __future__ import annotations

import asyncio
import gzip
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from emulators import Emulator
from faultproxy import FaultProxy

from tierscan.connectors import inventory_reports
from tierscan.connectors.base import Connector
from tierscan.connectors.s3 import S3Connector
from tierscan.scanner.core.config import BucketSettings, Config, InventorySettings, ScanSettings
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import ObjectRef
from tierscan.scanner.core.shard import Shard
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

from .conftest import FAST_RETRY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from inventory_report import azure_rows, gcs_rows, put_azure_report, put_gcs_report, put_s3_report, s3_rows

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "exif"
PHOTOS = [(DATA / name).read_bytes() for name in ("exifpy__Canon_40D.jpg", "exifpy__DSCN0010.jpg")]
# Keys a URL-encoded CSV must give back exactly: spaces, unicode, percent signs, plus signs and an encoded-looking
# literal (moto refuses keys with a newline).
KEYS = {"plain.jpg": PHOTOS[0], "with space.jpg": PHOTOS[1], "ünï/cødé 写真.jpg": PHOTOS[0], "100% sure.jpg": PHOTOS[1],
        "a+b=c&d.jpg": PHOTOS[0], "dir/%20literal%2F.jpg": PHOTOS[1],
        "notes/readme.txt": b"not an image"}
NOW = datetime.now(UTC)


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _estate(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)
    for key, body in KEYS.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


def _config(bucket: str, uri: str, **inventory: Any) -> Config:
    return Config(scan=ScanSettings(perceptual=False),
                  buckets={bucket: BucketSettings(inventory=InventorySettings(uri=uri, **inventory))})


async def _listing(conn: Connector, target: str) -> list[ObjectRef]:
    from tierscan.connectors.base import parse_target

    async with conn:
        return sorted([ref async for ref in conn.list_objects(parse_target(target))], key=lambda r: r.uri)


def _bucket_lists(proxy: FaultProxy, bucket: str) -> list[str]:
    """LIST requests the proxy saw on `bucket` (path style: GET /bucket?... with no key)."""
    return [r.target for r in proxy.requests
            if r.method == "GET" and r.target.split("?")[0].rstrip("/") == f"/{bucket}" and "?" in r.target
            and "location" not in r.target.split("?")[1] and "encryption" not in r.target.split("?")[1]
            and "versioning" not in r.target.split("?")[1]]


@pytest.fixture
def moto(emulators: dict[str, Emulator], aws_env: None) -> Iterator[str]:
    yield emulators["moto"].endpoint


@pytest.mark.parametrize("fmt", ["CSV", "ORC", "Parquet"])
def test_s3_report_lists_what_a_list_lists_without_listing_the_bucket(moto: str, fmt: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_reports, "FETCH_BYTES", 1000)  # data files come in several ranges
    s3 = _s3(moto)
    bucket, dest = f"inv-src-{fmt.lower()}", f"inv-dest-{fmt.lower()}"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    rows = s3_rows(s3, bucket)
    put_s3_report(s3, dest=dest, prefix="reports", bucket=bucket, config_id="daily", files=[rows[:3], rows[3:]],
                  fmt=fmt, when=NOW - timedelta(hours=3))
    uri = f"s3://{dest}/reports/{bucket}/daily"

    listed = asyncio.run(_listing(S3Connector(Config(), endpoint_url=moto, retry=FAST_RETRY), f"s3://{bucket}"))
    proxy = FaultProxy(moto).start()
    try:
        conn = S3Connector(_config(bucket, uri), endpoint_url=proxy.endpoint, retry=FAST_RETRY)
        from_report = asyncio.run(_listing(conn, f"s3://{bucket}"))
        assert _bucket_lists(proxy, bucket) == []
        assert _bucket_lists(proxy, dest)  # the report folders were found by a LIST of the destination
    finally:
        proxy.stop()
    assert conn.requests["list"] == 0
    assert [r.key for r in from_report] == sorted(KEYS)
    assert from_report == listed  # uri, size, ETag, modified time, class, region, checksums: all equal


def test_s3_scan_through_a_report_fingerprints_as_a_list_based_scan(moto: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    s3 = _s3(moto)
    bucket, dest = "inv-src-scan", "inv-dest-scan"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="cfg", files=[s3_rows(s3, bucket)], fmt="CSV",
                  when=NOW - timedelta(hours=1))

    def scan(config: Config, name: str) -> list[dict[str, Any]]:
        with Catalog(tmp_path / name) as catalog:
            asyncio.run(run_scan(config, catalog, [f"s3://{bucket}"]))
            return [r.model_dump() for r in catalog.records()]

    by_list = scan(Config(scan=ScanSettings(perceptual=False)), "list.db")
    by_report = scan(_config(bucket, f"s3://{dest}/{bucket}/cfg"), "report.db")
    assert by_report == by_list
    assert {r["status"] for r in by_report} == {"fingerprinted", "skipped"}
    assert len({r["sha256"] for r in by_report if r["key"].endswith(".jpg")}) == 2  # the two photos


def test_s3_newest_incomplete_reports_are_passed_over(moto: str, caplog: pytest.LogCaptureFixture) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-newest", "inv-dest-newest"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    rows = s3_rows(s3, bucket)
    ghost = {**rows[0], "Key": "only-in-the-broken-report.jpg"}
    common = {"dest": dest, "prefix": "p", "bucket": bucket, "config_id": "c", "fmt": "Parquet"}
    put_s3_report(s3, **common, files=[rows], when=NOW - timedelta(days=2))
    put_s3_report(s3, **common, files=[rows[:1]], when=NOW - timedelta(days=3))  # older, complete
    put_s3_report(s3, **common, files=[[*rows, ghost]], when=NOW - timedelta(days=1), checksum=False)
    put_s3_report(s3, **common, files=[[*rows, ghost]], when=NOW - timedelta(hours=1), manifest=False)
    caplog.set_level(logging.WARNING, logger="tierscan")
    conn = S3Connector(_config(bucket, f"s3://{dest}/p/{bucket}/c"), endpoint_url=moto, retry=FAST_RETRY)
    listed = asyncio.run(_listing(conn, f"s3://{bucket}"))
    assert sorted(r.key for r in listed) == sorted(KEYS)
    passed = [m for m in caplog.messages if "incomplete inventory report" in m]
    assert len(passed) == 2
    day = (NOW - timedelta(days=2)).strftime("%Y-%m-%d")
    assert any(f"listed from the inventory report of {day}" in m for m in caplog.messages)


def test_s3_report_older_than_the_limit_is_flagged(moto: str, caplog: pytest.LogCaptureFixture) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-old", "inv-dest-old"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    old = NOW - timedelta(days=30)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="weekly", files=[s3_rows(s3, bucket)],
                  fmt="CSV", when=old)
    caplog.set_level(logging.WARNING, logger="tierscan")
    conn = S3Connector(_config(bucket, f"s3://{dest}/{bucket}/weekly", max_age_days=7), endpoint_url=moto,
                       retry=FAST_RETRY)
    assert len(asyncio.run(_listing(conn, f"s3://{bucket}"))) == len(KEYS)
    flagged = [m for m in caplog.messages if "days old (more than 7)" in m]
    assert len(flagged) == 1 and old.strftime("%Y-%m-%d") in flagged[0]


def test_s3_shards_split_a_report_without_overlap(moto: str) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-shards", "inv-dest-shards"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    rows = s3_rows(s3, bucket)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="c", files=[rows[:2], rows[2:5], rows[5:]],
                  fmt="ORC", when=NOW)
    config = _config(bucket, f"s3://{dest}/{bucket}/c")
    shares = []
    for index in range(3):
        conn = S3Connector(config, endpoint_url=moto, retry=FAST_RETRY)
        conn.inventory_shard = Shard(index, 3)
        share = asyncio.run(_listing(conn, f"s3://{bucket}"))
        assert all(Shard(index, 3).owns(r.uri) for r in share)
        shares.append({r.uri for r in share})
    assert sum(len(s) for s in shares) == len(KEYS)
    assert set().union(*shares) == {f"s3://{bucket}/{key}" for key in KEYS}


def test_s3_prefix_target_takes_its_keys_from_the_report(moto: str) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-prefix", "inv-dest-prefix"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="c", files=[s3_rows(s3, bucket)], fmt="CSV",
                  when=NOW)
    conn = S3Connector(_config(bucket, f"s3://{dest}/{bucket}/c"), endpoint_url=moto, retry=FAST_RETRY)
    listed = asyncio.run(_listing(conn, f"s3://{bucket}/ünï/"))
    assert [r.key for r in listed] == ["ünï/cødé 写真.jpg"]


def test_s3_object_changed_since_the_report_is_left_for_the_next_scan(moto: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    s3 = _s3(moto)
    bucket, dest = "inv-src-changed", "inv-dest-changed"
    _estate(s3, bucket)
    s3.put_object(Bucket=bucket, Key="solo.jpg", Body=PHOTOS[0] + b"trailer")  # no copy to take a fingerprint from
    s3.create_bucket(Bucket=dest)
    common = {"dest": dest, "prefix": "", "bucket": bucket, "config_id": "c", "fmt": "CSV"}
    put_s3_report(s3, **common, files=[s3_rows(s3, bucket)], when=NOW - timedelta(days=1))
    s3.put_object(Bucket=bucket, Key="solo.jpg", Body=PHOTOS[1])  # replaced after the report
    config = _config(bucket, f"s3://{dest}/{bucket}/c")
    uri = f"s3://{bucket}/solo.jpg"

    def status(catalog: Catalog) -> tuple[str, int, str | None]:
        [record] = [r for r in catalog.records() if r.uri == uri]
        return record.status, record.size, record.reason

    with Catalog(tmp_path / "c.db") as catalog:
        asyncio.run(run_scan(config, catalog, [f"s3://{bucket}"]))
        state, size, reason = status(catalog)
        assert (state, size) == ("failed", len(PHOTOS[0]) + 7)  # not fingerprinted as the other bytes
        assert reason is not None and "PreconditionFailed" in reason  # the read asked for the listed ETag
        put_s3_report(s3, **common, files=[s3_rows(s3, bucket)], when=NOW)  # the next report sees the change
        asyncio.run(run_scan(config, catalog, [f"s3://{bucket}"]))
        assert status(catalog)[:2] == ("fingerprinted", len(PHOTOS[1]))


# ---- Azure Blob Inventory (Azurite) ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_azure_inventory_lists_what_a_list_lists_without_listing_the_container(emulators: dict[str, Emulator],
                                                                               fmt: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_reports, "FETCH_BYTES", 1000)  # data files come in several ranges
    from azure.storage.blob import BlobServiceClient
    from emulators import AZURITE_ACCOUNT, azurite_connection_string

    from tierscan.connectors.azure import AzureConnector

    endpoint = emulators["azurite"].endpoint
    service = BlobServiceClient.from_connection_string(azurite_connection_string(endpoint))
    container, dest = f"inv-az-{fmt}", f"inv-az-reports-{fmt}"
    data = service.create_container(container)
    for key, body in {**KEYS, "line\nbreak.jpg": PHOTOS[0]}.items():
        data.upload_blob(key, body)
    reports = service.create_container(dest)
    rows = azure_rows(service, container)
    other = {**rows[0], "Name": f"other-{container}/plain.jpg"}  # the inventory covers the whole account
    put_azure_report(reports, "daily", [*rows, other], fmt, NOW - timedelta(days=1))
    put_azure_report(reports, "daily", [*rows, {**rows[0], "Name": f"{container}/ghost.jpg"}], fmt,
                   NOW - timedelta(hours=2), status="Running")
    put_azure_report(reports, "daily", rows, fmt, NOW - timedelta(hours=1), manifest=False)
    target = f"az://{AZURITE_ACCOUNT}/{container}"
    config = Config(buckets={f"{AZURITE_ACCOUNT}/{container}": BucketSettings(
        inventory=InventorySettings(uri=f"az://{AZURITE_ACCOUNT}/{dest}", rule="daily"))})

    def connector(cfg: Config, at: str) -> AzureConnector:
        return AzureConnector(cfg, connection_string=azurite_connection_string(at), region="eastasia", retry=FAST_RETRY)

    listed = asyncio.run(_listing(connector(Config(), endpoint), target))
    proxy = FaultProxy(endpoint).start()
    try:
        conn = connector(config, proxy.endpoint)
        from_report = asyncio.run(_listing(conn, target))
        lists = [r.target for r in proxy.requests if "comp=list" in r.target]
    finally:
        proxy.stop()
    assert lists and all(t.startswith(f"/{AZURITE_ACCOUNT}/{dest}?") for t in lists)  # only the destination
    assert conn.requests["list"] == 0
    assert sorted(r.key for r in from_report) == sorted([*KEYS, "line\nbreak.jpg"])  # the newest succeeded run
    assert from_report == listed


# ---- GCS Storage Insights inventory reports (fake-gcs-server) -------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_gcs_inventory_lists_what_a_list_lists_without_listing_the_bucket(emulators: dict[str, Emulator],
                                                                          fmt: str) -> None:
    from tierscan.connectors.gcs import GCSConnector

    from .conftest import gcs_client

    endpoint = emulators["fakegcs"].endpoint
    gcs = gcs_client(endpoint)
    name, dest_name = f"inv-gcs-{fmt}", f"inv-gcs-reports-{fmt}"
    bucket = gcs.create_bucket(name)
    for key, body in {**KEYS, "line\nbreak.jpg": PHOTOS[0]}.items():
        bucket.blob(key).upload_from_string(body)
    dest = gcs.create_bucket(dest_name)
    rows = gcs_rows(bucket)
    day = NOW - timedelta(days=1)
    put_gcs_report(dest, f"cfg/{day:%Y-%m-%d}", "cfg", rows, fmt, day)
    put_gcs_report(dest, f"cfg/{NOW:%Y-%m-%d}", "cfg", [*rows, {**rows[0], "name": "ghost.jpg"}], fmt, NOW,
                    drop_shard=True)  # still being written
    config = Config(buckets={name: BucketSettings(inventory=InventorySettings(uri=f"gs://{dest_name}/cfg"))})

    listed = asyncio.run(_listing(GCSConnector(Config(), api_root=endpoint, retry=FAST_RETRY), f"gs://{name}"))
    proxy = FaultProxy(endpoint).start()
    try:
        conn = GCSConnector(config, api_root=proxy.endpoint, retry=FAST_RETRY)
        from_report = asyncio.run(_listing(conn, f"gs://{name}"))
        lists = [r.target.split("?")[0] for r in proxy.requests if r.target.split("?")[0].endswith("/o")]
    finally:
        proxy.stop()
    assert lists and set(lists) == {f"/storage/v1/b/{dest_name}/o"}  # only the destination was listed
    assert conn.requests["list"] == 0
    assert sorted(r.key for r in from_report) == sorted([*KEYS, "line\nbreak.jpg"])
    assert from_report == listed


def test_sharded_scans_through_a_report_merge_into_the_one_process_result(moto: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.scanner.scan.merge import merge_catalogs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    s3 = _s3(moto)
    bucket, dest = "inv-src-merge", "inv-dest-merge"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="c", files=[s3_rows(s3, bucket)], fmt="Parquet",
                  when=NOW)
    config = _config(bucket, f"s3://{dest}/{bucket}/c")
    parts = []
    for index in range(2):
        shard = Shard(index, 2)
        parts.append(tmp_path / shard.part_name)
        with Catalog(parts[-1]) as catalog:
            asyncio.run(run_scan(config, catalog, [f"s3://{bucket}"], shard=shard))
            uris = [r.uri for r in catalog.records()]
        assert uris and all(shard.owns(u) for u in uris)  # each shard lists only its share of the report
    with Catalog(tmp_path / "merged.db") as merged:
        merge_catalogs(parts, merged, config)
        by_shards = [r.model_dump() for r in merged.records()]
        groups = [sorted(m.uri for m in g.members) for g in merged.groups()]
    with Catalog(tmp_path / "one.db") as one:
        asyncio.run(run_scan(config, one, [f"s3://{bucket}"]))
        assert by_shards == [r.model_dump() for r in one.records()]
        assert groups == [sorted(m.uri for m in g.members) for g in one.groups()]
    assert len(groups) == 2


@pytest.mark.parametrize("entry", ["{uri: http://example.com/x}", "{uri: s3://d/p, max_age_days: 0}",
                                   "{uri: s3://d/p, shards: 3}"])
def test_a_bad_inventory_setting_is_refused_with_its_line(tmp_path: Path, entry: str) -> None:
    from tierscan.scanner.core.config import load_config

    path = tmp_path / "tierscan.yaml"
    path.write_text(f"buckets:\n  photos:\n    region: ap-east-1\n    inventory: {entry}\n")
    with pytest.raises(UsageError, match=r"tierscan.yaml:4: buckets\.photos\.inventory"):
        load_config(path)


@pytest.mark.parametrize(("fmt", "damage", "message"), [
    ("Parquet", lambda body: b"PAR1" + b"\0" * 64 + b"PAR1", "not a valid PARQUET file"),
    ("ORC", lambda body: b"ORC" + b"\x01" * 40, "not a valid ORC file"),
    ("CSV", lambda body: gzip.compress(b'"b","k","","true","false","twelve","2026-01-01T00:00:00.000Z","e","STANDARD",'
                                       b'"false",""\n'), "a row is not valid"),
])
def test_s3_damaged_report_ends_the_listing_with_an_error_naming_the_file(moto: str, fmt: str, damage: Any,
                                                                          message: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import inventory_report

    s3 = _s3(moto)
    bucket, dest = f"inv-src-bad-{fmt.lower()}", f"inv-dest-bad-{fmt.lower()}"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    real = inventory_report.data_file
    monkeypatch.setattr(inventory_report, "data_file", lambda rows, f: damage(real(rows, f)))
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="c", files=[s3_rows(s3, bucket)], fmt=fmt,
                  when=NOW)
    conn = S3Connector(_config(bucket, f"s3://{dest}/{bucket}/c"), endpoint_url=moto, retry=FAST_RETRY)
    with pytest.raises(UsageError, match=message) as caught:
        asyncio.run(_listing(conn, f"s3://{bucket}"))
    assert f"s3://{dest}/{bucket}/c/" in str(caught.value) and "/data/" in str(caught.value)


def test_s3_data_file_replaced_after_its_manifest_is_refused(moto: str) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-replaced", "inv-dest-replaced"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    rows = s3_rows(s3, bucket)
    put_s3_report(s3, dest=dest, prefix="", bucket=bucket, config_id="c", files=[rows], fmt="Parquet", when=NOW)
    [data_key] = [o["Key"] for o in s3.list_objects_v2(Bucket=dest, Prefix=f"{bucket}/c/data/")["Contents"]]
    body = s3.get_object(Bucket=dest, Key=data_key)["Body"].read()
    s3.put_object(Bucket=dest, Key=data_key, Body=body[:-8] + b"\0" * 8)  # same size, other bytes
    conn = S3Connector(_config(bucket, f"s3://{dest}/{bucket}/c"), endpoint_url=moto, retry=FAST_RETRY)
    with pytest.raises(UsageError, match="does not match the manifest's MD5"):
        asyncio.run(_listing(conn, f"s3://{bucket}"))


def test_s3_gives_up_after_the_newest_incomplete_reports(moto: str) -> None:
    s3 = _s3(moto)
    bucket, dest = "inv-src-give-up", "inv-dest-give-up"
    _estate(s3, bucket)
    s3.create_bucket(Bucket=dest)
    common = {"dest": dest, "prefix": "", "bucket": bucket, "config_id": "c", "fmt": "CSV"}
    put_s3_report(s3, **common, files=[s3_rows(s3, bucket)], when=NOW - timedelta(days=30))  # the only complete one
    for day in range(inventory_reports.MAX_TRIED):
        put_s3_report(s3, **common, files=[], when=NOW - timedelta(days=day), checksum=False)
    proxy = FaultProxy(moto).start()
    try:
        conn = S3Connector(_config(bucket, f"s3://{dest}/{bucket}/c"), endpoint_url=proxy.endpoint, retry=FAST_RETRY)
        with pytest.raises(UsageError, match=f"no complete inventory report among the {inventory_reports.MAX_TRIED}"):
            asyncio.run(_listing(conn, f"s3://{bucket}"))
        manifests = [r for r in proxy.requests if r.target.split("?")[0].endswith("/manifest.json")]
    finally:
        proxy.stop()
    assert len(manifests) == inventory_reports.MAX_TRIED


@pytest.mark.parametrize("provider", ["gcs", "azure"])
def test_scan_through_a_gcs_or_azure_report_fingerprints_as_a_list_based_scan(
        emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    from emulators import AZURITE_ACCOUNT, azurite_connection_string

    if provider == "gcs":
        from .conftest import gcs_client

        gcs = gcs_client(emulators["fakegcs"].endpoint)
        name = "inv-gcs-scan"
        source = gcs.create_bucket(name)
        for key, body in KEYS.items():
            source.blob(key).upload_from_string(body)
        put_gcs_report(gcs.create_bucket("inv-gcs-scan-reports"), "cfg/2026-12-01", "cfg", gcs_rows(source),
                        "parquet", NOW - timedelta(hours=5))
        target, bucket_key = f"gs://{name}", name
        inventory = InventorySettings(uri="gs://inv-gcs-scan-reports/cfg")
        env = emulators["fakegcs"].env
    else:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(azurite_connection_string(emulators["azurite"].endpoint))
        container = service.create_container("inv-az-scan")
        for key, body in KEYS.items():
            container.upload_blob(key, body)
        put_azure_report(service.create_container("inv-az-scan-reports"), "r", azure_rows(service, "inv-az-scan"),
                       "parquet", NOW - timedelta(hours=5))
        target, bucket_key = f"az://{AZURITE_ACCOUNT}/inv-az-scan", f"{AZURITE_ACCOUNT}/inv-az-scan"
        inventory = InventorySettings(uri=f"az://{AZURITE_ACCOUNT}/inv-az-scan-reports", rule="r")
        env = {**emulators["azurite"].env, "AZURE_STORAGE_REGION": "eastasia"}
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)

    def scan(settings: BucketSettings, db: str) -> list[dict[str, Any]]:
        config = Config(scan=ScanSettings(perceptual=False), buckets={bucket_key: settings})
        with Catalog(tmp_path / db) as catalog:
            asyncio.run(run_scan(config, catalog, [target]))
            return [r.model_dump() for r in catalog.records()]

    by_list = scan(BucketSettings(), "list.db")
    by_report = scan(BucketSettings(inventory=inventory), "report.db")
    assert by_report == by_list
    assert len({r["sha256"] for r in by_report if r["key"].endswith(".jpg")}) == 2

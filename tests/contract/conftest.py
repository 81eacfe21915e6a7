"""Fixtures for the connector contract suite: real emulators, started once per session, seeded with the same
objects through each provider's own SDK (or as files), and a `backend` fixture that runs every test
against local, s3, gcs and azure.

Endpoints and credentials are passed to the connectors explicitly; the few SDK environment variables a
connector still needs (AWS credentials) are set with monkeypatch, so nothing leaks into other tests.

Emulator quirks the data works around:
- moto keeps cn-north-1 buckets in the aws-cn partition: a us-east-1 `ListBuckets` does not show them.
- fake-gcs-server gives every bucket the one `-location` it was started with, so the Hong Kong bucket
  lives in a second instance started with `-location ASIA-EAST2`. It also lists an md5 for composed
  objects and no `componentCount` (real GCS: the reverse).
- Azure has no bucket location in the data plane: regions come from the connector's `region=` and the
  config's `buckets:`.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulators import (
    AZURITE_ACCOUNT,
    Emulator,
    azurite_connection_string,
    start_azurite,
    start_fakegcs,
    start_moto,
)

from tierscan.connectors.base import Connector, RetryPolicy
from tierscan.scanner.core.config import BucketSettings, Config
from tierscan.scanner.core.models import Tier

PAGE_COUNT = 1100
BIG = random.Random(7).randbytes(200_000)
SAME = random.Random(8).randbytes(1_000)  # the bytes every tier and region holds
BUCKETS = {"page": "ts-page", "data": "ts-data", "hk": "ts-hk", "cn": "ts-cn"}
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Backend:
    """One backend under test: how to build its connector, name its targets, and change its objects."""

    name: str
    make: Callable[..., Connector]  # (config, endpoint override or None, **options) -> Connector
    target: Callable[[str, str], str]  # (logical bucket, prefix) -> target URI
    endpoint: str | None  # what a fault proxy stands in front of
    config: Config
    tiers: dict[str, tuple[Tier, bool]]  # key in "data" -> (tier, readable)
    regions: dict[str, tuple[str, str]]  # logical bucket -> (region, jurisdiction)
    put: Callable[[str, str, bytes], None]
    delete: Callable[[str, str], None]
    throttle: dict[str, Any] = field(default_factory=dict)  # FaultProxy.fail(...) arguments
    extra: dict[str, Any] = field(default_factory=dict)

    def connector(self, *, endpoint: str | None = None, **options: Any) -> Connector:
        options.setdefault("retry", FAST_RETRY)
        return self.make(self.config, endpoint, **options)


def _parallel(fn: Callable[..., Any], items: list[Any]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fn, items))


# ---- emulators -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    logs = tmp_path_factory.mktemp("emulator-logs")
    starters = {
        "moto": lambda: start_moto(log_dir=logs),
        "fakegcs": lambda: start_fakegcs(log_dir=logs),
        "fakegcs_hk": lambda: start_fakegcs(location="ASIA-EAST2", log_dir=logs),
        "azurite": lambda: start_azurite(log_dir=logs),
    }
    with ThreadPoolExecutor(len(starters)) as pool:
        futures = {name: pool.submit(start) for name, start in starters.items()}
    running = Running({name: f.result() for name, f in futures.items() if f.exception() is None},
                      {name: f.exception() for name, f in futures.items() if f.exception() is not None})
    try:
        yield running
    finally:
        for emu in running.values():
            emu.stop()


class Running(dict[str, Emulator]):
    """The emulators that started. Asking for one that failed raises its start error, so a machine
    without node fails the Azure tests only, and says why."""

    def __init__(self, started: dict[str, Emulator], failed: dict[str, BaseException | None]):
        super().__init__(started)
        self.failed = failed

    def __missing__(self, name: str) -> Emulator:
        raise RuntimeError(f"the {name} emulator did not start: {self.failed.get(name)}")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto through botocore's own chain, isolated from the machine's profiles."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


# ---- seeding, once per backend -------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_seeded(emulators: dict[str, Emulator]) -> str:
    import boto3

    endpoint = emulators["moto"].endpoint

    def client(region: str) -> Any:
        return boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    s3 = client("us-east-1")
    for logical, region in (("page", None), ("data", None), ("hk", "ap-east-1"), ("cn", "cn-north-1")):
        options = {"CreateBucketConfiguration": {"LocationConstraint": region}} if region else {}
        client(region or "us-east-1").create_bucket(Bucket=BUCKETS[logical], **options)
    _parallel(lambda i: s3.put_object(Bucket="ts-page", Key=f"k{i:05d}", Body=str(i).encode()), list(range(PAGE_COUNT)))
    s3.put_object(Bucket="ts-data", Key="big.bin", Body=BIG)
    s3.put_object(Bucket="ts-data", Key="empty.bin", Body=b"")
    for key, cls in S3_CLASSES.items():
        s3.put_object(Bucket="ts-data", Key=key, Body=SAME, StorageClass=cls)
    for logical in ("hk", "cn"):
        s3.put_object(Bucket=BUCKETS[logical], Key="same.bin", Body=SAME)
    upload = s3.create_multipart_upload(Bucket="ts-data", Key="multipart.bin")
    parts = []
    for n, chunk in enumerate((b"a" * 5 * 1024 * 1024, b"b" * 1000), start=1):
        answer = s3.upload_part(Bucket="ts-data", Key="multipart.bin", UploadId=upload["UploadId"], PartNumber=n,
                                Body=chunk)
        parts.append({"ETag": answer["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket="ts-data", Key="multipart.bin", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
    return endpoint


S3_CLASSES = {"hot.bin": "STANDARD", "cool.bin": "STANDARD_IA", "cold.bin": "GLACIER_IR", "archive.bin": "GLACIER",
              "deep.bin": "DEEP_ARCHIVE", "it.bin": "INTELLIGENT_TIERING"}
GCS_CLASSES = {"hot.bin": "STANDARD", "cool.bin": "NEARLINE", "cold.bin": "COLDLINE", "archive.bin": "ARCHIVE"}
AZ_CLASSES = {"hot.bin": "Hot", "cool.bin": "Cool", "cold.bin": "Cold", "archive.bin": "Archive"}
LOCAL_CLASSES = {"hot.bin": "hot", "cool.bin": "cool", "cold.bin": "cold", "archive.bin": "archive"}


def gcs_client(endpoint: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})


@pytest.fixture(scope="session")
def gcs_seeded(emulators: dict[str, Emulator]) -> str:
    gcs = gcs_client(emulators["fakegcs"].endpoint)
    for logical in ("page", "data", "cn"):
        gcs.create_bucket(BUCKETS[logical])
    page = gcs.bucket("ts-page")
    _parallel(lambda i: page.blob(f"k{i:05d}").upload_from_string(str(i).encode()), list(range(PAGE_COUNT)))
    data = gcs.bucket("ts-data")
    data.blob("big.bin").upload_from_string(BIG)
    data.blob("empty.bin").upload_from_string(b"")
    for key, cls in GCS_CLASSES.items():
        blob = data.blob(key)
        blob.storage_class = cls
        blob.upload_from_string(SAME)
    data.blob("part1").upload_from_string(SAME[:400])
    data.blob("part2").upload_from_string(SAME[400:])
    data.blob("composite.bin").compose([data.blob("part1"), data.blob("part2")])
    gcs.bucket("ts-cn").blob("same.bin").upload_from_string(SAME)
    hk = gcs_client(emulators["fakegcs_hk"].endpoint)
    hk.create_bucket("ts-hk").blob("same.bin").upload_from_string(SAME)
    return emulators["fakegcs"].endpoint


@pytest.fixture(scope="session")
def azure_seeded(emulators: dict[str, Emulator]) -> str:
    from azure.storage.blob import BlobBlock, BlobServiceClient, StandardBlobTier

    service = BlobServiceClient.from_connection_string(azurite_connection_string(emulators["azurite"].endpoint))
    for logical in BUCKETS.values():
        service.create_container(logical)
    page = service.get_container_client("ts-page")
    _parallel(lambda i: page.upload_blob(f"k{i:05d}", str(i).encode()), list(range(PAGE_COUNT)))
    data = service.get_container_client("ts-data")
    data.upload_blob("big.bin", BIG)
    data.upload_blob("empty.bin", b"")
    for key, tier in AZ_CLASSES.items():
        data.upload_blob(key, SAME, standard_blob_tier=StandardBlobTier(tier))
    blocks = data.get_blob_client("blocks.bin")
    blocks.stage_block("b1", SAME[:500])
    blocks.stage_block("b2", SAME[500:])
    blocks.commit_block_list([BlobBlock("b1"), BlobBlock("b2")])
    for logical in ("hk", "cn"):
        service.get_container_client(BUCKETS[logical]).upload_blob("same.bin", SAME)
    return emulators["azurite"].endpoint


@pytest.fixture(scope="session")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local-store")
    for bucket in BUCKETS.values():
        (root / bucket).mkdir()
    for i in range(PAGE_COUNT):
        (root / "ts-page" / f"k{i:05d}").write_bytes(str(i).encode())
    (root / "ts-data" / "big.bin").write_bytes(BIG)
    (root / "ts-data" / "empty.bin").write_bytes(b"")
    for key in LOCAL_CLASSES:
        (root / "ts-data" / key).write_bytes(SAME)
    for logical in ("hk", "cn"):
        (root / BUCKETS[logical] / "same.bin").write_bytes(SAME)
    return root


# ---- the parametrised backend --------------------------------------------------------------------

_ARCHIVE = {"archive.bin"}


def _tiers(classes: dict[str, str], unreadable: set[str]) -> dict[str, tuple[Tier, bool]]:
    names = {"hot.bin": Tier.hot, "cool.bin": Tier.cool, "cold.bin": Tier.cold, "archive.bin": Tier.archive,
             "deep.bin": Tier.archive, "it.bin": Tier.hot}
    return {key: (names[key], key not in unreadable) for key in classes}


def _local(request: pytest.FixtureRequest) -> Backend:
    from tierscan.connectors.local import LocalConnector

    root = request.getfixturevalue("local_root")
    config = Config(buckets={
        **{f"*/ts-data/{key}": BucketSettings(tier=Tier(cls)) for key, cls in LOCAL_CLASSES.items()},
        "ts-hk": BucketSettings(region="ap-east-1"),
        "ts-cn": BucketSettings(region="cn-north-1"),
    })
    return Backend(
        name="local",
        make=lambda cfg, endpoint, **kw: LocalConnector(cfg, **kw),
        target=lambda logical, prefix: str(root / BUCKETS[logical]),
        endpoint=None,
        config=config,
        tiers=_tiers(LOCAL_CLASSES, set()),
        regions={"data": ("local", "local"), "hk": ("ap-east-1", "HK"), "cn": ("cn-north-1", "CN")},
        put=lambda logical, key, data: (root / BUCKETS[logical] / key).write_bytes(data),
        delete=lambda logical, key: (root / BUCKETS[logical] / key).unlink(),
    )


def _s3(request: pytest.FixtureRequest) -> Backend:
    import boto3

    from tierscan.connectors.s3 import S3Connector

    request.getfixturevalue("aws_env")
    endpoint = request.getfixturevalue("s3_seeded")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    slowdown = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>")
    return Backend(
        name="s3",
        make=lambda cfg, ep, **kw: S3Connector(cfg, endpoint_url=ep or endpoint, **kw),
        target=lambda logical, prefix: f"s3://{BUCKETS[logical]}/{prefix}",
        endpoint=endpoint,
        config=Config(),
        tiers=_tiers(S3_CLASSES, {"archive.bin", "deep.bin"}),
        regions={"data": ("us-east-1", "US"), "hk": ("ap-east-1", "HK"), "cn": ("cn-north-1", "CN")},
        put=lambda logical, key, data: s3.put_object(Bucket=BUCKETS[logical], Key=key, Body=data),
        delete=lambda logical, key: s3.delete_object(Bucket=BUCKETS[logical], Key=key),
        throttle={"status": 503, "body": slowdown, "headers": {"Content-Type": "application/xml"}},
        extra={"client": s3},
    )


def _gcs(request: pytest.FixtureRequest) -> Backend:
    from tierscan.connectors.gcs import GCSConnector

    endpoint = request.getfixturevalue("gcs_seeded")
    hk_endpoint = request.getfixturevalue("emulators")["fakegcs_hk"].endpoint
    gcs = gcs_client(endpoint)

    def make(cfg: Config, ep: str | None, *, hk: bool = False, **kw: Any) -> Connector:
        return GCSConnector(cfg, api_root=ep or (hk_endpoint if hk else endpoint), **kw)

    return Backend(
        name="gcs",
        make=make,
        target=lambda logical, prefix: f"gs://{BUCKETS[logical]}/{prefix}",
        endpoint=endpoint,
        config=Config(),
        tiers=_tiers(GCS_CLASSES, set()),
        regions={"data": ("us-central1", "US"), "hk": ("asia-east2", "HK"), "cn": ("us-central1", "US")},
        put=lambda logical, key, data: gcs.bucket(BUCKETS[logical]).blob(key).upload_from_string(data),
        delete=lambda logical, key: gcs.bucket(BUCKETS[logical]).blob(key).delete(),
        throttle={"status": 429, "body": b'{"error": {"code": 429, "message": "rate limit exceeded"}}',
                  "headers": {"Content-Type": "application/json"}},
    )


def _azure(request: pytest.FixtureRequest) -> Backend:
    from azure.storage.blob import BlobServiceClient

    from tierscan.connectors.azure import AzureConnector

    endpoint = request.getfixturevalue("azure_seeded")
    service = BlobServiceClient.from_connection_string(azurite_connection_string(endpoint))
    # Azure China has no Hong Kong region; the HK container's region comes from the config file.
    config = Config(buckets={f"{AZURITE_ACCOUNT}/ts-hk": BucketSettings(region="eastasia")})
    busy = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>'
    return Backend(
        name="azure",
        make=lambda cfg, ep, **kw: AzureConnector(
            cfg, connection_string=azurite_connection_string(ep or endpoint), region="chinanorth3", **kw),
        target=lambda logical, prefix: f"az://{AZURITE_ACCOUNT}/{BUCKETS[logical]}/{prefix}",
        endpoint=endpoint,
        config=config,
        tiers=_tiers(AZ_CLASSES, {"archive.bin"}),
        regions={"data": ("chinanorth3", "CN"), "hk": ("eastasia", "HK"), "cn": ("chinanorth3", "CN")},
        put=lambda logical, key, data: service.get_container_client(BUCKETS[logical]).upload_blob(key, data,
                                                                                                  overwrite=True),
        delete=lambda logical, key: service.get_container_client(BUCKETS[logical]).delete_blob(key),
        throttle={"status": 503, "body": busy,
                  "headers": {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"}},
    )


_BACKENDS = {"local": _local, "s3": _s3, "gcs": _gcs, "azure": _azure}


@pytest.fixture(params=list(_BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return _BACKENDS[request.param](request)


@pytest.fixture(params=[name for name in _BACKENDS if name != "local"])
def http_backend(request: pytest.FixtureRequest) -> Backend:
    """The backends that talk HTTP (a fault proxy can stand in front of them); cloud-only behaviour such as
    prefixes and `scheme://*` listing is tested over these."""
    return _BACKENDS[request.param](request)


@pytest.fixture
def s3_backend(request: pytest.FixtureRequest) -> Backend:
    """S3 alone, for behaviour only S3 has (Intelligent-Tiering, KMS ETags, versioned listings)."""
    return _s3(request)

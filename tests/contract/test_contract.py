"""The connector contract, one suite for every backend (local, s3, gcs, azure), against real emulators.

Each test lists and reads through the public `Connector` API only; backend differences are data in the
`backend` fixture (expected tiers, regions, the throttling answer each provider sends).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import pytest
from faultproxy import FaultProxy, Request

from tierscan.connectors.base import Connector, parse_target
from tierscan.scanner.core.errors import (
    Cause,
    ObjectDenied,
    ObjectGone,
    ObjectUnreadable,
    TargetError,
    TransientError,
)
from tierscan.scanner.core.models import ObjectRef, Tier

from .conftest import BIG, PAGE_COUNT, SAME, Backend, md5

pytestmark = pytest.mark.integration

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def listing(conn: Connector, target: str) -> dict[str, ObjectRef]:
    async with conn:
        return {ref.key: ref async for ref in conn.list_objects(parse_target(target))}


async def list_and_read(conn: Connector, target: str, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with conn:
        refs = {ref.key: ref async for ref in conn.list_objects(parse_target(target))}
        return await conn.read_range(refs[key], start, end)


def _proxy_in_front_of(backend: Backend) -> Iterator[FaultProxy]:
    assert backend.endpoint
    fp = FaultProxy(backend.endpoint).start()
    yield fp
    fp.stop()


@pytest.fixture
def proxy(http_backend: Backend) -> Iterator[FaultProxy]:
    yield from _proxy_in_front_of(http_backend)


@pytest.fixture
def s3_proxy(s3_backend: Backend) -> Iterator[FaultProxy]:
    yield from _proxy_in_front_of(s3_backend)


def is_page_list(r: Request) -> bool:
    """A listing request of the page bucket, in any provider's form."""
    return "ts-page" in r.target and any(m in r.target for m in ("list-type=2", "/o?", "comp=list"))


def reads_of(proxy: FaultProxy, key: str) -> list[str]:
    return [r.target for r in proxy.requests if r.method == "GET" and key in r.target]


# ---- listing -------------------------------------------------------------------------------------


def test_pagination_past_1000(backend: Backend) -> None:
    refs = run(listing(backend.connector(), backend.target("page", "")))
    assert len(refs) == PAGE_COUNT
    assert sorted(refs) == [f"k{i:05d}" for i in range(PAGE_COUNT)]
    ref = refs["k00042"]
    assert ref.size == 2 and ref.provider == ("local" if backend.name == "local" else parse_target(ref.uri).scheme)
    if backend.name != "local":
        assert ref.uri == backend.target("page", "k00042")


def test_prefix(http_backend: Backend) -> None:
    backend = http_backend
    refs = run(listing(backend.connector(), backend.target("page", "k0100")))
    assert sorted(refs) == [f"k0100{i}" for i in range(10)]


def test_tiers_normalised(backend: Backend) -> None:
    refs = run(listing(backend.connector(), backend.target("data", "")))
    got = {key: (refs[key].tier, refs[key].readable) for key in backend.tiers}
    assert got == backend.tiers
    assert all(refs[key].size == len(SAME) for key in backend.tiers)


@pytest.mark.parametrize("logical", ["data", "hk", "cn"])
def test_regions_and_jurisdictions(backend: Backend, logical: str) -> None:
    options = {"hk": True} if backend.name == "gcs" and logical == "hk" else {}
    refs = run(listing(backend.connector(**options), backend.target(logical, "")))
    assert refs, logical
    assert {(r.region, r.jurisdiction) for r in refs.values()} == {backend.regions[logical]}


def test_checksum_trust(backend: Backend) -> None:
    refs = run(listing(backend.connector(), backend.target("data", "")))
    declared = backend.connector().capabilities.free_checksums
    if backend.name == "local":
        assert declared == frozenset() and all(not r.checksums for r in refs.values())
        return
    # Azure's Content-MD5 is what a writer set: a claim, kept under its own kind, never as a trusted "md5".
    md5_kind = "content-md5" if backend.name == "azure" else "md5"
    assert refs["big.bin"].checksums[md5_kind] == md5(BIG)
    assert set(refs["big.bin"].checksums) <= declared
    if backend.name == "s3":
        assert refs["multipart.bin"].etag.endswith("-2")
        assert refs["multipart.bin"].checksums == {"s3mpu": refs["multipart.bin"].etag}  # identity, not an MD5
        assert refs["hot.bin"].etag == md5(SAME)
    if backend.name == "gcs":
        # fake-gcs lists an md5 for composites (real GCS does not) and no componentCount, so the md5 is
        # kept; it is the true digest. The componentCount rule is covered in test_trust_rules.py.
        composite = refs["composite.bin"].checksums
        assert composite["md5"] == md5(SAME)
        assert composite["crc32c"] == refs["hot.bin"].checksums["crc32c"]
    if backend.name == "azure":
        assert "content-md5" not in refs["blocks.bin"].checksums  # committed from blocks: no Content-MD5
        assert refs["hot.bin"].checksums["content-md5"] == md5(SAME)
        assert refs["hot.bin"].content_id is None  # a claim is no content identity


def test_list_all_buckets(http_backend: Backend) -> None:
    backend = http_backend
    scheme = {"s3": "s3://*", "gcs": "gs://*", "azure": "az://devstoreaccount1/*"}[backend.name]
    refs = run(listing_all(backend.connector(), scheme))
    buckets = {r.bucket.split("/")[-1] for r in refs}
    expected = {"ts-page", "ts-data", "ts-hk", "ts-cn"}
    if backend.name == "s3":
        expected.discard("ts-cn")  # moto keeps cn-north-1 in the aws-cn partition
        assert expected <= buckets and "ts-cn" not in buckets
        both = run(listing_all(backend.connector(list_regions=("cn-north-1",)), scheme))
        assert "ts-cn" in {r.bucket for r in both}
    elif backend.name == "gcs":
        expected.discard("ts-hk")  # lives in the second (ASIA-EAST2) fake-gcs instance
    assert expected <= buckets
    assert sum(r.bucket.endswith("ts-page") for r in refs) == PAGE_COUNT


def test_list_all_skips_a_bucket_it_may_not_list(http_backend: Backend, proxy: FaultProxy,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    scheme = {"s3": "s3://*", "gcs": "gs://*", "azure": "az://devstoreaccount1/*"}[http_backend.name]
    proxy.fail(times=1000, match=is_page_list, status=403)
    refs = run(listing_all(http_backend.connector(endpoint=proxy.endpoint), scheme))
    buckets = {r.bucket.split("/")[-1] for r in refs}
    assert "ts-data" in buckets and "ts-page" not in buckets
    assert "ts-page: skipped" in caplog.text
    with pytest.raises(TargetError) as denied:  # a named bucket gets no such grace: the target fails
        run(listing(http_backend.connector(endpoint=proxy.endpoint), http_backend.target("page", "")))
    assert denied.value.cause is Cause.denied


async def listing_all(conn: Connector, target: str) -> list[ObjectRef]:
    async with conn:
        return [ref async for ref in conn.list_objects(parse_target(target))]


# ---- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 65536, BIG[:65536]),  # head
        (-1024, None, BIG[-1024:]),  # tail
        (100_000, 100_100, BIG[100_000:100_100]),  # middle
        (199_990, 300_000, BIG[199_990:]),  # past the end: clipped
        (250_000, None, b""),  # starts past the end
        (0, None, BIG),  # whole
    ],
    ids=["head", "tail", "middle", "past-end", "beyond", "whole"],
)
def test_ranged_reads(backend: Backend, start: int, end: int | None, expected: bytes) -> None:
    got = run(list_and_read(backend.connector(), backend.target("data", ""), "big.bin", start, end))
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_cold_connector_with_one_request_slot(backend: Backend) -> None:
    """Reads on a connector that never listed (its bucket lookups still to do) with one slot in flight."""
    refs = run(listing(backend.connector(), backend.target("data", "")))

    async def read_both() -> list[bytes]:
        async with backend.connector(max_concurrency=1) as conn:
            reads = asyncio.gather(conn.read_range(refs["big.bin"], 0, 10), conn.read_range(refs["hot.bin"], 0, 10))
            return await asyncio.wait_for(reads, 30)

    assert run(read_both()) == [BIG[:10], SAME[:10]]


def test_empty_object(backend: Backend) -> None:
    assert run(list_and_read(backend.connector(), backend.target("data", ""), "empty.bin", 0, 65536)) == b""
    assert run(list_and_read(backend.connector(), backend.target("data", ""), "empty.bin", -1024)) == b""


def test_archive_refused_without_a_request(http_backend: Backend, proxy: FaultProxy) -> None:
    conn = http_backend.connector(endpoint=proxy.endpoint)
    refs = run(listing(conn, http_backend.target("data", "")))
    for key, (tier, readable) in http_backend.tiers.items():
        if tier is not Tier.archive:
            continue
        if readable:  # GCS ARCHIVE: readable, for a fee
            assert run(read_only(conn, refs[key])) == SAME
            continue
        with pytest.raises(ObjectUnreadable):
            run(read_only(conn, refs[key]))
        assert reads_of(proxy, key) == []
    assert http_backend.connector().capabilities.restores == (http_backend.name != "gcs")


async def read_only(conn: Connector, ref: ObjectRef, start: int = 0, end: int | None = None) -> bytes:
    async with conn:
        return await conn.read_range(ref, start, end)


def test_object_deleted_after_listing(backend: Backend) -> None:
    key = f"gone-{uuid.uuid4().hex[:8]}.bin"
    backend.put("data", key, b"soon gone")
    conn = backend.connector()
    refs = run(listing(conn, backend.target("data", "")))
    backend.delete("data", key)
    with pytest.raises(ObjectGone):
        run(read_only(conn, refs[key]))


def test_object_replaced_after_listing(backend: Backend) -> None:
    """Every backend pins what it listed (ETag, generation, size and mtime): a replaced object reads as
    gone, so two versions' bytes are never fingerprinted as one."""
    key = f"swap-{uuid.uuid4().hex[:8]}.bin"
    backend.put("data", key, b"first")
    conn = backend.connector()
    refs = run(listing(conn, backend.target("data", "")))
    backend.put("data", key, b"second version")
    with pytest.raises(ObjectGone):
        run(read_only(conn, refs[key]))


# ---- faults through the proxy ---------------------------------------------------------------------


def test_throttling_and_resets_are_retried(http_backend: Backend, proxy: FaultProxy) -> None:
    refs = run(listing(http_backend.connector(), http_backend.target("data", "")))

    def is_read(r: Request) -> bool:
        return r.method == "GET" and "big.bin" in r.target

    proxy.fail(times=2, match=is_read, **http_backend.throttle)
    proxy.fail(times=1, match=is_read, reset=True)
    conn = http_backend.connector(endpoint=proxy.endpoint)
    assert run(read_only(conn, refs["big.bin"], 0, 65536)) == BIG[:65536]
    assert len(reads_of(proxy, "big.bin")) == 4
    # aiohttp itself resends an idempotent GET once when a reused keep-alive connection drops, so the
    # reset may never reach the connector: 3 or 4 attempts, of which exactly 2 were throttled.
    assert conn.requests["read"] in {3, 4} and conn.requests["throttled"] == 2
    assert conn.requests["retried"] == conn.requests["read"] - 1


def test_429_is_throttling_everywhere(http_backend: Backend, proxy: FaultProxy) -> None:
    refs = run(listing(http_backend.connector(), http_backend.target("data", "")))
    proxy.fail(times=1, match=lambda r: "big.bin" in r.target, status=429)
    conn = http_backend.connector(endpoint=proxy.endpoint)
    assert run(read_only(conn, refs["big.bin"], -10)) == BIG[-10:]
    assert conn.requests["throttled"] == 1


def test_persistent_faults_exhaust_the_retry_budget(http_backend: Backend, proxy: FaultProxy) -> None:
    refs = run(listing(http_backend.connector(), http_backend.target("data", "")))
    proxy.fail(times=1000, match=lambda r: "big.bin" in r.target, **http_backend.throttle)
    conn = http_backend.connector(endpoint=proxy.endpoint)
    with pytest.raises(TransientError):
        run(read_only(conn, refs["big.bin"], 0, 10))
    assert len(reads_of(proxy, "big.bin")) == conn.retry.attempts


def test_listing_retries_a_failed_page(http_backend: Backend, proxy: FaultProxy) -> None:
    conn = http_backend.connector(endpoint=proxy.endpoint)
    proxy.fail(times=1, match=is_page_list, **http_backend.throttle)
    refs = run(listing(conn, http_backend.target("page", "")))
    assert len(refs) == PAGE_COUNT
    assert conn.requests["throttled"] == 1 and conn.requests["retried"] == 1


def test_per_request_timeout(http_backend: Backend, proxy: FaultProxy) -> None:
    refs = run(listing(http_backend.connector(), http_backend.target("data", "")))
    proxy.fail(times=1, match=lambda r: "big.bin" in r.target, delay=30.0)  # a stalled server
    conn = http_backend.connector(endpoint=proxy.endpoint, request_timeout=1.5)
    started = time.monotonic()
    assert run(read_only(conn, refs["big.bin"], 0, 10)) == BIG[:10]
    assert conn.requests["retried"] >= 1 and time.monotonic() - started < 20


def test_no_secret_in_errors_or_logs(http_backend: Backend, proxy: FaultProxy, caplog: pytest.LogCaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = ["tierscanSECRETshouldNeverBeLogged0123456789"]
    if http_backend.name == "s3":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets[0])
    if http_backend.name == "azure":
        from emulators import AZURITE_KEY

        secrets = [AZURITE_KEY]
    refs = run(listing(http_backend.connector(), http_backend.target("data", "")))
    proxy.fail(times=1000, match=lambda r: "big.bin" in r.target, status=403)
    proxy.fail(times=1000, match=lambda r: "hot.bin" in r.target, status=500)
    conn = http_backend.connector(endpoint=proxy.endpoint)
    caplog.set_level(logging.DEBUG)
    connectors = [conn]
    if http_backend.name == "azure":  # a SAS token in the connection string must not leak either
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
        from emulators import AZURITE_ACCOUNT

        from tierscan.connectors.azure import AzureConnector

        sas = generate_account_sas(AZURITE_ACCOUNT, secrets[0],
                                   ResourceTypes(service=True, container=True, object=True),
                                   AccountSasPermissions(read=True, list=True),
                                   expiry=datetime.now(UTC) + timedelta(hours=1))
        secrets += [sas, unquote(parse_qs(sas)["sig"][0])]
        connectors.append(AzureConnector(http_backend.config, retry=conn.retry,
                                         connection_string=f"BlobEndpoint={proxy.endpoint};SharedAccessSignature={sas}"))
    texts = []
    for connector in connectors:
        for key, expected in (("big.bin", ObjectDenied), ("hot.bin", TransientError)):
            with pytest.raises(expected) as info:
                run(read_only(connector, refs[key], 0, 10))
            texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    texts.append(caplog.text)
    for secret in secrets:
        assert all(secret not in text for text in texts)


# ---- the standard credential chains --------------------------------------------------------------


def test_standard_credential_chain(http_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only the SDK environment (no endpoint options), the registry's connector finds the store."""
    from emulators import azurite_connection_string

    from tierscan.connectors import connector_class

    variable, value = {
        "s3": ("AWS_ENDPOINT_URL", http_backend.endpoint),
        "gcs": ("STORAGE_EMULATOR_HOST", http_backend.endpoint),
        "azure": ("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(http_backend.endpoint or "")),
    }[http_backend.name]
    monkeypatch.setenv(variable, value)
    target = parse_target(http_backend.target("data", "big"))
    conn = connector_class(target.scheme)(http_backend.config)
    refs = run(listing(conn, http_backend.target("data", "big")))
    assert list(refs) == ["big.bin"]


# ---- S3 rules the listing alone cannot show ------------------------------------------------------

S3_IT_CONFIG = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketIntelligentTieringConfigurationsOutput xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<IsTruncated>false</IsTruncated>
<IntelligentTieringConfiguration><Id>archive</Id><Status>Enabled</Status>
<Tiering><Days>90</Days><AccessTier>ARCHIVE_ACCESS</AccessTier></Tiering></IntelligentTieringConfiguration>
</ListBucketIntelligentTieringConfigurationsOutput>"""


def test_s3_intelligent_tiering_archive_needs_a_head(s3_backend: Backend, s3_proxy: FaultProxy) -> None:
    proxy = s3_proxy
    # Without archive tierings configured (moto has none), no HEAD is sent and the object is hot.
    refs = run(listing(s3_backend.connector(endpoint=proxy.endpoint), s3_backend.target("data", "")))
    assert (refs["it.bin"].tier, refs["it.bin"].readable) == (Tier.hot, True)
    assert not [r for r in proxy.requests if r.method == "HEAD"]
    # A bucket with archive tierings: one HEAD per Intelligent-Tiering object reads x-amz-archive-status.
    proxy.fail(times=1, match=lambda r: "intelligent-tiering" in r.target, status=200, body=S3_IT_CONFIG,
               headers={"Content-Type": "application/xml"})
    proxy.fail(times=1, match=lambda r: r.method == "HEAD" and r.target.endswith("/it.bin"),
               add_headers={"x-amz-archive-status": "ARCHIVE_ACCESS"})
    conn = s3_backend.connector(endpoint=proxy.endpoint)
    refs = run(listing(conn, s3_backend.target("data", "")))
    it = refs["it.bin"]
    assert (it.storage_class, it.tier, it.readable) == ("INTELLIGENT_TIERING_ARCHIVE_ACCESS", Tier.archive, False)
    assert [r.target for r in proxy.requests if r.method == "HEAD"] == ["/ts-data/it.bin"]
    with pytest.raises(ObjectUnreadable):
        run(read_only(conn, it))


def test_s3_kms_bucket_etags_are_not_trusted(s3_backend: Backend) -> None:
    client = s3_backend.extra["client"]
    bucket = f"ts-kms-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    client.put_object(Bucket=bucket, Key="a.bin", Body=SAME)
    refs = run(listing(s3_backend.connector(), f"s3://{bucket}/"))
    assert refs["a.bin"].checksums == {}


def test_s3_versioned_bucket_lists_current_versions(s3_backend: Backend) -> None:
    client = s3_backend.extra["client"]
    bucket = f"ts-ver-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="a.bin", Body=b"old")
    current = client.put_object(Bucket=bucket, Key="a.bin", Body=SAME)["VersionId"]
    conn = s3_backend.connector()
    refs = run(listing(conn, f"s3://{bucket}/"))
    assert list(refs) == ["a.bin"] and refs["a.bin"].version == current
    assert refs["a.bin"].checksums == {"md5": md5(SAME)}
    client.put_object(Bucket=bucket, Key="a.bin", Body=b"newer")  # the listed version is still readable
    assert run(read_only(s3_backend.connector(), refs["a.bin"])) == SAME


def test_s3_reads_keys_that_need_quoting(s3_backend: Backend) -> None:
    """Reads are signed and sent outside the SDK: every key must reach the store as the SDK would send it."""
    client = s3_backend.extra["client"]
    bucket = f"ts-keys-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    keys = ["sp ace.jpg", "plus+sign.jpg", "per%25cent.jpg", "q?uery#frag.jpg", "tilde~eq=amp&.jpg",
            "deep/照片 é.jpg", "dbl//slash.jpg", "semi;colon,quote'(1)*!.jpg"]
    bodies = {key: f"{key}:".encode() * 50 for key in keys}
    for key, body in bodies.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)

    async def read_all() -> dict[str, tuple[bytes, bytes]]:
        async with s3_backend.connector() as conn:
            refs = [ref async for ref in conn.list_objects(parse_target(f"s3://{bucket}/"))]
            return {ref.key: (await conn.read_range(ref), await conn.read_range(ref, 7, 19)) for ref in refs}

    got = run(read_all())
    assert got == {key: (body, body[7:19]) for key, body in bodies.items()}


def test_s3_reads_the_bytes_as_stored(s3_backend: Backend) -> None:
    """An object stored with `Content-Encoding: gzip` is read as stored, not unpacked on the way."""
    import gzip

    client = s3_backend.extra["client"]
    bucket = f"ts-gz-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    packed = gzip.compress(SAME)
    client.put_object(Bucket=bucket, Key="a.jpg.gz", Body=packed, ContentEncoding="gzip")
    assert run(list_and_read(s3_backend.connector(), f"s3://{bucket}/", "a.jpg.gz")) == packed

"""Connector throughput against the local emulators: objects listed per second and 64 KiB ranged reads per
second at several concurrencies, for S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite), through
the connectors; and, for comparison, each provider's blocking SDK run in threads (boto3,
google-cloud-storage, azure.storage.blob), which is how each connector's client was chosen.

    python benchmarks/connectors.py [--objects 2000] [--reads 400] [--only s3,gcs,azure]

Starts and stops the emulators itself. The emulators and the client share the machine's cores, so the
figures compare clients and concurrencies on one machine; they are not what a cloud would do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # first: this tree's packages, then the test helpers

from emulators import Emulator, azurite_connection_string, start_azurite, start_fakegcs, start_moto

from tierscan.connectors.base import Connector, parse_target
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import ObjectRef

CONCURRENCY = (1, 8, 32, 64)
READ_BYTES = 64 * 1024
BLOB = random.Random(1).randbytes(256 * 1024)
READ_OBJECTS = 64


def _parallel(fn: Callable[[int], Any], n: int) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fn, range(n)))


def seed_s3(emu: Emulator, objects: int) -> Callable[..., Connector]:
    import boto3

    from tierscan.connectors.s3 import S3Connector

    s3 = boto3.client("s3", endpoint_url=emu.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket="bench-list")
    s3.create_bucket(Bucket="bench-read")
    _parallel(lambda i: s3.put_object(Bucket="bench-list", Key=f"k{i:06d}", Body=b"x"), objects)
    _parallel(lambda i: s3.put_object(Bucket="bench-read", Key=f"r{i:03d}", Body=BLOB), READ_OBJECTS)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_CONFIG_FILE="/dev/null",
                      AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return lambda **kw: S3Connector(Config(), endpoint_url=emu.endpoint, **kw)


def gcs_client(endpoint: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="bench", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": endpoint})


def seed_gcs(emu: Emulator, objects: int) -> Callable[..., Connector]:
    from tierscan.connectors.gcs import GCSConnector

    gcs = gcs_client(emu.endpoint)
    listed, read = gcs.create_bucket("bench-list"), gcs.create_bucket("bench-read")
    _parallel(lambda i: listed.blob(f"k{i:06d}").upload_from_string(b"x"), objects)
    _parallel(lambda i: read.blob(f"r{i:03d}").upload_from_string(BLOB), READ_OBJECTS)
    return lambda **kw: GCSConnector(Config(), api_root=emu.endpoint, **kw)


def seed_azure(emu: Emulator, objects: int) -> Callable[..., Connector]:
    from azure.storage.blob import BlobServiceClient

    from tierscan.connectors.azure import AzureConnector

    cs = azurite_connection_string(emu.endpoint)
    service = BlobServiceClient.from_connection_string(cs)
    listed, read = service.create_container("bench-list"), service.create_container("bench-read")
    _parallel(lambda i: listed.upload_blob(f"k{i:06d}", b"x"), objects)
    _parallel(lambda i: read.upload_blob(f"r{i:03d}", BLOB), READ_OBJECTS)
    return lambda **kw: AzureConnector(Config(), connection_string=cs, **kw)


async def _timed(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Operations per second for `n` calls of `one`, `concurrency` at a time, and the client's CPU
    milliseconds per operation (all threads of this process; the emulators run in others)."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / n


async def _read_one(conn: Connector, refs: list[ObjectRef], i: int) -> bytes:
    return await conn.read_range(refs[i % len(refs)], 0, READ_BYTES)


async def bench_connector(make: Callable[..., Connector], scheme_root: str, reads: int) -> dict[str, float]:
    results = {}
    async with make() as conn:
        [_ async for _ in conn.list_objects(parse_target(f"{scheme_root}bench-read"))]  # client start-up
        start = time.perf_counter()
        count = sum([1 async for _ in conn.list_objects(parse_target(f"{scheme_root}bench-list"))])
        results["list"] = count / (time.perf_counter() - start)
    for c in CONCURRENCY:
        async with make(max_concurrency=c) as conn:
            refs: list[ObjectRef] = [r async for r in conn.list_objects(parse_target(f"{scheme_root}bench-read"))]
            await conn.read_range(refs[0], 0, READ_BYTES)  # warm the client and the bucket lookup
            n = reads if c > 1 else max(50, reads // 4)
            rate, cpu = await _timed(n, c, partial(_read_one, conn, refs))
            results[f"read@{c}"], results[f"cpu@{c}"] = rate, cpu
    return results


async def bench_threads(listing: Callable[[], int], read: Callable[[int], bytes], reads: int) -> dict[str, float]:
    """A blocking SDK driven from asyncio, one thread per request in flight: the alternative to each async
    client. `listing()` lists the listing bucket into ObjectRefs (as the connector does) and counts them."""
    results = {}
    start = time.perf_counter()
    count = await asyncio.to_thread(listing)
    results["list"] = count / (time.perf_counter() - start)
    loop = asyncio.get_running_loop()
    for c in CONCURRENCY:
        with ThreadPoolExecutor(c) as pool:
            await loop.run_in_executor(pool, read, 0)
            n = reads if c > 1 else max(50, reads // 4)
            rate, cpu = await _timed(n, c, lambda i: loop.run_in_executor(pool, read, i))
            results[f"read@{c}"], results[f"cpu@{c}"] = rate, cpu
    return results


def threads_s3(emu: Emulator) -> tuple[Callable[[], int], Callable[[int], bytes]]:
    import boto3
    from botocore.config import Config as BotoConfig

    from tierscan.connectors.s3 import S3Connector, _Bucket

    s3 = boto3.client("s3", endpoint_url=emu.endpoint, region_name="us-east-1",
                      config=BotoConfig(max_pool_connections=64, retries={"total_max_attempts": 1}))
    to_ref, bucket = S3Connector(Config())._ref, _Bucket("bench-list", "us-east-1", True, False, url="")

    def listing() -> int:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bench-list")
        return sum(1 for page in pages for entry in page.get("Contents", []) if to_ref(bucket, entry, None))

    def read(i: int) -> bytes:
        answer = s3.get_object(Bucket="bench-read", Key=f"r{i % READ_OBJECTS:03d}", Range=f"bytes=0-{READ_BYTES - 1}")
        return answer["Body"].read()

    return listing, read


def threads_gcs(emu: Emulator) -> tuple[Callable[[], int], Callable[[int], bytes]]:
    from tierscan.connectors.gcs import GCSConnector

    gcs = gcs_client(emu.endpoint)
    to_ref = GCSConnector(Config())._ref
    blobs = [gcs.bucket("bench-read").blob(f"r{i:03d}") for i in range(READ_OBJECTS)]

    def listing() -> int:
        return sum(1 for b in gcs.list_blobs("bench-list", page_size=1000) if to_ref("bench-list", "us", b._properties))

    return listing, lambda i: blobs[i % READ_OBJECTS].download_as_bytes(start=0, end=READ_BYTES - 1)


def threads_azure(emu: Emulator) -> tuple[Callable[[], int], Callable[[int], bytes]]:
    from azure.storage.blob import BlobServiceClient

    from tierscan.connectors.azure import AzureConnector

    service = BlobServiceClient.from_connection_string(azurite_connection_string(emu.endpoint), retry_total=0)
    to_ref = AzureConnector(Config())._ref
    read_container = service.get_container_client("bench-read")

    def listing() -> int:
        blobs = service.get_container_client("bench-list").list_blobs(results_per_page=5000)
        return sum(1 for b in blobs if to_ref("devstoreaccount1", "bench-list", b))

    def read(i: int) -> bytes:
        return read_container.download_blob(f"r{i % READ_OBJECTS:03d}", offset=0, length=READ_BYTES).readall()

    return listing, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000, help="objects in the listing bucket")
    parser.add_argument("--reads", type=int, default=400, help="ranged reads per concurrency level")
    parser.add_argument("--only", default="s3,gcs,azure")
    args = parser.parse_args()
    plans = {
        "s3": (start_moto, seed_s3, "s3://", "moto", "aiobotocore + signed GETs", threads_s3, "boto3"),
        "gcs": (start_fakegcs, seed_gcs, "gs://", "fake-gcs", "gcloud-aio-storage", threads_gcs,
                "google-cloud-storage"),
        "azure": (start_azurite, seed_azure, "az://devstoreaccount1/", "Azurite", "azure.storage.blob.aio",
                  threads_azure, "azure.storage.blob"),
    }
    rows: list[tuple[str, dict[str, float]]] = []
    for name in args.only.split(","):
        start, seed, root, server, client, threads, blocking = plans[name]
        emu = start()
        try:
            make = seed(emu, args.objects)
            rows.append((f"{client} ({server}) [connector]", asyncio.run(bench_connector(make, root, args.reads))))
            rows.append((f"{blocking} in threads ({server})", asyncio.run(bench_threads(*threads(emu), args.reads))))
        finally:
            emu.stop()
    levels = "".join(f" {'64KiB@' + str(c) + '/s':>12}" for c in CONCURRENCY)
    header = f"{'client (server)':48} {'listed/s':>9}{levels} {'CPU ms/read@32':>15}"
    print(f"\n{args.objects} objects listed into ObjectRefs; {args.reads} ranged reads of 64 KiB per level "
          f"({os.cpu_count()} cores, client and server on the same machine; load average {os.getloadavg()[0]:.1f})")
    print(header)
    print("-" * len(header))
    for label, r in rows:
        print(f"{label:48} {r['list']:9.0f}" + "".join(f" {r[f'read@{c}']:12.0f}" for c in CONCURRENCY)
              + f" {r['cpu@32']:15.2f}")


if __name__ == "__main__":
    main()

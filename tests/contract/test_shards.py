"""Sharding against the emulators: three `tierscan scan --shard I/3` processes over S3 (moto), GCS
(fake-gcs-server) and Azure (Azurite), then `tierscan merge` with the parts and the results in a moto bucket,
must report what one process reports. The config comes from that bucket too (`--config s3://...`)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.blob import BlobServiceClient, StandardBlobTier
from emulators import AZURITE_ACCOUNT, Emulator, azurite_connection_string
from test_shard import assert_same, comparable

from .conftest import gcs_client

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "exif"
PHOTOS = [(DATA / name).read_bytes() for name in ("exifpy__Canon_40D.jpg", "exifpy__DSCN0010.jpg")]
CLI = [sys.executable, "-m", "tierscan.scanner"]


def _seed(emulators: dict[str, Emulator]) -> list[str]:
    """The same photos in every cloud and tier, plus same-size noise (a size class with no duplicate)."""
    s3 = boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="ap-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for bucket in ("shard-hk", "shard-results"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-east-1"})
    noise = random.Random(3)
    for i, photo in enumerate(PHOTOS):
        s3.put_object(Bucket="shard-hk", Key=f"a/{i}.jpg", Body=photo)
        s3.put_object(Bucket="shard-hk", Key=f"b/{i}.jpg", Body=photo, StorageClass="STANDARD_IA")
        s3.put_object(Bucket="shard-hk", Key=f"noise/{i}.bin", Body=noise.randbytes(len(photo)))
    gcs = gcs_client(emulators["fakegcs_hk"].endpoint).create_bucket("shard-gcs")
    service = BlobServiceClient.from_connection_string(azurite_connection_string(emulators["azurite"].endpoint))
    container = service.create_container("shard-az")
    for i, photo in enumerate(PHOTOS):
        gcs.blob(f"{i}.jpg").upload_from_string(photo)
        container.upload_blob(f"{i}.jpg", photo, standard_blob_tier=StandardBlobTier.COOL)
    config = f"buckets:\n  {AZURITE_ACCOUNT}/shard-az: {{region: eastasia}}\n"
    s3.put_object(Bucket="shard-results", Key="config/tierscan.yaml", Body=config.encode())
    return ["s3://shard-hk", "gs://shard-gcs", f"az://{AZURITE_ACCOUNT}/shard-az"]


def _env(emulators: dict[str, Emulator]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "STORAGE_EMULATOR"))}
    env.update(emulators["moto"].env, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    env.update(emulators["fakegcs_hk"].env)
    env.update(emulators["azurite"].env)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_three_shards_against_the_emulators_match_one_process(emulators: dict[str, Emulator], tmp_path: Path) -> None:
    targets = _seed(emulators)
    env = _env(emulators)
    config = "s3://shard-results/config/tierscan.yaml"
    results = "s3://shard-results/tierscan"
    _run(["scan", *targets, "--config", config, "--db", str(tmp_path / "one.db"), "--format", "none",
          "--workers", "1"], env)

    procs = [subprocess.Popen([*CLI, "scan", *targets, "--config", config, "--db", str(tmp_path / f"p{i}.db"),
                               "--results", results, "--workers", "1"],
                              env={**env, "CLOUD_RUN_TASK_INDEX": str(i), "CLOUD_RUN_TASK_COUNT": "3"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    parts = [f"{results}/shards/part-{i}-of-3.db" for i in range(3)]  # as the Terraform modules name them
    merged = _run(["merge", *parts, "--config", config, "--db", str(tmp_path / "all.db"), "--results", results], env)
    assert "0 conflict(s)" in merged.stderr

    def report(db: str) -> dict[str, Any]:
        done = _run(["report", "--config", config, "--db", str(tmp_path / db), "--format", "json"], env)
        return dict(json.loads(done.stdout))

    expected, got = report("one.db"), report("all.db")
    assert_same(comparable(got), comparable(expected))
    exact = [g for g in expected["groups"] if g["kind"] == "exact"]
    assert len(exact) == 2 and all({m["uri"].split(":")[0] for m in g["members"]} == {"s3", "gs", "az"} for g in exact)

    s3 = boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="ap-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    latest = json.loads(s3.get_object(Bucket="shard-results", Key="tierscan/latest")["Body"].read())
    published = json.loads(s3.get_object(Bucket="shard-results", Key=f"tierscan/{latest['report']}")["Body"].read())
    assert_same(comparable(published), comparable(got))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="shard-results", Prefix="tierscan/")["Contents"]}
    assert {f"tierscan/{latest['run']}/{name}" for name in ("report.html", "inventory.jsonl")} <= keys

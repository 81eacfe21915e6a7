"""S3 full-object CRC64NVME checksums on moto: the listing names the algorithm, a HEAD gives the value, and
copies uploaded with other part sizes (or in one PUT) are grouped without reading their bytes.

moto 5.2.5 stores the CRC64NVME a client asks for (`ChecksumAlgorithm`, and `ChecksumType=FULL_OBJECT` for
multipart uploads), lists `ChecksumAlgorithm` (not `ChecksumType`) and answers HeadObject with
`ChecksumMode=ENABLED`. It does not add a CRC64NVME to uploads that ask for none, as S3 does: here every
upload asks for one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from emulators import Emulator

from tierscan.connectors.base import parse_target
from tierscan.connectors.s3 import S3Connector
from tierscan.scanner.core.config import Config

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
DATA = (Path(__file__).resolve().parents[1] / "data" / "exif" / "exifpy__Canon_40D.jpg").read_bytes()
BODY = DATA + hashlib.shake_256(b"trailer").digest(11 * MIB)
OTHER = DATA + hashlib.shake_256(b"other").digest(11 * MIB)  # same size, same head, other bytes


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME (reflected polynomial 0x9a6c9329ac4bc9b5), bit by bit: for small inputs only."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _client(emulators: dict[str, Emulator]):
    return boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _upload(s3, bucket: str, key: str, body: bytes, part: int | None) -> None:
    if part is None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="CRC64NVME")
        return
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC64NVME",
                                        ChecksumType="FULL_OBJECT")
    parts = []
    for n, start in enumerate(range(0, len(body), part), start=1):
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                                Body=body[start:start + part], ChecksumAlgorithm="CRC64NVME")
        parts.append({"ETag": answer["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})


def test_the_listing_names_the_crc64nvme_and_a_head_gives_it(emulators: dict[str, Emulator], monkeypatch) -> None:
    s3 = _client(emulators)
    s3.create_bucket(Bucket="crc-head")
    s3.put_object(Bucket="crc-head", Key="with.bin", Body=b"hello", ChecksumAlgorithm="CRC64NVME")
    s3.put_object(Bucket="crc-head", Key="without.bin", Body=b"hello", ChecksumAlgorithm="CRC32")
    for name, value in {**emulators["moto"].env, "AWS_CONFIG_FILE": "/dev/null",
                        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
        monkeypatch.setenv(name, value)

    async def go() -> tuple[dict[str, dict[str, str | None]], dict[str, str], int]:
        async with S3Connector(Config()) as conn:
            refs = {r.key: r async for r in conn.list_objects(parse_target("s3://crc-head"))}
            heads = conn.requests["head"]
            value = await conn.head_checksums(refs["with.bin"], ["crc64nvme"])
            return {k: r.checksums for k, r in refs.items()}, value, conn.requests["head"] - heads

    listed, fetched, heads = asyncio.run(go())
    assert listed["with.bin"] == {"md5": hashlib.md5(b"hello").hexdigest(), "crc64nvme": None}
    assert listed["without.bin"] == {"md5": hashlib.md5(b"hello").hexdigest()}  # a CRC32: never used to plan
    assert fetched == {"crc64nvme": f"{crc64nvme(b'hello'):016x}"} and heads == 1


def _scan(emulators: dict[str, Emulator], tmp_path: Path, targets: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(emulators["moto"].env, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", *targets, "--db", str(tmp_path / "c.db"),
                          "--no-perceptual", "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_copies_in_other_part_layouts_group_by_crc64nvme_without_reading_them_whole(
        emulators: dict[str, Emulator], tmp_path: Path) -> None:
    s3 = _client(emulators)
    for bucket in ("crc-a", "crc-b"):
        s3.create_bucket(Bucket=bucket)
    _upload(s3, "crc-a", "photo.jpg", BODY, 5 * MIB)
    _upload(s3, "crc-b", "other-parts.jpg", BODY, 8 * MIB)  # another multipart ETag
    _upload(s3, "crc-b", "plain.jpg", BODY, None)  # an MD5 ETag
    _upload(s3, "crc-b", "lookalike.jpg", OTHER, 5 * MIB)  # same size and head, other bytes

    report = _scan(emulators, tmp_path, ["s3://crc-a", "s3://crc-b"])
    [group] = [g for g in report["groups"] if g["kind"] == "exact"]
    assert sorted(m["uri"] for m in group["members"]) == [
        "s3://crc-a/photo.jpg", "s3://crc-b/other-parts.jpg", "s3://crc-b/plain.jpg"]
    assert report["scan"]["bytes_read"] < len(BODY)  # EXIF heads and tails; no object read whole

    again = _scan(emulators, tmp_path, ["s3://crc-a", "s3://crc-b"])
    assert again["scan"]["bytes_read"] == 0 and again["scan"]["requests"] == 0  # the values were kept
    assert [g["members"] for g in again["groups"]] == [g["members"] for g in report["groups"]]

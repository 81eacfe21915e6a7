"""S3 multipart ETags as content identity, on moto: copies uploaded with the same part size are matched
without a read; a copy with another part size, or a plain PUT of the same bytes, is matched by reading it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from emulators import Emulator

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
DATA = (Path(__file__).resolve().parents[1] / "data" / "exif" / "exifpy__Canon_40D.jpg").read_bytes()
BODY = DATA + hashlib.shake_256(b"trailer").digest(11 * MIB)  # a JPEG with a camera-style trailer


def _upload(s3, bucket: str, key: str, part: int | None) -> None:
    if part is None:
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
        return
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, start in enumerate(range(0, len(BODY), part), start=1):
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                                Body=BODY[start:start + part])
        parts.append({"ETag": answer["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})


def _scan(emulators: dict[str, Emulator], tmp_path: Path, name: str, targets: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(emulators["moto"].env, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", *targets,
                          "--db", str(tmp_path / f"{name}.db"), "--no-perceptual", "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_equal_multipart_etags_match_without_reading_and_other_uploads_by_reading(
        emulators: dict[str, Emulator], tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for bucket in ("mpu-a", "mpu-b"):
        s3.create_bucket(Bucket=bucket)
    _upload(s3, "mpu-a", "photo.jpg", 5 * MIB)
    _upload(s3, "mpu-b", "photo-copy.jpg", 5 * MIB)  # same tool, same part size: the same ETag

    same = _scan(emulators, tmp_path, "same", ["s3://mpu-a", "s3://mpu-b"])
    [group] = [g for g in same["groups"] if g["kind"] == "exact"]
    assert sorted(m["uri"] for m in group["members"]) == ["s3://mpu-a/photo.jpg", "s3://mpu-b/photo-copy.jpg"]
    assert same["scan"]["bytes_read"] < 256 * 1024  # one copy's EXIF head, no whole read

    _upload(s3, "mpu-b", "other-parts.jpg", 8 * MIB)  # same bytes, another part size: another ETag
    _upload(s3, "mpu-b", "plain.jpg", None)  # same bytes, one PUT: a real MD5
    mixed = _scan(emulators, tmp_path, "mixed", ["s3://mpu-a", "s3://mpu-b"])
    [group] = [g for g in mixed["groups"] if g["kind"] == "exact"]
    assert len(group["members"]) == 4
    # Matching across kinds needs the bytes: the two multipart identities are read whole, once each; the
    # plain PUT takes the SHA-256 of a read whose MD5 equals its own.
    assert 2 * len(BODY) <= mixed["scan"]["bytes_read"] < 3 * len(BODY)

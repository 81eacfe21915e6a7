"""Bytes that S3 full-object checksums save (prints figures; not a test).

Builds on a moto server an estate of multipart objects twice, with the same bytes: once uploaded with
CRC64NVME full-object checksums (`ChecksumAlgorithm=CRC64NVME`, `ChecksumType=FULL_OBJECT`), once with
none. A share of the objects are byte copies of others, uploaded with other part sizes, as another tool
would: their multipart ETags differ, so without a full-object checksum only reading tells them apart from
look-alikes. Each bucket is scanned into its own catalog (`tierscan scan --no-perceptual`), and the bytes
read, requests (GETs and HEADs), HEADs answered and exact groups are printed side by side.

    python benchmarks/multipart_checksums.py                       # 200 objects of 8-20 MiB, 40% copies
    python benchmarks/multipart_checksums.py --objects 50 --copies 0.4

moto stores the CRC64NVME a client asks for and answers HeadObject with ChecksumMode; it does not add one
to uploads that ask for none, as S3 does, which is what the second bucket stands for (older objects).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

MIB = 1024 * 1024
HEAD_JPEG = (REPO / "tests" / "data" / "exif" / "exifpy__Canon_40D.jpg").read_bytes()
PARTS = (5 * MIB, 6 * MIB, 8 * MIB)  # part sizes transfer tools use


def body(seed: int, size: int) -> bytes:
    """A JPEG with a camera-style trailer of `size` bytes in all, its bytes fixed by `seed`."""
    return HEAD_JPEG + hashlib.shake_256(seed.to_bytes(8, "big")).digest(size - len(HEAD_JPEG))


def upload(s3, bucket: str, key: str, data: bytes, part: int, checksum: bool) -> None:
    extra = {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"} if checksum else {}
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(data), part), start=1):
        part_extra = {"ChecksumAlgorithm": "CRC64NVME"} if checksum else {}
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                Body=data[start:start + part], **part_extra)
        parts.append({"ETag": answer["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})


def build(s3, objects: int, copies: float, min_mb: int, max_mb: int, seed: int) -> list[tuple[str, int, int, int]]:
    """(key, content seed, size, part size) of each object: originals in 5 MiB parts, copies in another."""
    rng = random.Random(seed)
    originals = max(1, round(objects * (1 - copies)))
    spec = [(f"orig/{i:04d}.jpg", i, rng.randint(min_mb * MIB, max_mb * MIB), PARTS[0]) for i in range(originals)]
    for j in range(objects - originals):
        _, source, size, _ = spec[rng.randrange(originals)]
        spec.append((f"copy/{j:04d}.jpg", source, size, rng.choice(PARTS[1:])))
    for bucket, checksum in (("mpu-crc64", True), ("mpu-plain", False)):
        s3.create_bucket(Bucket=bucket)
        for key, source, size, part in spec:
            upload(s3, bucket, key, body(source, size), part, checksum)
    return spec


def scan(env: dict[str, str], bucket: str, db: Path) -> dict[str, object]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tierscan.scanner", "scan", f"s3://{bucket}", "--db", str(db),
                          "--no-perceptual", "--format", "json"], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True)
    wall = time.perf_counter() - started
    report = json.loads(out.stdout)
    with sqlite3.connect(db) as con:
        heads = con.execute("SELECT COUNT(*) FROM objects WHERE json_extract(checksums, '$.crc64nvme') "
                            "IS NOT NULL").fetchone()[0]
    groups = sorted(sorted(m["uri"].split("/", 3)[3] for m in g["members"])
                    for g in report["groups"] if g["kind"] == "exact")
    return {"bytes": report["scan"]["bytes_read"], "requests": report["scan"]["requests"], "heads": heads,
            "groups": groups, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--copies", type=float, default=0.4, help="share of objects that are byte copies")
    parser.add_argument("--min-mb", type=int, default=8)
    parser.add_argument("--max-mb", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import boto3
    from emulators import start_moto

    with tempfile.TemporaryDirectory(prefix="mpu-checksums-") as tmp:
        moto = start_moto(log_dir=Path(tmp))
        try:
            s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
            started = time.perf_counter()
            spec = build(s3, args.objects, args.copies, args.min_mb, args.max_mb, args.seed)
            stored = sum(size for _, _, size, _ in spec)
            print(f"estate: {len(spec)} objects, {stored / MIB:,.0f} MiB a bucket, built in "
                  f"{time.perf_counter() - started:.0f} s")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(moto.env, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
            rows = {bucket: scan(env, bucket, Path(tmp) / f"{bucket}.db") for bucket in ("mpu-crc64", "mpu-plain")}
        finally:
            moto.stop()
    print(f"{'bucket':<12} {'bytes read':>14} {'% stored':>9} {'requests':>9} {'HEADs':>6} {'groups':>7} {'wall s':>7}")
    for bucket, row in rows.items():
        print(f"{bucket:<12} {row['bytes']:>14,} {100 * row['bytes'] / stored:>8.2f}% {row['requests']:>9,} "
              f"{row['heads']:>6} {len(row['groups']):>7} {row['wall']:>7.1f}")
    same = rows["mpu-crc64"]["groups"] == rows["mpu-plain"]["groups"]
    print(f"exact groups identical in both buckets: {same}")


if __name__ == "__main__":
    main()

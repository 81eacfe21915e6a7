"""Crash-safe and resumable: `python -m tierscan.scanner scan` is killed with SIGKILL at several points, run again, and
must (a) not re-read any object whose result the killed run had committed, and (b) end with the same
report as an uninterrupted scan (timestamps and the scan's own cost figures aside).

The scan reads S3 (moto) through the fault proxy, which stalls every object read after the Nth: the
subprocess is then provably mid-read when it is killed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from emulators import Emulator
from faultproxy import FaultProxy, Request

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "exif"
PHOTOS = [(DATA / name).read_bytes() for name in ("exifpy__Canon_40D.jpg", "exifpy__DSCN0010.jpg")]
OBJECTS = 600  # > 2 x the catalog's write batch, so a mid-read kill leaves committed results behind


def _seed(endpoint: str) -> str:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    bucket = f"crash-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    rng = __import__("random").Random(3)
    # Pairs of equal sizes (so content must be read to tell them apart), some exact duplicates, two photos.
    bodies = {f"blob/{i:04d}.bin": rng.randbytes(300 + i // 2) for i in range(OBJECTS)}
    for i in range(0, OBJECTS, 50):
        bodies[f"blob/{i + 1:04d}.bin"] = bodies[f"blob/{i:04d}.bin"]
    for n, photo in enumerate(PHOTOS):
        for copy in range(2):
            bodies[f"photos/{n}-{copy}.jpg"] = photo
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), bodies.items()))
    return bucket


def _object_key(request: Request, bucket: str) -> str | None:
    """The key of an object GET (path-style), None for listings and bucket calls."""
    path = request.target.split("?", 1)[0]
    prefix = f"/{bucket}/"
    if request.method != "GET" or not path.startswith(prefix) or len(path) == len(prefix):
        return None
    from urllib.parse import unquote

    return unquote(path[len(prefix):])


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "STORAGE_EMULATOR"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return env


def _scan_argv(bucket: str, db: Path) -> list[str]:
    return [sys.executable, "-m", "tierscan.scanner", "scan", f"s3://{bucket}", "--db", str(db), "--format", "none",
            "--workers", "1", "--concurrency", "8"]


def _report(db: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "tierscan.scanner", "report", "--db", str(db), "--format", "json"],
                         check=True, env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    for volatile in ("generated_at", "scan"):
        report.pop(volatile, None)
    # The last scan's own bill (and the break-even month it feeds) describes that run, not the estate.
    for key in [k for k in report["totals"] if k.startswith("scan_") or k == "break_even_month_with_scan"]:
        report["totals"].pop(key)
    return report


def report_diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as `path: a != b` lines (empty: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for k in sorted(a.keys() | b.keys(), key=str)
                for line in report_diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b, strict=True)) for line in report_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def _finished(db: Path) -> set[str]:
    """Keys whose result the catalog holds (committed), as a fresh reader sees them after the kill."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT key FROM objects WHERE status IN ('fingerprinted', 'skipped')").fetchall()
    except sqlite3.OperationalError:  # no objects table yet
        rows = []
    finally:
        conn.close()
    return {r[0] for r in rows}


@pytest.fixture(scope="module")
def estate(emulators: dict[str, Emulator], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The bucket, and the report of one uninterrupted scan of it (the reference)."""
    endpoint = emulators["moto"].endpoint
    bucket = _seed(endpoint)
    db = tmp_path_factory.mktemp("reference") / "ref.db"
    env = _env(endpoint)
    done = subprocess.run(_scan_argv(bucket, db), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return bucket, _report(db, env)


@pytest.mark.parametrize("kill_after", [0, 350, "end"], ids=["after-listing", "mid-read", "after-reads"])
def test_sigkill_then_rerun(emulators: dict[str, Emulator], estate: tuple[str, dict[str, Any]], tmp_path: Path,
                            kill_after: int | str) -> None:
    bucket, reference = estate
    proxy = FaultProxy(emulators["moto"].endpoint).start()
    try:
        env = _env(proxy.endpoint)
        db = tmp_path / "crash.db"
        seen: list[str] = []
        lock = threading.Lock()
        stall_from = 10**9 if kill_after == "end" else int(kill_after)

        def stall(request: Request) -> bool:
            key = _object_key(request, bucket)
            if key is None:
                return False
            with lock:
                seen.append(key)
                return len(seen) > stall_from

        proxy.fail(delay=120.0, times=10**9, match=stall)
        scan = subprocess.Popen(_scan_argv(bucket, db), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline and scan.poll() is None:
                with lock:
                    count = len(seen)
                if kill_after == "end":
                    # every object read once: the scan is grouping/evaluating or about to; kill now
                    if count >= OBJECTS:
                        break
                elif count > stall_from:
                    # Reads are stalled now; let those before the stall land in the catalog (a loaded
                    # machine may need a while to fingerprint them), then kill.
                    settle = time.monotonic() + 20
                    while stall_from and time.monotonic() < settle and not (db.exists() and _finished(db)):
                        time.sleep(0.2)
                    time.sleep(0.3)
                    break
                time.sleep(0.01)
            assert scan.poll() is None or kill_after == "end", "the scan ended before it could be killed"
        finally:
            if scan.poll() is None:
                os.kill(scan.pid, signal.SIGKILL)
            scan.wait(30)
        finished = _finished(db) if db.exists() else set()
        if kill_after == 350:
            assert finished, "a mid-read kill should leave committed results behind"

        proxy.clear()  # no faults: the rerun reads freely, and every object GET is logged
        rerun = subprocess.run(_scan_argv(bucket, db), env=env, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        reread = {k for r in proxy.requests if (k := _object_key(r, bucket)) is not None}
        assert not (reread & finished), f"re-read {len(reread & finished)} finished objects"
        diff = report_diff(_report(db, env), reference)
        assert diff == [], diff[:20]
        print(f"kill after {kill_after}: {len(finished)} finished before the kill, {len(reread)} read by the rerun")
    finally:
        proxy.stop()

"""A whole scan through the fault proxy, against each emulator (moto, fake-gcs-server, Azurite): bursts of
SlowDown (503) and 500s, connection resets, a response slower than the request timeout, truncated bodies,
403 on some keys, and an object replaced between listing and reading. Every object must end fingerprinted or
in the report's `skipped` list with a reason (objects lost: 0), the replaced object must never carry the old
version's fingerprint, and a clean rescan of the same catalog must give the same report as a clean scan from
scratch.

Run with `-s` to see the figures: faults injected, objects scanned, objects lost, report diff.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from emulators import Emulator
from faultproxy import FaultProxy, Request

import tierscan.connectors.registry as registry
from tierscan.connectors.base import RetryPolicy
from tierscan.scanner.core.config import Config
from tierscan.scanner.report.outputs import report_stream
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

from .conftest import Backend
from .test_crash_resume import report_diff

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
OTHER = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
# Unicode, `../` inside a segment, percent-escapes and a tab. (Keys with a newline are covered on local folders,
# tests/test_apply.py: moto answers 404 to a PUT of one; a key with real `..` segments cannot be written through
# botocore, whose URL normalisation resolves it away.)
HOSTILE_KEYS = ["odd/相片 ../x.jpg", "odd/%2e%2e/percent.jpg", "odd/..x/tab\tkey.jpg"]


def _bodies() -> dict[str, bytes]:
    rng = random.Random(11)
    bodies: dict[str, bytes] = {}
    for i in range(40):  # distinct images (JPEG plus trailing bytes), sizes in colliding pairs
        bodies[f"img/{i:03d}.jpg"] = PHOTO + rng.randbytes(1 + i // 2)
    bodies["img/dup-a.jpg"] = bodies["img/dup-b.jpg"] = OTHER
    bodies["img/replaced.jpg"] = PHOTO + b"old-version"
    bodies["img/denied-1.jpg"] = PHOTO + b"d1"
    bodies["img/denied-2.jpg"] = PHOTO + b"d2"
    bodies["img/slow.jpg"] = PHOTO + b"slow"
    bodies["img/truncated.jpg"] = PHOTO + b"trunc"
    bodies["empty.bin"] = b""
    for key in HOSTILE_KEYS:
        bodies[key] = OTHER + key.encode()
    return bodies


def _use(monkeypatch: pytest.MonkeyPatch, backend: Backend, endpoint: str | None, timeout: float) -> None:
    """Make scans of the backend's scheme go to `endpoint` (None: the emulator itself) with a short request
    timeout and a quick retry policy."""
    scheme = backend.target("data", "").split("://")[0]

    base = registry.connector_class(scheme)

    class Faulty(base):  # type: ignore[valid-type,misc]
        """The backend's class (the core reads its capabilities), built the backend's way."""

        def __new__(cls, config: Config, **kw: Any) -> Any:
            return backend.make(config, endpoint, request_timeout=timeout,
                                retry=RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.1), **kw)

    monkeypatch.setitem(registry._registered, scheme, Faulty)


def _scan(db: Path, target: str, config: Config) -> dict[str, Any]:
    with Catalog(db) as catalog:
        asyncio.run(run_scan(config, catalog, [target]))
        report = json.loads(report_stream(config, catalog).whole().model_dump_json())
    report.pop("generated_at", None)
    report.pop("scan", None)
    for key in [k for k in report["totals"] if k.startswith("scan_") or k == "break_even_month_with_scan"]:
        report["totals"].pop(key)
    return report


def test_fault_run_loses_nothing(http_backend: Backend, emulators: dict[str, Emulator], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    backend = http_backend
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    prefix = f"faults-{uuid.uuid4().hex[:10]}/"
    bodies = _bodies()
    for key, body in bodies.items():
        backend.put("data", prefix + key, body)
    target = backend.target("data", prefix)

    def key_of(r: Request) -> str | None:
        """The key (below the test's prefix) an object read asks for; None for listings and the rest."""
        path = unquote(r.target.split("?", 1)[0])
        at = path.find("/" + prefix)
        if r.method != "GET" or at < 0:
            return None
        return path[at + 1 + len(prefix):]

    def on(*keys: str) -> Any:
        return lambda r: key_of(r) in keys

    def is_listing(r: Request) -> bool:
        path = r.target.split("?", 1)[0]
        return r.method == "GET" and ("list-type" in r.target or "comp=list" in r.target or path.endswith("/o"))

    replaced = PHOTO + b"new-version"  # same size as the old bytes: only the ETag / generation tell them apart
    state = {"replaced": False}

    def replace_first(r: Request) -> bool:
        if key_of(r) == "img/replaced.jpg" and not state["replaced"]:
            state["replaced"] = True
            backend.put("data", prefix + "img/replaced.jpg", replaced)  # between listing and reading
        return False

    any_object = lambda r: key_of(r) is not None  # noqa: E731
    proxy = FaultProxy(backend.endpoint).start()  # type: ignore[arg-type]
    try:
        proxy.fail(match=replace_first, times=1)
        proxy.fail(status=403, times=10**6, match=on("img/denied-1.jpg", "img/denied-2.jpg"))
        proxy.fail(delay=3.0, times=1, match=on("img/slow.jpg"))  # past the 1 s timeout: retried
        proxy.fail(truncate=500, times=2, match=on("img/truncated.jpg"))
        proxy.fail(times=8, match=any_object, **backend.throttle)  # a burst of SlowDown / 429 / ServerBusy
        proxy.fail(status=500, body=b"", times=3, match=any_object)
        proxy.fail(reset=True, times=4, match=any_object)
        proxy.fail(times=3, match=is_listing, **backend.throttle)  # throttled listing pages too
        _use(monkeypatch, backend, proxy.endpoint, timeout=1.0)
        db = tmp_path / "faulty.db"
        _scan(db, target, backend.config)
        injected = proxy.fired
    finally:
        proxy.stop()

    with Catalog(db) as catalog:
        records = {r.key[len(prefix):]: r for r in catalog.records()}
        report = report_stream(backend.config, catalog).whole()
    skipped = {s.uri: s.reason for s in report.skipped}
    assert set(records) == set(bodies), "every object is listed"
    lost = [k for k, r in records.items()
            if not (r.status == "fingerprinted" or (skipped.get(r.uri)))]
    assert lost == []
    for key in ("img/denied-1.jpg", "img/denied-2.jpg"):
        assert records[key].status == "failed" and "denied" in (records[key].reason or "").lower()
    for key in ("img/slow.jpg", "img/truncated.jpg", *HOSTILE_KEYS):
        assert records[key].status == "fingerprinted", (key, records[key].reason)
    moved = records["img/replaced.jpg"]
    assert moved.sha256 != hashlib.sha256(bodies["img/replaced.jpg"]).hexdigest()  # never two versions mixed
    assert moved.status == "fingerprinted" or (skipped.get(moved.uri))
    if moved.status == "fingerprinted" and moved.sha256:
        assert moved.sha256 == hashlib.sha256(replaced).hexdigest()

    # A clean rescan of the faulty run's catalog equals a clean scan from scratch.
    _use(monkeypatch, backend, None, timeout=30.0)
    rescanned = _scan(db, target, backend.config)
    clean = _scan(tmp_path / "clean.db", target, backend.config)
    diff = report_diff(rescanned, clean)
    print(f"\nfault run [{backend.name}]: faults injected {injected} (+1 object replaced between listing and "
          f"reading), objects scanned {len(records)}, objects lost {len(lost)}, skipped with a reason "
          f"{sorted(k for k, r in records.items() if r.status != 'fingerprinted')}, report diff after a clean "
          f"rescan vs a clean run: {diff or 'none'}")
    assert injected >= 20
    assert diff == []

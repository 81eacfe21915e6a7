"""Whole objects through the connector contract (`Connector.location`, `get_object`, `put_object`), one suite
over local, s3, gcs and azure: what a results location needs (`tierscan.scanner.report.publish`), and a run
published there through the registry by URI scheme alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from emulators import Emulator

from tierscan.connectors.base import parse_target
from tierscan.scanner.report.publish import open_store, publish_run, read_uri

from .conftest import BIG, Backend

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch(backend: Backend) -> Iterator[str]:
    """A fresh top-level name in the `cn` bucket, removed afterwards (its keys are the test's to delete)."""
    name = f"whole-{uuid.uuid4().hex[:8]}"
    yield name
    if backend.name == "local":
        shutil.rmtree(Path(backend.target("cn", "")) / name, ignore_errors=True)


def test_put_get_and_list_agree(backend: Backend, scratch: str) -> None:
    key = f"{scratch}/run one/report ü.json"
    base = parse_target(backend.target("cn", ""))

    async def go() -> None:
        async with backend.connector() as conn:
            assert "put" in conn.capabilities.writes
            loc = conn.location(base, key)
            assert await conn.get_object(loc) is None
            await conn.put_object(loc, b'{"n": 1}', "application/json")
            assert await conn.get_object(loc) == b'{"n": 1}'
            await conn.put_object(loc, BIG)  # replaced whole
            assert await conn.get_object(loc) == BIG
            large = BIG * 40  # 8 MB: past a single-request upload where the SDK has one (GCS: 5 MB)
            await conn.put_object(loc, large)
            assert await conn.get_object(loc) == large
            await conn.put_object(loc, BIG)
            # The location names the object as a listing of the same target does.
            listed = {ref.uri: ref async for ref in conn.list_objects(base) if scratch in ref.uri}
            assert list(listed) == [loc.uri]
            ref = listed[loc.uri]
            assert (ref.bucket, ref.key, ref.size) == (loc.bucket, loc.key, len(BIG))

    try:
        asyncio.run(go())
    finally:
        if backend.name != "local":
            backend.delete("cn", key)


def test_location_joins_the_target_prefix(http_backend: Backend) -> None:
    conn = http_backend.connector()
    loc = conn.location(parse_target(http_backend.target("cn", "results/")), "latest")
    assert loc.key == "results/latest"
    assert loc.uri == http_backend.target("cn", "results/latest")
    assert parse_target(loc.uri).location == loc.bucket


@pytest.fixture
def results_env(backend: Backend, emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The environment that points each SDK at its emulator (as a deployed job's would point at the cloud),
    and a results URI in the backend's `cn` bucket, emptied afterwards."""
    for name in ("moto", "fakegcs", "azurite"):
        for key, value in emulators[name].env.items():
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    prefix = f"results-{uuid.uuid4().hex[:8]}"
    if backend.name == "local":
        yield str(Path(backend.target("cn", "")) / prefix)
        shutil.rmtree(Path(backend.target("cn", "")) / prefix, ignore_errors=True)
        return
    yield backend.target("cn", prefix)

    async def keys() -> list[str]:
        async with backend.connector() as conn:
            return [ref.key async for ref in conn.list_objects(parse_target(backend.target("cn", prefix)))]

    for key in asyncio.run(keys()):
        backend.delete("cn", key)


def test_a_run_published_and_read_back_by_uri(backend: Backend, results_env: str, tmp_path: Path) -> None:
    files = tmp_path / "run"
    (files / "policy-a").mkdir(parents=True)
    (files / "report.json").write_text('{"ok": true}\n')
    (files / "policy-a" / "resources.json").write_text("[]\n")
    store = open_store(results_env)
    run = publish_run(store, files, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert run == "runs/20260102T030405Z"
    latest = json.loads(read_uri(f"{results_env}/latest"))
    assert latest["files"] == ["policy-a/resources.json", "report.json"]
    assert latest["uri"] == f"{results_env}/{run}"
    assert read_uri(f"{results_env}/{latest['report']}") == b'{"ok": true}\n'
    assert store.get(f"{run}/policy-a/resources.json") == b"[]\n"
    assert store.get("shards/part-0-of-1.db") is None
    store.put("shards/part-0-of-1.db", b"SQLite")
    assert store.get("shards/part-0-of-1.db") == b"SQLite"

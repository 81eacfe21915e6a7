"""The core asks connectors what they can do (`Capabilities`) and never which provider they are: fake
connectors under test-only schemes, each declaring a capability off, show that the core reads it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from tierscan.connectors import register_connector
from tierscan.connectors.base import Capabilities, Connector, Location, Target
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import ObjectRef
from tierscan.scanner.report.publish import local_parts, open_store, publish_run, read_uri

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Memory(Connector):
    """Objects in a dict shared by every instance: (bucket, key) -> (bytes, content type)."""

    scheme = "memory-test"
    capabilities = Capabilities(name="memory", writes=frozenset({"put"}))
    objects: ClassVar[dict[tuple[str, str], tuple[bytes, str]]] = {}

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        for (bucket, key), (data, _) in sorted(self.objects.items()):
            if bucket == target.location and key.startswith(target.prefix):
                yield self.make_ref(uri=f"{self.scheme}://{bucket}/{key}", bucket=bucket, key=key, size=len(data),
                                    modified=T0, storage_class=None, region=None)

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        return self.objects[(ref.bucket, ref.key)][0][start:end]

    async def get_object(self, loc: Location) -> bytes | None:
        found = self.objects.get((loc.bucket, loc.key))
        return None if found is None else found[0]

    async def put_object(self, loc: Location, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[(loc.bucket, loc.key)] = (data, content_type)


class ReadOnly(Memory):
    scheme = "readonly-test"
    capabilities = Capabilities(name="read-only")


@pytest.fixture(autouse=True)
def registered() -> None:
    register_connector(Memory.scheme, Memory, clobber=True)
    register_connector(ReadOnly.scheme, ReadOnly, clobber=True)
    Memory.objects.clear()


# ---- results locations go through the connector of their scheme ------------------------------------


def test_a_run_is_published_through_any_connector_that_can_put(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}")
    store = open_store("memory-test://results/deploy")
    run = publish_run(store, tmp_path, T0)
    assert Memory.objects[("results", f"deploy/{run}/report.json")] == (b"{}", "application/json")
    latest = json.loads(read_uri("memory-test://results/deploy/latest"))
    assert latest["uri"] == f"memory-test://results/deploy/{run}"
    store.put("shards/part-0-of-2.db", b"part")
    [fetched] = local_parts(["memory-test://results/deploy/shards/part-0-of-2.db"], tmp_path)
    assert fetched.read_bytes() == b"part"


def test_a_connector_that_cannot_put_holds_no_results() -> None:
    with pytest.raises(UsageError, match="cannot write objects"):
        open_store("readonly-test://results/deploy")


def test_a_missing_object_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no such object"):
        read_uri("memory-test://results/config.yaml")

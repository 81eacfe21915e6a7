"""The core asks connectors what they can do (`Capabilities`) and never which provider they are: fake
connectors under test-only schemes, each declaring a capability off, show that the core reads it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from tierscan.connectors import connector_class, register_connector
from tierscan.connectors.base import Capabilities, Connector, Location, ObjectState, Target
from tierscan.scanner.core.config import Config
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


# ---- the planner and the reads: ranged reads, declared checksums --------------------------------------


class Counted(Memory):
    """Objects listed with an MD5 each (`md5s`: what the listing says, true or not), every read logged."""

    scheme = "counted-test"
    capabilities = Capabilities(name="counted", checksums={"md5": "listing"})
    reads: ClassVar[list[tuple[str, int, int]]] = []
    md5s: ClassVar[dict[str, str]] = {}

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        async for ref in super().list_objects(target):
            md5 = self.md5s.get(ref.key)
            yield dataclasses.replace(ref, checksums={"md5": md5}) if md5 else ref

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        self.reads.append((ref.key, start, end))
        return await super()._read_range(ref, start, end)


class Whole(Counted):
    scheme = "whole-test"
    capabilities = Capabilities(name="whole", checksums={"md5": "listing"}, ranged_reads=False)


class Undeclared(Counted):
    scheme = "undeclared-test"
    capabilities = Capabilities(name="undeclared")  # lists MD5s it does not declare


def _jpeg(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed, 7, 9)).save(buf, "JPEG")
    return buf.getvalue() + seed.to_bytes(4, "big") * 10_000  # 40 KB: past a head and a tail


def _scan(scheme: str, tmp_path: Path, objects: dict[str, bytes]) -> dict[str, object]:
    import asyncio

    from tierscan.scanner.scan.catalog import Catalog
    from tierscan.scanner.scan.pipeline import run_scan

    register_connector(scheme, {c.scheme: c for c in (Counted, Whole, Undeclared)}[scheme], clobber=True)
    Counted.reads.clear()
    for key, data in objects.items():
        Memory.objects[("estate", key)] = (data, "")
    config = Config.model_validate({"scan": {"perceptual": False, "workers": 1}})
    with Catalog(tmp_path / f"{scheme}.db") as catalog:
        asyncio.run(run_scan(config, catalog, [f"{scheme}://estate"]))
        return {r.key: r for r in catalog.records()}


@pytest.mark.parametrize("scheme", ["counted-test", "whole-test"])
def test_a_backend_without_ranged_reads_is_read_whole(scheme: str, tmp_path: Path) -> None:
    records = _scan(scheme, tmp_path, {"a.jpg": _jpeg(1), "b.jpg": _jpeg(2)})
    sizes = {key: len(data) for (_, key), (data, _) in Memory.objects.items()}
    partial = [(key, start, end) for key, start, end in Counted.reads if (start, end) != (0, sizes[key])]
    if scheme == "whole-test":
        assert Counted.reads and not partial
        assert all(r.sha256 for r in records.values())  # type: ignore[attr-defined]
    else:
        assert partial  # the EXIF audit alone reads heads only where the backend can


def test_a_slice_from_a_backend_without_ranged_reads_is_cut_from_the_whole_object() -> None:
    import asyncio

    register_connector(Whole.scheme, Whole, clobber=True)
    Memory.objects[("b", "k")] = (bytes(range(100)), "")
    Counted.reads.clear()

    async def go() -> tuple[bytes, bytes, list[bytes]]:
        async with Whole(Config()) as conn:
            ref = conn.make_ref(uri="whole-test://b/k", bucket="b", key="k", size=100, modified=T0,
                                storage_class=None, region=None)
            state = ObjectState(size=100, modified=T0)
            chunks = [c async for c in conn.read_chunks(Location(ref.uri, "b", "k"), state, 30)]
            return await conn.read_range(ref, 10, 20), await conn.read_range(ref, -5), chunks

    middle, tail, chunks = asyncio.run(go())
    assert (middle, tail, chunks) == (bytes(range(10, 20)), bytes(range(95, 100)), [bytes(range(100))])
    assert Counted.reads == [("k", 0, 100)] * 3


def test_checksums_a_connector_does_not_declare_make_no_copies() -> None:
    # Two objects the listing claims are one (the same MD5): the planner reads one for both only if the
    # connector declares the kind.
    from tierscan.scanner.scan.catalog import WorkItem
    from tierscan.scanner.scan.plan import plan_reads

    for scheme, copies in (("counted-test", 1), ("undeclared-test", 0)):
        register_connector(scheme, {c.scheme: c for c in (Counted, Undeclared)}[scheme], clobber=True)
        conn = connector_class(scheme)(Config())
        refs = [conn.make_ref(uri=f"{scheme}://b/{key}", bucket="b", key=key, size=50_000, modified=T0,
                              storage_class=None, region=None, checksums={"md5": "0" * 32}) for key in ("x", "y")]
        plans = plan_reads([WorkItem(ref, want_sha256=True, want_metadata=True) for ref in refs], perceptual=False)
        assert [len(p.copies) for p in plans] == [copies] * (2 - copies)


# ---- apply: versioning ---------------------------------------------------------------------------------


class Tagged(Memory):
    """Objects that take tags; the bucket says it keeps versions, which only a backend that declares
    versioning may be asked."""

    scheme = "tagged-test"
    capabilities = Capabilities(name="tagged", writes=frozenset({"tag"}))
    tags: ClassVar[dict[str, dict[str, str]]] = {}

    async def stat(self, loc: Location) -> ObjectState | None:
        found = self.objects.get((loc.bucket, loc.key))
        return None if found is None else ObjectState(size=len(found[0]), modified=T0)

    async def versioned(self, bucket: str) -> bool:
        if not self.capabilities.versioning:
            raise AssertionError("asked whether a bucket keeps versions on a backend without versioning")
        return True

    async def get_tags(self, loc: Location) -> dict[str, str]:
        return dict(self.tags.get(loc.key, {}))

    async def set_tags(self, loc: Location, tags: dict[str, str], *, expect: ObjectState) -> None:
        self.tags[loc.key] = dict(tags)


class TaggedVersions(Tagged):
    scheme = "tagged-versions-test"
    capabilities = Capabilities(name="tagged-versions", writes=frozenset({"tag"}), versioning=True)


@pytest.mark.parametrize("cls", [Tagged, TaggedVersions])
def test_apply_asks_about_versions_only_where_the_backend_has_them(cls: type[Tagged], tmp_path: Path) -> None:
    import asyncio

    from tierscan.scanner.core.models import Finding, Severity
    from tierscan.scanner.remediate import apply as remediation
    from tierscan.scanner.scan.catalog import Catalog
    from tierscan.scanner.scan.pipeline import run_scan

    register_connector(cls.scheme, cls, clobber=True)
    Memory.objects[("b", "photo.bin")] = (b"x" * 100, "")
    uri = f"{cls.scheme}://b/photo.bin"
    config = Config.model_validate({"scan": {"perceptual": False, "workers": 1}})
    with Catalog(tmp_path / "c.db") as catalog:
        asyncio.run(run_scan(config, catalog, [f"{cls.scheme}://b"]))
        finding = Finding(policy="p", severity=Severity.low, action="tag", uris=[uri], reason="test")
        plan = remediation.build_plan(catalog, tmp_path / "c.db", "tag", policies=["p"], findings=[finding])
        result = remediation.execute_plan(plan, plan["digest"], tmp_path / "j.jsonl", catalog, config)
    assert result.done == [uri] and cls.tags["photo.bin"]["tierscan-policy"] == "p"
    [intent] = [e for e in remediation.read_journal(tmp_path / "j.jsonl") if e["type"] == "intent"]
    assert intent["versioned"] is cls.capabilities.versioning


# ---- targets: every bucket ------------------------------------------------------------------------------


def test_every_bucket_of_a_backend_that_cannot_list_them_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tierscan.scanner.cli import cli

    done = CliRunner().invoke(cli, ["scan", "readonly-test://*", "--db", str(tmp_path / "c.db"), "--format", "none"])
    assert done.exit_code == 2
    assert "cannot list every bucket; name each one instead (readonly-test://BUCKET)" in done.output
    assert not (tmp_path / "c.db").exists()


def test_every_bucket_of_a_backend_that_lists_them_is_scanned(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tierscan.scanner.cli import cli

    class Listing(Memory):
        scheme = "listing-test"
        capabilities = Capabilities(name="listing", lists_all_buckets=True)

    register_connector(Listing.scheme, Listing, clobber=True)
    done = CliRunner().invoke(cli, ["scan", "listing-test://*", "--db", str(tmp_path / "c.db"), "--format", "none"])
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("cls", [Tagged, TaggedVersions])
def test_what_undo_promises_for_a_delete_depends_on_versioning(cls: type[Tagged], tmp_path: Path) -> None:
    from tierscan.scanner.remediate import apply as remediation

    class Marked(cls):  # type: ignore[valid-type,misc]
        removed: ClassVar[list[str]] = []

        async def remove_delete_marker(self, loc: Location, marker: str) -> None:
            self.removed.append(marker)

    uri = f"{cls.scheme}://b/photo.bin"
    intent = {"type": "intent", "seq": 0, "op": "delete", "uri": uri, "scheme": cls.scheme, "bucket": "b",
              "key": "photo.bin", "before": {"size": 100}}
    journal = tmp_path / "j.jsonl"
    journal.write_text("".join(json.dumps(e) + "\n" for e in (intent, {"type": "done", "seq": 0, "uri": uri,
                                                                         "delete_marker": "m1"})))
    result = remediation.undo_journal(journal, Config(), factory=lambda scheme: Marked(Config()))
    if cls.capabilities.versioning:
        assert result.undone == [uri] and Marked.removed == ["m1"]
    else:
        assert result.not_undone == [(uri, "deleted for good: the tagged connector keeps no versions")]
        assert Marked.removed == []

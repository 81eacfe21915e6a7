"""Provider checksums as declared kinds: which ones settle exact matching without a read, which only narrow
it, and the HEADs that fetch a checksum a listing names without its value."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_results import record_fingerprints

from tierscan.connectors.registry import connector_class
from tierscan.scanner.core.config import MasterSettings
from tierscan.scanner.core.models import CHECKSUM_KINDS, InventoryRecord, ObjectRef, Tier, Trust, content_identities
from tierscan.scanner.group.cluster import exact_groups
from tierscan.scanner.scan.catalog import Catalog, WorkItem
from tierscan.scanner.scan.plan import head_pays, plan_heads

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024


def ref(key: str, size: int, readable: bool = True, **checksums: str | None) -> ObjectRef:
    return ObjectRef(
        uri=f"s3://b/{key}", provider="s3", bucket="b", key=key, size=size, etag=f"e-{key}",
        checksums={k.replace("_", "-"): v for k, v in checksums.items()},
        tier=Tier.hot if readable else Tier.archive, storage_class="STANDARD" if readable else "DEEP_ARCHIVE",
        readable=readable, region="ap-east-1", jurisdiction="HK", modified=T0,
    )


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "c.db") as c:
        yield c


def listed(catalog: Catalog, *refs: ObjectRef) -> None:
    catalog.record_listing(list(refs), "s3://b", catalog.begin_scan(["s3://b"], T0))


def work(catalog: Catalog) -> dict[str, bool]:
    """key -> whether exact matching needs its bytes."""
    return {w.ref.key: w.want_sha256 for w in catalog.work()}


def test_every_backend_declares_only_known_kinds_and_how_it_gives_them():
    for scheme in ("s3", "gs", "az", "file"):
        declared = connector_class(scheme).capabilities.checksums
        assert set(declared) <= set(CHECKSUM_KINDS)
        assert set(declared.values()) <= {"listing", "head"}
    assert connector_class("s3").capabilities.checksums["crc64nvme"] == "head"
    assert CHECKSUM_KINDS["crc64nvme"].trust is Trust.identity
    assert CHECKSUM_KINDS["crc32c"].trust is Trust.candidate
    assert CHECKSUM_KINDS["content-md5"].trust is Trust.candidate  # a writer's claim


def test_identity_tokens_of_different_kinds_never_meet():
    tokens = content_identities({"md5": "a" * 32, "s3mpu": None, "crc64nvme": "a" * 16, "crc32c": "a" * 8})
    assert tokens == ("a" * 32, "crc64nvme:" + "a" * 16)  # a candidate and an unfetched value are no identity


def test_a_full_object_crc64nvme_on_every_object_of_a_size_settles_it_whatever_the_part_layout(catalog):
    listed(catalog,
           ref("a", 10, s3mpu="x-2", crc64nvme="c1"), ref("b", 10, s3mpu="y-3", crc64nvme="c1"),  # copies
           ref("c", 10, md5="m" * 32, crc64nvme="c2"),
           ref("d", 20, s3mpu="z-2", crc64nvme="c3"), ref("e", 20, s3mpu="w-2"))  # e: no CRC64NVME
    assert work(catalog) == {"a": False, "b": False, "c": False, "d": True, "e": True}


def test_distinct_candidate_crcs_settle_a_size_and_equal_ones_need_a_confirming_read(catalog):
    listed(catalog,
           ref("a", 10, crc32c="1"), ref("b", 10, crc32c="2"),  # all differ: different bytes
           ref("c", 20, crc32c="3"), ref("d", 20, crc32c="3"), ref("e", 20, crc32c="4"),
           ref("f", 30, crc32c="5"), ref("g", 30))  # g has none: f cannot be told apart from it
    assert work(catalog) == {"a": False, "b": False, "c": True, "d": True, "e": False, "f": True, "g": True}


def test_unfetched_checksums_are_pending_only_where_fetching_them_settles_the_size(catalog):
    listed(catalog,
           ref("a", 10, crc64nvme=None), ref("b", 10, crc64nvme=None), ref("c", 10, crc64nvme="c"),
           ref("d", 20, crc64nvme=None), ref("e", 20),  # e will never have one: no HEAD for d
           ref("f", 30, crc64nvme=None),  # alone in its size: nothing to settle
           ref("g", 40, md5="m" * 32, crc64nvme=None), ref("h", 40, md5="n" * 32, crc64nvme=None))  # settled
    pending = list(catalog.pending_checksums(["crc64nvme"]))
    assert [(item.ref.key, kinds) for item, kinds in pending] == [("a", ["crc64nvme"]), ("b", ["crc64nvme"])]
    catalog.record_checksums([("s3://b/a", {"crc64nvme": "c"}), ("s3://b/b", {"crc64nvme": "d"})])
    assert list(catalog.pending_checksums(["crc64nvme"])) == []
    assert work(catalog) == {"a": False, "b": False, "c": False, "d": True, "e": True, "f": False,
                             "g": False, "h": False}
    # Exact groups by the fetched values: a and c are copies, b is not.
    records = [r for r in catalog.records() if r.size == 10]
    [group] = exact_groups(records, MasterSettings())
    assert sorted(m.uri for m in group.members) == ["s3://b/a", "s3://b/c"]


def test_a_rescan_keeps_fetched_values_that_the_listing_names_without_them(catalog):
    listed(catalog, ref("a", 10, crc64nvme=None), ref("b", 10, crc64nvme=None))
    catalog.record_checksums([("s3://b/a", {"crc64nvme": "c"}), ("s3://b/b", {"crc64nvme": "c"})])
    record_fingerprints(catalog, [(w.ref.uri, {"status": "fingerprinted"}) for w in list(catalog.work())])
    listed(catalog, ref("a", 10, crc64nvme=None), ref("b", 10, crc64nvme=None))  # unchanged objects
    assert list(catalog.pending_checksums(["crc64nvme"])) == []
    assert work(catalog) == {}
    assert {r.key: r.content_id for r in catalog.records()} == {"a": "crc64nvme:c", "b": "crc64nvme:c"}


def test_copies_with_one_identity_kind_in_common_group_whatever_their_strongest_kind():
    def record(key: str, **published: str) -> InventoryRecord:
        return InventoryRecord(uri=f"s3://b/{key}", provider="s3", bucket="b", key=key, size=10, tier=Tier.hot,
                               storage_class="STANDARD", region="ap-east-1", jurisdiction="HK", modified=T0,
                               status="listed", checksums={"crc64nvme": "c"}, **published)
    plain = record("plain", md5="m" * 32)  # one PUT: an MD5 ETag
    multipart = record("multipart", multipart_etag="x-3")
    [group] = exact_groups([plain, multipart], MasterSettings())
    assert {m.uri for m in group.members} == {plain.uri, multipart.uri}


def item(size: int, *, want_metadata: bool = True, key: str = "a.jpg", readable: bool = True) -> WorkItem:
    return WorkItem(ref(key, size, readable=readable), want_sha256=True, want_metadata=want_metadata)


def test_a_head_pays_unless_the_object_is_read_whole_anyway():
    assert head_pays(item(12 * MIB), perceptual=False)  # a tail chunk, and a whole read if it collides
    assert head_pays(item(12 * MIB), perceptual=True)  # the primary image instead of every byte
    assert head_pays(item(1000, want_metadata=False), perceptual=False)  # a whole read for the SHA-256 alone
    assert not head_pays(item(1000), perceptual=False)  # one small GET gives metadata and SHA-256 alike
    assert not head_pays(item(12 * MIB, key="a.png"), perceptual=True)  # its pixels are read whole
    assert not head_pays(item(12 * MIB, readable=False), perceptual=False)  # never read


def test_heads_go_to_whole_size_classes_or_not_at_all():
    small = [(item(1000, key="s1.jpg"), ["crc64nvme"]), (item(1000, want_metadata=False, key="s2.jpg"), ["crc64nvme"])]
    cold = [(item(2000, key="c1.jpg"), ["crc64nvme"]), (item(2000, key="c2.jpg", readable=False), ["crc64nvme"])]
    useless = [(item(3000, key="u1.jpg"), ["crc64nvme"]), (item(3000, key="u2.jpg"), ["crc64nvme"])]
    heads = plan_heads(small + cold + useless, perceptual=False)
    assert [i.ref.key for i, _ in heads] == ["s1.jpg", "s2.jpg"]


# A process that declares one more identity kind, as one line of `CHECKSUM_KINDS` would, before the scanner
# modules that build SQL and records from the declaration are imported; it prints what the core made of it.
_DECLARED_KIND = """
import json, sys
from datetime import UTC, datetime
from tierscan.scanner.core import models
kind = models.ChecksumKind("testhash", models.Trust.identity)
models.CHECKSUM_KINDS = {**models.CHECKSUM_KINDS, kind.name: kind}
models.IDENTITY_KINDS = (*models.IDENTITY_KINDS, kind.name)
models.UNPUBLISHED_KINDS = (*models.UNPUBLISHED_KINDS, kind.name)
from tierscan.scanner.core.config import MasterSettings
from tierscan.scanner.group.cluster import ExactCopy, exact_group, exact_groups
from tierscan.scanner.scan.catalog import Catalog

t0 = datetime(2024, 1, 1, tzinfo=UTC)
values = {"a": (10, "v1"), "b": (10, "v1"), "c": (10, "v2"), "d": (20, "v3"), "e": (20, None)}
refs = [models.ObjectRef(uri=f"s3://b/{k}", provider="s3", bucket="b", key=k, size=size, etag=f"e-{k}",
                         checksums={"testhash": v} if v else {}, tier=models.Tier.hot, storage_class="STANDARD",
                         region="ap-east-1", jurisdiction="HK", modified=t0) for k, (size, v) in values.items()]
with Catalog(sys.argv[1]) as catalog:
    catalog.record_listing(refs, "s3://b", catalog.begin_scan(["s3://b"], t0))
    records = list(catalog.records())
    rows = [[row[1:] for row in catalog.exact_candidates()]]
    print(json.dumps({
        "sha256_read": {w.ref.key: w.want_sha256 for w in catalog.work()},
        "checksums": {r.key: r.checksums for r in records},
        "dumped": sorted({k for r in records for k in json.loads(r.model_dump_json())} & {"testhash", "checksums"}),
        "in_memory": [sorted(m.uri for m in g.members) for g in exact_groups(records, MasterSettings())],
        "from_catalog": [sorted(m.uri for m in exact_group([ExactCopy.of_row(r) for r in group],
                                                             MasterSettings()).members) for group in rows],
    }))
"""


def test_an_identity_kind_declared_in_one_line_settles_reads_and_groups_copies(tmp_path: Path):
    run = subprocess.run([sys.executable, "-c", _DECLARED_KIND, str(tmp_path / "c.db")], capture_output=True,
                         text=True, check=True)
    seen = json.loads(run.stdout)
    # Size 10: every object has a value, so equal ones are copies and others are not, without a read.
    assert seen["sha256_read"] == {"a": False, "b": False, "c": False, "d": True, "e": True}
    assert seen["checksums"] == {"a": {"testhash": "v1"}, "b": {"testhash": "v1"}, "c": {"testhash": "v2"},
                                 "d": {"testhash": "v3"}, "e": {}}
    assert seen["dumped"] == []  # unpublished: the inventory's fields stay as documented
    assert seen["in_memory"] == seen["from_catalog"] == [["s3://b/a", "s3://b/b"]]

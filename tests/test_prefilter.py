"""Prefilters: the catalog selects only the objects some object policy may match, and a group's own fields rule
out group policies before its members' records are built. A prefilter must never drop a record its policy
matches: each filter kind that has one is checked at its boundaries against the filter itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierscan.policies import Context, Evaluator, load_policies
from tierscan.policies.prefilter import AllOf, AnyOf, group_may_match, prefilter
from tierscan.scanner.core.models import Tier
from tierscan.scanner.core.tiers import JurisdictionMap
from tierscan.scanner.group.cluster import NearImage, _group
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import _policy_record

NOW = datetime(2026, 6, 1, tzinfo=UTC)
REGIONS = JurisdictionMap.builtin()
_COLUMNS = ("uri", "target", "provider", "bucket", "key", "size", "checksums", "tier", "storage_class", "readable",
            "region", "jurisdiction", "modified", "identity", "last_seen", "status", "reason", "exif")


def _row(name: str, *, size: int = 1000, tier: str = "hot", region: str = "ap-east-1",
         jurisdiction: str = "HK", status: str = "fingerprinted", reason: str | None = None,
         exif: dict[str, Any] | None = None) -> tuple[Any, ...]:
    modified = (NOW - timedelta(days=30)).isoformat()
    return (f"s3://b/{name}", "s3://b", "s3", "b", name, size, "{}", tier, "STANDARD", 1, region, jurisdiction,
            modified, f"{size}|{modified}||", 1, status, reason, None if exif is None else json.dumps(exif))


# Objects on either side of every boundary the prefilters draw.
_ROWS = [
    _row("999", size=999), _row("1000", size=1000), _row("1001", size=1001),
    _row("cold", tier="cold"), _row("archive", tier="archive", status="unreadable", reason="needs a restore"),
    _row("skipped", status="skipped", reason="corrupt image: truncated"), _row("failed", status="failed"),
    _row("listed", status="listed"), _row("big", status="skipped", reason="larger than 10 bytes"),
    _row("local", region="local", jurisdiction="local", exif={"gps": {"lat": 1.0, "lon": 2.0}}),
    _row("unknown", region="xx-1", jurisdiction="unknown", exif={"serials": ["S"]}),
    _row("cn", region="cn-north-1", jurisdiction="CN", exif={"owner": "Ann"}),
    _row("gps", exif={"gps": {"lat": 22.3, "lon": 114.2}}), _row("serial", exif={"serials": ["SN1"]}),
    _row("owner", exif={"owner": "Ann"}), _row("taken", exif={"datetime_original": "2025:01:01 10:00:00"}),
    _row("empty", exif={"serials": [], "owner": "", "datetime_original": ""}), _row("no-gps", exif={"gps": None}),
    _row("gone", status="gone", exif={"gps": {"lat": 22.3, "lon": 114.2}}),
    # Taken in Shenzhen, stored in Hong Kong; taken in Lo Wu (Hong Kong), stored in Beijing.
    _row("shenzhen", exif={"gps": {"lat": 22.533, "lon": 114.113}}),
    _row("lo-wu", region="cn-north-1", jurisdiction="CN", exif={"gps": {"lat": 22.527, "lon": 114.113}}),
]

# Filters with a prefilter the catalog says exactly in SQL: it selects what the filter matches, no more.
EXACT = [
    {"key": "status", "value": "skipped"},
    {"key": "status", "op": "in", "value": ["listed", "failed"]},
    {"key": "status", "op": "ne", "value": "fingerprinted"},
    {"key": "reason", "op": "ne", "value": "needs a restore"},  # an object without a reason is not equal
    {"key": "reason", "op": "not-in", "value": ["needs a restore"]},
    {"key": "jurisdiction", "op": "not-in", "value": ["local", "unknown"]},
    {"type": "tier", "tiers": ["cold", "archive"]},
    {"type": "size", "gte": 1000}, {"type": "size", "lte": 1000}, {"type": "size", "gte": 1000, "lte": 1000},
    {"type": "personal-data"}, {"type": "personal-data", "kinds": ["gps"]},
    {"type": "personal-data", "kinds": ["serial"]}, {"type": "personal-data", "kinds": ["owner"]},
    {"type": "personal-data", "kinds": ["timestamp"]},
    {"or": [{"type": "tier", "tiers": ["cold"]}, {"type": "size", "lte": 999}]},
    {"and": [{"type": "personal-data"}, {"key": "jurisdiction", "op": "not-in", "value": ["local", "unknown"]}]},
]
# Filters with no prefilter, alone or under `or`, or with one only in part: every object they match comes.
LOOSE = [
    {"type": "bucket", "glob": "b"}, {"type": "age", "days": 10}, {"type": "outside-gba"},
    {"key": "size", "op": "gte", "value": 1000}, {"key": "exif.gps", "op": "present"},
    {"key": "reason", "op": "regex", "value": "^corrupt"}, {"not": [{"type": "tier", "tiers": ["hot"]}]},
    {"or": [{"type": "tier", "tiers": ["cold"]}, {"type": "outside-gba"}]},
    {"and": [{"key": "status", "value": "skipped"}, {"key": "reason", "op": "glob", "value": "larger than *"}]},
    {"and": [{"type": "personal-data"}, {"type": "outside-gba"}]},
    {"type": "taken-in", "territories": ["CN"], "stored_in": ["HK"]}, {"type": "taken-in", "territories": ["HK"]},
    {"key": "taken_in", "value": "CN"}, {"key": "taken_in", "op": "in", "value": ["HK", "MO"]},
    {"key": "taken_in", "op": "ne", "value": "HK"}, {"key": "taken_near", "op": "present"},
]


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "c.db") as cat:
        cat.db.executemany(f"INSERT INTO objects ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                           _ROWS)
        yield cat


def _policies(tmp_path: Path, resource: str, *filters: dict[str, Any]):  # type: ignore[no-untyped-def]
    path = tmp_path / f"p{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump({"policies": [
        {"name": f"p{i}", "resource": resource, "filters": [f]} for i, f in enumerate(filters)]}))
    return load_policies(packs=[], files=[path])


def _matched(policy_set, records: list[dict[str, Any]], resource: str) -> set[str]:  # type: ignore[no-untyped-def]
    ctx = Context(now=NOW, resource=resource)  # type: ignore[arg-type]
    return {r.get("id") or r["uri"] for r in records for p in policy_set if all(f(r, ctx) for f in p.filters)}


@pytest.mark.parametrize("flt", EXACT, ids=json.dumps)
def test_the_catalog_selects_exactly_what_a_filter_with_a_prefilter_matches(catalog, tmp_path, flt) -> None:
    policy_set = _policies(tmp_path, "object", flt)
    records = [_policy_record(r, REGIONS) for r in catalog.records()]
    selected = {r.uri for r in catalog.records_matching(prefilter(policy_set, "object"))}
    expected = _matched(policy_set, records, "object")
    assert selected == expected
    assert expected and len(expected) < len(records)  # the rows stand on both sides of the boundary


@pytest.mark.parametrize("flt", LOOSE, ids=json.dumps)
def test_the_catalog_never_leaves_out_an_object_a_filter_without_an_exact_prefilter_matches(
        catalog, tmp_path, flt) -> None:
    policy_set = _policies(tmp_path, "object", flt)
    records = [_policy_record(r, REGIONS) for r in catalog.records()]
    selected = {r.uri for r in catalog.records_matching(prefilter(policy_set, "object"))}
    assert _matched(policy_set, records, "object") <= selected


def test_where_a_photo_was_taken_narrows_the_catalog_to_objects_with_gps(catalog, tmp_path) -> None:
    with_gps = {"s3://b/local", "s3://b/gps", "s3://b/shenzhen", "s3://b/lo-wu"}
    for flt, matched in (({"type": "taken-in", "territories": ["CN"], "stored_in": ["HK"]}, {"s3://b/shenzhen"}),
                         ({"key": "taken_in", "value": "HK"}, {"s3://b/gps", "s3://b/lo-wu"})):
        policy_set = _policies(tmp_path, "object", flt)
        selected = list(catalog.records_matching(prefilter(policy_set, "object")))
        assert {r.uri for r in selected} <= with_gps
        assert _matched(policy_set, [_policy_record(r, REGIONS) for r in selected], "object") == matched


def test_the_object_prefilter_of_a_policy_set_is_the_union_of_its_policies(catalog, tmp_path) -> None:
    policy_set = _policies(tmp_path, "object", {"type": "tier", "tiers": ["cold"]}, {"type": "size", "lte": 999},
                           {"type": "personal-data", "kinds": ["owner"]})
    assert {r.uri for r in catalog.records_matching(prefilter(policy_set, "object"))} == {
        "s3://b/cold", "s3://b/999", "s3://b/owner", "s3://b/cn"}


def test_no_object_policy_selects_nothing_and_one_without_a_prefilter_selects_every_object(catalog, tmp_path):
    assert prefilter(_policies(tmp_path, "group", {"type": "spans-tiers"}), "object") == AnyOf(())
    assert list(catalog.records_matching(AnyOf(()))) == []
    everything = prefilter(_policies(tmp_path, "object", {"type": "outside-gba"}), "object")
    assert everything == AnyOf((AllOf(()),))
    assert len(list(catalog.records_matching(everything))) == len(_ROWS) - 1  # all but the gone one


def test_the_builtin_object_policies_find_the_same_through_the_prefilter(catalog) -> None:
    policy_set = load_policies()
    records = [_policy_record(r, REGIONS) for r in catalog.records()]
    selected = [_policy_record(r, REGIONS) for r in catalog.records_matching(prefilter(policy_set, "object"))]
    assert len(selected) < len(records)
    assert list(Evaluator(policy_set, now=NOW).findings("object", selected)) == list(
        Evaluator(policy_set, now=NOW).findings("object", records))


def _image(name: str, tier: str = "hot", region: str = "ap-east-1", personal: list[str] | None = None):  # type: ignore[no-untyped-def]
    return NearImage(f"s3://b/{name}", "s3", 1000, Tier(tier), region, REGIONS.lookup(region).code,
                     NOW - timedelta(days=30), 640, 480, "0" * 16, "0" * 16, None, bool(personal))


def _member(image: NearImage, personal: list[str]) -> dict[str, Any]:
    return {"uri": image.uri, "size": image.size, "tier": image.tier.value, "region": image.region,
            "jurisdiction": image.jurisdiction, "personal_data": personal, "bucket": "b", "status": "fingerprinted",
            "modified": image.modified.isoformat(), "gba": REGIONS.lookup(image.region).gba}


# Groups on either side of every group field: (kind, members as (name, tier, region, personal data kinds)).
GROUPS = [
    ("exact", [("a", "hot", "ap-east-1", []), ("b", "hot", "ap-east-1", [])]),
    ("exact", [("c", "hot", "ap-east-1", []), ("d", "cold", "ap-east-1", [])]),
    ("near", [("e", "hot", "ap-east-1", ["gps"]), ("f", "hot", "us-east-1", [])]),
    ("exact", [("g", "archive", "cn-north-1", ["owner"]), ("h", "hot", "ap-east-1", [])]),
    ("exact", [("i", "hot", "ap-east-1", ["serial"]), ("j", "hot", "ap-east-1", ["serial"])]),
]
GROUP_FILTERS = [
    {"type": "group-kind", "kind": "exact"}, {"type": "group-kind", "kind": "near"}, {"type": "spans-tiers"},
    {"type": "spans-regions"}, {"type": "spans-jurisdictions"}, {"type": "cross-boundary"},
    {"type": "redundant-in-hotter-tier"}, {"type": "personal-data"}, {"type": "personal-data", "kinds": ["gps"]},
    {"key": "kind", "value": "near"}, {"key": "kind", "op": "ne", "value": "near"},
    {"key": "master", "op": "in", "value": ["s3://b/a", "s3://b/g"]}, {"type": "tier", "tiers": ["archive"]},
    {"type": "size", "gte": 1000}, {"key": "members.1.tier", "value": "cold"}, {"not": [{"type": "spans-tiers"}]},
    {"or": [{"type": "spans-regions"}, {"type": "group-kind", "kind": "near"}]},
    {"and": [{"type": "group-kind", "kind": "exact"}, {"type": "spans-tiers"}]},
]


@pytest.mark.parametrize("flt", GROUP_FILTERS, ids=json.dumps)
def test_a_groups_own_fields_never_rule_out_a_group_policy_that_matches_it(tmp_path, flt) -> None:
    policy_set = _policies(tmp_path, "group", flt)
    may_match = group_may_match(prefilter(policy_set, "group"))
    for kind, spec in GROUPS:
        images = [_image(name, tier, region, personal) for name, tier, region, personal in spec]
        group = _group(kind, images[0].uri, images[0], images, {})
        record = {**group.model_dump(mode="json"),
                  "members": [{**_member(i, p), "distance": 0} for i, (*_, p) in zip(images, spec, strict=True)]}
        if _matched(policy_set, [record], "group"):
            assert may_match(group), (kind, spec)


def test_group_fields_rule_out_what_they_tell_apart(tmp_path) -> None:
    images = [_image("a"), _image("b")]
    one_tier = _group("exact", "s3://b/a", images[0], images, {})
    assert not group_may_match(prefilter(_policies(tmp_path, "group", {"type": "spans-tiers"}), "group"))(one_tier)
    assert not group_may_match(prefilter(_policies(tmp_path, "group", {"type": "group-kind", "kind": "near"}),
                                         "group"))(one_tier)
    assert not group_may_match(prefilter(_policies(tmp_path, "group", {"type": "personal-data"}), "group"))(one_tier)
    assert group_may_match(prefilter(_policies(tmp_path, "group", {"type": "tier", "tiers": ["archive"]}),
                                     "group"))(one_tier)

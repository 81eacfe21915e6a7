"""Policy evaluation: value operators, value types, boolean nesting, domain filters, actions, master
protection and the built-in pack, on small hand-built records shaped like the pipeline's."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from tierscan.policies import Action, Context, Policy, PolicySet, Pricing, evaluate, load_policies
from tierscan.scanner.core.models import ExifRecord, Finding, Group, GroupMember, InventoryRecord, Severity
from tierscan.scanner.core.tiers import JurisdictionMap
from tierscan.scanner.pricing.table import PriceTable

NOW = datetime(2025, 6, 1, tzinfo=UTC)
REGIONS = JurisdictionMap.builtin()


def obj(uri: str = "s3://photos/a.jpg", *, tier: str = "hot", region: str = "ap-east-1", size: int = 1000,
        age_days: int = 10, exif: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An object record exactly as the pipeline builds it: InventoryRecord.model_dump(mode="json") + gba."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    place = REGIONS.lookup(region)
    record = InventoryRecord(
        uri=uri, provider="s3", bucket=bucket, key=key, size=size, tier=tier, storage_class=tier.upper(),
        region=region, jurisdiction=place.code, modified=NOW - timedelta(days=age_days),
        sha256="ab" * 32, format="JPEG", width=640, height=480,
        exif=ExifRecord(**exif) if exif is not None else None,
        personal_data=ExifRecord(**exif).personal_data() if exif else [], status="fingerprinted",
    ).model_dump(mode="json")
    return {**record, "gba": place.gba, **fields}


GPS = {"gps": {"lat": 22.3, "lon": 114.2}}
SERIAL = {"serials": ["SN123"]}


def group(*members: dict[str, Any], kind: Literal["exact", "near"] = "exact", master: str | None = None,
          gid: str = "g1") -> dict[str, Any]:
    """A group record: the `Group` fields (computed as the clusterer would) with full member records."""
    model = Group(
        id=gid, kind=kind, master=master or members[0]["uri"],
        members=[GroupMember(uri=m["uri"], size=m["size"], tier=m["tier"], region=m["region"],
                             jurisdiction=m["jurisdiction"]) for m in members],
        spans_tiers=len({m["tier"] for m in members}) > 1,
        spans_regions=len({m["region"] for m in members}) > 1,
        spans_jurisdictions=len({m["jurisdiction"] for m in members}) > 1,
        has_personal_data=any(m["personal_data"] for m in members),
    )
    return {**model.model_dump(mode="json"), "members": [{**m, "distance": 0} for m in members]}


@pytest.fixture
def run(tmp_path: Path):
    """Evaluate one policy, written as YAML and loaded like a user's file, over the given records."""
    counter = itertools.count()

    def run(filters: list[Any], *, resource: str = "object", actions: list[Any] | None = None,
            objects: list[dict[str, Any]] = (), groups: list[dict[str, Any]] = ()) -> list[Finding]:
        policy: dict[str, Any] = {"name": "p", "resource": resource, "filters": filters}
        if actions is not None:
            policy["actions"] = actions
        path = tmp_path / f"policy{next(counter)}.yaml"
        path.write_text(yaml.safe_dump({"policies": [policy]}, sort_keys=False))
        return evaluate(load_policies(packs=[], files=[path]), objects=objects, groups=groups, now=NOW)

    return run


@pytest.fixture
def matches(run):
    """Whether one filter matches one record."""

    def matches(flt: Any, record: dict[str, Any], resource: str = "object") -> bool:
        key = "objects" if resource == "object" else "groups"
        return bool(run([flt], resource=resource, **{key: [record]}))

    return matches


# ------------------------------------------------------------------------------------------ value


@pytest.mark.parametrize("flt, record, expected", [
    ({"key": "format", "op": "eq", "value": "JPEG"}, obj(), True),
    ({"key": "format", "op": "eq", "value": "PNG"}, obj(), False),
    ({"key": "format", "value": "JPEG"}, obj(), True),  # op defaults to eq
    ({"key": "tier", "op": "ne", "value": "archive"}, obj(), True),
    ({"key": "tier", "op": "ne", "value": "hot"}, obj(), False),
    ({"key": "size", "op": "gt", "value": 999}, obj(size=1000), True),
    ({"key": "size", "op": "gt", "value": 1000}, obj(size=1000), False),
    ({"key": "size", "op": "gte", "value": 1000}, obj(size=1000), True),
    ({"key": "size", "op": "gte", "value": 1001}, obj(size=1000), False),
    ({"key": "size", "op": "lt", "value": 1001}, obj(size=1000), True),
    ({"key": "size", "op": "lt", "value": 1000}, obj(size=1000), False),
    ({"key": "size", "op": "lte", "value": 1000}, obj(size=1000), True),
    ({"key": "size", "op": "lte", "value": 999}, obj(size=1000), False),
    ({"key": "region", "op": "in", "value": ["ap-east-1", "cn-north-1"]}, obj(), True),
    ({"key": "region", "op": "in", "value": ["us-east-1"]}, obj(), False),
    ({"key": "region", "op": "not-in", "value": ["us-east-1"]}, obj(), True),
    ({"key": "region", "op": "not-in", "value": ["ap-east-1"]}, obj(), False),
    ({"key": "personal_data", "op": "contains", "value": "gps"}, obj(exif=GPS), True),
    ({"key": "personal_data", "op": "contains", "value": "gps"}, obj(exif=SERIAL), False),
    ({"key": "key", "op": "glob", "value": "*.jpg"}, obj("s3://photos/2024/a.jpg"), True),
    ({"key": "key", "op": "glob", "value": "*.png"}, obj("s3://photos/2024/a.jpg"), False),
    ({"key": "uri", "op": "regex", "value": r"/20\d\d/"}, obj("s3://photos/2024/a.jpg"), True),
    ({"key": "uri", "op": "regex", "value": r"^gs://"}, obj("s3://photos/2024/a.jpg"), False),
    ({"key": "exif.gps", "op": "present"}, obj(exif=GPS), True),
    ({"key": "exif.gps", "op": "present"}, obj(exif=SERIAL), False),
    ({"key": "exif.serials", "op": "present"}, obj(exif=GPS), False),  # [] counts as absent
    ({"key": "exif.gps", "op": "absent"}, obj(exif=SERIAL), True),
    ({"key": "exif.gps", "op": "absent"}, obj(exif=GPS), False),
    ({"key": "exif.gps.lat", "op": "gt", "value": 22}, obj(exif=GPS), True),
    ({"key": "exif.gps.lat", "op": "gt", "value": 22}, obj(), False),  # missing path: no match, no crash
    ({"key": "format", "op": "gt", "value": 3}, obj(), False),  # mixed types: no match, no crash
])
def test_value_operators(matches, flt, record, expected):
    assert matches(flt, record) is expected


def test_value_filter_on_group_reads_group_keys(matches):
    g = group(obj("s3://a/x.jpg"), obj("s3://b/x.jpg", tier="archive"))
    assert matches({"key": "members.1.tier", "value": "archive"}, g, "group")
    assert not matches({"key": "kind", "value": "near"}, g, "group")


@pytest.mark.parametrize("flt, record, expected", [
    ({"key": "size", "op": "gte", "value": "1MB", "value_type": "size"}, obj(size=1_000_000), True),
    ({"key": "size", "op": "gte", "value": "1MiB", "value_type": "size"}, obj(size=1_000_000), False),
    ({"key": "size", "op": "lt", "value": "10KB", "value_type": "size"}, obj(size=9_999), True),
    ({"key": "modified", "op": "gt", "value": "90d", "value_type": "age"}, obj(age_days=100), True),
    ({"key": "modified", "op": "gt", "value": "90d", "value_type": "age"}, obj(age_days=80), False),
    ({"key": "modified", "op": "lt", "value": "2w", "value_type": "age"}, obj(age_days=10), True),
    ({"key": "modified", "op": "gt", "value": "12h", "value_type": "age"}, obj(age_days=1), True),
])
def test_value_types(matches, flt, record, expected):
    assert matches(flt, record) is expected


# ---------------------------------------------------------------------------------------- boolean


def test_and_or_not(matches):
    hot_jpeg = {"and": [{"type": "tier", "tiers": ["hot"]}, {"key": "format", "value": "JPEG"}]}
    assert matches(hot_jpeg, obj())
    assert not matches(hot_jpeg, obj(tier="cold"))

    cold_or_big = {"or": [{"type": "tier", "tiers": ["cold"]}, {"type": "size", "gte": "1MB"}]}
    assert matches(cold_or_big, obj(tier="cold"))
    assert matches(cold_or_big, obj(size=2_000_000))
    assert not matches(cold_or_big, obj())

    not_hot = {"not": [{"type": "tier", "tiers": ["hot"]}]}
    assert matches(not_hot, obj(tier="archive"))
    assert not matches(not_hot, obj())

    # not: [a, b] is not (a and b)
    not_both = {"not": [{"type": "tier", "tiers": ["hot"]}, {"key": "format", "value": "JPEG"}]}
    assert matches(not_both, obj(format="PNG"))
    assert not matches(not_both, obj())

    nested = {"or": [{"not": [{"key": "format", "value": "JPEG"}]},
                     {"and": [{"type": "tier", "tiers": ["cold"]}, {"type": "age", "days": 30}]}]}
    assert matches(nested, obj(tier="cold", age_days=40))
    assert not matches(nested, obj(tier="cold", age_days=20))


def test_or_reason_names_only_what_matched(run):
    hot_or_huge = {"or": [{"type": "tier", "tiers": ["hot"]}, {"type": "size", "gte": "1GB"}]}
    found = run([hot_or_huge], objects=[obj()])
    assert found[0].reason == "in hot tier"


# ----------------------------------------------------------------------------------------- domain

HK_A = obj("s3://hk/a.jpg", region="ap-east-1", exif=GPS)
CN_A = obj("s3://cn/a.jpg", region="cn-north-1")
SG_A = obj("s3://sg/a.jpg", region="ap-southeast-1")
HK_ARCHIVE = obj("s3://hk-archive/a.jpg", tier="archive", region="ap-east-1")


@pytest.mark.parametrize("flt, positive, negative", [
    ("spans-tiers", group(HK_A, HK_ARCHIVE), group(HK_A, CN_A)),
    ("spans-regions", group(HK_A, CN_A), group(HK_A, HK_ARCHIVE)),
    ("spans-jurisdictions", group(HK_A, SG_A), group(HK_A, HK_ARCHIVE)),
    ("cross-boundary", group(SG_A, HK_A, CN_A), group(HK_A, SG_A)),
    ("outside-gba", group(HK_A, SG_A), group(HK_A, HK_ARCHIVE)),
    ("personal-data", group(CN_A, HK_A), group(CN_A, SG_A)),
    ({"type": "personal-data", "kinds": ["serial"]}, group(CN_A, obj("s3://x/a.jpg", exif=SERIAL)),
     group(CN_A, HK_A)),
    ({"type": "tier", "tiers": ["archive"]}, group(HK_A, HK_ARCHIVE), group(HK_A, CN_A)),
    ("redundant-in-hotter-tier", group(HK_A, HK_ARCHIVE), group(HK_A, obj("s3://hk-2/a.jpg"))),
    ({"type": "bucket", "glob": "cn*"}, group(HK_A, CN_A), group(HK_A, SG_A)),
    ({"type": "age", "days": 30}, group(HK_A, obj("s3://old/a.jpg", age_days=31)), group(HK_A, CN_A)),
    ({"type": "size", "gte": "10MB"}, group(HK_A, obj("s3://big/a.jpg", size=10_000_000)), group(HK_A, CN_A)),
    ({"type": "group-kind", "kind": "near"}, group(HK_A, CN_A, kind="near"), group(HK_A, CN_A)),
])
def test_domain_filters_on_groups(matches, flt, positive, negative):
    assert matches(flt, positive, "group")
    assert not matches(flt, negative, "group")


@pytest.mark.parametrize("flt, positive, negative", [
    ("outside-gba", SG_A, HK_A),
    ("outside-gba", CN_A, HK_A),  # Beijing is in Mainland China but not in the Greater Bay Area
    ("personal-data", obj(exif={"owner": "Chan Tai Man"}), obj(exif={"make": "Canon"})),
    ({"type": "personal-data", "kinds": ["timestamp"]},
     obj(exif={"datetime_original": "2024:01:01 10:00:00"}), obj(exif=GPS)),
    ({"type": "tier", "tiers": ["cool", "cold"]}, obj(tier="cool"), obj(tier="archive")),
    ({"type": "bucket", "glob": "photos-??"}, obj("s3://photos-hk/a.jpg"), obj("s3://photos-hkg/a.jpg")),
    ({"type": "age", "days": 90}, obj(age_days=91), obj(age_days=89)),
    ({"type": "size", "gte": "1KB", "lte": "2KB"}, obj(size=1500), obj(size=2001)),
    ({"type": "size", "lte": 100}, obj(size=100), obj(size=101)),
])
def test_domain_filters_on_objects(matches, flt, positive, negative):
    assert matches(flt, positive)
    assert not matches(flt, negative)


def test_redundant_in_hotter_tier_selects_the_hotter_copies_and_the_engine_protects_the_master(run):
    """The filter knows no master: it singles out the hotter copies, actions apply to those only, and the
    engine keeps the master out of deletions. A hot master with a colder backup is the normal layout."""
    hot_master = group(HK_A, HK_ARCHIVE, master=HK_A["uri"])
    cold_master = group(HK_A, HK_ARCHIVE, master=HK_ARCHIVE["uri"])
    assert run(["redundant-in-hotter-tier"], resource="group", groups=[hot_master],
               actions=["delete-redundant"]) == []
    [reported] = run(["redundant-in-hotter-tier"], resource="group", groups=[hot_master])
    assert reported.uris == [HK_A["uri"]] and reported.reason == "1 copy in hot tier while a copy is in archive"
    [finding] = run(["redundant-in-hotter-tier"], resource="group", groups=[cold_master],
                    actions=["delete-redundant"])
    assert finding.uris == [HK_A["uri"]]
    # Master cool, copies hot and archive: only the hot copy goes, never the coldest copy.
    cool = obj("s3://hk-cool/a.jpg", tier="cool")
    [finding] = run(["redundant-in-hotter-tier"], resource="group", groups=[group(cool, HK_A, HK_ARCHIVE)],
                    actions=["delete-redundant"])
    assert finding.uris == [HK_A["uri"]]
    assert finding.reason == "2 copies in hot, cool tier while a copy is in archive"


# ---------------------------------------------------------------------------------------- reasons


def test_reasons_name_what_matched(run):
    g = group(obj("s3://a/x.jpg"), obj("s3://b/x.jpg", tier="archive"), obj("s3://c/x.jpg", tier="archive"))
    [finding] = run(["spans-tiers"], resource="group", groups=[g])
    assert finding.reason == "3 copies across hot, archive tiers"
    assert finding.group == "g1" and finding.action == "report"

    [finding] = run([{"type": "personal-data"}], objects=[obj(exif={**GPS, **SERIAL})])
    assert finding.reason == "GPS and device serial in metadata"
    assert finding.uris == ["s3://photos/a.jpg"] and finding.group is None

    [finding] = run(["personal-data"], resource="group", groups=[group(HK_A, CN_A, SG_A)])
    assert finding.reason == "GPS in metadata of 1 of 3 copies"

    [finding] = run(["cross-boundary", {"type": "group-kind", "kind": "exact"}], resource="group",
                    groups=[group(HK_A, CN_A)])
    assert finding.reason == "copies in both Hong Kong (1) and Mainland China (1); exact duplicates"

    archived = {"type": "tier", "tiers": ["archive"]}
    [finding] = run([archived], resource="group", groups=[group(HK_A, HK_ARCHIVE)])
    assert finding.reason == "in archive tier (1 of 2 copies)"


# ---------------------------------------------------------------------------------------- actions

MASTER = obj("s3://hk-main/a.jpg", region="ap-east-1", tier="archive", age_days=900, exif=GPS)
COPIES = [obj("s3://cn/a.jpg", region="cn-north-1", exif=GPS), obj("s3://sg/a.jpg", region="ap-southeast-1")]


def test_actions_name_their_uris(run):
    g = group(MASTER, *COPIES)
    by_action = {}
    for action in ["report", "delete-redundant", {"type": "transition", "to": "cool"},
                   {"type": "relocate", "to": "SG"}, {"type": "strip-metadata", "kinds": ["gps"]}]:
        [found] = run([], resource="group", groups=[g], actions=[action])
        by_action[found.action] = found.uris
    assert by_action["report"] == ["s3://hk-main/a.jpg", "s3://cn/a.jpg", "s3://sg/a.jpg"]
    assert by_action["delete-redundant"] == ["s3://cn/a.jpg", "s3://sg/a.jpg"]
    assert by_action["transition"] == ["s3://cn/a.jpg", "s3://sg/a.jpg"]
    assert by_action["relocate"] == ["s3://cn/a.jpg"]  # the master is protected, SG is already there
    assert by_action["strip-metadata"] == ["s3://hk-main/a.jpg", "s3://cn/a.jpg"]  # stripping keeps copies


def test_one_finding_per_record_recommends_the_first_action_that_names_a_copy(run):
    """Not a finding per action: `report` is what is left when no other action applies."""
    g = group(MASTER, *COPIES)
    found = run([], resource="group", groups=[g], actions=[
        "report", {"type": "relocate", "to": "SG"}, "delete-redundant"])
    assert [(f.action, f.uris) for f in found] == [("relocate", ["s3://cn/a.jpg"])]
    # Relocating to Hong Kong names no copy (the master is there and protected): delete-redundant is next.
    found = run([], resource="group", groups=[group(MASTER, obj("s3://hk-copy/a.jpg", region="ap-east-1"))],
                actions=[{"type": "relocate", "to": "HK"}, "report", "delete-redundant"])
    assert [(f.action, f.uris) for f in found] == [("delete-redundant", ["s3://hk-copy/a.jpg"])]
    found = run([], resource="group", groups=[group(MASTER, obj("s3://hk-copy/a.jpg", region="ap-east-1"))],
                actions=["report", {"type": "relocate", "to": "HK"}])
    assert [(f.action, f.uris) for f in found] == [("report", [MASTER["uri"], "s3://hk-copy/a.jpg"])]


def test_master_is_never_listed_for_delete_transition_or_relocate(run):
    g = group(MASTER, *COPIES)
    found = run([], resource="group", groups=[g], actions=[
        "delete-redundant", {"type": "transition", "to": "hot"}, {"type": "relocate", "to": "CN"}])
    assert found, "the copies still get findings"
    assert all(MASTER["uri"] not in f.uris for f in found)


def test_finding_left_with_only_the_master_is_dropped(run):
    g = group(MASTER, obj("s3://hk-copy/a.jpg", region="ap-east-1"))
    assert run([], resource="group", groups=[g], actions=[{"type": "relocate", "to": "CN"}]) == [
        Finding(policy="p", severity=Severity.medium, action="relocate", uris=["s3://hk-copy/a.jpg"],
                group="g1", reason="exact group of 2 copies"),
    ]
    assert run([], resource="group", groups=[g], actions=[{"type": "relocate", "to": "HK"}]) == []


class _Everything(Action):
    """An action that (wrongly) names every copy: the engine must still protect the master."""

    type: Literal["everything"] = "everything"

    def targets(self, record: Any, ctx: Context) -> list[str]:
        return [m["uri"] for m in record["members"]]


def test_master_protection_is_the_engines_rule_not_the_actions():
    policy = Policy(name="greedy", description="", resource="group", severity=Severity.high, filters=(),
                    actions=(_Everything(),), pack="test", source="test:1")
    [finding] = evaluate(PolicySet((policy,)), groups=[group(MASTER, *COPIES)], now=NOW)
    assert finding.uris == ["s3://cn/a.jpg", "s3://sg/a.jpg"]


def test_findings_are_ordered_by_policy_then_uris(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({"policies": [
        {"name": "z-last", "resource": "object", "filters": []},
        {"name": "a-first", "resource": "object", "filters": [], "actions": [{"type": "transition", "to": "cool"}]},
    ]}))
    records = [obj("s3://b/2.jpg"), obj("s3://a/1.jpg")]
    found = evaluate(load_policies(packs=[], files=[path]), objects=iter(records), now=NOW)
    assert [(f.policy, f.uris) for f in found] == [
        ("a-first", ["s3://a/1.jpg"]), ("a-first", ["s3://b/2.jpg"]),
        ("z-last", ["s3://a/1.jpg"]), ("z-last", ["s3://b/2.jpg"]),
    ]


# ----------------------------------------------------------------------------------- built-in pack

BUILTIN_CASES: dict[str, tuple[dict[str, list[Any]], dict[str, list[Any]]]] = {
    # policy: (records it must flag, records it must not flag)
    "duplicates-spanning-tiers": (
        {"groups": [group(HK_A, HK_ARCHIVE)]},
        {"groups": [group(HK_A, HK_ARCHIVE, kind="near"), group(HK_A, CN_A)]},
    ),
    "duplicates-spanning-regions": (
        {"groups": [group(HK_A, SG_A)]},
        {"groups": [group(HK_A, HK_ARCHIVE), group(HK_A, SG_A, kind="near")]},
    ),
    "personal-data-across-jurisdictions": (
        {"groups": [group(SG_A, HK_A)]},
        # Hong Kong and the Mainland: personal-data-across-boundary's, one finding for the group.
        {"groups": [group(CN_A, SG_A), group(HK_A, HK_ARCHIVE), group(CN_A, HK_A)]},
    ),
    "personal-data-across-boundary": (
        {"groups": [group(CN_A, HK_A)]},
        {"groups": [group(SG_A, HK_A), group(CN_A, obj("s3://hk/b.jpg", region="ap-east-1"))]},
    ),
    "images-with-gps-or-serials": (
        {"objects": [obj(exif=SERIAL)]},
        {"objects": [obj(exif={"owner": "Chan Tai Man", "make": "Canon"}), obj()]},
    ),
    "redundant-hot-copy": (
        {"groups": [group(HK_ARCHIVE, HK_A)]},
        {"groups": [group(HK_A, HK_ARCHIVE), group(HK_ARCHIVE, HK_A, kind="near")]},
    ),
    "near-duplicate-review": (
        {"groups": [group(HK_A, CN_A, kind="near")]},
        {"groups": [group(HK_A, CN_A)]},
    ),
}


def test_builtin_pack_loads_with_the_documented_policies():
    names = [p.name for p in load_policies()]
    assert set(BUILTIN_CASES) <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(BUILTIN_CASES))
def test_builtin_policy_positive_and_negative(name):
    builtin = load_policies(packs=["builtin"])
    positive, negative = BUILTIN_CASES[name]
    hits = [f for f in evaluate(builtin, now=NOW, **positive) if name in (f.policy, *f.also)]
    assert hits, f"{name} should flag {positive}"
    assert all(f.reason for f in hits)
    assert not [f for f in evaluate(builtin, now=NOW, **negative) if name in (f.policy, *f.also)]


def test_builtin_findings_are_what_the_pack_promises():
    builtin = load_policies()
    found = evaluate(builtin, groups=[group(HK_ARCHIVE, HK_A, CN_A)], objects=[HK_A], now=NOW)
    by_policy = {(f.policy, f.action): f for f in found}
    # Three policies recommend deleting the same copies of the group (both hot copies, the master being
    # archived): one finding, every reason.
    tiers = by_policy[("duplicates-spanning-tiers", "delete-redundant")]
    assert tiers.uris == [HK_A["uri"], CN_A["uri"]] and tiers.severity == Severity.medium
    assert tiers.also == ["redundant-hot-copy", "personal-data-duplicated"]
    assert tiers.reason == ("exact duplicates; 3 copies across hot, archive tiers; 2 copies in hot tier while a "
                            "copy is in archive; GPS in metadata of 1 of 3 copies")
    # Copies on both sides of the boundary: one high finding, relocating the Mainland copy.
    boundary = [f for f in found if f.severity == Severity.high]
    assert [(f.policy, f.action, f.uris) for f in boundary] == [
        ("personal-data-across-boundary", "relocate", [CN_A["uri"]])]
    assert boundary[0].reason.startswith("GPS in metadata of 1 of 3 copies; copies in both Hong Kong (2) and "
                                         "Mainland China (1)")
    assert by_policy[("images-with-gps-or-serials", "strip-metadata")].uris == [HK_A["uri"]]


# ------------------------------------------------------------------------------------------- money


def test_findings_carry_what_their_recommendation_saves_and_costs(tmp_path):
    """Priced with the table the report uses: deletion = storage + early deletion, transition = price
    difference (+ retrieval when warming), relocate = retrieval + early deletion, the rest nothing."""
    prices = PriceTable.builtin()
    path = tmp_path / "money.yaml"
    actions = ["report", "delete-redundant", {"type": "transition", "to": "archive"},
               {"type": "relocate", "to": "SG"}, "strip-metadata"]
    path.write_text(yaml.safe_dump({"policies": [
        *({"name": f"m-{i}", "resource": "group", "actions": [action]} for i, action in enumerate(actions)),
        {"name": "warm", "resource": "object", "actions": [{"type": "transition", "to": "hot"}]}]}))
    policy_set = load_policies(packs=[], files=[path])
    gib = 2**30
    young = obj("s3://hk-ia/a.jpg", tier="cool", storage_class="STANDARD_IA", size=gib, age_days=10, exif=GPS)
    master = obj("s3://hk/a.jpg", size=gib, age_days=400)
    found = evaluate(policy_set, groups=[group(master, young)], objects=[young], now=NOW, pricing=Pricing(prices))
    by_action = {(f.policy.partition("-")[0], f.action): f for f in found}

    ia = prices.price_for("s3", "STANDARD_IA", "ap-east-1")
    glacier = prices.price_for("s3", "GLACIER", "ap-east-1")  # S3's first class of the archive tier
    early = (30 - 10) / 30 * ia.storage_gb_month  # 20 of STANDARD_IA's 30 minimum days left
    retrieval = ia.retrieval_gb + ia.get_per_1000 / 1000
    delete = by_action[("m", "delete-redundant")]
    assert delete.uris == [young["uri"]]
    assert (delete.monthly_savings_usd, delete.one_time_cost_usd) == pytest.approx((ia.storage_gb_month, early))
    move = by_action[("m", "transition")]
    assert move.monthly_savings_usd == pytest.approx(ia.storage_gb_month - glacier.storage_gb_month)
    assert move.one_time_cost_usd == pytest.approx(early)
    relocate = by_action[("m", "relocate")]
    assert (relocate.monthly_savings_usd, relocate.one_time_cost_usd) == pytest.approx((0, early + retrieval))
    assert relocate.reason.endswith("; one-time cost excludes data transfer between regions (not in the price table)")
    warm = by_action[("warm", "transition")]
    standard = prices.price_for("s3", "STANDARD", "ap-east-1")
    assert warm.monthly_savings_usd == pytest.approx(ia.storage_gb_month - standard.storage_gb_month)
    assert warm.monthly_savings_usd < 0  # warming up costs more each month
    assert warm.one_time_cost_usd == pytest.approx(early + retrieval)
    for action in ("report", "strip-metadata"):
        f = by_action[("m", action)]
        assert f.monthly_savings_usd == f.one_time_cost_usd == 0

    unpriced = evaluate(policy_set, groups=[group(master, young)], now=NOW)
    assert all(f.monthly_savings_usd == f.one_time_cost_usd == 0 for f in unpriced)
    assert not any(f.reason.endswith("(not in the price table)") for f in unpriced)


def test_action_names_are_an_enum_whose_members_are_the_registered_text():
    from tierscan.policies import ACTIONS
    from tierscan.policies.actions import ActionType

    assert ACTIONS.names() == sorted(a.value for a in ActionType)
    for member in ActionType:
        assert ACTIONS.get(member) is ACTIONS.get(member.value) is not None
        assert hash(member) == hash(member.value) and str(member) == member.value
    assert ActionType("delete-redundant") is ActionType.delete_redundant


def test_range_filters_say_their_bounds():
    from tierscan.policies.domain import FacesFilter, SizeFilter

    assert SizeFilter(type="size", gte="1MB", lte="2GB").summary() == "size at least 1.0MB and at most 2.0GB"
    assert SizeFilter(type="size", lte="5KB").summary() == "size at most 5.0KB"
    assert FacesFilter(type="faces", gte=3).summary() == "faces at least 3"
    assert FacesFilter(type="faces", gte=1, lte=2).summary() == "faces at least 1 and at most 2"

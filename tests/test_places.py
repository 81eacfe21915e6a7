"""Where a photo was taken: GPS positions resolved offline to a territory and the nearest place, on both
sides of the Hong Kong / Shenzhen and Macau / Zhuhai boundaries, far away, at sea and from hostile values;
the records that carry them, and the `taken-in` policy filter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from tierscan.policies.costs import ObjectRecord
from tierscan.policies.domain import TakenIn
from tierscan.policies.model import Context
from tierscan.policies.prefilter import AllOf, HasPersonalData, OneOf
from tierscan.scanner.core.models import GPS, ExifRecord, InventoryRecord, Tier
from tierscan.scanner.core.places import Place, located, resolver
from tierscan.scanner.core.tiers import load_yaml_resource

# (lat, lon) -> territory. Pairs a few hundred metres apart across each boundary (the Shenzhen River at
# Lo Wu and Lok Ma Chau; the Portas do Cerco / Gongbei border gate; the University of Macau's campus on
# Hengqin island, which is Macau's although the island around it is Zhuhai's).
ACROSS = {
    (22.5270, 114.1130): "HK",  # Lo Wu, south of the river
    (22.5330, 114.1130): "CN",  # Luohu, Shenzhen, north of it
    (22.5146, 114.0656): "HK",  # Lok Ma Chau station
    (22.5195, 114.0664): "CN",  # Futian port, Shenzhen
    (22.2150, 113.5497): "MO",  # Portas do Cerco, Macau
    (22.2195, 113.5497): "CN",  # Gongbei, Zhuhai
    (22.1300, 113.5450): "MO",  # University of Macau, Hengqin
    (22.1250, 113.5200): "CN",  # Hengqin, Zhuhai
    (22.2900, 114.1700): "HK",  # Victoria Harbour: territorial waters
    (40.66, -73.99): "US",  # New York (the sample estate's action-cam.jpg)
    (35.6812, 139.7671): "JP",  # Tokyo station
}
NOWHERE = [
    (30.0, -40.0),  # the open Atlantic
    (18.0, 115.0),  # the South China Sea, far from any coast
    (0.0, 0.0),  # a receiver's unset value, and at sea anyway
    (math.nan, 114.1), (22.3, math.nan), (math.inf, 0.5), (22.3, -math.inf),
    (90.5, 10.0), (-91.0, 10.0), (22.3, 180.5), (22.3, -181.0), (1e308, 1e308),
]


def test_positions_across_each_boundary_fall_on_their_own_side() -> None:
    places = resolver().resolve(list(ACROSS))
    assert [p.territory if p else None for p in places] == list(ACROSS.values())


def test_hostile_or_open_sea_positions_have_no_place() -> None:
    assert resolver().resolve(NOWHERE) == [None] * len(NOWHERE)


def test_the_nearest_place_is_in_the_positions_own_territory() -> None:
    """Lok Ma Chau's nearest GeoNames place is across the river in Shenzhen; the one reported is in HK."""
    lok_ma_chau, futian = (22.5146, 114.0656), (22.5195, 114.0664)
    places = resolver().places
    [[nearest, *_]] = places.nearest([lok_ma_chau], 3)
    assert places.country(nearest) == "CN"  # what a plain nearest lookup says
    hk, cn = resolver().resolve([lok_ma_chau, futian])
    assert hk is not None and cn is not None
    near = {places.name(i): places.country(i) for i in range(len(places)) if places.name(i) in (hk.near, cn.near)}
    assert (near[hk.near], near[cn.near]) == ("HK", "CN")


def test_nearest_places_are_nearest_on_the_ground_at_high_latitudes() -> None:
    """Longitude degrees shrink towards the poles: at sea 14 km west of Bodø, a nearest search in plain
    degrees picks Inndyr, 30 km to the south."""
    places = resolver().places
    off_bodo = (67.3069, 14.0573)
    [[nearest]] = places.nearest([off_bodo], 1)
    assert places.name(nearest) == "Bodø"
    assert resolver().resolve([off_bodo]) == [Place("NO", "Bodø")]  # Norway's waters; "NO" is no boolean
    assert len(places) > 100_000 and all(places.name(i) for i in range(0, len(places), 997))


def test_every_zone_of_the_boundary_data_has_a_territory_or_is_at_sea() -> None:
    """A data update that adds a zone must add it to territories.yaml too."""
    table = load_yaml_resource("territories.yaml")["zones"]
    zones = set(resolver()._zones.timezone_names)
    assert {z for z in zones if not z.startswith("Etc/")} <= set(table)
    assert all(len(code) == 2 and code.isupper() for code in table.values())  # no YAML `NO` -> False


def record(uri: str, lat: float | None = None, lon: float | None = None, jurisdiction: str = "HK") -> InventoryRecord:
    gps = GPS(lat=lat, lon=lon) if lat is not None and lon is not None else None
    return InventoryRecord(uri=uri, provider="local", bucket="b", key=uri, size=1, tier=Tier.hot,
                           storage_class="hot", region="ap-east-1", jurisdiction=jurisdiction,
                           modified=datetime(2030, 1, 1, tzinfo=UTC), exif=ExifRecord(gps=gps), status="fingerprinted")


def test_located_places_records_with_gps_in_order_across_batches() -> None:
    records = [record("a", 22.5330, 114.1130), record("b"), record("c", 30.0, -40.0), record("d", 22.5270, 114.1130),
               record("e", 35.6812, 139.7671)]
    out = list(located(iter(records), batch=2))
    assert [r.uri for r in out] == ["a", "b", "c", "d", "e"]
    assert [r.taken_in for r in out] == ["CN", None, None, "HK", "JP"]
    assert out[0].taken_near and out[3].taken_near and out[4].taken_near
    assert out[1] == records[1] and out[2] == records[2]


def test_located_copies_share_one_lookup_and_hostile_positions_pass_through() -> None:
    copies = [record(f"copy{i}", 22.5330, 114.1130) for i in range(3)]
    hostile = [record(f"bad{i}", lat, lon) for i, (lat, lon) in enumerate(NOWHERE)]
    out = list(located([*copies, *hostile], batch=64))
    assert [r.taken_in for r in out] == ["CN"] * 3 + [None] * len(NOWHERE)
    assert len({r.taken_near for r in out[:3]}) == 1


def test_records_without_gps_never_load_the_place_libraries() -> None:
    code = (
        "import sys\n"
        "from tierscan.scanner.core.places import located\n"
        "from tests.test_places import record\n"
        "assert [r.taken_in for r in located([record('a'), record('b')])] == [None, None]\n"
        "assert not {'timezonefinder', 'scipy.spatial'} & set(sys.modules), 'loaded'\n"
        "list(located([record('c', 22.5, 114.0)]))\n"
        "assert {'timezonefinder', 'scipy.spatial'} <= set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


CTX = Context(now=datetime(2030, 1, 1, tzinfo=UTC), resource="object")


def policy_record(r: InventoryRecord) -> dict[str, object]:
    return r.model_dump(mode="json")


def test_taken_in_filter_matches_where_taken_and_where_stored() -> None:
    shenzhen_in_hk, lo_wu_in_cn, lo_wu_in_hk = map(policy_record, located([
        record("a", 22.5330, 114.1130, "HK"), record("b", 22.5270, 114.1130, "CN"),
        record("c", 22.5270, 114.1130, "HK")]))
    mainland_in_hk = TakenIn(type="taken-in", territories=["CN"], stored_in=["HK"])
    assert [mainland_in_hk(r, CTX) for r in (shenzhen_in_hk, lo_wu_in_cn, lo_wu_in_hk)] == [True, False, False]
    hk_anywhere = TakenIn(type="taken-in", territories=["HK"])
    assert [hk_anywhere(r, CTX) for r in (shenzhen_in_hk, lo_wu_in_cn, lo_wu_in_hk)] == [False, True, True]
    reason = mainland_in_hk.reason(shenzhen_in_hk, CTX)
    assert reason.startswith("taken in CN (near ") and reason.endswith("), stored in HK")
    assert not mainland_in_hk(policy_record(record("d")), CTX)  # no GPS


def test_taken_in_filter_prefilters_on_gps_and_storage() -> None:
    assert TakenIn(type="taken-in", territories=["CN"]).necessary() == HasPersonalData(frozenset({"gps"}))
    assert TakenIn(type="taken-in", territories=["CN"], stored_in=["HK"]).necessary() == AllOf(
        (HasPersonalData(frozenset({"gps"})), OneOf("jurisdiction", frozenset({"HK"}))))


@pytest.mark.parametrize("settings", [{"territories": []}, {"territories": ["cn"]}, {"territories": ["CHN"]},
                                      {"territories": ["CN"], "stored_in": []}, {}])
def test_taken_in_filter_rejects_bad_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TakenIn.model_validate({"type": "taken-in", **settings})


def counted_places(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make policy records place through a stub that lists the URIs it placed."""
    placed: list[str] = []

    def place_of(r: InventoryRecord) -> Place | None:
        placed.append(r.uri)
        return Place("CN", "Shenzhen") if r.exif and r.exif.gps else None

    monkeypatch.setattr("tierscan.policies.costs.place_of", place_of)
    return placed


def test_policy_records_are_placed_when_a_place_is_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    placed = counted_places(monkeypatch)
    r = ObjectRecord.of(record("a", 22.5330, 114.1130), gba=True)
    member = r.adding(distance=3)
    assert (r.get("size"), r["gba"], "taken_in" in r, r.get("nope", 7), placed) == (1, True, True, 7, [])
    assert (r["taken_in"], r.get("taken_near"), placed) == ("CN", "Shenzhen", ["a"])
    assert r.get("taken_in") == "CN" and placed == ["a"]  # placed once
    assert member["distance"] == 3 and placed == ["a"]  # a copy made before places itself when read
    assert json.loads(json.dumps(member))["taken_near"] == "Shenzhen" and placed == ["a", "a"]
    assert dict(ObjectRecord.of(record("b")))["taken_in"] is None and placed == ["a", "a", "b"]
    with pytest.raises(KeyError):
        r["nope"]


def test_placed_records_and_policies_that_rule_a_copy_out_never_place(monkeypatch: pytest.MonkeyPatch) -> None:
    placed = counted_places(monkeypatch)
    done = ObjectRecord.of(record("a", 22.5, 114.0).model_copy(update={"taken_in": "HK", "taken_near": "Lo Wu"}))
    assert (done["taken_in"], dict(done)["taken_near"], placed) == ("HK", "Lo Wu", [])
    mainland_in_hk = TakenIn(type="taken-in", territories=["CN"], stored_in=["HK"])
    assert not mainland_in_hk(ObjectRecord.of(record("b", 22.5330, 114.1130, "CN")), CTX) and placed == []
    assert mainland_in_hk(ObjectRecord.of(record("c", 22.5330, 114.1130, "HK")), CTX) and placed == ["c"]


def test_a_scan_whose_policies_never_ask_where_photos_were_taken_never_loads_places(tmp_path: Path) -> None:
    # The sample estate has a photo with GPS, stored in local folders: the built-in taken-in policies ask
    # where photos stored in HK or CN were taken, so no scan step needs a place; the inventory does.
    code = (
        "import json, sys\n"
        "from tierscan.scanner.cli import cli\n"
        f"db, out = {str(tmp_path / 's.db')!r}, {str(tmp_path / 'inv.jsonl')!r}\n"
        "cli(['scan', 'examples/estate', '--db', db, '--format', 'none', '--no-perceptual'], standalone_mode=False)\n"
        "assert 'timezonefinder' not in sys.modules, 'loaded'\n"
        "cli(['inventory', '--db', db, '--format', 'jsonl', '-o', out], standalone_mode=False)\n"
        "assert 'US' in {json.loads(line)['taken_in'] for line in open(out)}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])

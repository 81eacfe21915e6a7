from datetime import UTC, datetime, timedelta
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from tierscan.scanner.core.config import MasterRule, MasterSettings, NearSettings
from tierscan.scanner.core.models import GPS, ExifRecord, InventoryRecord, Tier
from tierscan.scanner.group.cluster import (
    _MAX_MATES,
    MASTER_RULES,
    _nearest_mates,
    exact_groups,
    near_groups,
    start_near_groups,
)

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def rec(uri, size=100, sha=None, md5=None, tier=Tier.hot, region="ap-east-1", jurisdiction="HK", age=0,
        phash=None, dhash=None, width=100, height=100, status="fingerprinted", gps=False):
    exif = ExifRecord(gps=GPS(lat=1.0, lon=2.0)) if gps else None
    return InventoryRecord(
        uri=uri, provider="s3", bucket=uri.split("/")[2], key=uri.split("/", 3)[3], size=size, tier=tier,
        storage_class="X", region=region, jurisdiction=jurisdiction, modified=T0 - timedelta(days=age),
        md5=md5, sha256=sha, phash=phash, dhash=dhash, width=width, height=height, exif=exif,
        personal_data=["gps"] if gps else [], status=status,
    )


def test_exact_groups_by_sha256_master_is_oldest():
    records = [rec("s3://a/1", sha="x", age=1), rec("s3://b/1", sha="x", age=5, tier=Tier.archive,
               region="cn-north-1", jurisdiction="CN", gps=True), rec("s3://c/1", sha="y")]
    [g] = exact_groups(records, MasterSettings())
    assert g.kind == "exact"
    assert g.master == "s3://b/1"
    assert [m.uri for m in g.members] == ["s3://b/1", "s3://a/1"]
    assert g.spans_tiers and g.spans_regions and g.spans_jurisdictions and g.has_personal_data


def test_configured_master_location_wins_over_age():
    records = [rec("s3://a/1", sha="x", age=1), rec("s3://b/1", sha="x", age=5)]
    [g] = exact_groups(records, MasterSettings(prefer=["s3://a/*"]))
    assert g.master == "s3://a/1"


def test_trusted_md5_joins_unread_archive_copies_with_read_ones():
    records = [
        rec("s3://a/1", sha="x", md5="m"),
        rec("s3://b/1", md5="m", status="unreadable", tier=Tier.archive),
        rec("s3://c/1", md5="m", size=999),  # same MD5 text but another size: not the same content
    ]
    [g] = exact_groups(records, MasterSettings())
    assert {m.uri for m in g.members} == {"s3://a/1", "s3://b/1"}


def test_no_group_for_unique_content_or_empty_objects():
    assert exact_groups([rec("s3://a/1", sha="x"), rec("s3://a/2", sha="y")], MasterSettings()) == []
    assert exact_groups([rec("s3://a/1", size=0, sha="e"), rec("s3://a/2", size=0, sha="e")], MasterSettings()) == []


def test_group_ids_are_stable():
    records = [rec("s3://a/1", sha="x"), rec("s3://b/1", sha="x")]
    forward, backward = exact_groups(records, MasterSettings()), exact_groups(list(reversed(records)), MasterSettings())
    assert forward[0].id == backward[0].id


H = 0x0F0F0F0F0F0F0F0F


def flip(h: int, bits: int) -> str:
    return f"{h ^ ((1 << bits) - 1):016x}"


def test_near_groups_join_within_both_thresholds_and_pick_highest_resolution():
    records = [
        rec("s3://a/big", phash=f"{H:016x}", dhash=f"{H:016x}", width=4000, height=3000),
        rec("s3://a/small", phash=flip(H, 3), dhash=flip(H, 5), width=400, height=300),
        rec("s3://a/far", phash=flip(H, 20), dhash=f"{H:016x}"),
        rec("s3://a/dfar", phash=flip(H, 1), dhash=flip(H, 30)),
    ]
    [g] = near_groups(records, [], NearSettings(phash_max_distance=8, dhash_max_distance=12))
    assert g.master == "s3://a/big"
    assert {m.uri: m.distance for m in g.members} == {"s3://a/big": 0, "s3://a/small": 3}


def test_near_groups_do_not_chain_through_intermediates():
    # a~b (6 bits) and b~c (6 bits) but a and c are 12 bits apart: c must not join a's group.
    a, b, c = H, H ^ 0b111111, H ^ 0b111111111111
    records = [
        rec("s3://x/a", phash=f"{a:016x}", dhash=f"{a:016x}", width=300, height=300),
        rec("s3://x/b", phash=f"{b:016x}", dhash=f"{b:016x}", width=200, height=200),
        rec("s3://x/c", phash=f"{c:016x}", dhash=f"{c:016x}", width=100, height=100),
    ]
    groups = near_groups(records, [], NearSettings(phash_max_distance=8, dhash_max_distance=8))
    assert [[m.uri for m in g.members] for g in groups] == [["s3://x/a", "s3://x/b"]]


def test_exact_copies_are_represented_by_their_master_in_near_groups():
    records = [
        rec("s3://a/1", sha="x", phash=f"{H:016x}", dhash=f"{H:016x}", age=9),
        rec("s3://b/1", sha="x", phash=f"{H:016x}", dhash=f"{H:016x}"),
        rec("s3://c/variant", phash=flip(H, 2), dhash=flip(H, 2), width=50, height=50),
    ]
    exact = exact_groups(records, MasterSettings())
    [g] = near_groups(records, exact, NearSettings())
    assert {m.uri for m in g.members} == {"s3://a/1", "s3://c/variant"}


def test_master_rules_are_configurable():
    """DESIGN.md's defaults (exact: a preferred location, else the oldest; near: highest resolution, then
    largest, then oldest), and each named criterion when configured instead."""
    old_archive = rec("s3://a/1", sha="x", age=9, tier=Tier.archive, width=10, height=10)
    new_hot = rec("s3://b/1", sha="x", age=1, width=20, height=20, size=100)
    assert exact_groups([old_archive, new_hot], MasterSettings())[0].master == "s3://a/1"
    assert exact_groups([old_archive, new_hot], MasterSettings(exact="hottest"))[0].master == "s3://b/1"
    highest = MasterSettings(exact=["highest-resolution", "oldest"])
    assert exact_groups([old_archive, new_hot], highest)[0].master == "s3://b/1"
    both = MasterSettings(prefer=["s3://a/*"], exact=["newest"])  # a preferred location still comes first
    assert exact_groups([old_archive, new_hot], both)[0].master == "s3://a/1"

    sharp = rec("s3://n/sharp", phash=f"{H:016x}", dhash=f"{H:016x}", width=400, height=300, age=1)
    old = rec("s3://n/old", phash=flip(H, 2), dhash=flip(H, 2), width=200, height=150, age=50)
    assert near_groups([sharp, old], [], NearSettings())[0].master == "s3://n/sharp"
    [g] = near_groups([sharp, old], [], NearSettings(), MasterSettings(near=["oldest"]))
    assert g.master == "s3://n/old" and {m.uri for m in g.members} == {"s3://n/sharp", "s3://n/old"}


def test_every_configurable_master_rule_has_a_sort_key():
    assert set(MASTER_RULES) == set(get_args(MasterRule))
    with pytest.raises(ValidationError, match="newest"):
        MasterSettings(exact=["youngest"])
    with pytest.raises(ValidationError):
        MasterSettings(near=[])


def test_near_groups_pair_set_by_the_user_is_never_joined():
    records = [
        rec("s3://a/big", phash=f"{H:016x}", dhash=f"{H:016x}", width=400, height=400),
        rec("s3://a/mid", phash=f"{H ^ 0b1100:016x}", dhash=f"{H ^ 0b1100:016x}", width=300, height=300),
        rec("s3://a/small", phash=flip(H, 1), dhash=flip(H, 1), width=200, height=200),
    ]
    # big and mid are distinct photos (user decision); small, nearer big, joins big; mid stays out.
    [g] = near_groups(records, [], NearSettings(), not_duplicates=[("s3://a/big", "s3://a/mid")])
    assert [m.uri for m in g.members] == ["s3://a/big", "s3://a/small"]
    # A listed pair of candidates is kept apart too: the one nearer the centre joins.
    [g] = near_groups(records, [], NearSettings(not_duplicates=[["s3://a/mid", "s3://a/small"]]))
    assert [m.uri for m in g.members] == ["s3://a/big", "s3://a/small"]


def test_a_member_nearer_an_image_kept_out_goes_with_that_image():
    records = [
        rec("s3://a/big", phash=f"{H:016x}", dhash=f"{H:016x}", width=400, height=400),
        rec("s3://a/mid", phash=flip(H, 3), dhash=flip(H, 3), width=300, height=300),
        rec("s3://a/small", phash=flip(H, 2), dhash=flip(H, 2), width=200, height=200),
    ]
    # small is 2 bits from big and 1 from mid: with big and mid kept apart, it joins mid, not big.
    [g] = near_groups(records, [], NearSettings(), not_duplicates=[("s3://a/big", "s3://a/mid")])
    assert g.master == "s3://a/mid"
    assert [m.uri for m in g.members] == ["s3://a/mid", "s3://a/small"]


def _shot(record, when=None, serials=()):
    return record.model_copy(update={"exif": ExifRecord(datetime_original=when, serials=list(serials))})


def test_different_shots_by_capture_time_or_camera_body_never_share_a_group():
    one = rec("s3://a/one", phash=f"{H:016x}", dhash=f"{H:016x}", width=400, height=400)
    two = rec("s3://a/two", phash=flip(H, 1), dhash=flip(H, 1), width=300, height=300)
    for a, b, together in (
        (_shot(one, "2015:02:09 22:47:44"), _shot(two, "2015:02:09 22:48:10"), False),  # a bracket, 26 s on
        (_shot(one, "2015:02:09 22:47:44"), _shot(two, "2015:02:09 22:47:44 "), True),  # an edit keeps it
        (_shot(one, "2015:02:09 22:47:44"), two, True),  # a copy stripped of its metadata
        (_shot(one, serials=["A1"]), _shot(two, serials=["B2"]), False),  # two camera bodies
        (_shot(one, serials=["A1", "L9"]), _shot(two, serials=["A1"]), True),
    ):
        groups = near_groups([a, b], [], NearSettings())
        assert (len(groups) == 1) is together, (a.exif, b.exif)
        assert len(near_groups([a, b], [], NearSettings(split_shots=False))) == 1


def _bracket():
    """Two exposures of one scene: they align perfectly and differ in tone only."""
    from PIL import ImageEnhance

    photo, _ = _photos()
    first = photo.resize((800, 600))
    return first, ImageEnhance.Brightness(first).enhance(1.25)


def _taken_apart(records):
    """`records` with the capture times that tell s3://a/first and s3://a/second apart as two shots."""
    when = {"s3://a/first": "2015:02:09 22:47:44", "s3://a/second": "2015:02:09 22:48:10"}
    return [_shot(r, when[r.uri]) if r.uri in when else r for r in records]


def test_a_bracketed_exposure_and_its_copies_stay_out_of_the_first_shots_group():
    """Two exposures of one scene align perfectly and differ in tone only; their capture times keep them
    apart, and a re-encoded copy of the second shot (no metadata) goes with the second shot."""
    first, second = _bracket()
    records, blobs = _fingerprinted({
        "s3://a/first": first,
        "s3://a/first-copy": first.resize((400, 300)),
        "s3://a/second": second,
        "s3://a/second-copy": second.resize((640, 480)),
    })
    records = _taken_apart(records)
    groups = near_groups(records, [], NearSettings(), signatures=blobs)
    assert sorted(sorted(m.uri for m in g.members) for g in groups) == [
        ["s3://a/first", "s3://a/first-copy"], ["s3://a/second", "s3://a/second-copy"]]
    # Without their capture times, all four are one picture.
    stripped = [r.model_copy(update={"exif": None}) for r in records]
    [g] = near_groups(stripped, [], NearSettings(), signatures=blobs)
    assert len(g.members) == 4


def test_near_groups_with_signatures_find_flips_and_crops_and_keep_other_photos_out():
    from PIL import Image

    photo, other = _photos()
    w, h = photo.size
    variants = {
        "s3://a/original": photo,
        "s3://a/mirrored": photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((600, 450)),
        "s3://a/crop": photo.crop((w - int(w * 0.8), 0, w, int(h * 0.8))),  # 64% of the area, off centre
        "s3://a/other": other.resize((320, 240)),
    }
    records, blobs = _fingerprinted(variants)
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert g.master == "s3://a/original"
    assert {m.uri for m in g.members} == {"s3://a/original", "s3://a/mirrored", "s3://a/crop"}


def _fingerprinted(variants):
    """Records and signature blobs of JPEG-encoded images, by URI."""
    import io

    from tierscan.scanner.fingerprint.image import fingerprint_bytes, init_worker

    init_worker()
    records, blobs = [], {}
    for uri, img in variants.items():
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        fp = fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True)
        records.append(rec(uri, size=len(buf.getvalue()), phash=fp.phash, dhash=fp.dhash, width=fp.width,
                           height=fp.height))
        blobs[uri] = fp.near_sig
    return records, blobs


def _photos():
    from pathlib import Path

    from PIL import Image

    data = Path(__file__).parent / "data" / "exif"
    with Image.open(data / "exifpy__DSCN0010.jpg") as img:
        photo = img.convert("RGB")
    with Image.open(data / "imagededup__ukbench00120.jpg") as img:
        other = img.convert("RGB").resize((640, 480))
    return photo, other


def test_candidates_of_members_join_when_confirmed_against_the_centre_and_never_through_a_member(monkeypatch):
    """The hash index may pair a crop with a copy and not with the centre: it still joins, once verified
    against the centre itself; an unrelated image that is a member's candidate does not."""
    import tierscan.scanner.group.cluster as cluster

    photo, other = _photos()
    w, h = photo.size
    records, blobs = _fingerprinted({
        "s3://a/centre": photo.resize((800, 600)),
        "s3://a/copy": photo.resize((600, 450)),
        "s3://a/crop": photo.crop((0, h - int(h * 0.78), int(w * 0.78), h)).resize((400, 300)),
        "s3://a/other": other.resize((320, 240)),
    })
    # Ranked by resolution: centre 0, copy 1, crop 2, other 3. The index pairs the centre with the copy
    # only, and the copy with the crop and the other photo.
    monkeypatch.setattr(cluster, "_hash_pairs", lambda cands, radius: np.array([(0, 1, 2), (1, 2, 6), (1, 3, 7)]))
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert g.master == "s3://a/centre"
    assert {m.uri for m in g.members} == {"s3://a/centre", "s3://a/copy", "s3://a/crop"}
    assert {m.uri: m.distance for m in g.members}["s3://a/copy"] == 2


def test_candidates_of_later_members_join_round_by_round(monkeypatch):
    """An off-centre crop that the index pairs only with another crop, itself found only through a copy:
    three rounds from the centre, it joins once verified against the centre; the other photo does not."""
    import tierscan.scanner.group.cluster as cluster

    photo, other = _photos()
    w, h = photo.size
    records, blobs = _fingerprinted({
        "s3://a/centre": photo.resize((800, 600)),
        "s3://a/copy": photo.resize((600, 450)),
        "s3://a/crop": photo.crop((0, 0, int(w * 0.78), int(h * 0.78))).resize((440, 330)),
        "s3://a/offset-crop": photo.crop((w // 10, h // 7, w * 22 // 25, h * 13 // 14)).resize((400, 300)),
        "s3://a/other": other.resize((320, 240)),
    })
    # Ranked by resolution: centre 0, copy 1, crop 2, offset crop 3, other 4; a chain of candidate pairs.
    monkeypatch.setattr(cluster, "_hash_pairs",
                        lambda cands, radius: np.array([(0, 1, 2), (1, 2, 6), (2, 3, 5), (3, 4, 7)]))
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert {m.uri for m in g.members} == {"s3://a/centre", "s3://a/copy", "s3://a/crop", "s3://a/offset-crop"}


def test_a_member_confirmed_through_a_member_is_left_for_an_image_it_matches_better(monkeypatch):
    """The centre confirms a copy; the copy confirms a candidate the centre does not. That candidate matches
    an image not yet grouped better than it matches the copy: it is left for that image's group."""
    import tierscan.scanner.group.cluster as cluster

    photo, _ = _photos()
    records, blobs = _fingerprinted({f"s3://a/{name}": photo.resize((w, w * 3 // 4))
                                     for name, w in (("centre", 800), ("copy", 600), ("relayed", 400), ("home", 320))})
    # Ranked by resolution: centre 0, copy 1, relayed 2, home 3; a chain of candidate pairs.
    monkeypatch.setattr(cluster, "_hash_pairs", lambda cands, radius: np.array([(0, 1, 2), (1, 2, 6), (2, 3, 4)]))
    scores = {frozenset(("centre", "copy")): (40, 1.0), frozenset(("copy", "relayed")): (20, 1.0),
              frozenset(("relayed", "home")): (30, 1.0)}

    def verdict(centre, other, near):
        return scores.get(frozenset(c.record.uri.rsplit("/", 1)[1] for c in (centre, other))), False

    monkeypatch.setattr(cluster, "_verdict", verdict)
    groups = near_groups(records, [], NearSettings(), signatures=blobs)
    assert sorted(sorted(m.uri for m in g.members) for g in groups) == [
        ["s3://a/centre", "s3://a/copy"], ["s3://a/home", "s3://a/relayed"]]


def test_signature_of_an_older_layout_falls_back_to_the_global_hash_rule():
    records = [
        rec("s3://a/big", phash=f"{H:016x}", dhash=f"{H:016x}", width=400, height=300),
        rec("s3://a/small", phash=flip(H, 2), dhash=flip(H, 2), width=200, height=150),
    ]
    # Layout 1 began with the decode width and height (u16): 320 x 240 and 200 x 150 here.
    layout_1 = {"s3://a/big": b"\x40\x01\xf0\x00" + bytes(3000),
                "s3://a/small": b"\xc8\x00\x96\x00" + bytes(3000)}
    [g] = near_groups(records, [], NearSettings(), signatures=layout_1)
    assert {m.uri for m in g.members} == {"s3://a/big", "s3://a/small"}


def test_candidate_pairs_are_the_same_whatever_the_query_chunk(monkeypatch):
    import tierscan.scanner.group.cluster as cluster

    photo, other = _photos()
    records, blobs = _fingerprinted({
        "s3://a/centre": photo.resize((800, 600)),
        "s3://a/copy": photo.resize((600, 450)),
        "s3://a/crop": photo.crop((0, 0, int(photo.width * 0.8), int(photo.height * 0.8))),
        "s3://a/other": other.resize((320, 240)),
    })
    cands = [cluster._Candidate(r, int(r.phash, 16), int(r.dhash, 16), cluster._current(blobs[r.uri]))
             for r in records]
    whole = cluster._hash_pairs(cands, 12)
    monkeypatch.setattr(cluster, "_QUERY_CHUNK", 3)  # a chunk ends inside an image's query hashes
    assert np.array_equal(cluster._hash_pairs(cands, 12), whole) and len(whole)


def test_verification_spread_over_processes_gives_the_groups_of_one_process(monkeypatch):
    """Components of the candidate graph are verified in forked processes, largest first: the groups,
    masters and distances are those of one process, kept-apart shots included."""
    from PIL import Image

    from tierscan.scanner.group import cluster

    _, other = _photos()
    first, second = _bracket()
    records, blobs = _fingerprinted({
        "s3://a/first": first,
        "s3://a/first-copy": first.resize((400, 300)),
        "s3://a/first-mirror": first.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((600, 450)),
        "s3://a/second": second,
        "s3://a/second-copy": second.resize((640, 480)),
        "s3://b/other": other,
        "s3://b/other-small": other.resize((320, 240)),
        "s3://b/other-crop": other.crop((0, 0, 560, 420)),
    })
    records = _taken_apart(records)
    serial = near_groups(records, [], NearSettings(), signatures=blobs, workers=1)
    assert len(serial) == 3  # two shots of one scene, and another photo
    forked = []
    real = cluster.ProcessPoolExecutor

    def spy(*args, **kwargs):
        forked.append(kwargs["mp_context"].get_start_method())
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "_PARALLEL_PAIRS", 0)
    monkeypatch.setattr(cluster, "ProcessPoolExecutor", spy)
    assert near_groups(records, [], NearSettings(), signatures=blobs, workers=2) == serial
    assert forked == ["fork"]
    assert cluster._VERIFYING is None  # only the verification processes hold the search


def test_the_callers_work_runs_while_the_verification_processes_work(monkeypatch):
    """Between `start_near_groups` and taking its groups, the forked verification processes are alive when
    they verify; none is when this process verifies, or when there is nothing to group; none is left after."""
    import multiprocessing

    from tierscan.scanner.group import cluster

    photo, other = _photos()
    records, blobs = _fingerprinted({"s3://a/photo": photo, "s3://a/photo-small": photo.resize((320, 240)),
                                     "s3://b/other": other, "s3://b/other-small": other.resize((320, 240))})
    before = len(multiprocessing.active_children())

    def grouped(images: list, workers: int | None = None) -> tuple[int, list]:
        with start_near_groups(images, [], NearSettings(), signatures=blobs, workers=workers) as grouping:
            alive = len(multiprocessing.active_children()) - before
            return alive, list(grouping.groups())

    alive, serial = grouped(records, workers=1)
    assert len(serial) == 2 and alive == 0
    assert grouped(records[:1]) == (0, [])
    monkeypatch.setattr(cluster, "_PARALLEL_PAIRS", 0)
    alive, forked = grouped(records, workers=2)
    assert forked == serial
    assert alive == 2  # both verification processes were up while the caller's work ran
    assert len(multiprocessing.active_children()) == before


def _components_by_search(edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components found the plain way, one breadth-first search each."""
    links: dict[int, set[int]] = {}
    for a, b in edges:
        links.setdefault(a, set()).add(b)
        links.setdefault(b, set()).add(a)
    seen: set[int] = set()
    found = []
    for start in sorted(links):
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            frontier = [k for j in frontier for k in links[j] if k not in component]
            component.update(frontier)
        seen |= component
        found.append(sorted(component))
    return sorted(found, key=len, reverse=True)


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)).filter(lambda e: e[0] < e[1]), max_size=80))
def test_components_of_the_candidate_graph_are_those_a_search_finds(edges):
    import tierscan.scanner.group.cluster as cluster

    pairs = np.array([(a, b, 1) for a, b in sorted(set(edges))], np.int64).reshape(-1, 3)
    assert cluster._components(pairs, 41) == _components_by_search(edges)


def test_components_of_a_long_chain_in_random_order():
    import tierscan.scanner.group.cluster as cluster

    order = np.random.default_rng(3).permutation(5000)
    pairs = np.column_stack([np.minimum(order[:-1], order[1:]), np.maximum(order[:-1], order[1:]),
                             np.ones(4999, np.int64)])
    assert cluster._components(pairs, 6000) == [list(range(5000))]


@given(st.integers(0, 2**32), st.integers(2, 300), st.integers(0, 6000))
def test_each_image_keeps_its_nearest_candidates(seed, n, count):
    """A pair is kept iff it is among the `_MAX_MATES` nearest (distance, then index) of one of its images:
    no image brings more than that many, and none of its nearest is lost."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, count), rng.integers(0, n, count)
    low, high = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j]
    unique = np.unique(np.column_stack([low, high]), axis=0)
    pairs = np.column_stack([unique, rng.integers(0, 11, len(unique))])
    kept = {tuple(p) for p in _nearest_mates(pairs).tolist()}
    nearest = set()
    for image in range(n):
        mine = [p for p in pairs.tolist() if image in p[:2]]
        mine.sort(key=lambda p: (p[2], p[1] if p[0] == image else p[0]))
        nearest |= {tuple(p) for p in mine[:_MAX_MATES]}
    assert kept == nearest

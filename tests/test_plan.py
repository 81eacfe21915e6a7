"""The read planner: ranged EXIF reads agree with whole-file reads while reading less, plans choose the
cheapest reads, and a scan with `--no-perceptual` finds what a whole-object scan finds."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shutil
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_results import record_fingerprints
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.models import InventoryRecord, ObjectRef, Report, Tier
from tierscan.scanner.fingerprint.exif import read_metadata
from tierscan.scanner.pricing.table import GIB, PriceTable
from tierscan.scanner.scan.catalog import WorkItem
from tierscan.scanner.scan.plan import (
    HEAD,
    TAIL,
    Budget,
    ReadKind,
    plan_reads,
    price_of,
    ranged_metadata,
    spread_decodes,
    whole_read_below,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "exif"


def ranged(data: bytes, want_tail: bool = False):
    calls: list[tuple[int, int]] = []

    async def fetch(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    return asyncio.run(ranged_metadata(fetch, len(data), want_tail=want_tail)), calls


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir() if p.suffix.lower() in
                                        (".jpg", ".png", ".webp", ".tiff", ".heic", ".mpo", ".dng")))
@pytest.mark.parametrize("want_tail", [False, True])
def test_ranged_metadata_agrees_with_a_whole_read(name, want_tail):
    data = (DATA / name).read_bytes()
    found, calls = ranged(data, want_tail)
    whole = read_metadata(data)
    assert found.exif == whole.exif, name
    assert (found.width, found.height) == (whole.width, whole.height)
    assert found.bytes_read == sum(e - s for s, e in calls) and found.requests == len(calls)


def padded_jpeg(app1_len: int, scan: int) -> bytes:
    """A JPEG whose first APP1 Exif segment is longer than the head, then a long scan."""
    src = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
    pad = b"\xff\xe2" + struct.pack(">H", app1_len) + b"\0" * (app1_len - 2)
    return src[:2] + pad + src[2:] + b"\0" * scan


def test_a_segment_longer_than_the_head_costs_one_follow_up_and_no_pixels():
    data = padded_jpeg(60_000, 4_000_000)
    found, calls = ranged(data)
    assert found.exif == read_metadata(data).exif and found.exif.gps_lat is not None
    assert len(calls) <= 3 and found.bytes_read < 200_000  # the padding segment, then the Exif one


def png(*chunks: tuple[bytes, bytes]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for ctype, body in ((b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)), *chunks, (b"IEND", b"")):
        out += struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
    return out


def test_png_exif_after_many_idat_chunks_in_few_requests():
    tiff = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
    exif = tiff[tiff.index(b"Exif\0\0") + 6 :][:20_000]
    data = png(*[(b"IDAT", bytes(8192))] * 400, (b"eXIf", exif))
    found, calls = ranged(data, want_tail=True)
    assert found.exif == read_metadata(data).exif and found.exif.make
    assert len(calls) <= 10


def test_webp_exif_after_the_pixels_comes_from_the_tail():
    src = (DATA / "pillow__flower.webp").read_bytes() if (DATA / "pillow__flower.webp").exists() else None
    if src is None:
        pytest.skip("no WebP sample")
    found, _ = ranged(src, want_tail=True)
    assert found.exif == read_metadata(src).exif


def ref(uri: str, size: int, tier: Tier = Tier.hot, md5: str | None = None, key: str = "a.jpg",
        multipart: str | None = None, storage_class: str = "STANDARD") -> ObjectRef:
    checksums = {"md5": md5} if md5 else {"s3mpu": multipart} if multipart else {}
    return ObjectRef(uri=uri, provider="s3", bucket="b", key=key, size=size, tier=tier,
                     storage_class=storage_class, region="us-east-1", jurisdiction="US",
                     modified=datetime.now(UTC), checksums=checksums)


def test_plans_read_one_copy_of_identical_objects_hottest_first():
    items = [WorkItem(ref("s3://b/cold", 10**6, Tier.cold, "m"), True, True),
             WorkItem(ref("s3://b/hot", 10**6, Tier.hot, "m"), True, True),
             WorkItem(ref("s3://b/raw", 10**6, key="x.NEF"), False, True),
             WorkItem(ref("s3://b/old", 10**6), True, False),
             WorkItem(ref("s3://b/tiny", HEAD + TAIL), False, True)]
    plans = {p.ref.uri: p for p in plan_reads(items, perceptual=True)}
    assert set(plans) == {"s3://b/hot", "s3://b/raw", "s3://b/old", "s3://b/tiny"}
    assert [c.ref.uri for c in plans["s3://b/hot"].copies] == ["s3://b/cold"]
    assert {u: p.kind for u, p in plans.items()} == {
        "s3://b/hot": "full", "s3://b/raw": "meta", "s3://b/old": "narrow", "s3://b/tiny": "full"}
    exact_only = {p.ref.uri: p.kind for p in plan_reads(items, perceptual=False)}
    assert exact_only["s3://b/hot"] == "meta" and exact_only["s3://b/tiny"] == "full"
    assert plans["s3://b/old"].estimate() == (2, HEAD + TAIL)


def test_reads_that_decode_no_pixels_are_spread_among_those_that_do():
    # The hot tier's narrowing reads come first in plan order, the cool tier's images after them.
    items = [WorkItem(ref(f"s3://hot/{i:02}.jpg", 10**6, Tier.hot), True, False) for i in range(6)]
    items += [WorkItem(ref(f"s3://cool/{i:02}.jpg", 10**6, Tier.cool), False, True) for i in range(3)]
    plans = plan_reads(items, perceptual=True)
    assert [p.kind for p in plans] == ["narrow"] * 6 + ["image"] * 3
    spread = spread_decodes(plans, perceptual=True)
    assert sorted(p.ref.uri for p in spread) == sorted(p.ref.uri for p in plans)
    assert [p.kind for p in spread] == ["narrow", "image", "narrow", "narrow", "image", "narrow", "narrow", "image",
                                        "narrow"]
    # Each kind keeps its own order.
    assert [p.ref.uri for p in spread if p.kind == "narrow"] == [p.ref.uri for p in plans if p.kind == "narrow"]
    assert [p.ref.uri for p in spread if p.kind == "image"] == [p.ref.uri for p in plans if p.kind == "image"]
    # Without perceptual hashing nothing decodes pixels: the plan order stays.
    exact_only = plan_reads(items, perceptual=False)
    assert spread_decodes(exact_only, perceptual=False) == exact_only


def test_small_objects_whose_size_collides_are_read_whole_where_that_costs_less_in_fees():
    prices = PriceTable.load(None)

    def price(r: ObjectRef):
        return price_of(prices, lambda _: None, r)

    def fees(r: ObjectRef, requests: int, nbytes: int) -> float:
        p = price(r)
        return requests * p.get_per_1000 / 1000 + nbytes / GIB * p.retrieval_gb

    hot = ref("s3://b/hot", 0, Tier.hot)
    cold = ref("s3://b/cold", 0, Tier.cold, storage_class="GLACIER_IR")
    cool = ref("s3://b/cool", 0, Tier.cool, storage_class="STANDARD_IA")
    assert whole_read_below(price(hot)) == HEAD + TAIL  # no retrieval fee: ranges
    for r in (cold, cool):
        limit = whole_read_below(price(r))
        # At the limit, one whole GET costs no more than a head and a tail; just past it, more.
        assert fees(r, 1, limit) <= fees(r, 2, HEAD + TAIL) < fees(r, 1, limit + 64)
    assert whole_read_below(price(cold)) > 300_000 and whole_read_below(price(cool)) > 100_000

    def kinds(size: int, want_sha256: bool, want_metadata: bool = True,
              perceptual: bool = False) -> dict[str, str]:
        items = [WorkItem(dataclasses.replace(r, size=size), want_sha256, want_metadata)
                 for r in (hot, cool, cold)]
        plans = plan_reads(items, perceptual=perceptual, price=price)
        return {p.ref.uri.rsplit("/", 1)[1]: p.kind for p in plans}

    assert kinds(200_000, want_sha256=True) == {"hot": "meta", "cool": "meta", "cold": "full"}
    assert kinds(100_000, want_sha256=True) == {"hot": "meta", "cool": "full", "cold": "full"}
    unchanged = kinds(100_000, want_sha256=True, want_metadata=False)
    assert unchanged == {"hot": "narrow", "cool": "full", "cold": "full"}
    # No collision: one 16 KiB GET of the head is cheaper still.
    assert kinds(100_000, want_sha256=False) == {"hot": "meta", "cool": "meta", "cold": "meta"}
    assert kinds(1_000_000, want_sha256=True) == {"hot": "meta", "cool": "meta", "cold": "meta"}
    images = kinds(100_000, want_sha256=False, perceptual=True)
    assert images == {"hot": "image", "cool": "image", "cold": "image"}
    # Without prices, as before: only objects of HEAD + TAIL bytes or fewer.
    items = [WorkItem(dataclasses.replace(cold, size=100_000), True, True)]
    assert plan_reads(items, perceptual=False)[0].kind == "meta"


def test_equal_multipart_etags_are_read_once_and_never_taken_for_an_md5():
    mpu, other_parts = "c" * 32 + "-2", "c" * 32 + "-3"
    items = [WorkItem(ref("s3://b/cool", 10**7, Tier.cool, multipart=mpu), True, True),
             WorkItem(ref("s3://b/hot", 10**7, Tier.hot, multipart=mpu), True, True),
             WorkItem(ref("s3://b/parts3", 10**7, Tier.hot, multipart=other_parts), True, True),
             WorkItem(ref("s3://b/md5", 10**7, Tier.hot, md5="c" * 32), True, True)]
    plans = {p.ref.uri: p for p in plan_reads(items, perceptual=False)}
    assert set(plans) == {"s3://b/hot", "s3://b/parts3", "s3://b/md5"}
    assert [c.ref.uri for c in plans["s3://b/hot"].copies] == ["s3://b/cool"]


def test_budget():
    budget = Budget(1.0)
    assert budget.admit(0.6) and not budget.admit(0.6) and budget.admit(0.0) and budget.admit(0.4)
    assert Budget(None).admit(1e9)


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


@pytest.fixture()
def estate(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "estate", tmp_path / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", tmp_path / "tierscan.yaml")
    return tmp_path


def scan(estate: Path, db: str, *extra: str) -> tuple[Report, dict[str, InventoryRecord]]:
    cfg = str(estate / "tierscan.yaml")
    report = Report.model_validate_json(run("scan", "--config", cfg, "--db", str(estate / db), "--format", "json",
                                            *extra))
    inv = run("inventory", "--db", str(estate / db), "--format", "jsonl")
    return report, {r.uri: r for r in map(InventoryRecord.model_validate_json, inv.splitlines())}


def exact(report: Report) -> list[set[str]]:
    return sorted(({m.uri for m in g.members} for g in report.groups if g.kind == "exact"), key=sorted)


def test_no_perceptual_finds_the_same_exact_groups_and_exif_reading_less(estate):
    full, full_inv = scan(estate, "full.db")
    light, light_inv = scan(estate, "light.db", "--no-perceptual")
    assert exact(light) == exact(full) and exact(full)
    for uri, record in full_inv.items():
        if record.status == "fingerprinted":
            # The metadata's kinds alike; faces need the pixels, which a scan without perceptual hashes never decodes.
            metadata_kinds = [k for k in record.personal_data if k != "faces"]
            assert light_inv[uri].exif == record.exif and light_inv[uri].personal_data == metadata_kinds
            assert light_inv[uri].phash is None and light_inv[uri].faces is None
    assert light.scan.bytes_read < 0.6 * full.scan.bytes_read
    assert sum(light.scan.requests_by_tier.values()) == light.scan.requests
    assert light.scan.cost_usd == pytest.approx(light.totals.scan_cost_usd, rel=1e-3)
    again, _ = scan(estate, "light.db", "--no-perceptual")
    assert again.scan.requests == 0 and again.scan.bytes_read == 0


def test_plan_prints_fees_per_tier_before_reading(estate):
    cfg = str(estate / "tierscan.yaml")
    out = json.loads(run("plan", "--config", cfg, "--db", str(estate / "p.db"), "--format", "json"))
    tiers = {t["tier"]: t for t in out["tiers"]}
    assert set(tiers) == {"hot", "cool", "cold", "archive"}
    assert tiers["cold"]["retrieval_usd"] > 0 and tiers["hot"]["retrieval_usd"] == 0
    report, _ = scan(estate, "p.db")  # the plan read nothing: the scan still reads every object
    assert report.scan.bytes_read == sum(t["bytes"] for t in tiers.values())
    assert "total" in run("plan", "--config", cfg, "--db", str(estate / "q.db"), "--no-perceptual")
    # After the scan, the plan of the same estate reads nothing, and says so.
    again = run("plan", "--config", cfg, "--db", str(estate / "p.db"))
    assert again.startswith("nothing to read: all ") and "listed objects are unchanged since the last scan" in again
    planned = json.loads(run("plan", "--config", cfg, "--db", str(estate / "p.db"), "--format", "json"))
    assert planned["tiers"] == [] and planned["listed"] == planned["unchanged"] == report.scan.listed > 0
    assert planned["nothing_to_read"].startswith(f"all {report.scan.listed:,} listed objects are unchanged")


def test_a_retrieval_budget_leaves_cold_data_unread(estate):
    report, inv = scan(estate, "b.db", "--max-retrieval-usd", "0")
    assert report.scan.left_unread > 0 and report.scan.retrieval_usd == 0
    left = [r for r in inv.values() if r.reason and "retrieval budget" in r.reason]
    assert len(left) == report.scan.left_unread and all(r.tier != Tier.hot for r in left)
    assert report.scan.bytes_read_by_tier.get("hot", 0) > 0
    after, _ = scan(estate, "b.db")  # no budget: the next scan reads what was left
    assert after.scan.left_unread == 0 and after.scan.requests >= report.scan.left_unread


def read_keys(catalog, keys: dict[str, tuple[int, str, str]], whole: bool = False) -> None:
    """This scan's reads as `ReadSession` records them, uri -> (size, headtail key, identity): a row each,
    or for whole reads (whose catalog rows have their key and SHA-256) their sizes."""
    catalog.begin_read_keys()
    if whole:
        catalog.record_read_keys([], {size for size, _, _ in keys.values()})
    else:
        catalog.record_read_keys([(uri, key, identity, 0, None, None) for uri, (_, key, identity) in keys.items()],
                                 set())


def test_only_objects_without_a_trusted_md5_are_read_whole(tmp_path):
    from tierscan.scanner.scan.catalog import Catalog
    from tierscan.scanner.scan.plan import PlannedRead
    from tierscan.scanner.scan.read_session import _still_colliding

    size = 10**6
    refs = [ref("s3://b/orig", size, md5="a" * 32), ref("s3://b/multipart", size),
            ref("s3://b/other", size, md5="b" * 32)]
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.record_listing(refs, "s3://b", 1)
        narrowed = [PlannedRead(WorkItem(r, True, True), ReadKind.meta) for r in refs]
        read_keys(catalog, {r.uri: (size, f"{size}:h", r.checksums.get("md5") or r.uri) for r in refs})
        reads, fill = _still_colliding(catalog, narrowed)
        assert [p.ref.uri for p in reads] == ["s3://b/multipart"] and not reads[0].item.want_metadata
        assert sorted(i.ref.uri for i in fill[f"{size}:h"]) == ["s3://b/orig", "s3://b/other"]
    with Catalog(tmp_path / "d.db") as catalog:  # trusted MD5s only: different MD5s, different bytes
        catalog.record_listing(refs[::2], "s3://b", 1)
        read_keys(catalog, {r.uri: (size, f"{size}:h", r.checksums.get("md5") or r.uri) for r in refs[::2]})
        reads, fill = _still_colliding(catalog, narrowed[::2])
        assert reads == [] and fill == {}


def test_perceptual_reads_stop_at_the_primary_image_and_exact_matching_still_holds(tmp_path: Path):
    photo = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
    video, other_video = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB "motion photos"
    bucket = tmp_path / "estate" / "phone"
    bucket.mkdir(parents=True)
    (bucket / "motion.jpg").write_bytes(photo + video)
    (bucket / "motion-copy.jpg").write_bytes(photo + video)  # byte-identical: exact
    (bucket / "motion-other.jpg").write_bytes(photo + other_video)  # same size and pixels, other bytes
    (bucket / "alone.jpg").write_bytes(photo + video + video[:1000])  # a size of its own
    (tmp_path / "tierscan.yaml").write_text(f"targets: ['{tmp_path / 'estate'}']\n")
    report, inv = scan(tmp_path, "c.db")
    uris = {Path(u).name: u for u in inv}
    assert exact(report) == [{uris["motion.jpg"], uris["motion-copy.jpg"]}]
    near = [{Path(m.uri).name for m in g.members} for g in report.groups if g.kind == "near"]
    assert near and all(m.issubset({"motion.jpg", "motion-copy.jpg", "motion-other.jpg", "alone.jpg"}) for m in near)
    # The object alone in its size is read up to its primary image only; its hashes are a whole read's.
    whole = read_metadata(photo)
    assert inv[uris["alone.jpg"]].phash == inv[uris["motion-other.jpg"]].phash
    assert inv[uris["alone.jpg"]].width == whole.width and inv[uris["alone.jpg"]].sha256 is None
    # Three same-size objects are read whole once each to tell them apart; the fourth costs its image only.
    assert report.scan.bytes_read <= 3 * len(photo + video) + 2 * (HEAD + TAIL) + 256 * 1024
    # Objects small enough to come whole in the first chunk hash every byte, trailer and all.
    small = {"small-a.jpg": photo + video[:30000], "small-b.jpg": photo + other_video[:30001]}
    for name, data in small.items():
        (bucket / name).write_bytes(data)
    report, inv = scan(tmp_path, "d.db")
    uris = {Path(u).name: u for u in inv}
    for name, data in small.items():
        assert inv[uris[name]].sha256 == hashlib.sha256(data).hexdigest()
    assert exact(report) == [{uris["motion.jpg"], uris["motion-copy.jpg"]}]


def test_the_scan_cost_does_not_depend_on_the_order_reads_finish_in():
    from tierscan.scanner.core.config import Config
    from tierscan.scanner.scan.read_session import _Accounts

    config = Config.model_validate({"buckets": {"b": {"price_as": "s3", "storage_class": "GLACIER_IR"}}})
    reads = [(ObjectRef(uri=f"s3://b/{i}", provider="s3", bucket="b", key=str(i), size=n, tier=Tier.cold,
                        storage_class="GLACIER_IR", region="ap-east-1", jurisdiction="HK",
                        modified=datetime.now(UTC)), n)
             for i, n in enumerate([16 << 30, 1, 2, 3, 5, 7, 11, 13])]  # one large read, then small ones
    forward, backward = _Accounts(config), _Accounts(config)
    for r, n in reads:
        forward.add(r, n)
    for r, n in reversed(reads):
        backward.add(r, n)
    assert forward.retrieval_usd > 0 and forward.request_usd > 0
    assert (forward.retrieval_usd, forward.request_usd) == (backward.retrieval_usd, backward.request_usd)


def test_narrowing_settles_size_classes_in_rounds_as_it_would_in_one(tmp_path, monkeypatch):
    """Rounds of size classes (memory holds one round's peers) find the same whole reads and fills as one
    round over every size, whichever sizes share a round."""
    from tierscan.scanner.scan import read_session
    from tierscan.scanner.scan.catalog import Catalog
    from tierscan.scanner.scan.plan import PlannedRead

    refs, keys, narrowed = [], {}, []
    for size in (5000, 6000, 7000, 8000):
        group = [ref(f"s3://b/{size}-{n}", size, md5=("a" * 32 if n == 0 else None), key=f"{size}-{n}")
                 for n in range(3)]
        refs += group
        for n, r in enumerate(group):
            # Two of each size share a head/tail key, one with a trusted MD5 and one without.
            keys[r.uri] = (size, f"{size}:{'h' if n < 2 else 'x'}", r.checksums.get("md5") or r.uri)
        narrowed += [PlannedRead(WorkItem(r, True, True), ReadKind.meta) for r in group]
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.record_listing(refs, "s3://b", 1)
        read_keys(catalog, keys)
        assert list(catalog.size_rounds([8000, 5000, 6000, 7000], 3)) == [[5000], [6000], [7000], [8000]]
        assert list(catalog.size_rounds([8000, 5000, 6000, 7000], 7)) == [[5000, 6000], [7000, 8000]]
        results = []
        for peers in (1, 6, 10**6):
            monkeypatch.setattr(read_session, "_PEERS_A_ROUND", peers)
            reads, fill = read_session._still_colliding(catalog, narrowed)
            results.append((sorted(p.ref.uri for p in reads),
                            {k: sorted(i.ref.uri for i in v) for k, v in fill.items()}))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == [f"s3://b/{size}-1" for size in (5000, 6000, 7000, 8000)]
    assert results[0][1] == {f"{size}:h": [f"s3://b/{size}-0"] for size in (5000, 6000, 7000, 8000)}


def test_size_classes_read_whole_are_looked_at_only_where_an_object_lacks_its_sha256(tmp_path):
    """Whole reads of this scan settle their size class, unless an object of it has no SHA-256 yet (here one
    of an earlier scan, with a head/tail key like theirs): only such classes meet their peers again."""
    from tierscan.scanner.scan.catalog import Catalog
    from tierscan.scanner.scan.read_session import _still_colliding

    read = [ref(f"s3://b/{size}-{n}", size, key=f"{size}-{n}") for size in (5000, 6000) for n in range(2)]
    earlier = ref("s3://b/6000-old", 6000, key="6000-old")
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.record_listing([*read, earlier], "s3://b", 1)
        record_fingerprints(catalog, [(r.uri, {"status": "fingerprinted", "sha256": r.uri, "headtail": f"{r.size}:h"})
                                     for r in read])
        record_fingerprints(catalog, [(earlier.uri, {"status": "fingerprinted", "headtail": "6000:h"})])
        asked: list[int] = []
        peers = catalog.size_peers
        catalog.size_peers = lambda sizes: asked.extend(sizes) or peers(sizes)  # type: ignore
        read_keys(catalog, {r.uri: (r.size, f"{r.size}:h", r.uri) for r in read}, whole=True)
        reads, fill = _still_colliding(catalog, [])
    assert asked == [6000]
    assert [p.ref.uri for p in reads] == [earlier.uri] and not reads[0].item.want_metadata
    assert fill == {}  # the key is settled by this scan's whole reads: nothing waits for a read's MD5


def test_a_scan_keeps_its_read_keys_in_the_catalog_not_in_memory(tmp_path, monkeypatch):
    """What narrowing needs of the objects read reaches the catalog a write batch at a time: the session's
    buffers stay at the batch size whatever the object count, and narrowing still finds the copies among
    photos of one size (read whole at once without perceptual hashing; their primary images first, then
    whole to tell them apart, with it)."""
    from tierscan.scanner.scan import read_session
    from tierscan.scanner.scan.catalog import Catalog

    batch = 4
    monkeypatch.setattr(read_session, "_WRITE_BATCH", batch)
    sent: list[int] = []
    record = Catalog.record_read_keys

    def counted(self: Catalog, rows: list[tuple], sizes: set[int]) -> None:  # type: ignore[type-arg]
        sent.append(len(rows) + len(sizes))
        record(self, rows, sizes)

    monkeypatch.setattr(Catalog, "record_read_keys", counted)
    folder = tmp_path / "estate" / "b"
    folder.mkdir(parents=True)
    photo = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
    for n in range(20):  # twenty photos of one size, ten of them with a copy
        (folder / f"{n}.jpg").write_bytes(photo + struct.pack(">I", n))
        if n % 2 == 0:
            (folder / f"{n}-copy.jpg").write_bytes(photo + struct.pack(">I", n))
    (tmp_path / "tierscan.yaml").write_text(f"targets: ['{tmp_path / 'estate'}']\n")
    copies = [[f"{n}-copy.jpg", f"{n}.jpg"] for n in sorted(range(0, 20, 2), key=str)]
    for db, extra in (("c.db", ["--no-perceptual"]), ("d.db", [])):
        sent.clear()
        report, inv = scan(tmp_path, db, *extra)
        assert len(inv) == 30 and sum(sent) > 0
        assert max(sent) <= batch + 1  # a batch, plus the copies of its last read
        assert sorted(sorted(Path(u).name for u in g) for g in exact(report)) == copies


def test_reads_planned_a_run_of_size_classes_at_a_time_find_what_one_plan_finds(estate, monkeypatch):
    """A first scan plans its reads a run of whole size classes at a time, so memory holds one run's plans,
    not every object's: with runs of one size class each, the scan reads, groups and records what it does
    with one run over every size, and the plan prices the same reads."""
    from tierscan.scanner.scan import catalog as catalog_module

    runs: list[list[int]] = []
    work_runs = catalog_module.Catalog.work_runs

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for items in work_runs(self, *args, **kwargs):
            runs.append(sorted({w.ref.size for w in items}))
            yield items

    monkeypatch.setattr(catalog_module.Catalog, "work_runs", counted)
    cfg = str(estate / "tierscan.yaml")
    results = []
    for run_size, db in ((10**6, "one.db"), (1, "runs.db")):
        monkeypatch.setattr(catalog_module, "_WORK_RUN", run_size)
        runs.clear()
        planned = json.loads(run("plan", "--config", cfg, "--db", str(estate / f"plan-{db}"), "--format", "json"))
        report, inv = scan(estate, db)
        near = sorted(sorted(m.uri for m in g.members) for g in report.groups if g.kind == "near")
        results.append((planned["tiers"], exact(report), near, {u: r.model_dump() for u, r in inv.items()}))
        assert runs and all(sizes == sorted(sizes) for sizes in runs)
        if run_size == 1:
            assert len(runs) > 2 and all(len(sizes) == 1 for sizes in runs)  # a size class a run
    assert results[0] == results[1]
    assert results[0][0] and results[0][1]  # reads were planned, and copies found

import asyncio
import os
from pathlib import Path

import pytest

from connectors import Connector, connector_class, known_connectors, parse_target, register_connector
from connectors.local import LocalConnector
from scanner.config import Config
from scanner.errors import ObjectGone, ObjectUnreadable, UsageError
from scanner.models import Tier


def listing(root: Path, config: Config | None = None):
    async def go():
        async with LocalConnector(config or Config()) as conn:
            return [ref async for ref in conn.list_objects(parse_target(str(root)))]

    return asyncio.run(go())


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    (tmp_path / "hk-hot" / "a").mkdir(parents=True)
    (tmp_path / "cn-cold").mkdir()
    (tmp_path / "hk-hot" / "a" / "one.jpg").write_bytes(b"0123456789")
    (tmp_path / "cn-cold" / "two.jpg").write_bytes(b"abc")
    (tmp_path / "loose.txt").write_bytes(b"x")
    return tmp_path


def test_top_level_folders_are_buckets(estate):
    refs = {r.key: r for r in listing(estate)}
    assert set(refs) == {"a/one.jpg", "two.jpg", "loose.txt"}
    assert refs["a/one.jpg"].bucket == "hk-hot"
    assert refs["two.jpg"].bucket == "cn-cold"
    assert refs["loose.txt"].bucket == estate.name
    assert refs["a/one.jpg"].uri == (estate / "hk-hot" / "a" / "one.jpg").as_uri()
    assert refs["a/one.jpg"].size == 10


def test_defaults_are_hot_and_local(estate):
    ref = listing(estate)[0]
    assert (ref.tier, ref.region, ref.jurisdiction, ref.provider) == (Tier.hot, "local", "local", "local")


def test_config_gives_tier_region_and_jurisdiction(estate):
    config = Config.model_validate(
        {"buckets": {"cn-cold": {"price_as": "s3", "storage_class": "GLACIER_IR", "region": "cn-north-1"},
                     "hk-hot": {"tier": "hot", "region": "ap-east-1"}}}
    )
    refs = {r.bucket: r for r in listing(estate, config)}
    assert (refs["cn-cold"].tier, refs["cn-cold"].storage_class, refs["cn-cold"].jurisdiction) == (
        Tier.cold, "GLACIER_IR", "CN")
    assert (refs["hk-hot"].tier, refs["hk-hot"].jurisdiction) == (Tier.hot, "HK")
    # A local folder standing in for Deep Archive is still readable on disk.
    config = Config.model_validate({"buckets": {"*": {"price_as": "s3", "storage_class": "DEEP_ARCHIVE"}}})
    ref = listing(estate, config)[0]
    assert (ref.tier, ref.readable) == (Tier.archive, True)


def test_ranged_reads_follow_slice_rules(estate):
    ref = next(r for r in listing(estate) if r.key == "a/one.jpg")

    async def go():
        async with LocalConnector(Config()) as conn:
            return (await conn.read_range(ref, 0, 4), await conn.read_range(ref, -3),
                    await conn.read_range(ref, 4, 6), await conn.read_range(ref, 8, 100),
                    await conn.read_range(ref, 20, 30))

    assert asyncio.run(go()) == (b"0123", b"789", b"45", b"89", b"")


def test_vanished_file_raises_object_gone(estate):
    ref = next(r for r in listing(estate) if r.key == "two.jpg")
    os.remove(estate / "cn-cold" / "two.jpg")
    with pytest.raises(ObjectGone):
        asyncio.run(LocalConnector(Config()).read_range(ref, 0, 3))


def test_unreadable_refs_are_refused_before_any_read(estate):
    ref = listing(estate)[0].model_copy(update={"readable": False, "storage_class": "DEEP_ARCHIVE"})
    with pytest.raises(ObjectUnreadable, match="must be restored"):
        asyncio.run(LocalConnector(Config()).read_range(ref, 0, 1))


def test_symlink_loops_are_not_followed(estate):
    (estate / "hk-hot" / "a" / "loop").symlink_to(estate / "hk-hot")
    keys = sorted(r.key for r in listing(estate))
    assert keys == ["a/one.jpg", "loose.txt", "two.jpg"]


def test_not_a_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a folder"):
        listing(tmp_path / "absent")


@pytest.mark.parametrize(
    "text, scheme, location, prefix",
    [
        ("s3://bucket/photos/2024", "s3", "bucket", "photos/2024"),
        ("s3://*", "s3", "*", ""),
        ("gs://b", "gs", "b", ""),
        ("az://acct/container/p/q", "az", "acct/container", "p/q"),
        ("az://acct/*", "az", "acct/*", ""),
        ("/data/estate", "file", "/data/estate", ""),
        ("file:///data/estate", "file", "/data/estate", ""),
    ],
)
def test_parse_target(text, scheme, location, prefix):
    t = parse_target(text)
    assert (t.scheme, t.location, t.prefix) == (scheme, location, prefix)


def test_parse_target_rejects_incomplete_uris():
    with pytest.raises(UsageError):
        parse_target("az://acct")
    with pytest.raises(UsageError):
        parse_target("s3:///key")


def test_registry_finds_by_scheme_and_refuses_unknown():
    assert connector_class("file") is LocalConnector
    assert {"file", "s3", "gs", "az"} <= set(known_connectors())
    with pytest.raises(UsageError, match="no connector for ftp://"):
        connector_class("ftp")


def test_register_connector_refuses_to_clobber():
    class Mem(LocalConnector):
        scheme = "mem"

    register_connector("mem", Mem)
    assert connector_class("mem") is Mem
    with pytest.raises(ValueError):
        register_connector("mem", Mem)
    register_connector("mem", Mem, clobber=True)
    assert issubclass(connector_class("mem"), Connector)

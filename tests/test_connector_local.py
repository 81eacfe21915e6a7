import asyncio
import contextlib
import dataclasses
import errno
import os
import socket
import threading
from pathlib import Path

import pytest
from failing_os import deny, fail_reads

from tierscan.connectors import Connector, connector_class, known_connectors, parse_target, register_connector
from tierscan.connectors.local import LocalConnector, _walk
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import ObjectGone, ObjectReadError, ObjectRefused, ObjectUnreadable, UsageError
from tierscan.scanner.core.models import Tier


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
    ref = dataclasses.replace(listing(estate)[0], readable=False, storage_class="DEEP_ARCHIVE")
    with pytest.raises(ObjectUnreadable, match="must be restored"):
        asyncio.run(LocalConnector(Config()).read_range(ref, 0, 1))


def test_symlink_loops_are_not_followed(estate):
    (estate / "hk-hot" / "a" / "loop").symlink_to(estate / "hk-hot")
    keys = sorted(r.key for r in listing(estate))
    assert keys == ["a/one.jpg", "loose.txt", "two.jpg"]


def read(ref, start=0, end=None, conn: LocalConnector | None = None, config: Config | None = None) -> bytes:
    return asyncio.run((conn or LocalConnector(config or Config())).read_range(ref, start, end))


def count_thread_hops(monkeypatch) -> list[object]:
    """From now on, every function handed to `asyncio.to_thread` is appended to the returned list."""
    hops: list[object] = []
    real = asyncio.to_thread

    def counted(func, *args, **kwargs):
        hops.append(func)
        return real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return hops


def skipped(refs) -> dict[str, str | None]:
    return {r.key: r.skipped for r in refs if r.skipped is not None}


def test_fifos_sockets_loops_and_broken_links_are_listed_as_skipped_with_their_reason(estate):
    a = estate / "hk-hot" / "a"
    os.mkfifo(a / "pipe.jpg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(a / "s.jpg"))
    (a / "self.jpg").symlink_to(a / "self.jpg")
    (a / "gone.jpg").symlink_to(a / "missing.jpg")
    (a / "to-pipe.jpg").symlink_to(a / "pipe.jpg")
    refs = listing(estate)
    assert skipped(refs) == {
        "a/pipe.jpg": "a FIFO (named pipe), not a regular file: not read",
        "a/s.jpg": "a socket, not a regular file: not read",
        "a/self.jpg": "symlink loop: not followed",
        "a/gone.jpg": "broken symlink: its target does not exist",
        "a/to-pipe.jpg": "symlink to a FIFO (named pipe), not a regular file: not read",
    }
    assert all(r.size == 0 for r in refs if r.skipped)
    assert {r.key for r in refs if not r.skipped} == {"a/one.jpg", "two.jpg", "loose.txt"}


def test_symlinks_out_of_the_scanned_folder_are_skipped_unless_the_config_allows_them(tmp_path):
    outside = tmp_path / "outside"
    (outside / "album").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"secret bytes")
    (outside / "album" / "p.jpg").write_bytes(b"album photo")
    root = tmp_path / "estate"
    (root / "b").mkdir(parents=True)
    (root / "b" / "mine.jpg").write_bytes(b"mine")
    (root / "b" / "secret.jpg").symlink_to(outside / "secret.jpg")
    (root / "b" / "album").symlink_to(outside / "album")
    (root / "b" / "relative.jpg").symlink_to("../../outside/secret.jpg")
    (root / "b" / "inside.jpg").symlink_to(root / "b" / "mine.jpg")  # inside: read as before
    refs = {r.key: r for r in listing(root)}
    out = "symlink points outside the scanned folder: not followed"
    assert skipped(refs.values()) == {"secret.jpg": out, "album": out, "relative.jpg": out}
    assert (refs["inside.jpg"].size, read(refs["inside.jpg"])) == (4, b"mine")

    allow = Config.model_validate({"local": {"follow_symlinks_out": True}})
    refs = {r.key: r for r in listing(root, allow)}
    assert skipped(refs.values()) == {}
    assert set(refs) == {"mine.jpg", "inside.jpg", "secret.jpg", "relative.jpg", "album/p.jpg"}
    assert read(refs["secret.jpg"], config=allow) == b"secret bytes"
    assert read(refs["album/p.jpg"], config=allow) == b"album photo"


def test_followed_folders_out_of_the_root_cannot_loop(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "p.jpg").write_bytes(b"p")
    (outside / "again").symlink_to(outside)
    root = tmp_path / "estate"
    root.mkdir()
    (root / "out").symlink_to(outside)
    allow = Config.model_validate({"local": {"follow_symlinks_out": True}})
    refs = {f"{r.bucket}/{r.key}": r.skipped for r in listing(root, allow)}
    assert refs == {"out/p.jpg": None, "out/again": "symlink loop: not followed"}


def test_a_file_replaced_by_a_fifo_after_listing_is_refused_without_blocking(estate):
    path = estate / "cn-cold" / "two.jpg"
    ref = next(r for r in listing(estate) if r.key == "two.jpg")
    path.unlink()
    os.mkfifo(path)

    def release() -> None:  # a guard only: a read blocked in open() returns once a writer comes and goes
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    guard = threading.Timer(60, release)
    guard.start()
    try:
        with pytest.raises(ObjectRefused, match="FIFO"):
            read(ref)
    finally:
        guard.cancel()


def test_a_link_turned_to_point_outside_after_listing_is_not_read(tmp_path):
    root = tmp_path / "estate"
    (root / "b").mkdir(parents=True)
    mine = root / "b" / "mine.jpg"
    mine.write_bytes(b"mine")
    (root / "b" / "link.jpg").symlink_to(mine)
    plain = root / "b" / "plain.jpg"
    plain.write_bytes(b"pain")
    (root / "b" / "sub").mkdir()
    (root / "b" / "sub" / "deep.jpg").write_bytes(b"deep")
    (tmp_path / "elsewhere").mkdir()
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECR")  # same size and modified time as the listed files: only the path differs
    for path in (secret, plain, root / "b" / "sub" / "deep.jpg"):
        os.utime(path, ns=(mine.stat().st_mtime_ns, mine.stat().st_mtime_ns))
    os.link(secret, tmp_path / "elsewhere" / "deep.jpg")
    conn = LocalConnector(Config())

    async def go():
        refs = {r.key: r async for r in conn.list_objects(parse_target(str(root)))}
        (root / "b" / "link.jpg").unlink()
        (root / "b" / "link.jpg").symlink_to(secret)
        plain.unlink()
        plain.symlink_to(secret)  # a listed file swapped for a link out
        (root / "b" / "sub").rename(tmp_path / "moved")
        (root / "b" / "sub").symlink_to(tmp_path / "elsewhere")  # a folder on the way swapped for one
        for key in ("link.jpg", "plain.jpg", "sub/deep.jpg"):
            with pytest.raises(ObjectRefused, match="outside the scanned folder"):
                await conn.read_range(refs[key])

    asyncio.run(go())


def test_a_folder_swapped_for_a_link_out_while_listing_is_not_walked(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    root = tmp_path / "estate"
    (root / "b" / "sub").mkdir(parents=True)
    (root / "b" / "z.jpg").write_bytes(b"z")  # listed after sub/ is seen, before it is walked
    (root / "b" / "sub" / "mine.jpg").write_bytes(b"mine")
    walk = _walk(root.resolve(), follow_out=False)
    first = next(walk)  # b/ is being listed; sub/ waits its turn
    (root / "b" / "sub").rename(tmp_path / "moved")
    (root / "b" / "sub").symlink_to(outside)
    rest = list(walk)
    assert first.path.name == "z.jpg"
    assert [(e.path.name, e.folder) for e in rest] == [("sub", True)]
    assert rest[0].reason is not None and rest[0].reason.startswith("folder cannot be listed")


def test_an_io_error_mid_read_is_a_read_error(estate, monkeypatch):
    ref = next(r for r in listing(estate) if r.key == "a/one.jpg")
    inode = (estate / "hk-hot" / "a" / "one.jpg").stat().st_ino
    fail_reads(monkeypatch, inode, errno.EIO)
    with pytest.raises(ObjectReadError, match=r"Input/output error \(EIO\)"):
        read(ref)
    assert read(next(r for r in listing(estate) if r.key == "two.jpg")) == b"abc"


def test_a_folder_that_cannot_be_listed_is_a_skipped_entry_and_the_root_an_error(estate, monkeypatch):
    blocked = {str(estate / "hk-hot" / "a")}
    deny(monkeypatch, blocked, errno.EACCES)
    refs = listing(estate)
    [folder] = [r for r in refs if r.skipped]
    uri = (estate / "hk-hot" / "a").as_uri() + "/"
    assert (folder.bucket, folder.key, folder.uri) == ("hk-hot", "a/", uri)
    assert folder.skipped == "folder cannot be listed: Permission denied (EACCES); its files were not scanned"
    assert {r.key for r in refs if not r.skipped} == {"two.jpg", "loose.txt"}
    blocked.add(str(estate))
    with pytest.raises(UsageError, match="cannot list the folder: Permission denied"):
        listing(estate)


def test_names_that_are_not_utf8_are_listed_and_read(tmp_path):
    (tmp_path / "b").mkdir()
    with open(os.fsencode(tmp_path / "b") + b"/\xff\xfe.jpg", "wb") as fh:
        fh.write(b"latin-1 name")
    [ref] = listing(tmp_path)
    assert ref.key == "\\xff\\xfe.jpg"
    ref.key.encode("utf-8")  # storable
    assert read(ref) == b"latin-1 name"


def test_settings_that_match_object_uris_apply_per_object_among_others_of_the_bucket(tmp_path):
    # Settings are resolved once per set of matching `buckets:` entries, not per object: objects of one
    # folder that a URI glob matches or not still get their own, and a bucket name entry merges in file order.
    (tmp_path / "photos" / "raw").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    for name in ("photos/a.jpg", "photos/raw/b.jpg", "photos/c.jpg", "other/raw-d.jpg"):
        (tmp_path / name).write_bytes(b"x")
    config = Config.model_validate({"buckets": {
        "photos": {"region": "ap-east-1"},
        "*/raw/*": {"price_as": "s3", "storage_class": "GLACIER_IR"},
        "file://*/photos/c.jpg": {"region": "cn-north-1"}}})
    refs = {f"{r.bucket}/{r.key}": (r.tier, r.storage_class, r.region, r.jurisdiction)
            for r in listing(tmp_path, config)}
    assert refs == {
        "photos/a.jpg": (Tier.hot, "hot", "ap-east-1", "HK"),
        "photos/raw/b.jpg": (Tier.cold, "GLACIER_IR", "ap-east-1", "HK"),
        "photos/c.jpg": (Tier.hot, "hot", "cn-north-1", "CN"),
        "other/raw-d.jpg": (Tier.hot, "hot", "local", "local"),
    }


def test_unicode_and_odd_names_keep_their_keys_uris_and_order(tmp_path):
    names = ["é.jpg", "日本/写真.jpg", "a b#%?.jpg", "z.jpg", "Z.jpg", "new\nline.jpg"]
    for name in names:
        (tmp_path / "b" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "b" / name).write_bytes(name.encode())
    refs = listing(tmp_path)
    assert sorted(r.key for r in refs) == sorted(names)
    for ref in refs:
        assert ref.uri == (tmp_path / "b" / ref.key).as_uri()
        assert read(ref) == ref.key.encode()
    assert [r.key for r in listing(tmp_path)] == [r.key for r in refs]  # a stable order


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
        scheme = "mem-clobber"  # a scheme no other test registers: the registry is process-wide

    register_connector("mem-clobber", Mem)
    assert connector_class("mem-clobber") is Mem
    with pytest.raises(ValueError):
        register_connector("mem-clobber", Mem)
    register_connector("mem-clobber", Mem, clobber=True)
    assert issubclass(connector_class("mem-clobber"), Connector)


def test_small_files_are_read_without_a_thread_hop_and_large_ones_in_a_thread(estate, monkeypatch):
    (estate / "hk-hot" / "big.jpg").write_bytes(bytes(range(256)) * 1024)  # 256 KiB
    refs = {r.key: r for r in listing(estate)}
    hops = count_thread_hops(monkeypatch)
    assert read(refs["a/one.jpg"]) == b"0123456789"
    assert read(refs["two.jpg"]) == b"abc"
    assert hops == []
    assert read(refs["big.jpg"]) == bytes(range(256)) * 1024
    assert len(hops) == 1


def test_once_small_reads_are_slow_reads_go_to_threads_where_they_overlap(estate, monkeypatch):
    import tierscan.connectors.local as local

    refs = {r.key: r for r in listing(estate)}
    monkeypatch.setattr(local, "_SLOW_READ", -1.0)  # every read counts as slow: storage with latency
    hops = count_thread_hops(monkeypatch)
    conn = LocalConnector(Config())
    assert read(refs["a/one.jpg"], conn=conn) == b"0123456789"
    assert hops == []
    assert read(refs["two.jpg"], conn=conn) == b"abc"
    assert read(refs["a/one.jpg"], conn=conn) == b"0123456789"
    assert len(hops) == 2


def test_files_on_a_network_file_system_are_read_only_in_threads(estate, tmp_path, monkeypatch):
    """A read on an NFS or FUSE mount can hang in the kernel: on the event loop it would stall the whole
    scan, in a thread only that object (its request times out)."""
    import tierscan.connectors.local as local

    table = tmp_path / "mounts"
    table.write_text(f"/dev/vda / ext4 rw 0 0\nserver:/photos {estate} nfs4 rw 0 0\n"
                     f"sshfs#me@host: {tmp_path / 'fused'} fuse.sshfs rw 0 0\n", encoding="utf-8")
    assert not local._local_disk(estate / "hk-hot", str(table))
    assert not local._local_disk(tmp_path / "fused" / "x", str(table))
    assert local._local_disk(Path("/var/lib/photos"), str(table))
    assert not local._local_disk(tmp_path, str(tmp_path / "no-such-table"))  # unknown: threads

    monkeypatch.setattr(local, "_local_disk", lambda path: False)
    hops: list[list[object]] = []

    async def go() -> bytes:
        async with LocalConnector(Config()) as conn:
            refs = {r.key: r async for r in conn.list_objects(parse_target(str(estate)))}
            hops.append(count_thread_hops(monkeypatch))  # the read's, not the listing's
            return await conn.read_range(refs["a/one.jpg"])

    assert asyncio.run(go()) == b"0123456789"
    assert len(hops[0]) == 1


def test_location_names_files_as_a_scan_lists_them_and_stays_inside(tmp_path: Path) -> None:
    root = parse_target(str(tmp_path))
    loc = LocalConnector.location(root, "bucket/a b/c.jpg")
    assert (loc.bucket, loc.key) == ("bucket", "a b/c.jpg")
    assert loc.uri == (tmp_path / "bucket" / "a b" / "c.jpg").as_uri()
    assert LocalConnector.location(root, "latest").bucket == tmp_path.name  # a file directly inside
    for bad in ("../x", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            LocalConnector.location(root, bad)

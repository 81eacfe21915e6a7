import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_results import record_fingerprints

from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import GPS, ExifRecord, ObjectRef, ObjectStatus, Tier
from tierscan.scanner.scan.catalog import _LISTING_BATCH, SCHEMA_VERSION, Catalog
from tierscan.scanner.scan.merge import _STATUS_RANK

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)


def ref(key: str, size: int, modified=T0, md5: str | None = None, readable=True, etag=None,
        multipart: str | None = None) -> ObjectRef:
    return ObjectRef(
        uri=f"s3://b/{key}", provider="s3", bucket="b", key=key, size=size, etag=etag,
        checksums={"md5": md5} if md5 else {"s3mpu": multipart} if multipart else {},
        tier=Tier.hot if readable else Tier.archive,
        storage_class="STANDARD" if readable else "DEEP_ARCHIVE", readable=readable,
        region="ap-east-1", jurisdiction="HK", modified=modified,
    )


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "c.db") as c:
        yield c


def work(catalog):
    return {w.ref.key: (w.want_sha256, w.want_metadata) for w in catalog.work()}


def fingerprint_all(catalog, sha=None):
    record_fingerprints(catalog, [
        (w.ref.uri, {"status": "fingerprinted", **({"sha256": sha or w.ref.key} if w.want_sha256 else {})})
        for w in list(catalog.work())
    ])


def test_wal_and_schema_version(tmp_path):
    with Catalog(tmp_path / "c.db") as c:
        assert c.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_a_batch_of_results_is_one_transaction(tmp_path):
    """Rows of one `record_rows` commit together: another connection sees none of them before the
    batch ends, and a batch that fails midway leaves none stored."""
    import sqlite3

    with Catalog(tmp_path / "c.db") as c:
        c.record_listing([ref("a", 10), ref("b", 20)], "s3://b", 1)
        other = sqlite3.connect(tmp_path / "c.db")

        def rows():
            yield "s3://b/a", {"status": "fingerprinted"}
            assert other.execute("SELECT COUNT(*) FROM objects WHERE status='fingerprinted'").fetchone()[0] == 0
            yield "s3://b/b", {"status": "fingerprinted"}
            raise RuntimeError("the read session broke")

        with pytest.raises(RuntimeError):
            record_fingerprints(c, rows())
        assert c.counts() == {"listed": 2}
        assert not c.db.in_transaction
        with c.db:
            with c.db:  # a `with` inside an open transaction joins it
                c.set_meta("k", "v")
            assert c.db.in_transaction
        assert other.execute("SELECT value FROM meta WHERE key='k'").fetchone() == ("v",)


def test_other_schema_version_is_refused(tmp_path):
    with Catalog(tmp_path / "c.db") as c:
        c.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(UsageError, match="schema version 99"):
        Catalog(tmp_path / "c.db")


def test_not_a_catalog_is_a_usage_error(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError):
        Catalog(tmp_path / "junk.db")


def test_sha256_only_where_sizes_collide(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 10), ref("c", 20)], "s3://b", scan)
    assert work(catalog) == {"a": (True, True), "b": (True, True), "c": (False, True)}


def test_trusted_md5_on_every_colliding_object_needs_no_sha256(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10, md5="m1"), ref("b", 10, md5="m1")], "s3://b", scan)
    assert work(catalog) == {"a": (False, True), "b": (False, True)}


def test_multipart_etags_settle_a_size_class_only_among_themselves(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10, multipart="e-2"), ref("b", 10, multipart="e-2"),
                            ref("c", 20, multipart="f-2"), ref("d", 20, md5="m"),
                            ref("e", 30, multipart="g-2"), ref("f", 30, multipart="h-3")], "s3://b", scan)
    # Equal multipart ETags need no SHA-256; beside an MD5, or another part layout's ETag, they say
    # nothing: read.
    assert work(catalog) == {"a": (False, True), "b": (False, True), "c": (True, True), "d": (True, True),
                             "e": (True, True), "f": (True, True)}
    assert {r.key: r.content_id for r in catalog.records()} == {
        "a": "e-2", "b": "e-2", "c": "f-2", "d": "m", "e": "g-2", "f": "h-3"}


def test_unreadable_objects_are_never_work(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("z", 10, readable=False, md5="m")], "s3://b", scan)
    assert work(catalog) == {"a": (True, True)}
    assert catalog.counts()["unreadable"] == 1


def test_rescan_of_unchanged_objects_reads_nothing(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 10), ref("c", 20)], "s3://b", scan)
    fingerprint_all(catalog)
    scan2 = catalog.begin_scan(["s3://b"], T1)
    changed, unchanged = catalog.record_listing([ref("a", 10), ref("b", 10), ref("c", 20)], "s3://b", scan2)
    assert (changed, unchanged) == (0, 3)
    assert work(catalog) == {}


def test_changed_object_is_read_again_and_loses_its_old_fingerprint(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10, etag="e1")], "s3://b", scan)
    record_fingerprints(catalog, [("s3://b/a", {"status": "fingerprinted", "phash": "ff"})])
    scan2 = catalog.begin_scan(["s3://b"], T1)
    catalog.record_listing([ref("a", 10, etag="e2")], "s3://b", scan2)
    assert work(catalog) == {"a": (False, True)}
    assert next(catalog.records()).phash is None


def test_new_same_size_object_pulls_in_the_old_one_for_sha256_only(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10)], "s3://b", scan)
    fingerprint_all(catalog)
    scan2 = catalog.begin_scan(["s3://b"], T1)
    catalog.record_listing([ref("a", 10), ref("new", 10)], "s3://b", scan2)
    assert work(catalog) == {"a": (True, False), "new": (True, True)}


def test_vanished_objects_are_marked_gone_per_target(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 11)], "s3://b", scan)
    scan2 = catalog.begin_scan(["s3://b"], T1)
    catalog.record_listing([ref("a", 10)], "s3://b", scan2)
    assert catalog.mark_gone("s3://other", scan2) == 0
    assert catalog.mark_gone("s3://b", scan2) == 1
    assert [r.key for r in catalog.records()] == ["a"]
    assert {r.key: r.status for r in catalog.records(include_gone=True)}["b"] == "gone"


def test_failed_reads_are_retried_on_the_next_scan(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10)], "s3://b", scan)
    record_fingerprints(catalog, [("s3://b/a", {"status": "failed", "reason": "transient: 503"})])
    scan2 = catalog.begin_scan(["s3://b"], T1)
    catalog.record_listing([ref("a", 10)], "s3://b", scan2)
    assert work(catalog) == {"a": (False, True)}


def test_zero_byte_objects_are_skipped_without_a_read(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("e", 0), ref("f", 0)], "s3://b", scan)
    assert catalog.skip_empty() == 2
    assert work(catalog) == {}
    assert {r.reason for r in catalog.records()} == {"zero-byte object"}


def test_records_carry_exif_and_personal_data(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10, md5="abc")], "s3://b", scan)
    exif = ExifRecord(gps=GPS(lat=22.3, lon=114.2), serials=["S1"], datetime_original="2024:01:01 00:00:00")
    record_fingerprints(catalog, [("s3://b/a", {"status": "fingerprinted", "exif": exif, "format": "JPEG"})])
    record = next(catalog.records())
    assert record.exif == exif
    assert record.personal_data == ["gps", "serial", "timestamp"]
    assert record.md5 == "abc"


def test_catalog_without_signature_column_gets_it_and_old_images_are_read_once_more(tmp_path):
    import sqlite3

    from tierscan.scanner.fingerprint.signatures import MAGIC

    path = tmp_path / "old.db"
    with Catalog(path) as c:
        c.record_listing([ref("a.jpg", 10), ref("b.jpg", 20)], "s3://b", 1)
        record_fingerprints(c, [("s3://b/a.jpg", {"status": "fingerprinted", "phash": "0" * 16}),
                               ("s3://b/b.jpg", {"status": "fingerprinted"})])
    db = sqlite3.connect(path)  # as a catalog written before signatures existed
    db.execute("ALTER TABLE objects DROP COLUMN near_sig")
    db.commit()
    db.close()
    with Catalog(path) as c:
        assert c.signatures() == {}
        # Only the image with a perceptual hash lacks a signature: it is read again, for its metadata.
        assert work(c) == {"a.jpg": (False, True)}
        record_fingerprints(c, [("s3://b/a.jpg", {"near_sig": b"sig"})])  # a signature of an older layout
        assert work(c) == {"a.jpg": (False, True)}
        assert list(c.work(signatures=False)) == []  # a scan that makes no signatures reads nothing for them
        record_fingerprints(c, [("s3://b/a.jpg", {"near_sig": MAGIC + b"sig"})])
        assert c.signatures() == {"s3://b/a.jpg": MAGIC + b"sig"} and work(c) == {}
        record_fingerprints(c, [("s3://b/a.jpg", {"near_sig": b"TS\x02sig"})])  # layout 2: still read as it is
        assert work(c) == {}
        record_fingerprints(c, [("s3://b/a.jpg", {"near_sig": b"TS\x01sig"})])  # no layout this version reads
        assert work(c) == {"a.jpg": (False, True)}


def test_hashes_of_another_perceptual_mode_are_made_again(tmp_path):
    from tierscan.scanner.fingerprint.signatures import MAGIC

    path = tmp_path / "c.db"
    with Catalog(path) as c:
        assert c.keep_perceptual_mode("old") == 0  # a new catalog: nothing to forget
        c.record_listing([ref("a.jpg", 10), ref("b.bin", 20)], "s3://b", 1)
        record_fingerprints(c, [("s3://b/a.jpg", {"status": "fingerprinted", "phash": "0" * 16,
                                                 "near_sig": MAGIC + b"sig"}),
                               ("s3://b/b.bin", {"status": "fingerprinted"})])
        assert work(c) == {} and c.keep_perceptual_mode("old") == 0
    with Catalog(path) as c:  # a newer tierscan hashes another way
        assert c.keep_perceptual_mode("new") == 1
        assert work(c) == {"a.jpg": (False, True)}  # read again for its hashes; not a non-image
        assert c.meta("perceptual_mode") == "new" and c.keep_perceptual_mode("new") == 0


def test_not_duplicates_are_kept_as_pairs_across_rescans(catalog):
    assert catalog.add_not_duplicates(["s3://b/c", "s3://b/a", "s3://b/b"]) == 3
    assert catalog.add_not_duplicates(["s3://b/b", "s3://b/a"]) == 0
    catalog.record_listing([ref("a", 1)], "s3://b", 2)
    assert catalog.not_duplicates() == [("s3://b/a", "s3://b/b"), ("s3://b/a", "s3://b/c"), ("s3://b/b", "s3://b/c")]


def local(key: str, size: int = 10, skipped: str | None = None) -> ObjectRef:
    return ObjectRef(uri=f"file:///r/b/{key}", provider="local", bucket="b", key=key, size=size,
                     tier=Tier.hot, storage_class="hot", region="local", jurisdiction="local", modified=T0,
                     skipped=skipped)


def test_objects_the_listing_skips_are_recorded_with_their_reason_and_never_read(catalog):
    fifo = "a FIFO (named pipe), not a regular file: not read"
    scan = catalog.begin_scan(["/r"], T0)
    assert catalog.record_listing([local("p.jpg", 0, skipped=fifo), local("x.jpg")], "/r", scan) == (2, 0)
    catalog.skip_empty()
    assert work(catalog) == {"x.jpg": (False, True)}
    assert {r.key: (r.status, r.reason) for r in catalog.records()}["p.jpg"] == ("skipped", fifo)
    # Listed as before: unchanged. Skipped once read, or become a regular file: changed.
    scan2 = catalog.begin_scan(["/r"], T1)
    assert catalog.record_listing([local("p.jpg", 0, skipped=fifo)], "/r", scan2) == (0, 1)
    record_fingerprints(catalog, [("file:///r/b/x.jpg", {"status": "fingerprinted", "phash": "00"})])
    out = "symlink points outside the scanned folder: not followed"
    assert catalog.record_listing([local("x.jpg", 0, skipped=out), local("p.jpg", 0)], "/r", scan2) == (2, 0)
    statuses = {r.key: (r.status, r.reason, r.phash) for r in catalog.records()}
    assert statuses == {"x.jpg": ("skipped", out, None), "p.jpg": ("listed", None, None)}


def test_what_is_under_a_folder_that_could_not_be_listed_is_kept_not_gone(catalog):
    scan = catalog.begin_scan(["/r"], T0)
    catalog.record_listing([local("a/1.jpg"), local("a/d/2.jpg"), local("a2/3.jpg"), local("a-b/4.jpg"),
                            local("z.jpg")], "/r", scan)
    fingerprint_all(catalog)
    scan2 = catalog.begin_scan(["/r"], T1)
    catalog.record_listing([local("a/", 0, skipped="folder cannot be listed: Permission denied (EACCES)")],
                           "/r", scan2)
    assert catalog.mark_gone("/r", scan2) == 3  # a2/, a-b/ and z.jpg: listed, and not there
    statuses = {r.key: r.status for r in catalog.records(include_gone=True)}
    assert statuses == {"a/": "skipped", "a/1.jpg": "fingerprinted", "a/d/2.jpg": "fingerprinted",
                        "a2/3.jpg": "gone", "a-b/4.jpg": "gone", "z.jpg": "gone"}


def _statements(catalog, run):
    """The SQL statements `run()` sends to the catalog."""
    sent: list[str] = []
    catalog.db.set_trace_callback(sent.append)
    try:
        result = run()
    finally:
        catalog.db.set_trace_callback(None)
    return result, sent


def test_listing_statements_do_not_grow_per_object(catalog):
    # A rescan of an unchanged estate compares and writes a batch at a time: the statements it sends grow
    # with the number of batches, not of objects.
    many = [ref(f"k{i:05d}", 10 + i % 7) for i in range(3 * _LISTING_BATCH)]
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing(many, "s3://b", scan)
    fingerprint_all(catalog)
    scan2 = catalog.begin_scan(["s3://b"], T1)
    (_, unchanged), sent = _statements(catalog, lambda: catalog.record_listing(many, "s3://b", scan2))
    assert unchanged == len(many)
    assert len(sent) < len(many) / 10
    assert catalog.mark_gone("s3://b", scan2) == 0


def test_listing_across_batch_boundaries_keeps_unchanged_and_rereads_changed(catalog):
    n = 2 * _LISTING_BATCH + 7
    scan = catalog.begin_scan(["s3://b"], T0)
    assert catalog.record_listing((ref(f"k{i:05d}", 10) for i in range(n)), "s3://b", scan) == (n, 0)
    fingerprint_all(catalog, sha="s")
    # Changed: one in the middle of the first batch, the last of a batch, the first of the next; one gone.
    edited = {_LISTING_BATCH // 2, _LISTING_BATCH - 1, _LISTING_BATCH}
    gone = n - 1
    scan2 = catalog.begin_scan(["s3://b"], T1)
    again = [ref(f"k{i:05d}", 10, etag="new" if i in edited else None) for i in range(n) if i != gone]
    assert catalog.record_listing(iter(again), "s3://b", scan2) == (len(edited), n - 1 - len(edited))
    assert catalog.mark_gone("s3://b", scan2) == 1
    statuses = {r.key: r.status for r in catalog.records(include_gone=True)}
    assert {k for k, s in statuses.items() if s == "listed"} == {f"k{i:05d}" for i in edited}
    assert statuses[f"k{gone:05d}"] == "gone"
    assert sum(s == "fingerprinted" for s in statuses.values()) == n - 1 - len(edited)
    assert {w.ref.key for w in catalog.work() if w.want_metadata} == {f"k{i:05d}" for i in edited}


def test_a_second_plan_writes_only_what_changed_and_marks_the_deleted_gone(catalog):
    # `plan` reads nothing: listed again, its objects still wait for a read (counted as new or changed).
    # Those the listing gives as before keep their rows, with only last_seen moved, a batch at a time; a
    # changed one among them is written afresh, and one no longer listed is gone.
    n = 3 * _LISTING_BATCH
    many = [ref(f"k{i:05d}", 10 + i % 7) for i in range(n)]
    scan = catalog.begin_scan(["s3://b"], T0)
    assert catalog.record_listing(many, "s3://b", scan) == (n, 0)
    changed, deleted = _LISTING_BATCH + 3, n - 2
    again = [ref(f"k{i:05d}", 99) if i == changed else r for i, r in enumerate(many) if i != deleted]
    scan2 = catalog.begin_scan(["s3://b"], T1)
    counts, sent = _statements(catalog, lambda: catalog.record_listing(again, "s3://b", scan2))
    assert counts == (n - 1, 0)
    assert len(sent) < n / 10
    assert catalog.mark_gone("s3://b", scan2) == 1
    records = {r.key: (r.size, r.status) for r in catalog.records(include_gone=True)}
    assert records[f"k{changed:05d}"] == (99, "listed")
    assert records[f"k{deleted:05d}"][1] == "gone"
    assert sum(status == "listed" for _, status in records.values()) == n - 1
    assert {w.ref.key for w in catalog.work() if w.want_metadata} == {r.key for r in again}


def test_an_object_listed_again_unread_but_holding_old_results_is_written_afresh(catalog):
    # Fingerprinted by another perceptual mode, then back to `listed`: listed again before it is read, the
    # row is replaced as a new listing's would be, old results cleared.
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 12)], "s3://b", scan)
    record_fingerprints(catalog, [("s3://b/a", {"status": "fingerprinted", "phash": "ff", "sha256": "s"})])
    catalog.set_meta("perceptual_mode", "old")
    assert catalog.keep_perceptual_mode("new") == 1
    scan2 = catalog.begin_scan(["s3://b"], T1)
    assert catalog.record_listing([ref("a", 10), ref("b", 12)], "s3://b", scan2) == (2, 0)
    assert catalog.mark_gone("s3://b", scan2) == 0
    records = {r.key: (r.status, r.phash, r.sha256) for r in catalog.records()}
    assert records == {"a": ("listed", None, None), "b": ("listed", None, None)}


def test_unchanged_object_whose_tier_moved_keeps_its_fingerprint_and_takes_the_new_tier(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 12)], "s3://b", scan)
    record_fingerprints(catalog, [("s3://b/a", {"status": "fingerprinted", "phash": "ff"}),
                                 ("s3://b/b", {"status": "fingerprinted", "phash": "ee"})])
    scan2 = catalog.begin_scan(["s3://b"], T1)
    cold = dataclasses.replace(ref("a", 10), tier=Tier.cold, storage_class="GLACIER_IR", region="cn-north-1")
    assert catalog.record_listing([cold, ref("b", 12)], "s3://b", scan2) == (0, 2)
    assert catalog.mark_gone("s3://b", scan2) == 0
    records = {r.key: (r.tier, r.storage_class, r.region, r.phash) for r in catalog.records()}
    assert records == {"a": (Tier.cold, "GLACIER_IR", "cn-north-1", "ff"),
                       "b": (Tier.hot, "STANDARD", "ap-east-1", "ee")}


def test_an_object_listed_twice_in_one_listing_is_compared_with_its_first_listing(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    assert catalog.record_listing([ref("a", 10), ref("a", 11)], "s3://b", scan) == (2, 0)
    [record] = catalog.records()
    assert (record.size, record.status) == (11, "listed")


class _CountingConnection:
    """The catalog's connection, counting the statements sent through `execute` and `executemany` (one
    each, however many rows an `executemany` carries)."""

    def __init__(self, db):
        self.db, self.sent = db, 0

    def execute(self, *args):
        self.sent += 1
        return self.db.execute(*args)

    def executemany(self, *args):
        self.sent += 1
        return self.db.executemany(*args)

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_fingerprints_are_written_a_batch_at_a_time_in_order(catalog):
    n = 1000
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref(f"k{i:04d}", 10) for i in range(n)], "s3://b", scan)
    exif = ExifRecord(make="Canon", gps=GPS(lat=22.3, lon=114.2))
    rows = [(f"s3://b/k{i:04d}", {"status": "fingerprinted", "sha256": f"s{i}", "exif": exif}) for i in range(n)]
    rows.append(("s3://b/k0003", {"status": "failed", "reason": "vanished"}))  # a later row for the same object wins
    counting = catalog.db = _CountingConnection(catalog.db)
    record_fingerprints(catalog, iter(rows))
    catalog.db = counting.db
    assert counting.sent < 10
    records = {r.key: r for r in catalog.records()}
    assert (records["k0003"].status, records["k0003"].reason, records["k0003"].sha256) == ("failed", "vanished", "s3")
    assert all(records[f"k{i:04d}"].status == "fingerprinted" and records[f"k{i:04d}"].sha256 == f"s{i}"
               and records[f"k{i:04d}"].exif == exif for i in range(n) if i != 3)


def test_the_statuses_the_catalog_stores_are_object_statuses_that_compare_and_hash_as_their_text(catalog):
    scan = catalog.begin_scan(["s3://b"], T0)
    catalog.record_listing([ref("a", 10), ref("b", 20), ref("e", 0), ref("x", 30, readable=False), ref("g", 40)],
                           "s3://b", scan)
    catalog.skip_empty()
    record_fingerprints(catalog, [("s3://b/a", {"status": ObjectStatus.fingerprinted.value}),
                                 ("s3://b/b", {"status": ObjectStatus.failed.value, "reason": "denied"})])
    stored = {row[0] for row in catalog.db.execute("SELECT status FROM objects")}
    scan2 = catalog.begin_scan(["s3://b"], T1)
    catalog.record_listing([ref("a", 10), ref("b", 20), ref("e", 0), ref("x", 30, readable=False)], "s3://b", scan2)
    assert catalog.mark_gone("s3://b", scan2) == 1
    stored |= {row[0] for row in catalog.db.execute("SELECT status FROM objects")}
    assert stored == {s.value for s in ObjectStatus}
    assert set(_STATUS_RANK) == set(ObjectStatus)  # the merge ranks every status
    for status in ObjectStatus:
        assert status == status.value and status.value in {status} and {status: 1}[status.value] == 1


def test_work_comes_in_runs_of_whole_size_classes(catalog):
    """Each run holds whole size classes (a class bigger than the run is a run of its own), smallest first;
    together the runs are `work`, each object once, and a run's results written before the next is taken
    change nothing of the next."""
    counts = {10: 1, 20: 5, 30: 2, 40: 1, 50: 3}
    refs = [ref(f"{size}-{n}", size) for size, count in counts.items() for n in range(count)]
    catalog.record_listing(refs, "s3://b", 1)
    whole = work(catalog)
    runs = []
    for items in catalog.work_runs(run=3):
        runs.append([w.ref.key for w in items])
        record_fingerprints(catalog, [(w.ref.uri, {"status": "fingerprinted", "sha256": w.ref.key}) for w in items])
    assert [sorted({int(k.split("-")[0]) for k in keys}) for keys in runs] == [[10, 20], [30, 40], [50]]
    assert sorted(k for keys in runs for k in keys) == sorted(whole) == sorted(r.key for r in refs)
    assert work(catalog) == {}

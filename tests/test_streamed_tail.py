"""Grouping, policies and the report stream from the catalog: the same groups, findings and report bytes as
the in-memory route over every record, without a record per object held at once."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tierscan.scanner.group.cluster as cluster
import tierscan.scanner.scan.pipeline as pipeline
from tierscan.policies import evaluate, load_policies
from tierscan.policies.costs import Pricing
from tierscan.scanner.core.config import Config, NearSettings
from tierscan.scanner.core.models import Group, Report, Skipped
from tierscan.scanner.group.cluster import NearImage, exact_groups, near_groups
from tierscan.scanner.pricing.table import PriceTable, price_as_from_config
from tierscan.scanner.report.build import ReportStream, build_report, catalog_report, render_json, write_json
from tierscan.scanner.report.outputs import report_stream
from tierscan.scanner.scan.catalog import Catalog

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_COLUMNS = ("uri", "target", "provider", "bucket", "key", "size", "etag", "checksums", "tier", "storage_class",
            "readable", "region", "jurisdiction", "modified", "identity", "last_seen", "status", "reason", "sha256",
            "phash", "dhash", "format", "width", "height", "exif")
_GPS = json.dumps({"gps": {"lat": 22.28, "lon": 114.16}, "serials": ["SN1"],
                   "datetime_original": "2025:01:01 10:00:00"})
_OTHER_SHOT = json.dumps({"serials": ["SN2"], "datetime_original": "2025:01:01 10:00:05"})


def _row(bucket: str, key: str, size: int, *, sha: str | None = None, md5: str | None = None,
         tier: str = "hot", region: str = "ap-east-1", age: int = 10, status: str = "fingerprinted",
         reason: str | None = None, phash: str | None = None, dhash: str | None = None,
         exif: str | None = None) -> tuple[Any, ...]:
    classes = {"hot": "STANDARD", "cool": "STANDARD_IA", "cold": "GLACIER_IR", "archive": "DEEP_ARCHIVE"}
    modified = (NOW - timedelta(days=age)).isoformat()
    return (f"s3://{bucket}/{key}", f"s3://{bucket}", "s3", bucket, key, size, None,
            json.dumps({"md5": md5} if md5 else {}), tier, classes[tier], int(tier != "archive"), region,
            "CN" if region.startswith("cn-") else "HK", modified, f"{size}|{modified}||", 1, status, reason, sha,
            phash, dhash, "jpeg" if status == "fingerprinted" else None, 640, 480, exif)


def _estate() -> list[tuple[Any, ...]]:
    """Exact copies by SHA-256, by MD5 alone (an archive copy never read), two SHA-256s one MD5 joins,
    near variants (one of them a redundant exact copy, one another shot), personal data, skipped, failed,
    unreadable and gone objects."""
    return [
        _row("hot", "a.jpg", 1000, sha="a" * 64, md5="m1", exif=_GPS),
        _row("cold", "a.jpg", 1000, sha="a" * 64, tier="cold", region="cn-north-1", age=400),
        _row("archive", "a.jpg", 1000, md5="m1", tier="archive", status="unreadable",
             reason="unreadable tier (DEEP_ARCHIVE): matched on metadata only"),
        _row("hot", "b.jpg", 2000, sha="b" * 64, md5="m2"),
        _row("cool", "b.jpg", 2000, sha="c" * 64, md5="m2", tier="cool"),
        _row("cool", "b2.jpg", 2000, sha="c" * 64, tier="cool", age=2),
        _row("hot", "n1.jpg", 3000, sha="d" * 64, phash="f0f0f0f0f0f0f0f0", dhash="0f0f0f0f0f0f0f0f"),
        _row("cool", "n2.jpg", 3100, sha="e" * 64, phash="f0f0f0f0f0f0f0f1", dhash="0f0f0f0f0f0f0f0e",
             tier="cool"),
        _row("cold", "n2.jpg", 3100, sha="e" * 64, phash="f0f0f0f0f0f0f0f1", dhash="0f0f0f0f0f0f0f0e",
             tier="cold", region="cn-north-1"),
        _row("hot", "n3.jpg", 3200, sha="f" * 64, phash="f0f0f0f0f0f0f0f3", dhash="0f0f0f0f0f0f0f0f",
             exif=_GPS),
        _row("hot", "n4.jpg", 3300, sha="9" * 64, phash="f0f0f0f0f0f0f0f7", dhash="0f0f0f0f0f0f0f0f",
             exif=_OTHER_SHOT),
        _row("hot", "broken.jpg", 50, status="skipped", reason="not an image"),
        _row("cool", "gone.jpg", 1000, sha="a" * 64, tier="cool", status="gone", reason="no longer listed"),
        _row("cool", "timeout.jpg", 70, status="failed", reason="read timed out"),
        _row("cool", "=formula.jpg", 60, status="skipped", reason="not an image"),
    ]


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "c.db") as cat:
        cat.db.executemany(f"INSERT INTO objects ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                           _estate())
        cat.add_not_duplicates(["s3://hot/n3.jpg", "s3://cold/n2.jpg"])  # the copy stands for its master
        yield cat


def _in_memory(config: Config, catalog: Catalog) -> tuple[list[Group], list[Any]]:
    """Grouping and policies as one pass over every record in memory."""
    records = list(catalog.records())
    exact = exact_groups(records, config.master)
    near = near_groups(records, exact, config.near, config.master, not_duplicates=catalog.not_duplicates(),
                       workers=1)
    policy_records = {r.uri: pipeline._policy_record(r, pipeline.JurisdictionMap.builtin(config.jurisdictions))
                      for r in records}
    groups = [pipeline._group_record(g, policy_records) for g in exact + near]
    pricing = Pricing(PriceTable.load(config.prices), price_as_from_config(config))
    findings = evaluate(load_policies(packs=config.policies.packs, files=config.policies.files),
                        objects=policy_records.values(), groups=groups, now=NOW, pricing=pricing)
    return sorted(exact + near, key=lambda g: g.id), findings


def test_evaluation_stores_what_the_in_memory_route_gives(catalog: Catalog) -> None:
    config = Config(near=NearSettings(phash_max_distance=4, dhash_max_distance=4))
    evaluation = pipeline.evaluate_results(config, catalog, NOW)
    groups, findings = _in_memory(config, catalog)
    assert {g.kind for g in groups} == {"exact", "near"} and findings
    assert catalog.groups() == groups
    assert catalog.findings() == findings
    assert (evaluation.exact_groups, evaluation.near_groups, evaluation.findings) == (
        sum(g.kind == "exact" for g in groups), sum(g.kind == "near" for g in groups), len(findings))
    # Both SHA-256s that one MD5 joins are one group, with the archive copy matched by its MD5 alone.
    assert {m.uri for m in catalog.group(next(g.id for g in groups if "s3://cool/b2.jpg" in
                                              {m.uri for m in g.members})).members} == {
        "s3://hot/b.jpg", "s3://cool/b.jpg", "s3://cool/b2.jpg"}


def test_near_grouping_reads_light_images_of_non_copies_only(catalog: Catalog, monkeypatch) -> None:
    """Near grouping gets a `NearImage` (not a whole record) of each image with perceptual hashes, and none
    of a redundant exact copy."""
    seen: list[list[Any]] = []
    real = cluster.start_near_groups

    def recording(records, *args, **kwargs):
        records = list(records)
        seen.append(records)
        return real(records, *args, **kwargs)

    monkeypatch.setattr(cluster, "start_near_groups", recording)
    pipeline.evaluate_results(Config(), catalog, NOW)
    [images] = seen
    assert all(isinstance(i, NearImage) for i in images)
    copies = {m.uri for g in catalog.groups() if g.kind == "exact" for m in g.members if m.uri != g.master}
    assert "s3://cold/n2.jpg" in copies or "s3://cool/n2.jpg" in copies
    assert {i.uri for i in images} == {"s3://hot/n1.jpg", "s3://cool/n2.jpg", "s3://cold/n2.jpg",
                                       "s3://hot/n3.jpg", "s3://hot/n4.jpg"} - copies


def _whole_report(config: Config, catalog: Catalog, now: datetime) -> Report:
    records = list(catalog.records())
    skipped = [Skipped(uri=r.uri, reason=r.reason or r.status) for r in records
               if r.status in ("skipped", "failed", "unreadable")]
    return build_report(records, catalog.groups(), catalog.findings(), skipped, catalog.last_scan(),
                        PriceTable.load(config.prices), None, now)


def test_streamed_report_is_the_in_memory_report_byte_for_byte(catalog: Catalog) -> None:
    config = Config(near=NearSettings(phash_max_distance=4, dhash_max_distance=4))
    pipeline.evaluate_results(config, catalog, NOW)
    whole = _whole_report(config, catalog, NOW)
    assert whole.groups and whole.findings and whole.skipped
    streamed = catalog_report(catalog, PriceTable.load(config.prices), None, NOW)
    assert render_json(streamed) == whole.model_dump_json(indent=2) == render_json(whole)
    assert streamed.whole() == whole
    assert streamed.skip_reasons.most_common() == ReportStream.of(whole).skip_reasons.most_common()
    assert streamed.findings_by == ReportStream.of(whole).findings_by
    empty = whole.model_copy(update={"groups": [], "findings": [], "skipped": []})
    assert render_json(empty) == empty.model_dump_json(indent=2)


def test_the_json_report_is_written_item_by_item(catalog: Catalog) -> None:
    """Each group is on its way out before the next is read."""
    pipeline.evaluate_results(Config(), catalog, NOW)
    streamed = catalog_report(catalog, PriceTable.builtin(), None, NOW)
    out = io.StringIO()
    pulled: list[str] = []

    def groups():
        for group in catalog.each_group():
            if pulled:
                assert f'"id": "{pulled[-1]}"' in out.getvalue()
            pulled.append(group.id)
            yield group

    write_json(ReportStream(streamed.head, groups, streamed.findings, streamed.skipped, streamed.findings_by,
                            streamed.skip_reasons), out)
    assert len(pulled) > 1
    assert Report.model_validate_json(out.getvalue()).groups == catalog.groups()


def test_the_catalogs_report_never_lists_every_record(catalog: Catalog, monkeypatch) -> None:
    """The report of a catalog reads the objects once, as a stream of (record, redundant) pairs, and
    never through `Catalog.records` (which the in-memory route turned into a list)."""
    pipeline.evaluate_results(Config(), catalog, NOW)

    def forbidden(self, *args, **kwargs):
        raise AssertionError("the report listed every record")

    calls: list[int] = []
    real = Catalog.tally_records

    def counted(self, alike=True):
        calls.append(1)
        return real(self, alike)

    monkeypatch.setattr(Catalog, "records", forbidden)
    monkeypatch.setattr(Catalog, "tally_records", counted)
    text = render_json(report_stream(Config(), catalog))
    assert calls == [1]
    assert Report.model_validate_json(text).groups == catalog.groups()


def test_merge_copies_rows_in_sqlite_and_keeps_each_uris_best(tmp_path: Path) -> None:
    """Twelve parts (more than SQLite attaches at once), each shard's own rows only: the merged catalog
    holds each URI's best row (newest modified time, then the more complete status), the disagreements
    are listed, and no object row is inserted one by one from Python."""
    from tierscan.scanner.core.shard import Shard
    from tierscan.scanner.scan.merge import merge_catalogs

    parts = []
    for i in range(12):
        path = tmp_path / f"part-{i}.db"
        with Catalog(path) as part:
            rows = [_row("hot", f"k{k}.jpg", 100 + k, sha=f"{k:064x}", age=30) for k in range(40)]
            rows.append(_row("hot", "shared.jpg", 500, sha="1" * 64, age=30 - i))  # newer in later parts
            rows.append(_row("hot", "tie.jpg", 600, status="listed" if i else "fingerprinted", sha="2" * 64))
            part.db.executemany(f"INSERT INTO objects ({', '.join(_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(_COLUMNS))})", rows)
            part.set_meta("shard", "" if i == 0 else f"{i}/12")
        parts.append(path)
    statements: list[str] = []
    with Catalog(tmp_path / "all.db") as into:
        into.db.set_trace_callback(statements.append)
        result = merge_catalogs(parts, into, Config(), now=NOW)
        into.db.set_trace_callback(None)
        merged = {r.uri: r for r in into.records()}
    shards = [Shard(i, 12) for i in range(12)]
    owners = {uri: [0] + [i for i in range(1, 12) if shards[i].owns(uri)] for uri in merged}
    assert len(merged) == result.objects == 42
    # shared.jpg: the newest part that owns it wins; every older owner with another identity is listed.
    newest = max(owners["s3://hot/shared.jpg"])
    assert merged["s3://hot/shared.jpg"].modified == NOW - timedelta(days=30 - newest)
    shared = [c for c in result.conflicts if c.startswith("s3://hot/shared.jpg")]
    assert len(shared) == 1 and f"kept {parts[newest]}" in shared[0]
    assert shared[0].count("; ") == len(owners["s3://hot/shared.jpg"]) - 1
    # tie.jpg: the same identity everywhere, so no conflict, and the fingerprinted row of part 0 wins.
    assert merged["s3://hot/tie.jpg"].status == "fingerprinted"
    assert not any(c.startswith("s3://hot/tie.jpg") for c in result.conflicts)
    # Where rows go is named before SELECT or VALUES (a meta value may mention objects: stored settings).
    inserts = [s for s in statements
               if "INSERT" in s.upper() and "OBJECTS" in s.upper().split("SELECT")[0].split("VALUES")[0]]
    assert inserts and all("SELECT" in s.upper() for s in inserts)


def test_the_exact_members_table_follows_every_change_of_the_exact_groups(catalog: Catalog) -> None:
    """`temp.exact_member` is made once for the evaluation and the report, and anew after any change of
    the exact groups: written by an evaluation, replaced, or rolled back."""
    pipeline.evaluate_results(Config(), catalog, NOW)
    exact = [g for g in catalog.groups() if g.kind == "exact"]
    copies = {g.master: sorted(m.uri for m in g.members if m.uri != g.master) for g in exact}
    assert len(exact) >= 2 and catalog.copies_of(copies) == copies
    catalog.replace_results(exact[:1], [])
    assert catalog.copies_of(copies) == {exact[0].master: copies[exact[0].master]}
    other = exact[1].model_copy(update={"id": "e-other"})
    with pytest.raises(RuntimeError), catalog.writing_results() as out:
        out.group(other)
        out.flush()
        assert catalog.copies_of(copies) == {other.master: copies[other.master]}  # the writing one sees it
        raise RuntimeError("stop before committing")
    assert catalog.copies_of(copies) == {exact[0].master: copies[exact[0].master]}


def test_near_rows_carry_the_orientation_the_hashes_were_made_upright_by(catalog: Catalog) -> None:
    """The tag that turned an image before hashing reaches near grouping (which also looks for the picture as
    its pixels are stored); an image without one has none."""
    catalog.db.execute("UPDATE objects SET exif=? WHERE uri='s3://hot/n1.jpg'", (json.dumps({"orientation": 6}),))
    catalog.exact_members()
    orientations = {i.uri: i.orientation for i in (NearImage.of_row(row) for row in catalog.near_rows())}
    assert orientations["s3://hot/n1.jpg"] == 6
    assert orientations["s3://hot/n4.jpg"] is None


def test_exact_candidates_without_checksums_are_those_the_token_labelling_gives(tmp_path: Path) -> None:
    """Where no live object has a checksum, SHA-256s alone join copies and one query gives the candidates:
    the same rows, in the same order, as the token labelling gives once an unrelated object with a checksum
    makes the catalog take that path."""
    rows = [row for row in _estate() if row[7] == "{}"]
    rows += [_row("hot", f"sha-{i}.jpg", 500 + i % 3, sha=f"{i % 4}" * 64) for i in range(12)]
    with Catalog(tmp_path / "c.db") as catalog:
        insert = f"INSERT INTO objects ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        catalog.db.executemany(insert, rows)
        plain = list(catalog.exact_candidates())
        catalog.db.execute(insert, _row("cool", "lonely.jpg", 77, sha="7" * 64, md5="unshared"))
        labelled = list(catalog.exact_candidates())
    assert len({r[0] for r in plain}) >= 4 and plain == labelled


def test_records_of_reads_in_batches_and_gives_the_asked_order(tmp_path: Path) -> None:
    """`Catalog.records_of`: URIs asked for twice come once, unknown ones not at all, gone ones too, in the
    order asked, past one query's batch of URIs."""
    rows = [_row("b", f"{i:04}.jpg", 100 + i, sha=f"{i:064x}") for i in range(1200)]
    rows.append(_row("b", "gone.jpg", 5, status="gone"))
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.db.executemany(f"INSERT INTO objects ({', '.join(_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(_COLUMNS))})", rows)
        asked = [f"s3://b/{i:04}.jpg" for i in range(1199, -1, -3)]
        found = catalog.records_of([*asked, "s3://b/nowhere.jpg", asked[0], "s3://b/gone.jpg"], placed=False)
    assert list(found) == [*asked, "s3://b/gone.jpg"]
    assert all(found[uri].size == 100 + int(uri[-8:-4]) for uri in asked)

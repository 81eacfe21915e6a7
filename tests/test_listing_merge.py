"""Listings merged with the catalog in URI order (`Catalog.listing(..., ordered=True)`): new, changed,
unchanged and gone objects found by one walk over the target's stored rows, unchanged rows not written;
and a rescan that changed nothing keeps the stored groups and findings, while a changed config evaluates
them afresh."""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from catalog_results import record_fingerprints
from click.testing import CliRunner

from tierscan.policies import load_policies
from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import load_config
from tierscan.scanner.core.models import ObjectRef, Tier
from tierscan.scanner.scan import pipeline
from tierscan.scanner.scan.catalog import Catalog, MergedListing

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def ref(key: str, size: int = 10, etag: str | None = None, bucket: str = "b", skipped: str | None = None,
        tier: Tier = Tier.hot) -> ObjectRef:
    return ObjectRef(uri=f"s3://{bucket}/{key}", provider="s3", bucket=bucket, key=key, size=size, etag=etag,
                     tier=tier, storage_class="STANDARD", region="ap-east-1", jurisdiction="HK", modified=T0,
                     skipped=skipped)


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "c.db") as c:
        yield c


def listed(catalog: Catalog, refs: list[ObjectRef], target: str = "s3://b", ordered: bool = True,
           batch: int = 4) -> tuple[int, int, int, int]:
    """List `refs` as one scan of `target` in batches: (scan id, changed, unchanged, gone)."""
    scan = catalog.begin_scan([target], T1)
    listing = catalog.listing(target, scan, ordered=ordered)
    changed = unchanged = 0
    try:
        for i in range(0, len(refs), batch):
            found = listing.add(refs[i : i + batch])
            changed += found.changed
            unchanged += found.unchanged
        gone = listing.finish()
    finally:
        listing.close()
    return scan, changed, unchanged, gone


def fingerprint_all(catalog: Catalog) -> None:
    record_fingerprints(catalog, [(w.ref.uri, {"status": "fingerprinted", "phash": w.ref.key})
                                 for w in list(catalog.work())])


def rows(catalog: Catalog) -> dict[str, tuple[str, str, int, str | None]]:
    return {uri: (status, target, last_seen, phash) for uri, status, target, last_seen, phash in catalog.db.execute(
        "SELECT uri, status, target, last_seen, phash FROM objects")}


def test_the_walk_finds_new_changed_unchanged_and_gone_and_writes_no_unchanged_row(catalog, monkeypatch):
    monkeypatch.setattr(MergedListing, "_CHUNK", 3)  # stored rows come in many chunks
    keys = [f"k{i:02d}" for i in range(20)]
    first, changed, unchanged, gone = listed(catalog, [ref(k) for k in keys])
    assert (changed, unchanged, gone) == (20, 0, 0)
    fingerprint_all(catalog)
    # k00 (the first) and k19 (the last) deleted, k07 changed, k10a new.
    again = [ref(k, etag="new" if k == "k07" else None) for k in keys[1:-1]] + [ref("k10a")]
    again.sort(key=lambda r: r.uri)
    sent: list[str] = []
    catalog.db.set_trace_callback(sent.append)
    scan, changed, unchanged, gone = listed(catalog, again)
    catalog.db.set_trace_callback(None)
    assert (changed, unchanged, gone) == (2, 17, 2)
    after = rows(catalog)
    assert after["s3://b/k00"][0] == after["s3://b/k19"][0] == "gone"
    assert after["s3://b/k07"][:2] == ("listed", "s3://b") and after["s3://b/k07"][3] is None
    assert after["s3://b/k10a"][0] == "listed"
    unchanged_rows = {uri: row for uri, row in after.items() if uri not in {
        "s3://b/k00", "s3://b/k19", "s3://b/k07", "s3://b/k10a"}}
    assert len(unchanged_rows) == 17
    # Unchanged rows keep their fingerprint and were not written: their last-seen scan is the first.
    assert all(status == "fingerprinted" and seen == first and phash
               for status, _, seen, phash in unchanged_rows.values())
    assert not any("last_seen=?" in s and "UPDATE" in s for s in sent)
    # The scan listed every object not gone of its target, written or not.
    listed_now = catalog.db.execute(f"SELECT COUNT(*) FROM objects WHERE {catalog.scan_listed(scan)}").fetchone()[0]
    assert listed_now == 19


def test_a_listing_out_of_order_ends_as_a_looked_up_one(tmp_path, monkeypatch):
    monkeypatch.setattr(MergedListing, "_CHUNK", 5)
    keys = [f"k{i:03d}" for i in range(60)]
    ends = []
    for ordered in (True, False):
        with Catalog(tmp_path / f"{ordered}.db") as c:
            listed(c, [ref(k) for k in keys], ordered=ordered)
            fingerprint_all(c)
            again = [ref(k, etag="e" if i % 9 == 0 else None) for i, k in enumerate(keys) if i % 7]
            # New objects; k014 back, changed; k015 listed twice.
            again += [ref(f"n{i}") for i in range(5)] + [ref("k014", etag="e"), ref("k015", etag="e")]
            random.Random(4).shuffle(again)
            counts = listed(c, again, ordered=ordered, batch=8)[1:]
            ends.append((counts, {uri: row[0] for uri, row in rows(c).items()}))
    assert ends[0] == ends[1]
    statuses = ends[0][1]
    assert sum(s == "gone" for s in statuses.values()) == len([i for i in range(60) if i % 7 == 0]) - 1


def test_a_folder_that_could_not_be_listed_keeps_what_is_under_it(catalog):
    keys = ["a-b/4.jpg", "a/1.jpg", "a/d/2.jpg", "a2/3.jpg", "z.jpg"]
    listed(catalog, [ref(k) for k in keys])
    fingerprint_all(catalog)
    denied = "folder cannot be listed: Permission denied (EACCES)"
    for order in (["a/", "z.jpg"], ["z.jpg", "a/"]):  # the folder met before its rows are passed, or after
        _, _, _, gone = listed(catalog, [ref(k, 0, skipped=denied) if k == "a/" else ref(k) for k in order])
        statuses = {uri.removeprefix("s3://b/"): row[0] for uri, row in rows(catalog).items()}
        assert statuses == {"a-b/4.jpg": "gone", "a/": "skipped", "a/1.jpg": "fingerprinted",
                            "a/d/2.jpg": "fingerprinted", "a2/3.jpg": "gone", "z.jpg": "fingerprinted"}
        assert gone == (2 if order[0] == "a/" else 0)


def test_other_targets_rows_are_neither_gone_nor_copied(catalog):
    # s3://b/x is stored under another target (overlapping targets): listed here, it is found by its URI.
    listed(catalog, [ref("m"), ref("x")], target="s3://b/")
    listed(catalog, [ref("a"), ref("z")])
    fingerprint_all(catalog)
    _, changed, unchanged, gone = listed(catalog, [ref("a"), ref("x"), ref("z")])
    assert (changed, unchanged, gone) == (0, 3, 0)
    after = rows(catalog)
    assert after["s3://b/m"][:2] == ("fingerprinted", "s3://b/")  # another target's, not listed here: kept
    assert after["s3://b/x"][:2] == ("fingerprinted", "s3://b")  # listed by this target now, fingerprint kept
    assert len(after) == 4


def test_a_failed_listing_marks_nothing_gone(catalog):
    listed(catalog, [ref(k) for k in ("a", "b", "c")])
    scan = catalog.begin_scan(["s3://b"], T1)
    listing = catalog.listing("s3://b", scan, ordered=True)
    listing.add([ref("c")])  # walked past a and b
    listing.close()  # the listing broke off: no finish
    assert {row[0] for row in rows(catalog).values()} == {"listed"}
    assert catalog.db.execute("SELECT COUNT(*) FROM temp.listing_passed").fetchone()[0] == 0


def test_tier_moved_on_an_unchanged_object_is_written(catalog):
    listed(catalog, [ref("a"), ref("b")])
    fingerprint_all(catalog)
    _, changed, unchanged, _ = listed(catalog, [ref("a", tier=Tier.cold), ref("b")])
    assert (changed, unchanged) == (0, 2)
    assert [r.tier for r in catalog.records()] == [Tier.cold, Tier.hot]
    assert {row[0] for row in rows(catalog).values()} == {"fingerprinted"}


# --- a rescan that changed nothing keeps the results; a changed config evaluates them again ---------

def _scan(config: Path, db: Path) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["scan", "--config", str(config), "--db", str(db), "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _results(report: dict[str, object]) -> dict[str, object]:
    """The report but when it was made, what its scan did, and what the report prices as of the time it
    is made: the one-time costs and break-even months of its totals, buckets, tiers and regions
    (early-deletion charges move with age, by the second)."""
    timed = ("one_time_cost_usd", "break_even_month", "break_even_month_with_scan")
    kept = {k: v for k, v in report.items() if k not in ("generated_at", "scan")}
    kept["totals"] = {k: v for k, v in report["totals"].items() if k not in timed}  # type: ignore[union-attr]
    for part in ("buckets", "tiers", "regions"):
        kept[part] = [{k: v for k, v in b.items() if k not in timed} for b in report[part]]  # type: ignore[union-attr]
    return kept


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "estate", tmp_path / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", tmp_path / "tierscan.yaml")
    return tmp_path


@pytest.fixture
def evaluations(monkeypatch) -> list[datetime]:
    """The times `pipeline._evaluate` ran at, one entry per evaluation (it still runs)."""
    times: list[datetime] = []
    evaluate = pipeline._evaluate
    monkeypatch.setattr(pipeline, "_evaluate", lambda config, catalog, now, policies, progress: (
        times.append(now), evaluate(config, catalog, now, policies, progress))[1])
    return times


def test_an_unchanged_rescan_keeps_the_results_and_a_config_change_evaluates_again(sample, evaluations):
    config, db = sample / "tierscan.yaml", sample / "t.db"
    _scan(config, db)
    with Catalog(db) as catalog:
        catalog.set_meta("results_digest", "")  # the rescan below evaluates afresh: its report is the reference
    first = _scan(config, db)
    assert len(evaluations) == 2 and first["findings"]
    again = _scan(config, db)
    assert len(evaluations) == 2  # nothing listed, changed, read or gone: the stored results hold
    assert _results(again) == _results(first)
    assert again["scan"]["unchanged"] == again["scan"]["listed"] == first["scan"]["listed"]

    # One policy pack only: fewer findings, from the same unchanged objects.
    config.write_text(config.read_text() + "policies:\n  packs: [hk-pdpo]\n")
    narrowed = _scan(config, db)
    assert len(evaluations) == 3

    def policies(report: dict[str, Any]) -> set[str]:
        return {name for f in report["findings"] for name in (f["policy"], *f["also"])}

    assert policies(narrowed) < policies(first)
    assert narrowed["groups"] == first["groups"]
    assert _results(_scan(config, db)) == _results(narrowed) and len(evaluations) == 3


def test_results_are_evaluated_again_on_another_day_and_after_a_change(sample, evaluations):
    config, db = sample / "tierscan.yaml", sample / "t.db"
    _scan(config, db)
    with Catalog(db) as catalog:
        stored = catalog.meta("results_digest")
        catalog.set_meta("results_digest", "0" * 64)  # as if evaluated another day (ages have moved)
    _scan(config, db)
    assert len(evaluations) == 2
    with Catalog(db) as catalog:
        assert catalog.meta("results_digest") == stored
    (sample / "estate" / "hk-backup-archive" / "2023" / "scan.tiff").unlink()
    gone = _scan(config, db)
    assert len(evaluations) == 3 and gone["scan"]["gone"] == 1
    now = datetime.now(UTC)
    with Catalog(db) as catalog:
        loaded = load_config(config)
        policies = load_policies(packs=loaded.policies.packs, files=loaded.policies.files)
        assert pipeline.results_digest(loaded, catalog, now, policies) != pipeline.results_digest(
            loaded, catalog, now + timedelta(days=1), policies)


def test_a_plan_that_finds_an_object_gone_leaves_the_next_scan_to_evaluate(sample, evaluations):
    config, db = sample / "tierscan.yaml", sample / "t.db"
    first = _scan(config, db)

    def plan() -> None:
        result = CliRunner().invoke(cli, ["plan", "--config", str(config), "--db", str(db), "--format", "json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output

    plan()  # nothing changed: the results still hold
    _scan(config, db)
    assert len(evaluations) == 1
    (sample / "estate" / "hk-backup-archive" / "2023" / "scan.tiff").unlink()
    plan()  # marks it gone: the scan after it lists, reads and writes nothing, and still evaluates
    after = _scan(config, db)
    assert len(evaluations) == 2 and after["scan"]["gone"] == 0
    assert after["totals"]["objects"] == first["totals"]["objects"] - 1


def test_local_uris_quote_names_as_paths_do() -> None:
    from urllib.parse import quote_from_bytes

    from tierscan.connectors.local import _quoted

    names = ["img-0001.jpg", "x~y_z-1.JPG", "", "é.jpg", "\udcff.jpg", *(f"a{chr(c)}b" for c in range(1, 128))]
    assert [_quoted(n) for n in names if n != "a/b"] == [quote_from_bytes(os.fsencode(n)) for n in names
                                                          if n != "a/b"]

"""Sharded scans: N `tierscan scan --shard I/N` processes plus `tierscan merge` must give the report and
inventory one process gives; shard assignment, environment detection, merge conflicts, and the results
location (a local folder here; buckets in tests/contract/test_shards.py)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.shard import Shard, parse_shard, shard_from_env

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "tierscan.scanner"]


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})})
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what legitimately differs between two runs: when it was made, when the scans ran,
    and listing counts (every shard lists everything)."""
    scan = {k: report["scan"][k] for k in ("fingerprinted", "requests", "bytes_read", "bytes_read_by_tier")}
    rest = {k: v for k, v in report.items() if k not in ("generated_at", "scan")}
    return {**rest, "scan": scan}


def assert_same(got: Any, expected: Any, where: str = "report") -> None:
    """Equal, except that money may differ in the 5th significant digit: early-deletion charges grow with
    the objects' age, which moves between the two evaluations by the seconds the test takes."""
    if isinstance(expected, float) and isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-12), where
    elif isinstance(expected, dict) and isinstance(got, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(got, list):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same(g, e, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def sharded_scan(tmp: Path, targets: list[str], config: Path, count: int, env: dict[str, str] | None = None,
                 results: str | None = None) -> tuple[Path, str]:
    """Run `count` shard processes at once, then merge their parts; returns the merged catalog and stderr."""
    procs = [subprocess.Popen([*CLI, "scan", *targets, "--config", str(config), "--db", str(tmp / f"part-{i}.db"),
                               "--shard", f"{i}/{count}", "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **(env or {})})
             for i in range(count)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    merged = tmp / "all.db"
    extra = ["--results", results] if results else []
    done = run("merge", *[str(tmp / f"part-{i}.db") for i in range(count)], "--db", str(merged),
               "--config", str(config), *extra, env=env)
    return merged, done.stderr


@pytest.fixture
def estate(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the sample estate and its config (its targets are relative to the config)."""
    shutil.copytree(REPO / "examples" / "estate", tmp_path / "estate")
    shutil.copy(REPO / "examples" / "tierscan.yaml", tmp_path / "tierscan.yaml")
    return tmp_path / "estate", tmp_path / "tierscan.yaml"


# ---- shard assignment ------------------------------------------------------------------------------


def test_every_object_belongs_to_exactly_one_shard() -> None:
    uris = [f"s3://bucket/photos/{i}.jpg" for i in range(2000)]
    for count in (1, 2, 3, 7):
        owners = [[i for i in range(count) if Shard(i, count).owns(u)] for u in uris]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
        assert min(sizes) > len(uris) / count * 0.8  # roughly even
    # Stable: the first 8 bytes of SHA-256, not Python's per-process salted hash().
    expected = int.from_bytes(hashlib.sha256(b"gs://b/k.jpg").digest()[:8], "big") % 4
    assert [Shard(i, 4).owns("gs://b/k.jpg") for i in range(4)] == [i == expected for i in range(4)]


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="expected I/N"):
        parse_shard(text)


def test_shard_from_the_batch_platforms() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "5"}) == Shard(2, 5)
    # AWS Batch sets only the index, and job definitions may not set AWS_BATCH_* variables.
    assert shard_from_env({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "TIERSCAN_SHARD_COUNT": "4"}) == Shard(1, 4)
    assert shard_from_env({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}) == Shard(1, 3)
    with pytest.raises(UsageError, match="shard count"):
        shard_from_env({"AWS_BATCH_JOB_ARRAY_INDEX": "1"})


# ---- equivalence -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_three_shard_processes_give_the_one_process_report(estate: tuple[Path, Path], tmp_path: Path) -> None:
    folder, config = estate
    one = tmp_path / "one.db"
    run("scan", str(folder), "--config", str(config), "--db", str(one), "--format", "none", "--workers", "1")
    merged, stderr = sharded_scan(tmp_path, [str(folder)], config, 3)
    assert "0 conflict(s)" in stderr

    expected = json.loads(run("report", "--db", str(one), "--config", str(config), "--format", "json").stdout)
    got = json.loads(run("report", "--db", str(merged), "--config", str(config), "--format", "json").stdout)
    assert_same(comparable(got), comparable(expected))
    assert got["scan"]["listed"] == expected["scan"]["listed"] > 0  # every shard listed it all: counted once
    # The inventory (SHA-256 included, computed only where sizes collide) is the same record for record.
    assert run("inventory", "--db", str(merged)).stdout == run("inventory", "--db", str(one)).stdout
    # The test means something: some exact group has members read by different shards, so the size
    # collision that made each shard compute SHA-256 was only visible through the global listing.
    spans = [g for g in expected["groups"] if g["kind"] == "exact"
             and len({next(i for i in range(3) if Shard(i, 3).owns(m["uri"])) for m in g["members"]}) > 1]
    assert spans
    assert expected["totals"]["duplicate_groups"] > 0 and expected["findings"]


@pytest.mark.slow
def test_shard_rescan_reads_nothing_and_keeps_other_shards_objects(estate: tuple[Path, Path], tmp_path: Path) -> None:
    folder, config = estate
    sharded_scan(tmp_path, [str(folder)], config, 2)
    again = run("scan", str(folder), "--config", str(config), "--db", str(tmp_path / "part-0.db"), "--shard", "0/2")
    assert "read 0 bytes" in again.stderr
    with sqlite3.connect(tmp_path / "part-0.db") as db:
        assert db.execute("SELECT COUNT(*) FROM objects WHERE status='gone'").fetchone()[0] == 0
        assert db.execute("SELECT value FROM meta WHERE key='shard'").fetchone()[0] == "0/2"


@pytest.mark.slow
def test_merged_catalog_keeps_the_parts_perceptual_mode(estate: tuple[Path, Path], tmp_path: Path) -> None:
    """The parts hashed their images one way: the merged catalog says so, so scanning it re-hashes nothing."""
    from tierscan.scanner.fingerprint.image import PERCEPTUAL_MODE

    folder, config = estate
    merged, _ = sharded_scan(tmp_path, [str(folder)], config, 2)
    with sqlite3.connect(merged) as db:
        [(mode,)] = db.execute("SELECT value FROM meta WHERE key='perceptual_mode'").fetchall()
    assert mode == PERCEPTUAL_MODE
    rescan = run("scan", str(folder), "--config", str(config), "--db", str(merged), "--format", "json")
    again = json.loads(rescan.stdout)
    assert again["scan"]["bytes_read"] == 0 and again["scan"]["requests"] == 0


@pytest.mark.slow
def test_merge_reports_conflicts_and_keeps_the_newest(tmp_path: Path) -> None:
    bucket = tmp_path / "root" / "b"
    bucket.mkdir(parents=True)
    photo = REPO / "examples" / "estate" / "hk-photos-hot" / "events" / "harbour-walk-001.jpg"
    shutil.copy(photo, bucket / "a.jpg")
    run("scan", str(tmp_path / "root"), "--db", str(tmp_path / "old.db"), "--format", "none")
    (bucket / "a.jpg").write_bytes(photo.read_bytes()[:-10])
    os.utime(bucket / "a.jpg", (2_000_000_000, 2_000_000_000))
    run("scan", str(tmp_path / "root"), "--db", str(tmp_path / "new.db"), "--format", "none")
    done = run("merge", str(tmp_path / "old.db"), str(tmp_path / "new.db"), "--db", str(tmp_path / "all.db"))
    assert "1 conflict(s)" in done.stderr and f"kept {tmp_path / 'new.db'}" in done.stderr
    records = [json.loads(line) for line in run("inventory", "--db", str(tmp_path / "all.db")).stdout.splitlines()]
    assert [r["size"] for r in records] == [photo.stat().st_size - 10]


@pytest.mark.slow
def test_merge_counts_each_listed_object_once(tmp_path: Path) -> None:
    """Parts that listed different objects (scans of other folders) add up; an object two parts listed
    counts once."""
    photo = REPO / "examples" / "estate" / "hk-photos-hot" / "events" / "harbour-walk-001.jpg"
    for root, names in (("one", ["a.jpg", "b.jpg"]), ("two", ["c.jpg", "d.jpg", "e.jpg"])):
        (tmp_path / root / "b").mkdir(parents=True)
        for name in names:
            shutil.copy(photo, tmp_path / root / "b" / name)
        run("scan", str(tmp_path / root), "--db", str(tmp_path / f"{root}.db"), "--format", "none")
    shutil.copy(tmp_path / "two.db", tmp_path / "again.db")
    run("merge", *(str(tmp_path / f"{name}.db") for name in ("one", "two", "again")), "--db",
        str(tmp_path / "all.db"))
    report = json.loads(run("report", "--db", str(tmp_path / "all.db"), "--format", "json").stdout)
    assert report["scan"]["listed"] == 5 and report["totals"]["objects"] == 5


@pytest.mark.slow
def test_merge_refuses_a_missing_part(tmp_path: Path) -> None:
    done = run("merge", str(tmp_path / "part-0.db"), "--db", str(tmp_path / "all.db"), check=False)
    assert done.returncode == 2 and "no part catalog" in done.stderr


# ---- results location and config sources ------------------------------------------------------------


@pytest.mark.slow
def test_results_folder_gets_the_run_and_latest(estate: tuple[Path, Path], tmp_path: Path) -> None:
    folder, config = estate
    results = tmp_path / "results"
    sharded_scan(tmp_path, [str(folder)], config, 2, results=str(results))
    latest = json.loads((results / "latest").read_text())
    run_dir = results / latest["run"]
    assert latest["run"].startswith("runs/") and latest["report"] == f"{latest['run']}/report.json"
    for name in ("report.json", "report.html", "report.txt", "inventory.jsonl"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "personal-data-across-boundary" / "resources.json").exists()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["totals"]["objects"] == 21 and set(latest["files"]) >= {"report.json", "inventory.jsonl"}


@pytest.mark.slow
def test_shard_part_round_trips_through_the_results_location(estate: tuple[Path, Path], tmp_path: Path) -> None:
    folder, config = estate
    results = tmp_path / "results"
    first = run("scan", str(folder), "--config", str(config), "--db", str(tmp_path / "a.db"), "--shard", "auto",
                "--results", str(results))
    assert "shard 0/1" in first.stderr and (results / "shards" / "part-0-of-1.db").is_file()
    # A fresh container: no local catalog, so the part comes back from the results location.
    second = run("scan", str(folder), "--config", str(config), "--db", str(tmp_path / "b.db"),
                 "--results", str(results), env={"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "1"},
                 check=True)
    assert "shard 0/1" not in second.stderr and "results: " in second.stderr  # one task, no --shard: plain scan
    third = run("scan", str(folder), "--config", str(config), "--db", str(tmp_path / "c.db"), "--shard", "auto",
                "--results", str(results))
    assert "read 0 bytes" in third.stderr


@pytest.mark.slow
def test_config_from_the_environment(estate: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = estate
    yaml_text = f"targets: ['{folder}']\nbuckets:\n  hk-photos-hot: {{region: ap-east-1}}\n"
    done = run("scan", "--db", str(tmp_path / "env.db"), "--format", "json", env={"TIERSCAN_CONFIG": yaml_text})
    report = json.loads(done.stdout)
    hot = [b for b in report["buckets"] if b["uri"].endswith("hk-photos-hot")]
    assert hot and hot[0]["jurisdiction"] == "HK"
    bad = run("policy", "list", env={"TIERSCAN_CONFIG": "scan: {workers: 0}\n"}, check=False)
    assert bad.returncode == 2 and "$TIERSCAN_CONFIG:1: scan.workers" in bad.stderr

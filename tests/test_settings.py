"""The settings a scan stores in its catalog: a later report, merge, apply or `near ignore` gives the scan's
figures without its config, even when the files the config names have moved or changed; a config given
instead is used and what differs is named; stored settings that are corrupt or altered are refused with a
message that names the catalog and the way out."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config, load_config
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.settings import (
    command_settings,
    merge_settings,
    settings_digests,
    store_settings,
    stored_settings,
)

REPO = Path(__file__).resolve().parents[1]

# A policy of the user's own, in a file beside the config: its findings must survive the file's removal.
POLICY = """\
policies:
  - name: every-archived-image
    resource: object
    severity: low
    filters:
      - {key: tier, value: archive}
"""

PRICES = """\
version: 1
providers:
  s3:
    regions:
      ap-east-1:
        classes:
          STANDARD: {storage_gb_month: 9.0}
"""


def run(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> tuple[str, str]:
    result = CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any], str]:
    """The sample estate scanned with its config plus a price override and a policy file: the catalog,
    the folder, the scan's JSON report and its summary line. The override and policy files are then
    removed, as if the config had stayed on another machine."""
    tmp = tmp_path_factory.mktemp("settings")
    shutil.copytree(REPO / "examples" / "estate", tmp / "estate")
    (tmp / "prices.yaml").write_text(PRICES)
    (tmp / "mine.yaml").write_text(POLICY)
    config = (REPO / "examples" / "tierscan.yaml").read_text()
    (tmp / "tierscan.yaml").write_text(config + "prices: prices.yaml\npolicies: {files: [mine.yaml]}\n")
    db = tmp / "scan.db"
    out, err = run("scan", "--config", str(tmp / "tierscan.yaml"), "--db", str(db), "--format", "json",
                   "--workers", "1")
    (tmp / "prices.yaml").unlink()
    (tmp / "mine.yaml").unlink()
    return db, tmp, json.loads(out), err.strip().splitlines()[-1]


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "generated_at"}


def test_a_plain_report_gives_the_scans_figures(scanned):
    db, _, scan_report, summary = scanned
    out, err = run("report", "--db", str(db), "--format", "json")
    report = json.loads(out)
    assert comparable(report) == comparable(scan_report)
    assert report["totals"]["monthly_savings_usd"] > 0  # priced by the config's price_as, not at zero
    assert "builtin + " in report["prices"]["table"] and report["prices"]["table"].endswith("prices.yaml")
    assert "warning" not in err
    # The summary line the scan printed is the one its catalog gives.
    from tierscan.scanner.report.build import summary_line
    from tierscan.scanner.report.outputs import report_stream

    with Catalog(db) as catalog:
        config, _ = command_settings(catalog, None, "--config", ())
        assert summary_line(report_stream(config, catalog)) == summary
    # The user's policy and price override came from the catalog, not from the (removed) files.
    assert any(f["policy"] == "every-archived-image" for f in report["findings"])
    assert "override" in report["prices"]["s3/STANDARD/ap-east-1"]


def test_the_dry_run_folders_come_from_the_stored_policies(scanned, tmp_path):
    db, _, _, _ = scanned
    run("report", "--db", str(db), "--format", "none", "--output-dir", str(tmp_path / "out"))
    matched = json.loads((tmp_path / "out" / "every-archived-image" / "resources.json").read_text())
    assert matched and all("hk-backup-archive" in r["uri"] for r in matched)


def test_a_given_config_is_used_and_what_differs_is_named(scanned):
    db, tmp, _, _ = scanned
    other = tmp / "other.yaml"
    other.write_text("master:\n  exact: newest\n")
    out, err = run("report", "--db", str(db), "--config", str(other), "--format", "json")
    assert err.count("\n") == 1 and err.startswith(f"warning: {other} differs from the settings {db} was scanned")
    for what in ("prices", "bucket price_as", "master rules", "policies"):
        assert what in err
    assert "Used here: prices; bucket price_as." in err and "Omit --config to use the scan's settings." in err
    assert json.loads(out)["totals"]["monthly_savings_usd"] == 0  # no price_as: the local price list
    # The same settings given again: nothing to say.
    (tmp / "prices.yaml").write_text(PRICES)
    (tmp / "mine.yaml").write_text(POLICY)
    try:
        _, err = run("report", "--db", str(db), "--config", str(tmp / "tierscan.yaml"), "--format", "none")
    finally:
        (tmp / "prices.yaml").unlink()
        (tmp / "mine.yaml").unlink()
    assert "warning" not in err


def test_a_config_from_the_environment_is_named_so(scanned):
    db, _, _, _ = scanned
    _, err = run("report", "--db", str(db), "--format", "none", env={"TIERSCAN_CONFIG": "near: {min_inliers: 9}\n"})
    assert err.startswith("warning: $TIERSCAN_CONFIG differs") and "near-duplicate settings" in err
    assert "Unset TIERSCAN_CONFIG to use the scan's settings." in err


def test_near_ignore_regroups_with_the_stored_settings(scanned, tmp_path):
    db, _, scan_report, _ = scanned
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    near = next(g for g in scan_report["groups"] if g["kind"] == "near")
    run("near", "ignore", *[m["uri"] for m in near["members"][:2]], "--db", str(copy))
    report = json.loads(run("report", "--db", str(copy), "--format", "json")[0])
    # The policy file is gone, yet its findings are made again from the stored text; prices likewise.
    assert any(f["policy"] == "every-archived-image" for f in report["findings"])
    assert report["totals"]["monthly_savings_usd"] == scan_report["totals"]["monthly_savings_usd"]


def test_apply_names_what_a_given_config_does_not_change(scanned, tmp_path):
    db, _, _, _ = scanned
    other = tmp_path / "other.yaml"
    other.write_text("policies: {packs: [cost]}\n")
    _, err = run("apply", "--db", str(db), "--config", str(other), "--action", "tag", "--plan",
                 str(tmp_path / "plan.json"))
    assert "policies" in err and "Applied at the next scan:" in err and "Used here" not in err.split("\n")[0]


def test_a_catalog_without_stored_settings_reports_as_before(scanned, tmp_path):
    db, _, _, _ = scanned
    old = tmp_path / "old.db"
    shutil.copy(db, old)
    with sqlite3.connect(old) as con:
        con.execute("DELETE FROM meta WHERE key='settings'")
    out, err = run("report", "--db", str(old), "--format", "json")
    assert json.loads(out)["totals"]["monthly_savings_usd"] == 0 and "warning" not in err  # the defaults


def _altered(db: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "altered.db"
    shutil.copy(db, copy)
    with sqlite3.connect(copy) as con:
        text = con.execute("SELECT value FROM meta WHERE key='settings'").fetchone()[0]
        con.execute("UPDATE meta SET value=? WHERE key='settings'", (change(text),))
    return copy


def _tampered(text: str) -> str:
    record = json.loads(text)
    record["config"]["master"]["exact"] = ["newest"]
    return json.dumps(record)


def _price_tampered(text: str) -> str:
    record = json.loads(text)
    record["prices"]["providers"]["s3"]["regions"]["ap-east-1"]["classes"]["STANDARD"]["storage_gb_month"] = 0.0
    return json.dumps(record)


def _bad_config(text: str) -> str:
    record = json.loads(text)
    record["config"]["master"]["exact"] = ["tallest"]
    return json.dumps(record)


@pytest.mark.parametrize(("change", "message"), [
    (lambda text: text[:-10], "are not valid"),
    (lambda text: "[" * 100_000 + "]" * 100_000, "are not valid"),
    (lambda text: "x" * (17 << 20), "are larger than 16 MiB"),
    (_tampered, "do not match their digests (master, settings): the catalog was altered"),
    (_price_tampered, "do not match their digests (prices, settings)"),
    (_bad_config, "are not valid (config.master.exact.0:"),
])
def test_corrupt_or_altered_settings_are_refused_plainly(scanned, tmp_path, change, message):
    db, _, _, _ = scanned
    altered = _altered(db, tmp_path, change)
    result = CliRunner().invoke(cli, ["report", "--db", str(altered), "--format", "none"])
    assert result.exit_code == 2
    assert f"tierscan: {altered}: the scan settings stored in this catalog {message}" in result.stderr
    assert "give --config FILE to use a config instead" in result.stderr and "Traceback" not in result.stderr
    # Given a config, the command goes on and says why the catalog's were not compared.
    _, err = run("report", "--db", str(altered), "--config", str(REPO / "examples" / "tierscan.yaml"),
                 "--format", "none")
    assert f"warning: {altered}: the scan settings stored in this catalog {message}" in err


def test_stored_settings_round_trip_and_leave_this_machines_workers_out(tmp_path):
    config = load_config(REPO / "examples" / "tierscan.yaml")
    config = config.model_copy(update={"scan": config.scan.model_copy(update={"workers": 1})})
    with Catalog(tmp_path / "c.db") as catalog:
        store_settings(config, catalog)
        stored = stored_settings(catalog)
    assert stored is not None and stored.config.embedded is not None
    assert stored.config.scan.workers is None and stored.config.buckets == config.buckets
    assert dict(stored.digests) == settings_digests(config)
    # Stored again from what was read back, the settings are the same.
    with Catalog(tmp_path / "d.db") as catalog:
        store_settings(stored.config, catalog)
        again = stored_settings(catalog)
    assert again is not None and again.digests == stored.digests


def test_settings_stored_before_the_models_grew_a_field_still_check(tmp_path):
    """An older tierscan stored a config without a field this one has: the digests hold over what was
    stored, and the missing field takes its default."""
    from tierscan.scanner.scan import settings

    with Catalog(tmp_path / "c.db") as catalog:
        store_settings(load_config(REPO / "examples" / "tierscan.yaml"), catalog)
        record = json.loads(catalog.meta("settings") or "")
        del record["config"]["local"], record["config"]["near"]["split_shots"]
        record["digests"] = settings._digests(record["config"], record["prices"], record["policies"])
        catalog.set_meta("settings", json.dumps(record))
        stored = stored_settings(catalog)
    assert stored is not None and stored.config.near.split_shots is True
    assert stored.digests == settings_digests(load_config(REPO / "examples" / "tierscan.yaml"))


def test_buckets_order_is_part_of_the_settings():
    first = Config.model_validate({"buckets": {"a*": {"region": "ap-east-1"}, "ab": {"region": "cn-north-1"}}})
    second = Config.model_validate({"buckets": {"ab": {"region": "cn-north-1"}, "a*": {"region": "ap-east-1"}}})
    assert settings_digests(first)["buckets"] != settings_digests(second)["buckets"]


def _parts(tmp_path: Path, *configs: Config) -> list[tuple[str, Any]]:
    found = []
    for i, config in enumerate(configs):
        with Catalog(tmp_path / f"p{i}.db") as catalog:
            store_settings(config, catalog)
            found.append((f"p{i}.db", stored_settings(catalog)))
    return found


def test_merge_uses_the_parts_settings_and_refuses_parts_that_disagree(tmp_path):
    scanned_with = Config.model_validate({"buckets": {"b": {"price_as": "s3"}}})
    parts = _parts(tmp_path, scanned_with, scanned_with)
    config, warnings = merge_settings([*parts, ("old.db", None)], None, "--config")
    assert config.buckets == scanned_with.buckets and config.embedded is not None and warnings == []
    assert merge_settings([("old.db", None)], None, "--config")[0] == Config()

    other = Config.model_validate({"master": {"exact": "newest"}})
    disagree = _parts(tmp_path, scanned_with, other)
    with pytest.raises(UsageError, match=r"parts p0.db and p1.db were scanned with different bucket price_as; "
                                         r"master rules; give --config FILE"):
        merge_settings(disagree, None, "--config")
    config, warnings = merge_settings(disagree, other, "x.yaml")
    assert config is other
    assert warnings == ["warning: x.yaml differs from the settings the parts were scanned with in bucket "
                        "price_as; master rules; the merge groups and evaluates with x.yaml"]


def test_merge_warns_about_parts_listed_with_different_regions(tmp_path):
    parts = _parts(tmp_path, Config.model_validate({"buckets": {"b": {"region": "ap-east-1"}}}),
                   Config.model_validate({"buckets": {"b": {"region": "cn-north-1"}}}))
    _, warnings = merge_settings(parts, None, "--config")
    assert warnings == ["warning: parts p0.db and p1.db were listed with different bucket tiers, classes and "
                        "regions: each object keeps its part's; scan every shard with one config"]


@pytest.mark.slow
def test_a_merge_without_config_reports_what_the_shards_were_scanned_with(scanned, tmp_path):
    _, tmp, scan_report, _ = scanned
    (tmp / "prices.yaml").write_text(PRICES)
    (tmp / "mine.yaml").write_text(POLICY)
    try:
        for i in range(2):
            run("scan", "--config", str(tmp / "tierscan.yaml"), "--db", str(tmp_path / f"part-{i}.db"),
                "--shard", f"{i}/2", "--workers", "1")
    finally:
        (tmp / "prices.yaml").unlink()
        (tmp / "mine.yaml").unlink()
    merged = tmp_path / "all.db"
    _, err = run("merge", str(tmp_path / "part-0.db"), str(tmp_path / "part-1.db"), "--db", str(merged))
    assert "warning" not in err
    report = json.loads(run("report", "--db", str(merged), "--format", "json")[0])
    # Early-deletion charges move with age, by the second: the one-time cost is the scan's to a few digits.
    timed = ("one_time_cost_usd", "break_even_month", "break_even_month_with_scan")
    assert {k: v for k, v in report["totals"].items() if k not in timed} == {
        k: v for k, v in scan_report["totals"].items() if k not in timed}
    assert report["totals"]["one_time_cost_usd"] == pytest.approx(scan_report["totals"]["one_time_cost_usd"], rel=1e-3)
    assert report["prices"] == scan_report["prices"]
    assert [f["policy"] for f in report["findings"]] == [f["policy"] for f in scan_report["findings"]]


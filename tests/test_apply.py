"""`tierscan apply` / `tierscan undo` on local folders: plan, review, approve, journal, ETag re-check, masters
never touched, quarantine moves files (keys with unicode and newlines) and undo moves them back."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner import apply as remediation
from scanner.catalog import Catalog
from scanner.cli import cli
from scanner.config import Config, MasterSettings, PolicySettings
from scanner.errors import UsageError
from scanner.pipeline import run_scan

DATA = Path(__file__).parent / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
OTHER = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
POLICY = """policies:
  - name: redundant-copies
    resource: group
    severity: medium
    filters:
      - {type: group-kind, kind: exact}
    actions:
      - delete-redundant
"""
ODD_KEY = "相片\nline ..x.jpg"  # unicode and a newline in a file name (`../` keys: see tests/contract/test_apply.py)


def _estate(tmp: Path) -> tuple[Path, Config]:
    root = tmp / "estate"
    (root / "golden").mkdir(parents=True)
    (root / "copies" / "sub").mkdir(parents=True)
    (root / "golden" / "photo.jpg").write_bytes(PHOTO)
    (root / "copies" / "photo-1.jpg").write_bytes(PHOTO)
    (root / "copies" / "sub" / ODD_KEY).write_bytes(PHOTO)
    (root / "copies" / "other.jpg").write_bytes(OTHER)
    old = time.time() - 400 * 86400
    os.utime(root / "golden" / "photo.jpg", (old, old))
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    config = Config(policies=PolicySettings(packs=[], files=[policy]), master=MasterSettings(prefer=[f"{root.as_uri()}/golden/*"]))
    return root, config


def _scan(root: Path, config: Config, db: Path) -> Catalog:
    catalog = Catalog(db)
    asyncio.run(run_scan(config, catalog, [str(root)]))
    return catalog


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Path, Config, Catalog, Path]:
    root, config = _estate(tmp_path)
    db = tmp_path / "t.db"
    catalog = _scan(root, config, db)
    yield root, config, catalog, db
    catalog.close()


def test_plan_excludes_masters_and_changes_nothing(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(tmp_path / "q"))
    uris = {i["uri"] for i in plan["items"]}
    master = (root / "golden" / "photo.jpg").as_uri()
    assert master not in uris
    assert uris == {(root / "copies" / "photo-1.jpg").as_uri(), (root / "copies" / "sub" / ODD_KEY).as_uri()}
    assert all(i["master"] == master for i in plan["items"])
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    # A master named by a finding is listed as excluded, never planned.
    from scanner.models import Finding, Severity

    forced = [Finding(policy="x", severity=Severity.low, action="delete-redundant", uris=[master], reason="r")]
    plan2 = remediation.build_plan(catalog, db, "delete", findings=forced)
    assert plan2["items"] == [] and plan2["excluded"][0]["reason"].startswith("a group master")


def test_unapproved_or_edited_plan_is_refused(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    with pytest.raises(UsageError, match="not approved"):
        remediation.execute_plan(plan, None, tmp_path / "j.jsonl", catalog, config)
    approved = plan["digest"][:16]
    plan["items"].append(dict(plan["items"][0], uri=(root / "golden" / "photo.jpg").as_uri()))  # edited after review
    with pytest.raises(UsageError, match="not approved"):
        remediation.execute_plan(plan, approved, tmp_path / "j.jsonl", catalog, config)
    assert (root / "copies" / "photo-1.jpg").exists()
    assert not (tmp_path / "j.jsonl").exists()


def test_quarantine_then_undo(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    q = tmp_path / "q"
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(q))
    journal = tmp_path / "j.jsonl"
    result = remediation.execute_plan(plan, plan["digest"], journal, catalog, config)
    assert len(result.done) == 2 and not result.failed and not result.skipped
    assert not (root / "copies" / "photo-1.jpg").exists()
    assert (q / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert (q / "copies" / "sub" / ODD_KEY).read_bytes() == PHOTO
    assert (root / "golden" / "photo.jpg").read_bytes() == PHOTO  # the master is untouched
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    kinds = [e["type"] for e in entries]
    assert kinds == ["header", "intent", "done", "intent", "done"]  # each intent precedes its change
    undo = remediation.undo_journal(journal, config)
    assert len(undo.undone) == 2 and not undo.not_undone
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert (root / "copies" / "sub" / ODD_KEY).read_bytes() == PHOTO
    assert not (q / "copies" / "photo-1.jpg").exists()
    again = remediation.undo_journal(journal, config)  # idempotent
    assert again.undone == [] and again.not_undone == []


def test_changed_object_is_not_touched(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    target = root / "copies" / "photo-1.jpg"
    target.write_bytes(PHOTO + b"changed")  # replaced between plan and execution
    result = remediation.execute_plan(plan, plan["digest"], tmp_path / "j.jsonl", catalog, config)
    assert target.exists()
    assert [u for u, _ in result.skipped] == [target.as_uri()]
    assert "changed since the plan" in result.skipped[0][1]
    assert result.done == [(root / "copies" / "sub" / ODD_KEY).as_uri()]


def test_delete_refused_when_master_is_missing(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    (root / "golden" / "photo.jpg").unlink()  # the master vanished: the copies may be the last ones
    result = remediation.execute_plan(plan, plan["digest"], tmp_path / "j.jsonl", catalog, config)
    assert result.done == [] and len(result.skipped) == 2
    assert all("master" in why for _, why in result.skipped)
    assert (root / "copies" / "photo-1.jpg").exists()


def test_tag_with_xattrs_then_undo(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    probe = root / "copies" / "photo-1.jpg"
    try:
        os.setxattr(probe, "user.tierscan.probe", b"1")
        os.removexattr(probe, "user.tierscan.probe")
    except OSError:
        pytest.skip("this file system has no user xattrs")
    os.setxattr(probe, "user.tierscan.keep", b"old")
    plan = remediation.build_plan(catalog, db, "tag", tags={"owner": "finops"})
    journal = tmp_path / "j.jsonl"
    remediation.execute_plan(plan, plan["digest"], journal, catalog, config)
    assert os.getxattr(probe, "user.tierscan.owner") == b"finops"
    assert os.getxattr(probe, "user.tierscan.keep") == b"old"
    remediation.undo_journal(journal, config)
    assert os.getxattr(probe, "user.tierscan.keep") == b"old"
    with pytest.raises(OSError):
        os.getxattr(probe, "user.tierscan.owner")


def test_cli_plan_review_execute_undo(tmp_path: Path) -> None:
    root, _ = _estate(tmp_path)
    cfg = tmp_path / "tierscan.yaml"
    cfg.write_text(f"policies: {{packs: [], files: [{tmp_path / 'policy.yaml'}]}}\n"
                   f"master: {{prefer: ['{root.as_uri()}/golden/*']}}\n")
    db, plan, journal, q = tmp_path / "c.db", tmp_path / "plan.json", tmp_path / "j.jsonl", tmp_path / "q"
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("scan", str(root), "--config", str(cfg), "--db", str(db), "--format", "none")
    out = run("apply", "--config", str(cfg), "--db", str(db), "--action", "quarantine", "--to", str(q), "--plan", str(plan))
    assert "nothing changed" in out and (root / "copies" / "photo-1.jpg").exists()
    digest = json.loads(plan.read_text())["digest"]
    out = run("apply", "--config", str(cfg), "--execute", str(plan))  # review: prints the digest, changes nothing
    assert digest in out and (root / "copies" / "photo-1.jpg").exists()
    run("apply", "--config", str(cfg), "--execute", str(plan), "--approve", "0" * 16, "--journal", str(journal), code=2)
    assert not journal.exists()
    run("apply", "--config", str(cfg), "--execute", str(plan), "--approve", digest[:16], "--journal", str(journal))
    assert not (root / "copies" / "photo-1.jpg").exists() and (q / "copies" / "photo-1.jpg").exists()
    run("undo", str(journal), "--config", str(cfg))
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO and not (q / "copies" / "photo-1.jpg").exists()


def test_crash_between_journal_and_change_then_undo(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    """The process dies after quarantine's copy (a hard link) but before the source is removed: the journal
    holds the intent without its outcome, and undo puts things back as they were."""
    from connectors.local import LocalConnector

    root, config, catalog, db = scanned
    q = tmp_path / "q"
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(q))

    class Dies(LocalConnector):
        async def move(self, src, dst, *, expect):  # type: ignore[no-untyped-def]
            from connectors.local import _path_of

            _path_of(dst).parent.mkdir(parents=True, exist_ok=True)
            os.link(_path_of(src), _path_of(dst))
            raise SystemExit("killed mid-change")

    journal = tmp_path / "j.jsonl"
    with pytest.raises(SystemExit):
        remediation.execute_plan(plan, plan["digest"], journal, catalog, config, factory=lambda s: Dies(config))
    kinds = [json.loads(line)["type"] for line in journal.read_text().splitlines()]
    assert kinds == ["header", "intent"]  # the intent was on disk before the change began
    first = root / "copies" / "photo-1.jpg"
    assert first.exists() and (q / "copies" / "photo-1.jpg").exists()
    undo = remediation.undo_journal(journal, config)
    assert len(undo.undone) == 1 and not undo.not_undone
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert not (q / "copies" / "photo-1.jpg").exists()

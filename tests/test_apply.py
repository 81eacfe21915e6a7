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

from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config, MasterSettings, PolicySettings
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.remediate import apply as remediation
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

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
    config = Config(policies=PolicySettings(packs=[], files=[policy]),
                    master=MasterSettings(prefer=[f"{root.as_uri()}/golden/*"]))
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
    root, _, catalog, db = scanned
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(tmp_path / "q"))
    uris = {i["uri"] for i in plan["items"]}
    master = (root / "golden" / "photo.jpg").as_uri()
    assert master not in uris
    assert uris == {(root / "copies" / "photo-1.jpg").as_uri(), (root / "copies" / "sub" / ODD_KEY).as_uri()}
    assert all(i["master"] == master for i in plan["items"])
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    # A master named by a finding is listed as excluded, never planned.
    from tierscan.scanner.core.models import Finding, Severity

    forced = [Finding(policy="x", severity=Severity.low, action="delete-redundant", uris=[master], reason="r")]
    plan2 = remediation.build_plan(catalog, db, "delete", findings=forced)
    assert plan2["items"] == [] and plan2["excluded"][0]["reason"].startswith("a group master")


def test_a_policy_scope_takes_the_findings_it_shares(scanned: tuple[Path, Config, Catalog, Path]) -> None:
    """A finding named by one policy and recommended by others too (`also`) is in each one's scope."""
    from tierscan.scanner.core.models import Finding, Severity

    root, _, catalog, db = scanned
    copy = (root / "copies" / "photo-1.jpg").as_uri()
    shared = [Finding(policy="a", also=["b"], severity=Severity.low, action="delete-redundant", uris=[copy],
                      reason="r")]
    for scope, planned in ((["b"], [copy]), (["a"], [copy]), (["c"], [])):
        plan = remediation.build_plan(catalog, db, "delete", policies=scope, known_policies=["c"], findings=shared)
        assert [i["uri"] for i in plan["items"]] == planned


def test_unapproved_or_edited_plan_is_refused(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    with pytest.raises(UsageError, match="not approved"):
        remediation.execute_plan(plan, None, tmp_path / "j.jsonl", catalog, config)
    approved = plan["digest"][:16]
    plan["items"].append(dict(plan["items"][0], uri=(root / "golden" / "photo.jpg").as_uri()))  # edited after review
    with pytest.raises(UsageError, match="digest does not start with what --approve gives") as refused:
        remediation.execute_plan(plan, approved, tmp_path / "j.jsonl", catalog, config, plan_path=Path("p.json"))
    assert "tierscan apply --execute p.json" in str(refused.value)
    assert remediation.plan_digest(plan)[:8] not in str(refused.value)  # approving stays reviewing
    assert (root / "copies" / "photo-1.jpg").exists()
    assert not (tmp_path / "j.jsonl").exists()


def test_approve_needs_the_documented_number_of_hex_digits(scanned: tuple[Path, Config, Catalog, Path],
                                                           tmp_path: Path) -> None:
    """One length rule for the code and `--approve`'s help; a refusal never shows the right digest."""
    _, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    digest = plan["digest"]
    for given in (digest[:remediation.APPROVE_MIN - 1], "f" * 64 if digest[0] != "f" else "0" * 64):
        with pytest.raises(UsageError) as refused:
            remediation.execute_plan(plan, given, tmp_path / "j.jsonl", catalog, config)
        message = str(refused.value)
        assert digest[:8] not in message
    with pytest.raises(UsageError, match=f"at least {remediation.APPROVE_MIN} hex digits"):
        remediation.execute_plan(plan, digest[:remediation.APPROVE_MIN - 1], tmp_path / "j.jsonl", catalog, config)
    assert not (tmp_path / "j.jsonl").exists()
    result = remediation.execute_plan(plan, digest[:remediation.APPROVE_MIN].upper(), tmp_path / "j.jsonl", catalog,
                                      config)
    assert len(result.done) == 2
    helped = CliRunner().invoke(cli, ["apply", "--help"], terminal_width=200).output
    assert f"its first {remediation.APPROVE_MIN} or more hex digits" in helped


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
    out = run("apply", "--config", str(cfg), "--db", str(db), "--action", "quarantine", "--to", str(q),
              "--plan", str(plan))
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


def test_crash_between_journal_and_change_then_undo(scanned: tuple[Path, Config, Catalog, Path],
                                                    tmp_path: Path) -> None:
    """The process dies after quarantine's copy (a hard link) but before the source is removed: the journal
    holds the intent without its outcome, and undo puts things back as they were."""
    from tierscan.connectors.local import LocalConnector

    root, config, catalog, db = scanned
    q = tmp_path / "q"
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(q))

    class Dies(LocalConnector):
        async def move(self, src, dst, *, expect):  # type: ignore[no-untyped-def]
            from tierscan.connectors.local import _path_of

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


# ---- proof that the master holds the copy's bytes now ------------------------------------------------

def _run(plan: dict, catalog: Catalog, config: Config, journal: Path) -> remediation.ApplyResult:
    return remediation.execute_plan(plan, plan["digest"], journal, catalog, config)


def _same_size_other(data: bytes) -> bytes:
    """Other bytes of the same length: one byte in the middle flipped."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_edited_bucket_and_key_are_refused(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    """A plan whose bucket/key were edited (and its digest re-approved) still shows the reviewed URI:
    execution uses the catalog's record for that URI and skips the item, naming the difference."""
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    first = plan["items"][0]
    first["bucket"], first["key"] = "golden", "photo.jpg"  # the master's bucket and key
    plan["digest"] = remediation.plan_digest(plan)
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert (root / "golden" / "photo.jpg").read_bytes() == PHOTO
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert [u for u, _ in result.skipped] == [first["uri"]]
    assert "not the catalog's" in result.skipped[0][1]
    journal = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert any(e["type"] == "skipped" and e["uri"] == first["uri"] for e in journal)


def test_master_overwritten_with_same_size_bytes_keeps_the_copy(scanned: tuple[Path, Config, Catalog, Path],
                                                                 tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    master = root / "golden" / "photo.jpg"
    st = master.stat()
    master.write_bytes(_same_size_other(PHOTO))
    os.utime(master, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and modified time as the scan saw them
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert result.done == [] and len(result.skipped) == 2
    assert all("master differs" in why for _, why in result.skipped)
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert (root / "copies" / "sub" / ODD_KEY).read_bytes() == PHOTO


def test_master_that_is_a_symlink_to_the_copy_is_refused(scanned: tuple[Path, Config, Catalog, Path],
                                                          tmp_path: Path) -> None:
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(tmp_path / "q"))
    master, copy = root / "golden" / "photo.jpg", root / "copies" / "photo-1.jpg"
    master.unlink()
    master.symlink_to(copy)
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert copy.read_bytes() == PHOTO and (root / "copies" / "sub" / ODD_KEY).read_bytes() == PHOTO
    assert result.done == [], result.failed
    assert all("symbolic link" in why for _, why in result.skipped), result.skipped


def test_master_and_copy_that_are_one_file_are_refused(scanned: tuple[Path, Config, Catalog, Path],
                                                        tmp_path: Path) -> None:
    """Two names of one inode (a hard link): the copy's data is the master's data, so it is no copy."""
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    master, copy = root / "golden" / "photo.jpg", root / "copies" / "photo-1.jpg"
    st = copy.stat()
    copy.unlink()
    os.link(master, copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # the copy's name looks as it did at the scan
    os.utime(master, ns=(master.stat().st_atime_ns, st.st_mtime_ns))
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert copy.exists() and master.read_bytes() == PHOTO
    assert dict(result.skipped)[copy.as_uri()].startswith("refused: the copy and its master are one object")


def test_forged_sha256_in_the_catalog_does_not_delete(tmp_path: Path) -> None:
    """A catalog (restored from a results store) whose sha256 makes two different files of one size an
    exact group: the files are compared, not the catalog's digests, and the copy stays."""
    from tierscan.scanner.core.models import Finding, Group, Severity

    root, config = _estate(tmp_path)
    forged = root / "copies" / "forged.jpg"
    forged.write_bytes(_same_size_other(PHOTO))
    catalog = _scan(root, config, tmp_path / "t.db")
    try:
        master_uri, forged_uri = (root / "golden" / "photo.jpg").as_uri(), forged.as_uri()
        exact = next(g for g in catalog.groups() if g.kind == "exact" and g.master == master_uri)
        member = next(m for m in exact.members if m.uri != master_uri).model_copy(update={"uri": forged_uri})
        group = Group.model_validate({**exact.model_dump(), "id": "forged", "members": [
            next(m for m in exact.members if m.uri == master_uri).model_dump(), member.model_dump()]})
        real = catalog.db.execute("SELECT sha256 FROM objects WHERE uri=?", (master_uri,)).fetchone()[0]
        catalog.db.execute("UPDATE objects SET sha256=? WHERE uri=?", (real, forged_uri))
        finding = Finding(policy="redundant-copies", severity=Severity.medium, action="delete-redundant",
                          uris=[forged_uri], group="forged", reason="forged")
        catalog.replace_results([group], [finding])
        plan = remediation.build_plan(catalog, tmp_path / "t.db", "delete")
        assert [i["uri"] for i in plan["items"]] == [forged_uri]
        result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    finally:
        catalog.close()
    assert forged.read_bytes() == _same_size_other(PHOTO)
    assert result.done == [] and "master differs" in result.skipped[0][1]


def test_delete_proves_the_master_then_deletes(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    import hashlib

    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    journal = tmp_path / "j.jsonl"
    result = _run(plan, catalog, config, journal)
    assert len(result.done) == 2 and not result.skipped and not result.failed
    assert not (root / "copies" / "photo-1.jpg").exists() and not (root / "copies" / "sub" / ODD_KEY).exists()
    assert (root / "golden" / "photo.jpg").read_bytes() == PHOTO
    intents = [e for e in map(json.loads, journal.read_text().splitlines()) if e["type"] == "intent"]
    for intent in intents:  # how each master was proven is journalled before the change
        assert intent["master"] == {"uri": (root / "golden" / "photo.jpg").as_uri(), "by": "read",
                                    "sha256": hashlib.sha256(PHOTO).hexdigest()}


def test_local_delete_rechecks_the_very_file(scanned: tuple[Path, Config, Catalog, Path]) -> None:
    """The unlink happens only while the path is still the file that was checked: not a file swapped in
    since (another inode), and never a symlink."""
    from tierscan.connectors.base import Location
    from tierscan.connectors.local import LocalConnector
    from tierscan.scanner.core.errors import ObjectGone

    root, config, _, _ = scanned
    copy = root / "copies" / "photo-1.jpg"
    loc = Location(copy.as_uri(), "copies", "photo-1.jpg")
    conn = LocalConnector(config)
    state = asyncio.run(conn.stat(loc))
    assert state is not None
    st = copy.stat()
    swapped = copy.with_name("swap.tmp")
    swapped.write_bytes(PHOTO)
    os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
    swapped.replace(copy)  # same size and modified time, another file
    with pytest.raises(ObjectGone):
        asyncio.run(conn.delete(loc, expect=state))
    assert copy.exists()
    target = root / "golden" / "photo.jpg"
    copy.unlink()
    copy.symlink_to(target)
    link_state = asyncio.run(conn.stat(loc))
    assert link_state is not None and link_state.link
    with pytest.raises(UsageError, match="symbolic link"):
        asyncio.run(conn.delete(loc, expect=link_state))
    assert copy.is_symlink() and target.read_bytes() == PHOTO


def test_review_shows_bucket_key_master_and_proof(scanned: tuple[Path, Config, Catalog, Path]) -> None:
    _, _, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    lines = remediation.describe_plan(plan)
    text = "\n".join(lines)
    assert all("\n" not in line for line in lines)  # a newline in a key cannot start a line of its own
    assert f"file bucket 'copies' key {'sub/' + ODD_KEY!r}" in text
    assert "master file bucket 'golden' key 'photo.jpg'" in text
    assert text.count("proof: both files re-read now and compared byte by byte") == 2


def test_edited_quarantine_destination_is_refused(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The destination also comes from the catalog's record (and the quarantine folder as the plan resolved
    it, so a relative --to still means the folder reviewed, run from anywhere)."""
    root, config, catalog, db = scanned
    monkeypatch.chdir(tmp_path)
    plan = remediation.build_plan(catalog, db, "quarantine", to="q")
    edited = plan["items"][0]
    elsewhere = tmp_path / "elsewhere" / "photo-1.jpg"
    edited["dest"] = {**edited["dest"], "uri": elsewhere.as_uri()}
    plan["digest"] = remediation.plan_digest(plan)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert not elsewhere.exists() and (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO
    assert dict(result.skipped)[edited["uri"]].startswith("the plan's destination is not the one")
    assert (tmp_path / "q" / "copies" / "sub" / ODD_KEY).read_bytes() == PHOTO  # the unedited item, as reviewed


def test_plan_cannot_drop_the_master_proof(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    """Whether a quarantine must prove its master follows the catalog's group, not the plan's word: an item
    re-labelled as outside any group (digest re-approved) is skipped, not moved unproven."""
    root, config, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "quarantine", to=str(tmp_path / "q"))
    for item in plan["items"]:
        item["group_kind"] = None
    plan["digest"] = remediation.plan_digest(plan)
    assert "master: none" in "\n".join(remediation.describe_plan(plan))  # what such a plan would claim
    result = _run(plan, catalog, config, tmp_path / "j.jsonl")
    assert result.done == [] and all(why.startswith("its group is not the one reviewed") for _, why in result.skipped)
    assert (root / "copies" / "photo-1.jpg").read_bytes() == PHOTO


def test_malformed_plan_is_a_usage_error(scanned: tuple[Path, Config, Catalog, Path], tmp_path: Path) -> None:
    """An edited plan whose item lacks a field or holds another type is refused with a clear error when it
    is loaded (for review or execution), not with a traceback halfway through."""
    _, _, catalog, db = scanned
    plan = remediation.build_plan(catalog, db, "delete")
    path = tmp_path / "plan.json"
    for edit in ({"key": None}, {"size": "12"}, {"master_at": "golden/photo.jpg"}):
        remediation.write_plan({**plan, "items": [{**plan["items"][0], **edit}]}, path)
        with pytest.raises(UsageError, match="item 0 is malformed"):
            remediation.load_plan(path)
    remediation.write_plan(plan, path)
    assert remediation.load_plan(path)["items"] == plan["items"]
    remediation.write_plan({**plan, "scope": {"policies": "x", "left_out": ["y"]}}, path)  # scope is words only
    assert remediation.describe_plan(remediation.load_plan(path))[1].startswith("scope: redundant copies")


def test_s3_vouched_digests_are_only_those_nobody_can_match_with_other_bytes() -> None:
    """Which of a HeadObject's digests count as proof: a plain-MD5 ETag unless the object is SSE-KMS or SSE-C
    (then the ETag is no MD5), full-object SHA checksums as hex, never a CRC; multipart ETags and COMPOSITE
    checksums only under a kind that names the part layout (HeadObject of part 1)."""
    import base64
    import hashlib

    from tierscan.connectors.base import Location, ObjectState
    from tierscan.connectors.s3 import S3Connector

    md5, sha = hashlib.md5(PHOTO).hexdigest(), hashlib.sha256(PHOTO).digest()

    class Heads(S3Connector):
        answer: dict[str, object]  # what HeadObject answers, set on each instance

        async def _write(self, kind, loc, op, **params):  # type: ignore[no-untyped-def]
            if params.get("PartNumber") == 1:
                return {"PartsCount": 3, "ContentLength": 5 << 20, "ETag": '"part"'}
            return {"ContentLength": len(PHOTO), **self.answer}

    loc, state = Location("s3://b/k", "b", "k"), ObjectState(size=len(PHOTO), etag=md5)

    def vouched(**answer: object) -> dict[str, str]:
        conn = Heads(Config())
        conn.answer = answer
        return asyncio.run(conn.vouched(loc, state))

    crc = base64.b64encode(b"\x01\x02\x03\x04").decode()
    full_crcs = {"ChecksumCRC32": crc, "ChecksumCRC64NVME": crc, "ChecksumType": "FULL_OBJECT"}
    assert vouched(ETag=f'"{md5}"', **full_crcs) == {"md5": md5}
    assert vouched(ETag=f'"{md5}"', ServerSideEncryption="aws:kms") == {}
    assert vouched(ETag=f'"{md5}"', SSECustomerAlgorithm="AES256") == {}
    assert vouched(ETag='"x"', ChecksumSHA256=base64.b64encode(sha).decode(), ChecksumType="FULL_OBJECT") == {
        "sha256": sha.hex()}
    assert vouched(ETag=f'"{md5}-3"', ChecksumSHA256="abc=-3", ChecksumType="COMPOSITE") == {
        f"s3mpu@3:{5 << 20}": f"{md5}-3", f"sha256@3:{5 << 20}": "abc=-3"}


def test_actions_are_members_that_stay_text_in_the_plan_and_journal(scanned: tuple[Path, Config, Catalog, Path],
                                                                     tmp_path: Path) -> None:
    _, config, catalog, db = scanned
    assert remediation.Action("quarantine") is remediation.Action.quarantine
    assert {remediation.Action.tag: 1}["tag"] == 1 and f"{remediation.Action.delete}" == "delete"
    plan = remediation.build_plan(catalog, db, "tag")
    assert plan["action"] is remediation.Action.tag
    remediation.write_plan(plan, tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text())["action"] == "tag"
    loaded = remediation.load_plan(tmp_path / "plan.json")
    assert loaded["action"] is remediation.Action.tag and remediation.plan_digest(loaded) == plan["digest"]
    remediation.execute_plan(loaded, plan["digest"], tmp_path / "j.jsonl", catalog, config)
    header = remediation.read_journal(tmp_path / "j.jsonl")[0]
    assert header["action"] == "tag" and type(header["action"]) is str
    with pytest.raises(UsageError, match="one of tag, quarantine, transition, delete"):
        remediation.build_plan(catalog, db, "erase")


# ---- scope: what a plan takes without and with --policy ----------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_sample_estate_default_scope_is_the_redundant_exact_copies(tmp_path: Path) -> None:
    """The sample estate: without --policy only the redundant copies of exact groups are planned (not unique
    images flagged for their metadata, not near-duplicate members), and the review says what was left out;
    naming the near-duplicate policy takes its members, never a master."""
    import shutil

    root = tmp_path / "estate"
    shutil.copytree(REPO / "examples" / "estate", root)
    config, db = str(REPO / "examples" / "tierscan.yaml"), tmp_path / "t.db"
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, [*args, "--config", config], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("scan", str(root), "--db", str(db), "--format", "none", "--workers", "1")
    with Catalog(db) as catalog:
        exact = [g for g in catalog.groups() if g.kind == "exact"]
        copies = {m.uri for g in exact for m in g.members if m.uri != g.master}
    out = run("apply", "--db", str(db), "--action", "quarantine", "--to", str(tmp_path / "q"),
              "--plan", str(tmp_path / "p.json"))
    plan = json.loads((tmp_path / "p.json").read_text())
    assert {i["uri"] for i in plan["items"]} == copies and len(copies) == 4
    assert all(i["group_kind"] == "exact" for i in plan["items"])
    assert plan["scope"] == {"policies": [], "left_out": {remediation._NOT_COPIES: 6, remediation._NEAR_MEMBERS: 3}}
    assert "scope: redundant copies in exact groups only (no --policy)" in out
    assert f"left out: 3 {remediation._NEAR_MEMBERS}" in out
    review = run("apply", "--execute", str(tmp_path / "p.json"))
    assert f"left out: 6 {remediation._NOT_COPIES}" in review

    run("apply", "--db", str(db), "--action", "tag", "--policy", "near-duplicate-review",
        "--plan", str(tmp_path / "near.json"))
    near = json.loads((tmp_path / "near.json").read_text())
    with Catalog(db) as catalog:
        members = {m.uri for g in catalog.groups() if g.kind == "near" for m in g.members if m.uri != g.master}
        masters = {g.master for g in catalog.groups()}
    assert {i["uri"] for i in near["items"]} == members and members
    assert {e["uri"] for e in near["excluded"]} <= masters and near["excluded"]
    assert near["scope"]["policies"] == ["near-duplicate-review"]
    assert set(near["scope"]["left_out"]) == {remediation._OTHER_POLICIES}


def test_default_scope_leaves_out_objects_in_no_exact_group(scanned: tuple[Path, Config, Catalog, Path]) -> None:
    """A unique object flagged by an object policy stays out of the default scope, and is in that policy's."""
    from tierscan.scanner.core.models import Finding, Severity

    root, _, catalog, db = scanned
    copy, unique = (root / "copies" / "photo-1.jpg").as_uri(), (root / "copies" / "other.jpg").as_uri()
    found = [Finding(policy="gps", severity=Severity.high, action="strip-metadata", uris=[unique, copy], reason="r"),
             Finding(policy="dup", severity=Severity.low, action="delete-redundant", uris=[copy], reason="r")]
    plan = remediation.build_plan(catalog, db, "tag", findings=found)
    assert [i["uri"] for i in plan["items"]] == [copy]
    assert plan["scope"]["left_out"] == {remediation._NOT_COPIES: 1}
    plan = remediation.build_plan(catalog, db, "tag", policies=["gps"], findings=found)
    assert [i["uri"] for i in plan["items"]] == [unique, copy]
    assert plan["scope"]["left_out"] == {remediation._OTHER_POLICIES: 1}
    assert "scope: the objects that findings of 'gps' name (--policy)" in "\n".join(remediation.describe_plan(plan))


def test_unknown_policy_is_a_usage_error_with_the_closest_name(scanned: tuple[Path, Config, Catalog, Path],
                                                               tmp_path: Path) -> None:
    """Names come from the findings and from the config's policy set; one known only to the config is no
    error (its plan is empty). Through the CLI: exit 2, no plan written."""
    _, _, catalog, db = scanned
    with pytest.raises(UsageError, match=r"--policy redundant-copy: .*did you mean 'redundant-copies'"):
        remediation.build_plan(catalog, db, "tag", policies=["redundant-copy"])
    with pytest.raises(UsageError, match="did you mean 'cost-hot-copies'"):
        remediation.build_plan(catalog, db, "tag", policies=["cost-hot-copy"], known_policies=["cost-hot-copies"])
    empty = remediation.build_plan(catalog, db, "tag", policies=["cost-hot-copies"], known_policies=["cost-hot-copies"])
    assert empty["items"] == [] and empty["scope"]["left_out"] == {remediation._OTHER_POLICIES: 1}

    cfg = tmp_path / "tierscan.yaml"
    cfg.write_text(f"policies: {{packs: [], files: [{tmp_path / 'policy.yaml'}]}}\n")
    result = CliRunner().invoke(cli, ["apply", "--config", str(cfg), "--db", str(db), "--action", "tag",
                                      "--policy", "redundant-copiez", "--plan", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "did you mean 'redundant-copies'" in result.output
    assert not (tmp_path / "p.json").exists()


def test_an_action_the_backend_cannot_do_is_refused_at_plan_time(scanned: tuple[Path, Config, Catalog, Path],
                                                                tmp_path: Path) -> None:
    """transition on local folders: an error naming the backend and the action, no plan; and a plan edited
    into one (re-approved) is still skipped at execute time."""
    _, config, catalog, db = scanned
    with pytest.raises(UsageError, match=r"--action transition: the local connector cannot transition objects: "
                                         r"2 object\(s\) in scope on file://"):
        remediation.build_plan(catalog, db, "transition", to="COLD")
    cfg = tmp_path / "tierscan.yaml"
    cfg.write_text(f"policies: {{packs: [], files: [{tmp_path / 'policy.yaml'}]}}\n")
    result = CliRunner().invoke(cli, ["apply", "--config", str(cfg), "--db", str(db), "--action", "transition",
                                      "--to", "COLD", "--plan", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "local connector cannot transition" in result.output
    assert not (tmp_path / "p.json").exists()

    edited = remediation.build_plan(catalog, db, "delete")
    edited.update(action=remediation.Action.transition, to="COLD")
    edited["digest"] = remediation.plan_digest(edited)
    outcome = _run(edited, catalog, config, tmp_path / "j.jsonl")
    assert outcome.done == [] and all("cannot transition" in why for _, why in outcome.skipped)
    assert len(outcome.skipped) == 2

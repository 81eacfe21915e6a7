"""One writing command per catalog: a second scan (plan, merge, apply --execute) is refused at once and names
the holder; a holder killed with SIGKILL, or a child it forked, does not keep the catalog locked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import _remove_if_unused, cli
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import CatalogBusy, UsageError
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.catalog_lock import CatalogLock
from tierscan.scanner.scan.merge import merge_catalogs

PHOTO = (Path(__file__).parent / "data" / "exif" / "exifpy__Canon_40D.jpg").read_bytes()

# Holds the lock on argv[1]; with argv[2] == "fork", forks a child that outlives it. Prints the child's pid
# (or 0) once the lock is held, then waits to be killed.
_HOLDER = """
import os, sys, time
from pathlib import Path
from tierscan.scanner.scan.catalog_lock import CatalogLock
with CatalogLock(Path(sys.argv[1])):
    child = os.fork() if sys.argv[2] == "fork" else 0
    if child == 0 and sys.argv[2] == "fork":
        time.sleep(600)
        os._exit(0)
    print(child, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    root = tmp_path / "estate"
    (root / "b").mkdir(parents=True)
    for i in range(3):
        (root / "b" / f"p{i}.jpg").write_bytes(PHOTO + bytes([i]))
    return root


def _tierscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierscan.scanner", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def _hold(db: Path, fork: bool = False) -> tuple[subprocess.Popen[str], int]:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db), "fork" if fork else "-"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    return holder, int(holder.stdout.readline())


def _statuses(db: Path) -> dict[str, str]:
    with Catalog(db) as catalog:
        return {r.key: r.status for r in catalog.records(include_gone=True)}


@pytest.mark.slow
def test_second_scan_on_a_locked_catalog_is_refused_naming_the_holder(estate: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    assert _tierscan("scan", str(estate), "--db", str(db), "--format", "none").returncode == 0
    before = _statuses(db)
    holder, _ = _hold(db)
    try:
        (estate / "b" / "p0.jpg").unlink()  # a scan now would mark it gone
        second = _tierscan("scan", str(estate), "--db", str(db), "--format", "none")
        plan = _tierscan("plan", str(estate), "--db", str(db))
        report = _tierscan("report", "--db", str(db), "--format", "json")  # readers share the catalog
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert "in use by" in line and f"pid {holder.pid} on {socket.gethostname()}" in line
    assert "-c" in line  # the holder's command line
    assert plan.returncode == 2 and "in use by" in plan.stderr
    assert report.returncode == 0 and json.loads(report.stdout)["scan"]["listed"] == 3
    assert _statuses(db) == before  # nothing marked gone, nothing written


@pytest.mark.slow
def test_a_sigkilled_holder_does_not_block_the_next_scan(estate: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    holder, _ = _hold(db)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "t.db.lock").exists()  # the stale file is left behind; its lock is not
    done = _tierscan("scan", str(estate), "--db", str(db), "--format", "none")
    assert done.returncode == 0, done.stderr
    assert set(_statuses(db).values()) == {"fingerprinted"}


def test_a_forked_child_of_a_killed_holder_does_not_keep_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    holder, child = _hold(db, fork=True)
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the child still runs
        with CatalogLock(db):
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_second_holder_in_one_process_is_refused_and_a_released_lock_is_free(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with (CatalogLock(db), pytest.raises(CatalogBusy, match=rf"in use by pid {os.getpid()} "),
          CatalogLock(tmp_path / "." / "t.db")):
        pass
    with CatalogLock(db):
        pass


def test_a_symlinked_db_locks_the_same_catalog(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with CatalogLock(tmp_path / "real" / "t.db"), pytest.raises(CatalogBusy), CatalogLock(tmp_path / "alias" / "t.db"):
        pass


def test_a_lock_file_planted_as_a_symlink_is_refused_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "t.db.lock").symlink_to(victim)
    with pytest.raises(UsageError, match="lock file"), CatalogLock(tmp_path / "t.db"):
        pass
    assert victim.read_text() == "keep"


def test_merge_refuses_a_part_a_shard_scan_still_holds(tmp_path: Path) -> None:
    part = tmp_path / "part-0-of-2.db"
    Catalog(part).close()
    with (Catalog(tmp_path / "merged.db") as into, CatalogLock(part),
          pytest.raises(CatalogBusy, match=r"part-0-of-2\.db")):
        merge_catalogs([part], into, Config())


def test_merge_takes_a_part_named_twice_once(tmp_path: Path) -> None:
    part = tmp_path / "part.db"
    Catalog(part).close()
    with Catalog(tmp_path / "merged.db") as into:
        assert merge_catalogs([part, tmp_path / "." / "part.db"], into, Config()).parts == 2


@pytest.mark.parametrize("target", ["s3://", "az://account", "no-such-folder"])
def test_a_failed_command_leaves_no_new_empty_catalog(tmp_path: Path, target: str) -> None:
    db = tmp_path / "fresh.db"
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / target) if "://" not in target else target,
                                      "--db", str(db)])
    assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_command_keeps_a_catalog_that_holds_anything(tmp_path: Path) -> None:
    (tmp_path / "estate" / "b").mkdir(parents=True)
    (tmp_path / "estate" / "b" / "x.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    db = tmp_path / "t.db"
    scanned = CliRunner().invoke(cli, ["scan", str(tmp_path / "estate"), "--db", str(db), "--format", "none"])
    assert scanned.exit_code == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    assert CliRunner().invoke(cli, ["scan", "s3://", "--db", str(db)]).exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # A catalog this command created and then wrote into is kept, whatever ended the command.
    with Catalog(tmp_path / "n.db") as catalog, catalog.db:
        catalog.db.execute("INSERT INTO not_duplicates VALUES ('a', 'b')")
    _remove_if_unused(tmp_path / "n.db", None)
    assert (tmp_path / "n.db").exists()

"""Output files are replaced whole or not at all: a full disk or a kill -9 mid-write leaves the previous
file as it was, a failed write leaves no temporary file behind, and a completed write is the whole output."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.models import InventoryRecord, Report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "exif"
PREVIOUS = "the previous output\n"

# `tierscan` with the catalog's record streams hooked (the inventory's records, the report's tally of them):
# once the first record is read (the catalog is open),
# FILL_AT makes every file larger than that many bytes fail to grow (EFBIG, as a full disk gives ENOSPC);
# KILL_AFTER kills the process with SIGKILL when that many records have been handed out.
HOOK = """
import os, resource, signal, sys
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.cli import main

fill_at, kill_after = int(os.environ.get("FILL_AT", 0)), int(os.environ.get("KILL_AFTER", 0))

def hooking(records):
    def hooked(self, *args, **kwargs):
        for n, record in enumerate(records(self, *args, **kwargs)):
            if n == 0 and fill_at:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fill_at, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            if kill_after and n == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            yield record
    return hooked

Catalog.records = hooking(Catalog.records)
Catalog.tally_records = hooking(Catalog.tally_records)
sys.argv[0] = "tierscan"
main()
"""

OUTPUTS = [
    ("report", "html"), ("report", "json"), ("report", "csv"), ("report", "table"),
    ("inventory", "jsonl"), ("inventory", "csv"), ("inventory", "parquet"),
]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def hooked(cwd: Path, *args: str, **env: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOOK, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **{k: str(v) for k, v in env.items()}},
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("atomic")
    for i, name in enumerate(sorted(p.name for p in DATA.glob("exifpy__*.jpg"))[:12]):
        bucket = root / "estate" / ("hot" if i % 2 else "archive")
        bucket.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / name, bucket / name)
    shutil.copy(DATA / "exifpy__Canon_40D.jpg", root / "estate" / "hot" / "copy.jpg")  # one exact group
    run("scan", str(root / "estate"), "--db", str(root / "t.db"), "--format", "none")
    return root / "t.db"


def write_args(db: Path, command: str, fmt: str, output: Path) -> list[str]:
    return [command, "--db", str(db), "--format", fmt, "--output", str(output)]


def assert_whole(command: str, fmt: str, path: Path, db: Path) -> None:
    """`path` holds the complete output: it parses and names every object (or bucket) of the catalog."""
    records = [InventoryRecord.model_validate_json(line) for line in run("inventory", "--db", str(db)).splitlines()]
    if command == "inventory":
        if fmt == "parquet":
            import pyarrow.parquet as pq

            assert pq.read_table(path).column("uri").to_pylist() == [r.uri for r in records]
        else:
            assert path.read_text(encoding="utf-8") == run("inventory", "--db", str(db), "--format", fmt)
        return
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        assert Report.model_validate_json(text).totals.objects == len(records)
    elif fmt == "html":
        assert text.rstrip().endswith("</html>")
    elif fmt == "csv":
        assert text.count("\n") == 1 + len({r.bucket for r in records})
    else:
        assert "Buckets by monthly savings" in text and "exact duplicate groups" in text


@pytest.mark.slow
@pytest.mark.parametrize(("command", "fmt"), OUTPUTS)
def test_a_full_disk_mid_write_leaves_the_previous_file_and_no_temp_file(
    db: Path, tmp_path: Path, command: str, fmt: str
) -> None:
    whole = tmp_path / "whole" / f"out.{fmt}"
    whole.parent.mkdir()
    run(*write_args(db, command, fmt, whole))
    assert_whole(command, fmt, whole, db)
    target = tmp_path / "out" / f"out.{fmt}"
    target.parent.mkdir()
    target.write_text(PREVIOUS, encoding="utf-8")
    done = hooked(tmp_path, *write_args(db, command, fmt, target), FILL_AT=whole.stat().st_size // 2)
    assert done.returncode != 0, done.stderr
    assert target.read_text(encoding="utf-8") == PREVIOUS
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_kill_9_mid_inventory_leaves_the_previous_file(db: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"inventory.{fmt}"
    target.write_text(PREVIOUS, encoding="utf-8")
    done = hooked(tmp_path, *write_args(db, "inventory", fmt, target), KILL_AFTER=5)
    assert done.returncode == -signal.SIGKILL
    assert target.read_text(encoding="utf-8") == PREVIOUS
    run(*write_args(db, "inventory", fmt, target))  # the next run replaces it whole
    assert_whole("inventory", fmt, target, db)


def test_an_exception_mid_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path) -> None:
    """The shared helper under every writer: an exception mid-write (a full disk) keeps the old file."""
    target = tmp_path / "report.json"
    target.write_text(PREVIOUS, encoding="utf-8")
    with pytest.raises(OSError, match="No space left"), atomic_write(target) as fh:
        fh.write("{\"half\": ")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text(encoding="utf-8") == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_replaced_file_keeps_its_mode_and_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    """Guards what writing in place gave for free: a report made private stays private, and a link into
    a web root keeps pointing where it did."""
    real = tmp_path / "real.html"
    real.write_text(PREVIOUS, encoding="utf-8")
    real.chmod(0o600)
    link = tmp_path / "link.html"
    link.symlink_to(real)
    with atomic_write(link) as fh:
        fh.write("new")
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_a_pipe_is_written_directly(tmp_path: Path) -> None:
    """`--output /dev/stdout` or a named pipe cannot be replaced: it is written to."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with atomic_write(fifo) as fh:
        fh.write(json.dumps({"whole": True}))
    reader.join(timeout=60)
    assert received == [b'{"whole": true}'] and stat.S_ISFIFO(fifo.stat().st_mode)

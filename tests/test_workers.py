"""Fingerprint workers that cannot stall, outlive or overrun a scan: a per-object deadline after which the
worker is replaced and the object skipped, workers that end with the scanning process however it ends,
and a bounded number of them."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import tierscan.scanner.fingerprint.image as image
import tierscan.scanner.fingerprint.pool as fp
from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config, ScanSettings, workers_bound
from tierscan.scanner.fingerprint.exif.reader import read_prefix
from tierscan.scanner.fingerprint.image import fingerprint_bytes
from tierscan.scanner.fingerprint.pool import FingerprintPool, WorkerFailed, worker_count
from tierscan.scanner.fingerprint.record import Fingerprint
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.pipeline import run_scan

STALL = b"tierscan-test-stall"  # an object holding this never gets an answer from the patched jobs below
_REAL_FINGERPRINT = fingerprint_bytes
_REAL_READ_PREFIX = read_prefix


def _stalling_fingerprint(data: bytes, **wants: bool) -> Fingerprint:
    if STALL in data:
        time.sleep(3600)
    return _REAL_FINGERPRINT(data, **wants)


def _stalling_read_prefix(data: bytes):  # type: ignore[no-untyped-def]
    if STALL in data:
        time.sleep(3600)
    return _REAL_READ_PREFIX(data)


def _jpeg(width: int, height: int, comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    if comment:  # a COM segment right after SOI: in the head of the file, where any read sees it
        data = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
    return data


def _gone(pid: int) -> bool:
    """Whether `pid` has ended (a zombie waiting for a reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.slow
def test_an_object_that_never_finishes_is_answered_parse_timeout_and_the_others_complete(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "fingerprint_bytes", _stalling_fingerprint)  # before the pool forks
    images = [_jpeg(200 + 16 * i, 150) for i in range(8)]
    images[1] = _jpeg(240, 180, STALL)
    wants = {"want_sha256": True, "want_perceptual": True}
    with FingerprintPool(workers=2, timeout=3) as pool:
        before = {w.process.pid for w in pool._workers}

        async def run() -> tuple[list[Fingerprint], list[Fingerprint]]:
            first = await asyncio.gather(*[pool.submit(d, **wants) for d in images])
            return first, await asyncio.gather(*[pool.submit(d, **wants) for d in images if STALL not in d])

        answered, after = asyncio.run(asyncio.wait_for(run(), 120))
        after_pids = {w.process.pid for w in pool._workers}
        if pool._arena is not None:
            assert pool._arena.free_bytes() == pool._arena.size  # nothing left placed
    stalled = answered[1]
    assert stalled.error is not None and stalled.error.startswith("parse timeout")
    assert "3 s" in stalled.error  # the limit is named
    expected = [_REAL_FINGERPRINT(d, **wants) for i, d in enumerate(images) if i != 1]
    assert [r for i, r in enumerate(answered) if i != 1] == expected  # the objects queued behind it too
    assert after == expected  # and the pool goes on, at full strength
    assert len(after_pids) == 2 and len(before & after_pids) == 1
    assert all(_gone(pid) for pid in before - after_pids)


@pytest.mark.slow
def test_a_metadata_parse_that_never_finishes_fails_with_parse_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "read_prefix", _stalling_read_prefix)
    good = _jpeg(64, 48)
    with FingerprintPool(workers=1, timeout=3) as pool:
        async def run() -> tuple[object, object]:
            stalled = pool.read_prefix(_jpeg(64, 48, STALL))
            fine = pool.read_prefix(good)  # queued behind it on the only worker
            return await asyncio.gather(stalled, fine, return_exceptions=True)

        stalled, fine = asyncio.run(asyncio.wait_for(run(), 120))
    assert isinstance(stalled, WorkerFailed) and str(stalled).startswith("parse timeout")
    assert fine == _REAL_READ_PREFIX(good)


def _estate(tmp_path: Path) -> Path:
    bucket = tmp_path / "estate" / "b"
    bucket.mkdir(parents=True)
    for i in range(4):
        (bucket / f"ok{i}.jpg").write_bytes(_jpeg(120 + 8 * i, 90))
    (bucket / "stall.jpg").write_bytes(_jpeg(128, 96, STALL))
    return bucket.parent


@pytest.mark.slow
@pytest.mark.parametrize("perceptual", [True, False])
def test_a_scan_skips_an_object_past_the_deadline_as_a_parse_timeout_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, perceptual: bool) -> None:
    # With perceptual hashes objects are fingerprinted whole; without, their metadata is walked by
    # ranges (`tierscan.scanner.scan.plan.ranged_metadata`), in the pool too.
    monkeypatch.setattr(image, "fingerprint_bytes", _stalling_fingerprint)
    monkeypatch.setattr(fp, "read_prefix", _stalling_read_prefix)
    config = Config(scan=ScanSettings(workers=2, object_timeout=3, perceptual=perceptual))
    with Catalog(tmp_path / "t.db") as catalog:
        asyncio.run(asyncio.wait_for(run_scan(config, catalog, [str(_estate(tmp_path))]), 300))
        records = {r.key: r for r in catalog.records()}
    assert records["stall.jpg"].status == "skipped"
    assert (records["stall.jpg"].reason or "").startswith("parse timeout")
    assert "3 s" in (records["stall.jpg"].reason or "")
    assert {k: r.status for k, r in records.items() if k != "stall.jpg"} == {
        f"ok{i}.jpg": "fingerprinted" for i in range(4)}


@pytest.mark.slow
def test_the_cli_takes_the_object_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "fingerprint_bytes", _stalling_fingerprint)
    estate = _estate(tmp_path)
    result = CliRunner().invoke(cli, ["scan", str(estate), "--db", str(tmp_path / "t.db"), "--workers", "1",
                                      "--object-timeout", "3", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Catalog(tmp_path / "t.db") as catalog:
        records = {r.key: r for r in catalog.records()}
    assert "within 3 s" in (records["stall.jpg"].reason or "")
    assert records["ok0.jpg"].status == "fingerprinted"


_POOL_THEN_WAIT = """
import sys, time
import tierscan.scanner.fingerprint.pool as fp
if sys.argv[1] == "without-pdeathsig":  # only the pipes' EOF can tell the workers their parent is gone
    fp._die_with_parent = lambda parent: None
pool = fp.FingerprintPool(workers=3)
print(" ".join(str(w.process.pid) for w in pool._workers), flush=True)
time.sleep(3600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["with-pdeathsig", "without-pdeathsig"])
def test_workers_end_when_the_scanning_process_is_killed(how: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _POOL_THEN_WAIT, how], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent)
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 3 and not any(_gone(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    guard = time.monotonic() + 60  # a guard, not a measure: they end at once
    while not all(_gone(pid) for pid in pids) and time.monotonic() < guard:
        time.sleep(0.1)
    left = [pid for pid in pids if not _gone(pid)]
    for pid in left:  # do not leave them running when this fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_the_pool_starts_no_more_workers_than_memory_or_the_work_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "available_memory", lambda: 3 * fp.WORKER_MEMORY + 1)
    assert worker_count(8) == 3
    assert worker_count(8, tasks=2) == 2
    assert worker_count(2) == 2
    monkeypatch.setattr(fp, "available_memory", lambda: 0)
    assert worker_count(8) == 1  # one at least: the scan needs a worker to go on
    monkeypatch.setattr(fp, "available_memory", lambda: None)  # nothing known: as asked
    assert worker_count(8, tasks=100) == 8
    monkeypatch.setattr(fp, "available_memory", lambda: 3 * fp.WORKER_MEMORY)
    with FingerprintPool(workers=8, tasks=5) as pool:
        assert pool.workers == len(pool._workers) == 3


def test_available_memory_is_known_here() -> None:
    memory = fp.available_memory()
    assert memory is not None and memory > 0


def test_too_many_workers_are_refused_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--db", str(tmp_path / "t.db"),
                                      "--workers", "100000000"])
    assert result.exit_code == 2
    assert f"at most {workers_bound()}" in result.output
    assert not (tmp_path / "t.db").exists()  # refused before anything ran
    config = tmp_path / "c.yaml"
    config.write_text("scan:\n  workers: 100000000\n")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--db", str(tmp_path / "t.db"),
                                      "--config", str(config)])
    assert result.exit_code == 2
    assert "scan.workers" in result.output and f"at most {workers_bound()}" in result.output


def test_the_workers_bound_is_four_per_core_and_at_most_256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert workers_bound() == 8
    assert ScanSettings(workers=8).workers == 8
    with pytest.raises(ValueError, match="at most 8"):
        ScanSettings(workers=9)
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    assert workers_bound() == 256


def test_a_worker_forked_while_a_thread_holds_numbas_compiler_lock_still_hashes() -> None:
    """A replacement forks mid-scan, when the index kernels may be loading in a thread: a child that
    inherited the compiler lock held by that thread would wait for it forever at its first hash."""
    import threading

    from numba.core.compiler_lock import global_compiler_lock

    data = _jpeg(300, 200)
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with global_compiler_lock:
            held.set()
            done.wait(30)

    with FingerprintPool(workers=1, timeout=20) as pool:
        async def run() -> tuple[Fingerprint, Fingerprint]:
            thread = threading.Thread(target=hold)
            thread.start()
            held.wait()
            victim = pool._workers[0].process
            first = pool.submit(data, want_sha256=False, want_perceptual=True)
            victim.kill()  # its replacement forks while the thread holds the lock (a second more)
            threading.Timer(1, done.set).start()
            died = await first
            again = await pool.submit(data, want_sha256=False, want_perceptual=True)
            thread.join()
            return died, again

        died, again = asyncio.run(asyncio.wait_for(run(), 120))
    assert died.error is not None and "died" in died.error
    assert again.error is None and again.phash == _REAL_FINGERPRINT(data, want_sha256=False,
                                                                    want_perceptual=True).phash


def _never_set_up() -> None:
    time.sleep(3600)


@pytest.mark.slow
def test_workers_that_never_set_up_cannot_hang_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "init_worker", _never_set_up)  # every worker, replacements too
    monkeypatch.setattr(fp, "SETUP_TIME", 1.0)
    with FingerprintPool(workers=1, timeout=1) as pool:
        async def run() -> list[Fingerprint]:
            return await asyncio.gather(*[pool.submit(_jpeg(64, 48), want_sha256=True, want_perceptual=True)
                                          for _ in range(2)])

        answers = asyncio.run(asyncio.wait_for(run(), 120))
    assert [(a.error or "").startswith("parse timeout: its worker did not start within 2 s") for a in answers] == [
        True, True]


def test_a_readable_callback_queued_behind_the_deadline_finds_its_worker_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline and the worker's pipe turning readable (its death) can fall in one loop iteration:
    the second callback must see the worker is already replaced, not replace it again."""
    monkeypatch.setattr(image, "fingerprint_bytes", _stalling_fingerprint)
    with FingerprintPool(workers=1, timeout=600) as pool:
        async def run() -> Fingerprint:
            answer = pool.submit(_jpeg(64, 48, STALL), want_sha256=True, want_perceptual=True)
            worker = pool._workers[0]
            while not worker.ready:
                await asyncio.sleep(0.05)
            pool._overdue(worker, worker.waiting[0])  # as if the deadline had come
            pool._answered(worker)  # and then its pipe's callback, queued in the same iteration
            return await answer

        stalled = asyncio.run(asyncio.wait_for(run(), 120))
        assert len(pool._workers) == 1 and pool._workers[0].died is None
    assert (stalled.error or "").startswith("parse timeout")


def opencv_threads(_: object) -> int:
    import cv2

    return int(cv2.getNumThreads())


def test_workers_forked_by_a_process_whose_opencv_pool_runs_hash_on_one_thread_scan_after_scan() -> None:
    """The pool loads the hashing kernels (OpenCV among them) before its workers fork. A process that has
    run OpenCV on threads of its own, as a library user's might, still gets workers that answer, pool
    after pool, each running OpenCV on its own thread alone (a worker is one core's work; pool threads do
    not survive a fork). Run apart, so that a worker waiting for ever fails at the subprocess's timeout."""
    code = (
        "import asyncio, cv2, numpy as np\n"
        "from tierscan.scanner.fingerprint.pool import FingerprintPool\n"
        "from tests.test_workers import _jpeg, opencv_threads\n"
        "cv2.setNumThreads(4)\n"
        "cv2.GaussianBlur(np.zeros((2000, 2000), np.uint8), (31, 31), 0)  # OpenCV's pool threads start\n"
        "for _ in range(3):\n"
        "    with FingerprintPool(workers=2, timeout=20) as pool:\n"
        "        async def run():\n"
        "            hashed = await asyncio.gather(*(pool.submit(_jpeg(300 + i, 200), want_sha256=False,\n"
        "                                                        want_perceptual=True) for i in range(4)))\n"
        "            return hashed, await pool.submit_batch(opencv_threads, [None])\n"
        "        hashed, threads = asyncio.run(run())\n"
        "        assert all(f.error is None and f.phash for f in hashed) and threads == [1], threads\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1], timeout=180)


def niceness(_: object) -> int:
    return os.nice(0)


def test_workers_run_below_the_scanning_process_that_feeds_them() -> None:
    with FingerprintPool(workers=2, perceptual=False) as pool:
        async def run() -> list[list[int]]:
            return list(await asyncio.gather(*(pool.submit_batch(niceness, [None]) for _ in range(4))))

        found = {n for answer in asyncio.run(run()) for n in answer}
    assert found == {min(19, os.nice(0) + fp._WORKER_NICENESS)}

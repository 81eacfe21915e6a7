"""One writing command per catalog: `CatalogLock`, an exclusive `flock` on `<db>.lock`.

Scan, plan, merge (and each part it reads), apply --execute and near ignore hold it from start to end; a
second one is refused at once (`CatalogBusy`, CLI exit 2) with the holder's pid, host, command line and
start time. Readers (report, inventory, near ignored, writing an apply plan) take no lock: SQLite's WAL
mode lets them read the last committed state while a writer runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

from tierscan.scanner.core.errors import CatalogBusy, UsageError

__all__ = ["CatalogLock"]


# Lock descriptors this process holds: a forked child (fingerprint workers, verification processes) closes
# its copies, so that a child outliving a killed scan cannot keep the catalog locked.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        os.close(fd)  # the child's reference only: the parent's lock stays
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _printable(text: str) -> str:
    """`text` with control characters escaped, for one clear line on a terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class CatalogLock:
    """Exclusive use of a catalog by one writing command: `flock` on `<db>.lock` beside the catalog's real
    path (a symlinked --db locks the same file).

    The kernel drops the lock when its holder exits, however it exits: a SIGKILLed scan leaves the file
    but not the lock, so the next run takes it. The lock file is not deleted (deleting it could let two
    processes lock two different files), except by the command that created it, while it holds the lock,
    when it leaves no catalog behind (`tierscan.scanner.cli`): locking never waits, so a process that
    opened the old file meanwhile was refused. It holds the holder's pid, host, command line and start time for
    the message a refused process prints. Independent of SQLite's own locks, so WAL readers are unaffected.
    A file system without `flock` is refused rather than scanned unlocked.
    """

    def __init__(self, db: Path):
        self.db = db
        real = db.resolve()
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> CatalogLock:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot open the catalog's lock file: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"{self.path}: the catalog's lock file is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CatalogBusy(f"{self.db}: the catalog is in use by {_holder(fd)}; wait for it to end, "
                                  "or use another --db") from None
            except OSError as exc:
                raise UsageError(f"{self.path}: cannot lock the catalog ({exc.strerror}); keep it on a local "
                                 "file system") from None
            _describe(fd, json.dumps(_this_process()).encode("utf-8"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD_LOCKS.add(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        _HELD_LOCKS.discard(self._fd)
        _describe(self._fd, b"")  # still held: nobody reads a departed holder's details
        os.close(self._fd)
        self._fd = None


def _describe(fd: int, details: bytes) -> None:
    """Replace the lock file's details of its holder: best effort (a full disk does not stop the scan)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, details, 0)
    except OSError:
        pass


def _this_process() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
            "since": datetime.now(UTC).isoformat(timespec="seconds")}


def _holder(fd: int) -> str:
    """Who holds the lock, as its lock file says (it may be empty while the holder is starting)."""
    try:
        info = json.loads(os.pread(fd, 65536, 0))
        text = (f"pid {int(info['pid'])} on {info['host']} since {info['since']} "
                f"(`{str(info['command'])[:300]}`)")
    except (OSError, ValueError, KeyError, TypeError):
        return "another tierscan process"
    return _printable(text)

"""Writing a user-facing file so that it is either the previous version or the whole new one.

`atomic_write` streams into a hidden temporary file in the target's folder, then flushes and fsyncs it,
renames it over the target and fsyncs the folder. An exception (a failed writer, a full disk) removes the
temporary file and leaves the previous file untouched; a process killed mid-write leaves the previous file
too (and at most a `.NAME.*.tmp` file beside it). The new file keeps the mode of the one it replaces, or gets
the umask's default for a new file. A target that exists and is not a regular file (`/dev/stdout`, a named
pipe) is written directly: it cannot be replaced, only written to.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

__all__ = ["atomic_write", "fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new name in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(target: Path) -> tuple[int, Path]:
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            # 0o666 less the umask, as a plain open() would create it.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_write(path: Path, mode: Literal["w", "wb"] = "w", *,
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Yield a file object (text mode: UTF-8, `newline` as for open()) whose content replaces `path` whole
    when the block ends without an exception, and never otherwise."""
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, mode, encoding=None if "b" in mode else "utf-8", newline=newline) as fh:
            yield fh
        return
    target = Path(os.path.realpath(path))  # through a symlink: the link stays, its target is replaced
    fd, tmp = _create_temp(target)
    try:
        if existing is not None:
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)

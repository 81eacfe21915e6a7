"""OS errors on demand for tests: as root, permissions cannot make a folder unreadable."""

from __future__ import annotations

import os

import pytest


def deny(monkeypatch: pytest.MonkeyPatch, folders: set[str], code: int) -> None:
    """Opening or listing these folders fails with `code` (as root, permissions cannot make it so)."""
    real_open, real_scandir = os.open, os.scandir

    def fail(path) -> None:  # type: ignore[no-untyped-def]
        if isinstance(path, (str, os.PathLike)) and str(path) in folders:
            raise OSError(code, os.strerror(code), str(path))

    def opened(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & os.O_DIRECTORY:
            fail(path)
        return real_open(path, flags, *args, **kwargs)

    def scandir(path="."):  # type: ignore[no-untyped-def]
        fail(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "scandir", scandir)


def fail_reads(monkeypatch: pytest.MonkeyPatch, inode: int, code: int) -> None:
    """Reading the file with this inode fails with `code` (a disk error mid-read)."""
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        if os.fstat(fd).st_ino == inode:
            raise OSError(code, os.strerror(code))
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)

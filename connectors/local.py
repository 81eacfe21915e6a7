"""Local folders, the embedded default: `tierscan scan PATH` treats each top-level sub-folder as a bucket.

Files directly inside PATH form a bucket named after PATH itself. Tier and region come from the config
file (`buckets:` by folder name, else `defaults:` hot / "local"). Symlinked folders are not followed, so a
symlink loop cannot trap the walk; symlinked files are read like files. Scans never write; only
`tierscan apply` does: quarantine moves a file (a hard link to the destination, then an unlink of the
source, so no file is ever overwritten), tags are user extended attributes (`user.tierscan.*`; the file
system must support them), delete unlinks. Local files have no ETag: size and modified time stand in.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import AsyncGenerator, AsyncIterator, Iterator
from urllib.parse import unquote, urlsplit

from scanner.errors import ObjectDenied, ObjectGone, UsageError
from scanner.models import ObjectRef

from .base import Capabilities, Connector, Location, ObjectState, Target

__all__ = ["LocalConnector"]

_BATCH = 512  # directory entries handed from the walker thread at a time


class LocalConnector(Connector):
    scheme = "file"
    capabilities = Capabilities(
        name="local",
        free_checksums=frozenset(),  # a file system gives no content hash without reading
        ranged_reads=True,
        suffix_ranges=True,
        versioning=False,
        lists_all_buckets=False,
        tier_table="local",
        max_concurrency=64,
        restores=False,
        writes=frozenset({"tag", "move", "delete"}),
    )

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        root = Path(target.location).expanduser()
        if not root.is_dir():
            raise UsageError(f"{target.raw}: not a folder")
        root = root.resolve()
        walker = _walk(root)
        while True:
            batch = await asyncio.to_thread(_take, walker, _BATCH)
            if not batch:
                return
            for path, st in batch:
                rel = path.relative_to(root)
                bucket, key = (rel.parts[0], "/".join(rel.parts[1:])) if len(rel.parts) > 1 else (root.name, rel.name)
                yield self.make_ref(
                    uri=path.as_uri(),
                    bucket=bucket,
                    key=key,
                    size=st.st_size,
                    modified=_mtime(st),
                    storage_class=None,
                    region=None,
                )

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        return await asyncio.to_thread(_read, _path_of(ref), start, end, ref)


    # ---- writes (`tierscan apply` only) --------------------------------------------------------
    # Never through a symbolic link: paths are inspected with lstat and opened with O_NOFOLLOW, and a path
    # with a symlinked folder on it is refused. A file is removed only while it is still the very file
    # (device, inode, size, modified time) apply checked.

    async def stat(self, loc: Location) -> ObjectState | None:
        def run() -> ObjectState | None:
            path = _path_of(loc)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return None
            return ObjectState(size=st.st_size, modified=_mtime(st), identity=_identity(st),
                               link=S_ISLNK(st.st_mode) or _through_link(path))

        return await asyncio.to_thread(run)

    async def read_chunks(self, loc: Location, state: ObjectState, chunk: int) -> AsyncGenerator[bytes, None]:
        path = _path_of(loc)
        fd = await asyncio.to_thread(_open_checked, path, state)
        try:
            while data := await asyncio.to_thread(os.read, fd, chunk):
                yield data
        finally:
            os.close(fd)

    async def get_tags(self, loc: Location) -> dict[str, str]:
        def run() -> dict[str, str]:
            path = _path_of(loc)
            try:
                names = [n for n in os.listxattr(path) if n.startswith(_XATTR)]
                return {n[len(_XATTR):]: os.getxattr(path, n).decode("utf-8") for n in names}
            except OSError as exc:
                raise UsageError(f"{path}: cannot read extended attributes (tags): {exc.strerror}") from None

        return await asyncio.to_thread(run)

    async def set_tags(self, loc: Location, tags: dict[str, str], *, expect: ObjectState) -> None:
        current = await self.get_tags(loc)

        def run() -> None:
            path = _path_of(loc)
            try:
                for name in current.keys() - tags.keys():
                    os.removexattr(path, _XATTR + name)
                for name, value in tags.items():
                    os.setxattr(path, _XATTR + name, value.encode("utf-8"))
            except OSError as exc:
                raise UsageError(f"{path}: cannot write extended attributes (tags): {exc.strerror}") from None

        await asyncio.to_thread(run)

    async def move(self, src: Location, dst: Location, *, expect: ObjectState) -> ObjectState:
        def run() -> ObjectState:
            source, target = _path_of(src), _path_of(dst)
            st = _unchanged(source, expect)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target, follow_symlinks=False)  # fails if the target exists: never overwrites
            except FileExistsError:
                raise UsageError(f"{target}: already exists; not overwritten") from None
            except OSError:  # another file system: copy, flush, compare, then link the copy into place
                tmp = target.with_name(f".{target.name}.tierscan-tmp")
                shutil.copy2(source, tmp, follow_symlinks=False)
                try:
                    with open(tmp, "rb") as fh:
                        os.fsync(fh.fileno())
                    if not _equal_files(source, st, tmp):
                        raise ObjectGone(f"{source}: the copy in {target.parent} differs; the source is kept")
                    os.link(tmp, target)
                finally:
                    os.unlink(tmp)
            _fsync_dir(target.parent)
            _unchanged(source, expect)  # still the very file, right before it is removed
            os.unlink(source)
            _fsync_dir(source.parent)
            return ObjectState(size=st.st_size, modified=_mtime(os.lstat(target)))

        return await asyncio.to_thread(run)

    async def delete(self, loc: Location, *, expect: ObjectState) -> str | None:
        def run() -> None:
            path = _path_of(loc)
            _unchanged(path, expect)  # right before the unlink: the very file that was proven
            os.unlink(path)
            _fsync_dir(path.parent)

        await asyncio.to_thread(run)
        return None


_XATTR = "user.tierscan."


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _identity(st: os.stat_result) -> tuple[str, ...]:
    return (str(st.st_dev), str(st.st_ino))


def _through_link(path: Path) -> bool:
    """Whether a folder on the path is a symbolic link (scan URIs are resolved paths)."""
    return os.path.realpath(path.parent) != str(path.parent)


def _unchanged(path: Path, expect: ObjectState) -> os.stat_result:
    """The file's lstat if it is still the regular file `expect` describes (same device and inode when
    known, size, modified time), reached through no symlink; else ObjectGone / UsageError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ObjectGone(f"{path}: vanished") from None
    if S_ISLNK(st.st_mode) or _through_link(path):
        raise UsageError(f"{path}: a symbolic link (or a symlinked folder); never followed")
    if not _is(st, expect):
        raise ObjectGone(f"{path}: changed since it was checked")
    return st


def _is(st: os.stat_result, expect: ObjectState) -> bool:
    return (S_ISREG(st.st_mode) and st.st_size == expect.size
            and (expect.modified is None or _mtime(st) == expect.modified)
            and (expect.identity is None or _identity(st) == expect.identity))


def _open_checked(path: Path, expect: ObjectState) -> int:
    """A descriptor on the file `expect` describes, opened without following a symlink."""
    if _through_link(path):
        raise UsageError(f"{path}: a symlinked folder on the path; never followed")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ObjectGone(f"{path}: vanished") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot open without following links: {exc.strerror}") from None
    if not _is(os.fstat(fd), expect):
        os.close(fd)
        raise ObjectGone(f"{path}: changed since it was checked")
    return fd


def _equal_files(source: Path, expect: os.stat_result, copy: Path, chunk: int = 1 << 20) -> bool:
    """Whether `copy` holds the bytes of `source` (still the file `expect` describes), read in chunks."""
    state = ObjectState(size=expect.st_size, modified=_mtime(expect), identity=_identity(expect))
    a = _open_checked(source, state)
    try:
        with open(copy, "rb") as b:
            while True:
                data = os.read(a, chunk)
                if data != b.read(len(data) or 1):
                    return False
                if not data:
                    return True
    finally:
        os.close(a)


def _path_of(ref: ObjectRef | Location) -> Path:
    return Path(unquote(urlsplit(ref.uri).path))


def _read(path: Path, start: int, end: int, ref: ObjectRef) -> bytes:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size != ref.size or _mtime(st) != ref.modified:
                # Replaced since it was listed: never hand out bytes of a version the listing did not see.
                raise ObjectGone(f"{path}: changed since it was listed")
            f.seek(start)
            return f.read(end - start)
    except FileNotFoundError as exc:
        raise ObjectGone(f"{path}: vanished since it was listed") from exc
    except PermissionError as exc:
        raise ObjectDenied(f"{path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise ObjectGone(f"{path}: is now a folder") from exc


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=timezone.utc)


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files below `root` in a stable order, without following symlinked folders."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # an unreadable or vanished folder holds nothing we can list
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True):
                    yield Path(entry.path), entry.stat(follow_symlinks=True)
            except OSError:
                continue  # a broken symlink or a file that vanished while listing
        stack.extend(reversed(subdirs))


def _take(it: Iterator[tuple[Path, os.stat_result]], n: int) -> list[tuple[Path, os.stat_result]]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out

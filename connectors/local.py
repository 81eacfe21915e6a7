"""Local folders, the embedded default: `tierscan scan PATH` treats each top-level sub-folder as a bucket.

Files directly inside PATH form a bucket named after PATH itself. Tier and region come from the config
file (`buckets:` by folder name, else `defaults:` hot / "local").

Only regular files are read, and never from outside PATH. Everything else is listed as skipped with its
reason (visible in the report's skipped list and the inventory) and never opened: FIFOs, sockets and
devices, broken symlinks and symlink loops, symlinks whose fully resolved target is outside PATH (unless
the config's `local.follow_symlinks_out` allows them), and folders that cannot be listed (what an earlier
scan found in them is kept as it was). Symlinked folders inside PATH are not walked: their files are
listed where they are. A read reaches the file from PATH without following links: in one openat2 call
that the kernel resolves beneath PATH refusing every symlink, else opening each path component relative
to its parent (a path through a symlink inside PATH is resolved first and must stay inside). It opens
non-blocking and refuses what is not a regular file by then, so a file swapped for a FIFO or a link out
after the listing is not read. Any OS error while listing or reading (EIO, ELOOP, EACCES, ...) skips
that entry with its reason; only a PATH that cannot be listed at all stops the scan. Scans never write;
only `tierscan apply` does: quarantine moves a file (a hard link to the destination, then an unlink of the
source, so no file is ever overwritten), tags are user extended attributes (`user.tierscan.*`; the file
system must support them), delete unlinks. Local files have no ETag: size and modified time stand in.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import errno
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import Any, NamedTuple
from urllib.parse import quote_from_bytes, unquote, urlsplit

from tierscan.connectors.base import Capabilities, Check, Connector, Location, ObjectState, Target, WorkerRead
from tierscan.scanner.core.atomic import atomic_write, fsync_dir
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import (
    ObjectDenied,
    ObjectError,
    ObjectGone,
    ObjectReadError,
    ObjectRefused,
    UsageError,
)
from tierscan.scanner.core.models import ObjectRef

__all__ = ["LocalConnector"]

_BATCH = 512  # directory entries walked between two pauses for the event loop
_INLINE_READ = 64 << 10  # reads of at most this many bytes run on the event loop, larger ones in a thread
_SLOW_READ = 0.001  # seconds: small reads slower than this on average come from storage with latency


class LocalConnector(Connector):
    scheme = "file"
    capabilities = Capabilities(
        name="local",
        ranged_reads=True,
        versioning=False,
        lists_all_buckets=False,
        tier_table="local",
        max_concurrency=64,
        restores=False,
        writes=frozenset({"tag", "move", "delete", "put"}),
        worker_reads=True,
    )

    def __init__(self, config: Config, **kwargs: Any):
        super().__init__(config, **kwargs)
        self._roots: set[Path] = set()  # the folders listed: reads must stay inside them
        self._root_texts: tuple[str, ...] = ()  # the same as text, for worker reads
        self._inline = True  # small reads on the event loop, until they are slow
        self._read_seconds = 0.0  # moving average of a small read's time (over about 64 reads)

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        root = Path(target.location).expanduser()
        if not root.is_dir():
            raise UsageError(f"{target.raw}: not a folder")
        root = root.resolve()
        self._roots.add(root)
        self._root_texts = tuple(str(folder) for folder in self._roots)
        if not _local_disk(root):
            self._inline = False  # a read there may hang in the kernel: only ever in a thread, under a timeout
        walker = _walk(root, follow_out=self.config.local.follow_symlinks_out)
        # The last folder's (path, bucket, key prefix, URI prefix), names already as catalog text (`_text`).
        place: tuple[Path, str, str | None, str] | None = None
        # Walked on the event loop, a batch at a time with a pause for other tasks between batches: in a
        # thread, the walk's Python code holds the GIL while the loop's every system call waits for it.
        while batch := _take(walker, _BATCH):
            await asyncio.sleep(0)
            for entry in batch:
                if place is None or (place[0] is not entry.parent and place[0] != entry.parent):
                    bucket, prefix, uri_prefix = _place(root, entry.parent)
                    place = (entry.parent, _text(bucket), None if prefix is None else _text(prefix), uri_prefix)
                _, bucket, prefix, uri_prefix = place
                if prefix is None:  # the root itself, changed while it was listed
                    key, uri = "", entry.path.as_uri()
                else:
                    key, uri = prefix + _text(entry.name), uri_prefix + _quoted(entry.name)
                suffix = "/" if entry.folder else ""  # a folder not listed: see `ObjectRef.skipped`
                ref = self.make_ref(
                    uri=uri + suffix,
                    bucket=bucket,
                    key=key + suffix,
                    size=entry.st.st_size if entry.reason is None and entry.st else 0,  # skipped: unread
                    modified=_mtime(entry.st) if entry.st else _EPOCH,
                    storage_class=None,
                    region=None,
                )
                yield ref if entry.reason is None else dataclasses.replace(ref, skipped=entry.reason)

    def lists_in_order(self, target: Target) -> bool:
        """Each folder's entries come sorted by name, files before sub-folders: URI order, except where a
        folder holds both files and sub-folders, or names that URI quoting sorts otherwise."""
        return True

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        path = _path_of(ref)
        if end - start <= _INLINE_READ and self._inline:
            # A hop to a thread and back costs more than a small read from a local disk, and its GIL
            # hand-offs slow every other thread. Nothing here can block on the file's content: it is opened
            # non-blocking and read only if it is a regular file. Storage with latency (a network file
            # system) is read in threads, where reads overlap, once small reads are slow on average.
            began = time.perf_counter()
            data = _read(path, self._root_of(path, ref), ref.size, ref.modified, start, end)
            self._read_seconds += (time.perf_counter() - began - self._read_seconds) / 64
            if self._read_seconds > _SLOW_READ:
                self._inline = False
            return data
        return await asyncio.to_thread(_read, path, self._root_of(path, ref), ref.size, ref.modified, start, end)

    def worker_read(self, ref: ObjectRef) -> WorkerRead | None:
        """`_read` in a worker process, for files on local disks whose small reads are fast: the reads the
        event loop would make inline. Elsewhere (network and FUSE mounts, slow storage) a read may hang in
        the kernel, where a worker could not be stopped: those stay in threads under the request timeout."""
        if not self._inline:
            return None
        roots = None if self.config.local.follow_symlinks_out else self._root_texts
        return _read_listed, (ref.uri, ref.bucket, ref.key, roots, ref.size, ref.modified)

    def _root_of(self, path: Path, ref: ObjectRef) -> Path | None:
        """The folder a read of `path` must stay inside (None: anywhere, `local.follow_symlinks_out`)."""
        if self.config.local.follow_symlinks_out:
            return None
        return _root_within(path, tuple(self._roots), ref.bucket, ref.key)

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
            fsync_dir(target.parent)
            _unchanged(source, expect)  # still the very file, right before it is removed
            os.unlink(source)
            fsync_dir(source.parent)
            return ObjectState(size=st.st_size, modified=_mtime(os.lstat(target)))

        return await asyncio.to_thread(run)

    async def delete(self, loc: Location, *, expect: ObjectState) -> str | None:
        def run() -> None:
            path = _path_of(loc)
            _unchanged(path, expect)  # right before the unlink: the very file that was proven
            os.unlink(path)
            fsync_dir(path.parent)

        await asyncio.to_thread(run)
        return None


    # ---- whole objects (a results folder) -----------------------------------------------------

    @classmethod
    def location(cls, base: Target, key: str) -> Location:
        """The file `key` below the folder `base`, named as a scan of that folder lists it: its first
        folder is the bucket (a file directly inside is in a bucket named after the folder). A key with an
        empty, `.` or `..` part, or one that leads out of the folder, is refused."""
        root = Path(base.location).expanduser().resolve()
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError("the key has empty, '.' or '..' parts")
        path = root.joinpath(*parts)
        if root not in path.parents:
            raise ValueError(f"{key!r} would leave the folder {root}")
        if len(parts) == 1:
            return Location(path.as_uri(), _text(root.name), _text(parts[0]))
        return Location(path.as_uri(), _text(parts[0]), _text("/".join(parts[1:])))

    @classmethod
    def names(cls, uri: str, bucket: str, key: str) -> bool:
        """Whether the path of `uri` ends in the bucket's folder and the key (the folder above is the one
        that was scanned, which a row does not name)."""
        parts = _path_at(uri).parts
        own = (bucket, *key.split("/"))
        return len(parts) > len(own) and parts[-len(own):] == own

    async def get_object(self, loc: Location) -> bytes | None:
        path = _path_of(loc)

        def run() -> bytes | None:
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            except OSError as exc:
                raise _object_error(path, exc) from exc

        return await asyncio.to_thread(run)

    async def put_object(self, loc: Location, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = _path_of(loc)

        def run() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as fh:  # a reader never sees half a file
                fh.write(data)

        await asyncio.to_thread(run)

    # ---- preflight (`tierscan doctor`) ---------------------------------------------------------

    async def preflight(self, target: Target) -> list[Check]:
        """The folder: there, a folder, and one this user may list; on a local disk or not (reads elsewhere
        run in threads, under a timeout)."""
        root = Path(target.location).expanduser()
        if not root.is_dir():
            why = "no such folder" if not root.exists() else "not a folder"
            return [Check("folder", "fail", why, "check the path (each top-level sub-folder of it is a bucket)")]
        if not os.access(root, os.R_OK | os.X_OK):
            return [Check("folder", "fail", "this user may not list it", "scan as a user who may read it")]
        disk = "a local disk" if _local_disk(root.resolve()) else "not a local disk (network or FUSE)"
        return [Check("folder", "ok", f"{root.resolve()} on {disk}")]


_XATTR = "user.tierscan."



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
    return _path_at(ref.uri)


def _path_at(uri: str) -> Path:
    # surrogateescape: a name that is not UTF-8 comes back as the very bytes `Path.as_uri` quoted.
    return Path(unquote(urlsplit(uri).path, errors="surrogateescape"))


def _text(name: str) -> str:
    """A file name as text the catalog can store: bytes that are not UTF-8 shown as \\xNN."""
    if name.isascii():  # most names: nothing to replace
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Names that URI quoting leaves as they are (its always-safe characters): most names, quoted for nothing.
_AS_QUOTED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def _quoted(name: str) -> str:
    """A file name as its URI writes it (as `Path.as_uri` quotes the bytes of a path)."""
    return name if _AS_QUOTED(name) else quote_from_bytes(os.fsencode(name))


def _place(root: Path, folder: Path) -> tuple[str, str | None, str]:
    """Where the files of `folder` go: (bucket, key prefix, URI prefix); the prefix is None for a folder
    outside `root` (the root's parent: the root itself is the entry). A sub-folder of `root` is a bucket;
    files directly inside `root` form a bucket named after it."""
    if not folder.is_relative_to(root):
        return root.name, None, ""
    parts = folder.relative_to(root).parts
    uri = folder.as_uri()
    uri += "" if uri.endswith("/") else "/"
    if not parts:
        return root.name, "", uri
    return parts[0], "".join(f"{part}/" for part in parts[1:]), uri


_OPEN_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_THROUGH_LINK = (errno.ELOOP, errno.ENOTDIR)  # what O_NOFOLLOW gives on a symlink
_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def _root_within(path: Path, roots: tuple[Path, ...], bucket: str, key: str) -> Path:
    """The folder a read of `path` must stay inside: the innermost of `roots` (the folders listed) that
    holds it, else the one its bucket and key tell."""
    holding = [root for root in roots if path.is_relative_to(root)]
    if holding:
        return max(holding, key=lambda root: len(root.parts))
    depth = min(key.count("/") + 1, len(path.parents))
    base = path.parents[depth - 1]
    # Keys of several parts are always in a bucket's folder; a one-part key may be a loose file.
    return base.parent if depth > 1 and base.name == bucket else base


def _read_listed(uri: str, bucket: str, key: str, roots: tuple[str, ...] | None, size: int, modified: datetime,
                 start: int, end: int) -> bytes:
    """`_read` of a listed object, from what its `ObjectRef` says (`LocalConnector.worker_read`: in a worker
    process, many a second). `roots`: the folders listed, None when reads may go anywhere
    (`local.follow_symlinks_out`). A regular file below its root with no link on its way is opened in one
    call (`_open_fast`); anything else takes `_read`'s path, with its every check."""
    text = _fs_path(uri)
    if roots is not None:
        root = max((r for r in roots if text.startswith(r) and text[len(r):len(r) + 1] == "/"), key=len, default=None)
        if root is not None:
            try:
                fd = _open_fast(root, text[len(root) + 1:])
            except OSError as exc:
                raise _object_error(text, exc) from exc
            if fd is not None:
                return _read_open(fd, text, size, modified, start, end)
    path = Path(text)
    return _read(path, None if roots is None else _root_within(path, tuple(map(Path, roots)), bucket, key),
                 size, modified, start, end)


def _fs_path(uri: str) -> str:
    """The file system path of a local object's URI (as `_path_at`, without a URL parser for the usual
    `file:///...` form)."""
    if uri.startswith("file:///") and "?" not in uri and "#" not in uri:
        path = uri[7:]
        return unquote(path, errors="surrogateescape") if "%" in path else path
    return str(_path_at(uri))


class _OpenHow(ctypes.Structure):
    """`struct open_how` of Linux's openat2(2)."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every Linux architecture
# A regular file's open flags; resolved beneath the folder, refusing every symlink (magic links too).
_HOW = _OpenHow(_OPEN_FILE, 0, 0x08 | 0x04 | 0x02)  # RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
# openat2 through libc's syscall(), per process: bound at first use; None once known to be missing (not
# Linux, an older kernel, a sandbox that refuses it), when reads take the slow path alone.
_openat2: Callable[[int, bytes], int] | None = None
_openat2_missing = False
_root_fds: dict[str, int] = {}  # listed folder -> a descriptor of it, per process (a scan lists a few)


def _open_fast(root: str, relative: str) -> int | None:
    """A descriptor of the regular file `relative` below `root`, opened non-blocking in one openat2 call
    that the kernel resolves beneath `root` refusing every symbolic link on the way; None where that does
    not apply (no openat2; a link, or something not a regular file, on the way) and `_read`'s path decides.
    As there, what is not a regular file is refused before it is opened."""
    global _openat2, _openat2_missing
    if _openat2 is None:
        if _openat2_missing or (loaded := _load_openat2()) is None:
            _openat2_missing = True
            return None
        _openat2 = loaded
    if not relative:
        return None
    folder = _root_fds.get(root)
    if folder is None:
        folder = _root_fds[root] = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.stat(relative, dir_fd=folder, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _THROUGH_LINK:
            return None
        raise
    if not stat.S_ISREG(st.st_mode):
        return None
    fd = _openat2(folder, os.fsencode(relative))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
        _openat2, _openat2_missing = None, True
        return None
    if code in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR, errno.EAGAIN):
        return None  # a link on the way, or the kernel asks for a retry: the slow path decides
    raise OSError(code, os.strerror(code), relative)


def _load_openat2() -> Callable[[int, bytes], int] | None:
    """openat2(folder, path) with `_HOW` through libc's syscall(); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    number, how, size = ctypes.c_long(_SYS_OPENAT2), ctypes.byref(_HOW), ctypes.c_size_t(ctypes.sizeof(_HOW))

    def openat2(folder: int, path: bytes) -> int:
        return int(syscall(number, ctypes.c_int(folder), ctypes.c_char_p(path), how, size))

    return openat2


def _read(path: Path, root: Path | None, size: int, modified: datetime, start: int, end: int) -> bytes:
    """Bytes [start, end) of the regular file the listing saw at `path` (`size` bytes, modified at
    `modified`), never from outside `root`."""
    try:
        fd = _open_regular(path, root)
    except ObjectError:
        raise
    except OSError as exc:
        raise _object_error(path, exc) from exc
    return _read_open(fd, path, size, modified, start, end)


def _read_open(fd: int, path: Path | str, size: int, modified: datetime, start: int, end: int) -> bytes:
    """`_read` once the file is open: bytes [start, end) if it is still the regular file the listing saw.
    Closes `fd`."""
    try:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped after the check before opening
                raise ObjectRefused(f"{path}: {_kind(st.st_mode)}, not a regular file: not read")
            if st.st_size != size or _mtime(st) != modified:
                # Replaced since it was listed: never hand out bytes of a version the listing did not see.
                raise ObjectGone(f"{path}: changed since it was listed")
            return _pread(fd, start, end - start)
        finally:
            os.close(fd)
    except ObjectError:
        raise
    except OSError as exc:
        raise _object_error(path, exc) from exc


def _open_regular(path: Path, root: Path | None) -> int:
    """A descriptor of the regular file at `path`, opened non-blocking; with a `root`, reached from it
    without following any link (a path through a symlink is resolved first and must stay inside)."""
    if root is None:
        return _open_in(os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path.name, path,
                        follow=True)
    try:
        return _open_beneath(root, path.relative_to(root).parts, path)
    except OSError as exc:
        if exc.errno not in _THROUGH_LINK:
            raise
    real = Path(os.path.realpath(path))  # a symlink on the way: allowed when it stays inside
    if not real.is_relative_to(root):
        raise ObjectRefused(f"{path}: symlink points outside the scanned folder: not followed")
    try:
        return _open_beneath(root, real.relative_to(root).parts, path)
    except OSError as exc:
        if exc.errno in _THROUGH_LINK:
            raise ObjectGone(f"{path}: changed since it was listed (a link on its way moved)") from exc
        raise


def _open_beneath(root: Path, parts: tuple[str, ...], path: Path) -> int:
    """Open root/parts one component at a time, each relative to its parent's descriptor with O_NOFOLLOW:
    no component swapped for a symlink after a check can lead out of `root`."""
    if not parts:
        raise ObjectRefused(f"{path}: a folder, not a regular file: not read")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in parts[:-1]:
        try:
            inner = os.open(part, _OPEN_FOLDER, dir_fd=folder)
        finally:
            os.close(folder)
        folder = inner
    return _open_in(folder, parts[-1], path)


def _open_in(folder: int, name: str, path: Path, follow: bool = False) -> int:
    """Open `name` in the folder descriptor (closed here), if it is a regular file: a FIFO or device is
    refused before it is opened (opening either may block or act on hardware). A symlink is followed only
    when `follow`; else it raises ELOOP, as O_NOFOLLOW would."""
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=follow)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
        if not stat.S_ISREG(st.st_mode):
            raise ObjectRefused(f"{path}: {_kind(st.st_mode)}, not a regular file: not read")
        return os.open(name, _OPEN_FILE & ~os.O_NOFOLLOW if follow else _OPEN_FILE, dir_fd=folder)
    finally:
        os.close(folder)


def _pread(fd: int, start: int, size: int) -> bytes:
    data = os.pread(fd, size, start)
    if len(data) == size or not data:
        return data
    chunks = [data]  # a short read: gather the rest
    got = len(data)
    while got < size and (more := os.pread(fd, size - got, start + got)):
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def _object_error(path: Path | str, exc: OSError) -> ObjectError:
    if exc.errno == errno.ENOENT:
        return ObjectGone(f"{path}: vanished since it was listed")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ObjectDenied(f"{path}: permission denied")
    return ObjectReadError(f"{path}: {_strerror(exc)}")


def _strerror(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror or exc} ({name})" if name else str(exc.strerror or exc)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "an unknown kind of file"


# File systems whose reads may wait on a network or a user-space daemon: never read on the event loop.
_REMOTE_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "afs",
              "sshfs", "davfs", "virtiofs")


def _local_disk(path: Path, mount_table: str = "/proc/self/mounts") -> bool:
    """Whether `path` is on a local file system, from the kernel's mount table (Linux); False when unknown."""
    try:
        with open(mount_table, encoding="utf-8", errors="replace") as fh:
            mounts = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return False
    text = str(path)
    best, kind = "", ""
    for point, fs in mounts:
        point = point.replace("\\040", " ")
        if (text == point or text.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fs
    return bool(kind) and kind not in _REMOTE_FS and not kind.startswith("fuse")


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)


class _Entry(NamedTuple):
    """What the walk found: a regular file to read (`reason` None), or something listed as skipped. Kept
    as folder and name: a million `Path`s built per file cost more than the walk itself; a tuple, as one is
    made per file."""

    parent: Path
    name: str
    st: os.stat_result | None  # the file's (a symlink's target's); None when not even that could be had
    reason: str | None = None
    folder: bool = False  # a folder that could not be listed

    @property
    def path(self) -> Path:
        return self.parent / self.name


def _at(path: Path, st: os.stat_result | None, reason: str | None = None, folder: bool = False) -> _Entry:
    return _Entry(path.parent, path.name, st, reason, folder)


# The folders from the root down to one being walked, as (st_dev, st_ino) links: a folder met again
# among its own ancestors (a followed symlink, a bind mount) is a loop.
_Chain = tuple[tuple[int, int], "_Chain | None"]


def _in_chain(key: tuple[int, int], chain: _Chain | None) -> bool:
    while chain is not None:
        if chain[0] == key:
            return True
        chain = chain[1]
    return False


def _walk(root: Path, follow_out: bool) -> Iterator[_Entry]:
    """Everything below `root` in a stable order: regular files, and what is skipped with its reason.

    Folders are walked; symlinked folders only when they lead outside `root` and `follow_out` allows it.
    Each folder is opened without following a link and must still be the folder its parent listed (a
    folder swapped for a link meanwhile is not walked); its entries are examined relative to it. An OS
    error skips that entry (a folder: its whole content, reported once); only `root` must be listable.
    """
    try:
        top = os.stat(root)
    except OSError as exc:
        raise UsageError(f"{root}: cannot list the folder: {_strerror(exc)}") from None
    # (folder, its chain, whether it is a symlink to follow)
    stack: list[tuple[Path, _Chain, bool]] = [(root, ((top.st_dev, top.st_ino), None), False)]
    while stack:
        folder, chain, follow = stack.pop()
        try:
            fd = os.open(folder, _OPEN_FOLDER & ~os.O_NOFOLLOW if follow else _OPEN_FOLDER)
        except OSError as exc:
            yield from _unlisted(root, folder, exc)
            continue
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != chain[0]:
                yield _at(folder, st, "folder changed while it was listed: not walked", folder=True)
                continue
            try:
                with os.scandir(fd) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                yield from _unlisted(root, folder, exc)
                continue
            subdirs: list[tuple[Path, _Chain, bool]] = []
            for entry in entries:
                name = entry.name
                try:
                    st = entry.stat(follow_symlinks=False)  # relative to `fd`
                    if stat.S_ISDIR(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if _in_chain(key, chain):
                            yield _at(folder / name, st, "folder loop (a mount of a folder above it): not walked")
                        else:
                            subdirs.append((folder / name, (key, chain), False))
                    elif stat.S_ISREG(st.st_mode):
                        yield _Entry(folder, name, st)
                    elif stat.S_ISLNK(st.st_mode):
                        path = folder / name
                        found = _link(root, path, st, chain, follow_out)
                        if isinstance(found, _Entry):
                            yield found
                        elif found is not None:
                            subdirs.append((path, found, True))
                    else:
                        yield _Entry(folder, name, st, f"{_kind(st.st_mode)}, not a regular file: not read")
                except FileNotFoundError:
                    continue  # vanished while listing
                except OSError as exc:
                    yield _at(folder / name, _lstat(folder / name), f"cannot be listed: {_strerror(exc)}")
            stack.extend(reversed(subdirs))
        finally:
            os.close(fd)


def _unlisted(root: Path, folder: Path, exc: OSError) -> Iterator[_Entry]:
    """A folder that could not be opened or listed: an error for `root`, nothing when it has vanished,
    else one skipped entry for it."""
    if folder == root:
        raise UsageError(f"{root}: cannot list the folder: {_strerror(exc)}") from None
    if not isinstance(exc, FileNotFoundError):
        yield _at(folder, _lstat(folder), f"folder cannot be listed: {_strerror(exc)}; its files were not "
                     "scanned", folder=True)


def _link(root: Path, path: Path, st: os.stat_result, chain: _Chain,
          follow_out: bool) -> _Entry | _Chain | None:
    """A symlink: the file it leads to (listed under the link's path), a skipped entry, a folder to walk
    (its chain), or None (a folder inside `root`, walked where it is)."""
    inside = Path(os.path.realpath(path)).is_relative_to(root)
    if not inside and not follow_out:
        return _at(path, st, "symlink points outside the scanned folder: not followed")
    try:
        target = os.stat(path)
    except FileNotFoundError:
        return _at(path, st, "broken symlink: its target does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _at(path, st, "symlink loop: not followed")
        return _at(path, st, f"symlink cannot be followed: {_strerror(exc)}")
    if stat.S_ISREG(target.st_mode):
        return _at(path, target)
    if not stat.S_ISDIR(target.st_mode):
        return _at(path, st, f"symlink to {_kind(target.st_mode)}, not a regular file: not read")
    if inside:
        return None
    key = (target.st_dev, target.st_ino)
    if _in_chain(key, chain):
        return _at(path, st, "symlink loop: not followed")
    return (key, chain)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _take(it: Iterator[_Entry], n: int) -> list[_Entry]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out

"""Local folders, the embedded default: `tierscan scan PATH` treats each top-level sub-folder as a bucket.

Files directly inside PATH form a bucket named after PATH itself. Tier and region come from the config
file (`buckets:` by folder name, else `defaults:` hot / "local"). Symlinked folders are not followed, so a
symlink loop cannot trap the walk; symlinked files are read like files. Nothing is ever written.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Iterator
from urllib.parse import unquote, urlsplit

from scanner.errors import ObjectDenied, ObjectGone, UsageError
from scanner.models import ObjectRef

from .base import Capabilities, Connector, Target

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


def _path_of(ref: ObjectRef) -> Path:
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

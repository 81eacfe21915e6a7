"""Results locations: where a deployed scan reads its config and shard parts, and writes its outputs.

A location is a local folder or a bucket prefix (`s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`,
`az://ACCOUNT/CONTAINER/PREFIX`, or any scheme with a connector that can put objects). Layout under it:

    runs/<UTC timestamp>/...   one run's report.json, report.html, report.txt, inventory.jsonl and the
                               policy dry-run folders (`--output-dir`'s layout)
    latest                     a small JSON pointer naming the last complete run; written last, so a
                               reader never follows it into a half-written run
    shards/part-I-of-N.db      each shard's catalog: the merge step's input and the next run's
                               incremental state

This is the only place a scan writes to a bucket, and only to the results location it is given. Objects
go through the connector of the location's scheme (`Connector.location`, `get_object`, `put_object`, and
"put" in its `capabilities.writes`), with its endpoints and credentials. A run writes a handful of objects:
each call here opens the connector, does its work and closes it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tierscan.connectors import Connector, connector_class, parse_target
from tierscan.connectors.base import Location, Target
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import ObjectError, UsageError

__all__ = ["ResultsStore", "local_parts", "open_store", "publish_run", "read_uri"]

T = TypeVar("T")

_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".jsonl": "application/x-ndjson", ".db": "application/vnd.sqlite3"}


class ResultsStore:
    """Objects under one location (a bucket and prefix, or a folder), addressed by keys relative to it."""

    def __init__(self, uri: str, target: Target, connector: type[Connector]):
        self.uri = uri.rstrip("/")
        self.target = target
        self._connector = connector

    def put(self, key: str, data: bytes) -> None:
        self.put_all([(key, data)])

    def put_all(self, items: Iterable[tuple[str, bytes | Path]]) -> None:
        """Put each item in turn (a file's bytes are read when its turn comes), through one connector."""

        async def work(conn: Connector) -> None:
            for key, data in items:
                body = data.read_bytes() if isinstance(data, Path) else data
                await conn.put_object(self._where(key), body, _TYPES.get(Path(key).suffix, "application/octet-stream"))

        self._run("write", work)

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        return self._run("read", lambda conn: conn.get_object(self._where(key)))

    def _where(self, key: str) -> Location:
        try:
            return self._connector.location(self.target, key)
        except ValueError as exc:
            raise UsageError(f"{self.uri}: cannot hold {key!r}: {exc}") from None

    def _run(self, verb: str, work: Callable[[Connector], Awaitable[T]]) -> T:
        async def run() -> T:
            async with self._connector(Config()) as conn:
                return await work(conn)

        try:
            return asyncio.run(run())
        except ObjectError as exc:
            raise UsageError(f"{self.uri}: cannot {verb} the results there: {exc}") from None


def open_store(uri: str) -> ResultsStore:
    """The results location at `uri`: a local folder or a bucket prefix."""
    target = parse_target(uri)
    if target.all_buckets:
        raise UsageError(f"{uri}: a results location names one bucket")
    connector = connector_class(target.scheme)
    if "put" not in connector.capabilities.writes:
        raise UsageError(f"{uri}: the {connector.capabilities.name} connector cannot write objects, so it "
                         "cannot hold results")
    return ResultsStore(uri, target, connector)


def read_uri(uri: str) -> bytes:
    """One object's bytes (a config file or a shard part named by URI); a missing one is a usage error."""
    head, _, name = uri.rstrip("/").rpartition("/")
    if head.endswith("://"):  # file:///NAME: a file in the root folder
        head += "/"
    if not name or head.endswith(":/"):
        raise UsageError(f"{uri}: name an object, e.g. s3://BUCKET/config.yaml")
    target = parse_target(head)
    connector = connector_class(target.scheme)
    data = ResultsStore(head, target, connector).get(name)
    if data is None:
        raise UsageError(f"{uri}: no such object")
    return data


def publish_run(store: ResultsStore, files: Path, now: datetime) -> str:
    """Upload every file under `files` to `runs/<UTC timestamp>/`, then point `latest` at it.

    Returns the run's key prefix. The pointer goes last, so `latest` always names a complete run.
    """
    run = f"runs/{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    names = sorted(p for p in files.rglob("*") if p.is_file())
    pointer: dict[str, Any] = {"run": run, "uri": f"{store.uri}/{run}", "generated_at": now.isoformat(),
                               "report": f"{run}/report.json",
                               "files": [p.relative_to(files).as_posix() for p in names]}
    uploads: list[tuple[str, bytes | Path]] = [(f"{run}/{p.relative_to(files).as_posix()}", p) for p in names]
    store.put_all([*uploads, ("latest", (json.dumps(pointer, indent=2) + "\n").encode("utf-8"))])
    return run


def local_parts(parts: Iterable[str], folder: Path) -> list[Path]:
    """Shard catalogs as local files: paths as given, object URIs fetched into `folder`."""
    paths = []
    for i, part in enumerate(parts):
        if "://" in part:
            local = folder / f"{i}-{part.rsplit('/', 1)[-1]}"
            local.write_bytes(read_uri(part))
            paths.append(local)
        else:
            paths.append(Path(part))
    return paths

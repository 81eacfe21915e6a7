"""Results locations: where a deployed scan reads its config and shard parts, and writes its outputs.

A location is a local folder or a bucket prefix (`s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`,
`az://ACCOUNT/CONTAINER/PREFIX`). Layout under it:

    runs/<UTC timestamp>/...   one run's report.json, report.html, report.txt, inventory.jsonl and the
                               policy dry-run folders (`--output-dir`'s layout)
    latest                     a small JSON pointer naming the last complete run; written last, so a
                               reader never follows it into a half-written run
    shards/part-I-of-N.db      each shard's catalog: the merge step's input and the next run's
                               incremental state

This is the only place a scan writes to a bucket, and only to the results location it is given. (The connectors'
write methods serve `tierscan apply` alone: see scanner/remediate/apply.py.) The cloud SDKs are used directly
(synchronously; a run writes a handful of objects) with the connectors' conventions for endpoints and credentials
(`AWS_ENDPOINT_URL`, `STORAGE_EMULATOR_HOST`, `AZURE_STORAGE_CONNECTION_STRING`, `TIERSCAN_AZURE_ENDPOINT_SUFFIX`
for Azure China) and the connectors' URI grammar (`parse_target`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierscan.connectors import parse_target
from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.errors import UsageError

__all__ = ["ResultsStore", "local_parts", "open_store", "publish_run", "read_uri"]

_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".jsonl": "application/x-ndjson", ".db": "application/vnd.sqlite3"}


class ResultsStore(ABC):
    """Objects under one prefix, addressed by keys relative to it."""

    def __init__(self, uri: str, prefix: str):
        self.uri = uri.rstrip("/")
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""


class _LocalStore(ResultsStore):
    def put(self, key: str, data: bytes) -> None:
        path = Path(self.uri) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:  # readers of `latest` never see half a file
            fh.write(data)

    def get(self, key: str) -> bytes | None:
        path = Path(self.uri) / key
        return path.read_bytes() if path.is_file() else None


class _S3Store(ResultsStore):
    def __init__(self, uri: str, bucket: str, prefix: str):
        import boto3

        super().__init__(uri, prefix)
        self.bucket = bucket
        self.client = boto3.client("s3")

    def put(self, key: str, data: bytes) -> None:
        content_type = _TYPES.get(Path(key).suffix, "application/octet-stream")
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None


class _GCSStore(ResultsStore):
    def __init__(self, uri: str, bucket: str, prefix: str):
        from google.cloud import storage

        super().__init__(uri, prefix)
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project="emulator", credentials=AnonymousCredentials())
        else:
            client = storage.Client()
        self.bucket = client.bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        content_type = _TYPES.get(Path(key).suffix, "application/octet-stream")
        self.bucket.blob(self._key(key)).upload_from_string(data, content_type=content_type)

    def get(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self.bucket.blob(self._key(key)).download_as_bytes())
        except NotFound:
            return None


class _AzureStore(ResultsStore):
    def __init__(self, uri: str, account: str, container: str, prefix: str):
        from azure.storage.blob import BlobServiceClient

        from tierscan.connectors.azure import account_of_connection_string

        super().__init__(uri, prefix)
        conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn and account_of_connection_string(conn) == account:
            service = BlobServiceClient.from_connection_string(conn)
        else:
            from azure.identity import DefaultAzureCredential

            suffix = os.environ.get("TIERSCAN_AZURE_ENDPOINT_SUFFIX") or "blob.core.windows.net"
            service = BlobServiceClient(f"https://{account}.{suffix}", credential=DefaultAzureCredential())
        self.container = service.get_container_client(container)

    def put(self, key: str, data: bytes) -> None:
        from azure.storage.blob import ContentSettings

        content_type = _TYPES.get(Path(key).suffix, "application/octet-stream")
        self.container.upload_blob(self._key(key), data, overwrite=True,
                                   content_settings=ContentSettings(content_type=content_type))

    def get(self, key: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return bytes(self.container.download_blob(self._key(key)).readall())
        except ResourceNotFoundError:
            return None


def open_store(uri: str) -> ResultsStore:
    """The results location at `uri`: a local folder or a bucket prefix."""
    target = parse_target(uri)
    try:
        if target.scheme == "file":
            return _LocalStore(target.location, "")
        if target.all_buckets:
            raise UsageError(f"{uri}: a results location names one bucket")
        if target.scheme == "s3":
            return _S3Store(uri, target.location, target.prefix)
        if target.scheme == "gs":
            return _GCSStore(uri, target.location, target.prefix)
        if target.scheme == "az":
            account, _, container = target.location.partition("/")
            return _AzureStore(uri, account, container, target.prefix)
    except ImportError as exc:
        raise UsageError(f"{uri}: writing results there needs the {target.scheme} SDK: "
                         f"pip install 'tierscan[all]' ({exc.name} is missing)") from exc
    raise UsageError(f"{uri}: results go to a local folder, s3://, gs:// or az://")


def read_uri(uri: str) -> bytes:
    """One object's bytes (a config file or a shard part named by URI); a missing one is a usage error."""
    target = parse_target(uri)
    if target.scheme == "file":
        path = Path(target.location)
        if not path.is_file():
            raise UsageError(f"{uri}: no such file")
        return path.read_bytes()
    head, _, name = uri.rstrip("/").rpartition("/")
    if not name or head.endswith(":/"):
        raise UsageError(f"{uri}: name an object, e.g. s3://BUCKET/config.yaml")
    data = open_store(head).get(name)
    if data is None:
        raise UsageError(f"{uri}: no such object")
    return data


def publish_run(store: ResultsStore, files: Path, now: datetime) -> str:
    """Upload every file under `files` to `runs/<UTC timestamp>/`, then point `latest` at it.

    Returns the run's key prefix. The pointer goes last, so `latest` always names a complete run.
    """
    run = f"runs/{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    names = sorted(p for p in files.rglob("*") if p.is_file())
    for path in names:
        store.put(f"{run}/{path.relative_to(files).as_posix()}", path.read_bytes())
    pointer: dict[str, Any] = {"run": run, "uri": f"{store.uri}/{run}", "generated_at": now.isoformat(),
                               "report": f"{run}/report.json",
                               "files": [p.relative_to(files).as_posix() for p in names]}
    store.put("latest", (json.dumps(pointer, indent=2) + "\n").encode("utf-8"))
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

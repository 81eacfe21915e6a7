"""The connector contract: list objects as an async stream, read byte ranges, declare capabilities as data.

A backend implements three things: `capabilities` (a class attribute), `list_objects(target)` and
`_read_range(ref, start, end)`. The base class adds what every backend shares: refusing reads of tiers
that need a restore, one retry policy for transient faults, a per-request timeout, a bound on requests in
flight, request counts, slice rules for ranges, and building `ObjectRef`s with normalised tier, region and
jurisdiction. The core asks `capabilities`; it never checks which backend it holds.

Cloud backends send every request through `Connector.call`, so the SDKs' own retry loops stay off and
throttling is retried (and counted) in one place.

Writes to scanned objects exist for `tierscan apply` only (scanner/remediate/apply.py); scans never call them.
A backend declares the ones it implements in `capabilities.writes` ("tag", "copy", "move", "delete",
"set_tier") and overrides `stat`, `get_tags`/`set_tags`, `copy`/`move`, `delete`, `remove_delete_marker` and
`set_tier`; the base versions refuse with a usage error. Before an object is deleted or moved away, apply
proves that another object holds the same bytes: with `vouched` (digests the provider computed itself)
where both have a comparable one, else by reading both through `read_chunks`.

A results location (scanner/report/publish.py) is any target whose backend declares "put": `location` names
an object below it, `get_object` and `put_object` read and write whole objects.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from tierscan.scanner.core.classify import Classifier
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import (
    ObjectDenied,
    ObjectError,
    ObjectUnreadable,
    TargetError,
    TierscanError,
    TransientError,
    UsageError,
)
from tierscan.scanner.core.models import ObjectRef
from tierscan.scanner.core.shard import Shard

if TYPE_CHECKING:
    from tierscan.connectors.inventory_reports import Report
    from tierscan.scanner.core.config import InventorySettings

__all__ = ["Capabilities", "Check", "Connector", "Location", "ObjectState", "RetryPolicy", "Target", "Throttled",
           "WorkerRead", "merge_streams", "parse_target"]

T = TypeVar("T")
# A read a worker process makes by itself (`Connector.worker_read`): a function and its leading arguments.
WorkerRead = tuple[Callable[..., bytes], tuple[object, ...]]


class Throttled(TransientError):
    """The provider asked us to slow down (S3 503 SlowDown, GCS 429, Azure 503 ServerBusy).

    Retried like any transient fault, but counted apart (`Connector.requests["throttled"]`) so a scan
    can tell a busy store from a broken network.
    """


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as data (after rclone's `Features`)."""

    name: str
    # The checksum kinds (`tierscan.scanner.core.models.CHECKSUM_KINDS`, which say how far each is trusted) the backend
    # gives, and how: "listing" (free, with every listed object) or "head" (a request an object, no bytes:
    # the listing says the object has one, `ObjectRef.checksums[kind]` None, and `head_checksums` fetches it).
    checksums: Mapping[str, Literal["listing", "head"]] = field(default_factory=dict)
    ranged_reads: bool = True
    versioning: bool = False
    lists_all_buckets: bool = False  # `scheme://*` is meaningful
    # The provider key in the tier table (`scanner/data/tiers.yaml`).
    tier_table: str = "local"
    max_concurrency: int = 64
    # Whether some tiers must be restored before a read (S3 Glacier, Azure Archive); local disks never.
    restores: bool = False
    # Whether a fingerprint worker process can read the objects by itself (`Connector.worker_read`): the scan
    # then sends a worker what to read for a batch of objects, in one message, rather than their bytes.
    worker_reads: bool = False
    # The write operations the backend implements: "tag", "copy", "move" (local: link, then unlink),
    # "delete", "set_tier" for `tierscan apply` only, and "put" (`put_object`) for a results location.
    # Scans never write to what they scan. Empty: read-only.
    writes: frozenset[str] = frozenset()

    @property
    def free_checksums(self) -> frozenset[str]:
        """The kinds every listed object carries at no cost."""
        return frozenset(k for k, how in self.checksums.items() if how == "listing")


@dataclass(frozen=True)
class Location:
    """One object to write to: its URI (for messages and local paths), bucket and key as the catalog holds
    them (keys may hold newlines or `../`, which a URI parser would mangle)."""

    uri: str
    bucket: str
    key: str


@dataclass(frozen=True)
class ObjectState:
    """An object as a HEAD sees it now: what `tierscan apply` re-checks before touching it."""

    size: int
    etag: str | None = None
    version: str | None = None  # S3 VersionId (versioned buckets), GCS generation
    storage_class: str | None = None
    modified: datetime | None = None
    # The stored object itself, to tell two names of one object apart from two objects: local (device,
    # inode), clouds (bucket, key, version or ETag).
    identity: tuple[str, ...] | None = None
    # Local: the path, or a folder on it, is a symbolic link (apply never deletes or proves through one).
    link: bool = False
    # Whole-object digests the provider computed itself, by kind ("md5", "sha256", ...; see `vouched`).
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for throttling and dropped connections."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True)
class Target:
    """A parsed scan target: `s3://bucket/prefix`, `gs://*`, `az://account/container/prefix`, or a path."""

    scheme: str
    location: str  # bucket (s3, gs), account/container (az), or a folder (file)
    prefix: str = ""
    raw: str = field(default="", compare=False)

    @property
    def all_buckets(self) -> bool:
        return self.location == "*" or self.location.endswith("/*")


def parse_target(text: str) -> Target:
    """Split a URI or local path into scheme, bucket-ish location and prefix."""
    if "://" not in text:
        return Target("file", text, "", text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Target("file", parts.path, "", text)
    path = parts.path.lstrip("/")
    if scheme == "az":
        container, _, prefix = path.partition("/")
        if not parts.netloc or not container:
            raise UsageError(f"{text}: an Azure target is az://ACCOUNT/CONTAINER[/PREFIX] or az://ACCOUNT/*")
        return Target(scheme, f"{parts.netloc}/{container}", prefix, text)
    if not parts.netloc:
        raise UsageError(f"{text}: no bucket in the URI (use {scheme}://BUCKET[/PREFIX] or {scheme}://*)")
    return Target(scheme, parts.netloc, path, text)


class Connector(ABC):
    """One backend. Use as an async context manager; one instance serves every target of its scheme."""

    scheme: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    retry: RetryPolicy = RetryPolicy()  # per instance through `retry=`
    # A shard scan's share of the buckets listed from inventory reports (`tierscan.connectors.inventory_reports`):
    # such a listing yields only the objects the shard owns. LIST-based listings ignore it (every shard
    # lists everything, see `tierscan.scanner.core.shard`).
    inventory_shard: Shard | None = None

    def __init__(
        self,
        config: Config,
        *,
        max_concurrency: int | None = None,
        request_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ):
        self.config = config
        self.classifier = Classifier(config, self.capabilities.tier_table, self.capabilities.restores)
        self.max_concurrency = max_concurrency or self.capabilities.max_concurrency
        self.request_timeout = request_timeout
        if retry is not None:
            self.retry = retry
        # Requests sent, by kind ("list", "head", "read", ...), plus "retried" and "throttled".
        self.requests: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(self.max_concurrency)

    async def call(self, kind: str, request: Callable[[], Awaitable[T]]) -> T:
        """Run one request under the connector's bound on requests in flight and its per-request timeout,
        retrying `TransientError` (a timeout counts as one) with jittered backoff; the last one is raised.

        `request` is called afresh for each attempt. It must translate its SDK's errors into
        `tierscan.scanner.core.errors` types; anything else propagates at once.
        """
        for attempt in range(self.retry.attempts):
            self.requests[kind] += 1
            try:
                async with self._slots:
                    try:
                        async with asyncio.timeout(self.request_timeout):
                            return await request()
                    except TimeoutError:
                        raise TransientError(f"{kind} request timed out after {self.request_timeout:g} s") from None
            except TransientError as exc:
                if isinstance(exc, Throttled):
                    self.requests["throttled"] += 1
                if attempt == self.retry.attempts - 1:
                    raise
                self.requests["retried"] += 1
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:  # noqa: B027 - a hook: a backend without clients has nothing to release
        """Release clients and sessions."""

    @abstractmethod
    def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        """Every object under the target, as it is listed (no reads)."""

    def lists_in_order(self, target: Target) -> bool:
        """Whether `list_objects(target)` yields URIs in ascending order (of their UTF-8 bytes), mostly: the
        catalog then merges the listing with its stored rows instead of looking each batch up
        (`Catalog.listing`; an object out of order costs a lookup, never a wrong answer)."""
        return False

    @abstractmethod
    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object, 0 <= start <= end <= size. Raise `tierscan.scanner.core.errors` types."""

    async def read_range(self, ref: ObjectRef, start: int = 0, end: int | None = None) -> bytes:
        """Bytes of `ref` by slice rules: `end` None is the end, a negative `start` counts from the end.

        Objects in a tier that needs a restore are refused before any request is sent. Transient faults
        are retried with backoff; the last one is raised. A backend without ranged reads
        (`capabilities.ranged_reads` off) is asked for the whole object, and the slice cut from it.
        """
        if not ref.readable:
            raise ObjectUnreadable(f"{ref.uri}: {ref.storage_class} must be restored before it can be read")
        size = ref.size
        if start < 0:
            start = max(0, size + start)
        stop = size if end is None else min(max(end, 0), size)
        if start >= stop:
            return b""
        if not self.capabilities.ranged_reads and (start, stop) != (0, size):
            whole = await self.call("read", lambda: self._read_range(ref, 0, size))
            return whole[start:stop]
        return await self.call("read", lambda: self._read_range(ref, start, stop))

    def worker_read(self, ref: ObjectRef) -> WorkerRead | None:
        """How a worker process reads `ref` itself, where `capabilities.worker_reads`: a function it can
        import and the arguments that lead; `function(*args, start, end)` returns bytes [start, end) or
        raises `tierscan.scanner.core.errors` types, with every check `read_range` makes. None: this object is read
        through `read_range` (storage where a read may hang is read only there, under its timeout). The
        caller counts the request (`requests["read"]`)."""
        return None

    async def head_checksums(self, ref: ObjectRef, kinds: Iterable[str]) -> dict[str, str]:
        """Values of these checksum kinds (declared "head" in `capabilities.checksums`) for the listed
        version of `ref`, by one metadata request and no bytes. Kinds the object turns out not to have are
        left out; the base gives none."""
        return {}

    # ---- writes (`tierscan apply`): each backend implements those its `capabilities.writes` names ---------

    def _no_write(self, op: str) -> UsageError:
        return UsageError(f"{self.scheme}: the {self.capabilities.name} connector cannot {op} objects")

    async def stat(self, loc: Location) -> ObjectState | None:
        """The object as it is now, or None when there is no such object."""
        raise self._no_write("inspect")

    async def versioned(self, bucket: str) -> bool:
        """Whether the bucket keeps old versions (a delete then leaves the data recoverable)."""
        return False

    async def get_tags(self, loc: Location) -> dict[str, str]:
        raise self._no_write("tag")

    async def set_tags(self, loc: Location, tags: dict[str, str], *, expect: ObjectState) -> None:
        """Make `tags` the object's whole tag set (S3 tags, GCS custom metadata, Azure blob index tags,
        local user xattrs)."""
        raise self._no_write("tag")

    async def copy(self, src: Location, dst: Location, *, expect: ObjectState) -> ObjectState:
        """Copy the `expect`ed version of `src` to `dst`, which must not exist yet; returns dst's state."""
        raise self._no_write("copy")

    async def move(self, src: Location, dst: Location, *, expect: ObjectState) -> ObjectState:
        """Move `src` to `dst` (which must not exist) in one step, where the backend can."""
        raise self._no_write("move")

    async def delete(self, loc: Location, *, expect: ObjectState) -> str | None:
        """Delete the current version if it is still `expect`. In a versioned bucket the data stays as a
        noncurrent version; returns the delete marker's version id when the backend makes one."""
        raise self._no_write("delete")

    async def remove_delete_marker(self, loc: Location, marker: str) -> None:
        """Undo a versioned delete: remove its delete marker, so the previous version is current again."""
        raise self._no_write("undelete")

    async def set_tier(self, loc: Location, storage_class: str, *, expect: ObjectState) -> None:
        raise self._no_write("transition")

    # ---- whole objects: a results location's files (`tierscan.scanner.report.publish`) ----------------

    @classmethod
    def location(cls, base: Target, key: str) -> Location:
        """The object `key` (a `/`-separated path) below `base`, a bucket and prefix (its prefix and `key`
        joined): the URI, bucket and key that a write addresses. Raises ValueError where `key` cannot be
        placed below `base`."""
        key = "/".join(part for part in (base.prefix.strip("/"), key) if part)
        return Location(f"{cls.scheme}://{base.location}/{key}", base.location, key)

    @classmethod
    def names(cls, uri: str, bucket: str, key: str) -> bool:
        """Whether `uri` is the URI of `key` in `bucket` (a catalog's rows are checked before a write)."""
        try:
            return cls.location(Target(cls.scheme, bucket), key).uri == uri
        except ValueError:
            return False

    async def get_object(self, loc: Location) -> bytes | None:
        """The whole object's bytes, or None when there is no such object (a config file, a shard catalog, a
        results pointer: objects small enough to hold)."""
        raise UsageError(f"{self.scheme}: the {self.capabilities.name} connector cannot fetch whole objects")

    async def put_object(self, loc: Location, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Create or replace the object with `data`, where `capabilities.writes` has "put"; a reader sees
        the old object or the new one, never a part."""
        raise self._no_write("put")

    async def vouched(self, loc: Location, state: ObjectState) -> dict[str, str]:
        """Digests of the object's whole content that the provider computed itself and that no writer can
        set, of the version `state` names. Digests that depend on how the object was uploaded carry the
        part layout in their kind (`s3mpu@N:SIZES`), so only equal layouts compare. Only hashes no one can
        match with other bytes on purpose count: a CRC is never one. The default: those `stat` found."""
        return dict(state.checksums)

    async def read_chunks(self, loc: Location, state: ObjectState, chunk: int) -> AsyncGenerator[bytes, None]:
        """The bytes of the version `state` names, in order, `chunk` bytes a request (memory stays bounded;
        without ranged reads, the whole object in one); an object replaced meanwhile raises `ObjectGone`,
        one that needs a restore `ObjectUnreadable`."""
        ref = self.make_ref(uri=loc.uri, bucket=loc.bucket, key=loc.key, size=state.size,
                            modified=state.modified or datetime.min, storage_class=state.storage_class,
                            region=None, etag=state.etag, version=state.version)
        if not self.capabilities.ranged_reads:
            chunk = max(chunk, state.size)
        for start in range(0, state.size, chunk):
            yield await self.read_range(ref, start, min(start + chunk, state.size))

    def make_ref(
        self,
        *,
        uri: str,
        bucket: str,
        key: str,
        size: int,
        modified: datetime,
        storage_class: str | None,
        region: str | None,
        etag: str | None = None,
        version: str | None = None,
        checksums: Mapping[str, str | None] | None = None,
        readable: bool | None = None,
    ) -> ObjectRef:
        """An ObjectRef of the listing's raw facts, placed (tier, native class, readability, region and
        jurisdiction) by the one classification step, `tierscan.scanner.core.classify`. `readable` overrides
        the tier table when the backend knows better (an S3 Intelligent-Tiering object in an archive access
        tier)."""
        placed = self.classifier.place(bucket, uri, storage_class, region, readable)
        return ObjectRef(
            uri=uri,
            provider=self.scheme if self.scheme != "file" else "local",
            bucket=bucket,
            key=key,
            version=version,
            size=size,
            etag=etag,
            checksums=dict(checksums or {}),
            tier=placed.tier,
            storage_class=placed.storage_class,
            readable=placed.readable,
            region=placed.region,
            jurisdiction=placed.jurisdiction,
            modified=modified,
        )

    # ---- preflight (`tierscan doctor`): what can be known about a target before a scan --------------------

    # Seconds one preflight check may take, its requests and retries included (`checked`).
    check_timeout: float = 30.0

    async def preflight(self, target: Target) -> list[Check]:
        """The backend's own checks of `target`, in order, up to the first that fails: where its credentials
        come from ("credentials"), whom they resolve to ("identity"), the endpoint and the region. The core
        then lists, reads and asks `versioned` and `inventory_report` itself. The base has none."""
        return []

    async def inventory_report(self, bucket: str, settings: InventorySettings) -> Report:
        """The newest complete inventory report that `settings` point at for `bucket` (as a listing from
        reports would use it), without reading its data files; a `UsageError` when there is none."""
        raise UsageError(f"{self.scheme}: the {self.capabilities.name} connector cannot list from inventory reports")

    async def checked(self, name: str, work: Awaitable[str | Check]) -> Check:
        """Run one preflight check within `check_timeout`: `work` gives the detail of a check that passes,
        or a `Check` of its own (a warning); the error that ends it is a failed `Check` with the fix."""
        try:
            async with asyncio.timeout(self.check_timeout):
                result = await work
        except TimeoutError:
            return Check(name, "fail", f"no answer within {self.check_timeout:g} s", _NO_ANSWER)
        except TierscanError as exc:
            return Check.failed(name, exc)
        return result if isinstance(result, Check) else Check(name, "ok", result)


async def merge_streams(streams: Iterable[AsyncIterator[T]], *, limit: int) -> AsyncIterator[T]:
    """Items from several async iterators as they arrive, with at most `limit` of them running at once.

    Lists several buckets concurrently without letting one huge bucket hold up the others. The first
    error from any stream is raised, and the other streams are then cancelled.
    """
    queue: asyncio.Queue[tuple[bool, object]] = asyncio.Queue(maxsize=max(1, limit) * 256)
    gate = asyncio.Semaphore(max(1, limit))

    async def pump(stream: AsyncIterator[T]) -> None:
        async with gate:
            try:
                async for item in stream:
                    await queue.put((False, item))
            except Exception as exc:  # handed to the consumer, which raises it
                await queue.put((True, exc))
                return
        await queue.put((True, None))

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    remaining = len(tasks)
    try:
        while remaining:
            done, item = await queue.get()
            if not done:
                yield item  # type: ignore[misc]
            elif item is None:
                remaining -= 1
            else:
                raise item  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_NO_ANSWER = "check the endpoint, the network and any proxy settings"


@dataclass(frozen=True)
class Check:
    """One line of `tierscan doctor`: what was checked, how it went and, for a failure, what to do."""

    name: str  # "credentials", "identity", "endpoint", "region", "list", "read", "versioning", "inventory", ...
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""

    @classmethod
    def failed(cls, name: str, exc: TierscanError) -> Check:
        """The failed check for the error that ended it, with the fix its message gives, or a general one."""
        if isinstance(exc, TargetError):
            return cls(name, "fail", f"{exc.why} ({exc.cause.value})", exc.fix)
        if isinstance(exc, TransientError):
            return cls(name, "fail", f"{exc}, retries spent", _NO_ANSWER)
        if isinstance(exc, ObjectDenied):
            return cls(name, "fail", f"{exc}, denied", "grant these credentials read access to the objects")
        if isinstance(exc, ObjectError):
            return cls(name, "fail", f"{exc}, {exc.reason}", "")
        return cls(name, "fail", str(exc), "fix the target or the config")

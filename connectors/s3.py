"""Amazon S3 and S3-compatible stores, through aiobotocore (async botocore); object reads are GETs signed
with botocore's signer and sent on aiohttp (`_s3_get`: a fraction of the SDK's CPU per call).

Credentials and endpoint come from botocore's standard chain: environment, shared profiles, SSO, web
identity and instance roles; `AWS_ENDPOINT_URL` (or `endpoint_url=`) points it at an S3-compatible store.
One client per region, created on first use; botocore's own retries are off, so the base class's policy is
the only one and throttling is counted.

Rules this backend applies, decided once per bucket and then per object:

- **Region:** `GetBucketLocation` (empty means us-east-1, `EU` means eu-west-1), else the
  `x-amz-bucket-region` header of a `HeadBucket`, which S3 sends even with a 301 or 403.
- **MD5 trust:** an ETag is a real MD5 of the whole object only when it is 32 hex digits (multipart
  ETags end in `-N`) and the object is not SSE-KMS encrypted. The listing does not say how an object is
  encrypted, so an ETag is trusted unless the bucket's default encryption is `aws:kms`/`aws:kms:dsse` (or
  cannot be read). An object written with an explicit SSE-KMS header into a bucket whose default is not
  KMS is not detected; its ETag is then a random-looking value, which can only hide a duplicate (a missed
  match), never invent one.
- **Multipart ETags** (`<hex>-<parts>`, the MD5 of the parts' MD5s) are kept as checksum kind `s3mpu`: two
  objects of one size with equal multipart ETags are byte-identical (equal part MD5s mean equal parts), so
  copies uploaded by the same tool with the same part size are matched without a read. Equal content
  uploaded with other part sizes gets another ETag and is matched by reading (`models.content_identity`).
- **CRC64NVME:** S3 gives every upload that carries no checksum a CRC64NVME, which is always of the whole
  object, multipart uploads included, so it matches copies whatever their part sizes (kind `crc64nvme`).
  ListObjectsV2 names the algorithm (`ChecksumAlgorithm`) but not the value: such objects are listed with
  `checksums["crc64nvme"] = None`, and `head_checksums` fetches the value with one HeadObject
  (`ChecksumMode=ENABLED`) when the planner asks. It does not depend on encryption; an SSE-KMS object
  needs kms:Decrypt for it, and without that it stays unknown. CRC32, CRC32C and SHA checksums of
  multipart uploads can be COMPOSITE (equal only for one part layout) and are not used to plan reads.
- **Versions:** in a bucket with versioning enabled or suspended, the current version of each key is
  listed with its version id, and reads pin that version. Elsewhere reads send `If-Match` with the listed
  ETag, so an object replaced since the listing reads as gone rather than as other bytes.
- **Archive tiers:** GLACIER and DEEP_ARCHIVE are unreadable by the tier table. An INTELLIGENT_TIERING
  object can sit in an archive access tier only if its bucket has an Intelligent-Tiering configuration
  with archive tierings; the listing cannot say, so such buckets (or buckets whose configuration cannot
  be read) get one HEAD per Intelligent-Tiering object at listing time, to read `x-amz-archive-status`.
  Buckets without archive tierings cost no HEADs. A read that still meets `InvalidObjectState` raises
  `ObjectUnreadable`.
- **aws-cn:** the China partition has its own accounts. `s3://*` lists the buckets of the default
  region's partition; pass `list_regions=("cn-north-1",)` to list another partition too, or name its
  buckets (`s3://bucket`), whose region is then looked up as usual.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc

from tierscan.connectors._http import (
    NETWORK_ERRORS,
    ErrorTable,
    Fixes,
    classify,
    connection_failure,
    named_target,
    skip_forbidden,
)
from tierscan.connectors._s3_get import SignedGets, error_code
from tierscan.connectors.base import (
    Capabilities,
    Check,
    Connector,
    Location,
    ObjectState,
    RetryPolicy,
    Target,
    Throttled,
    merge_streams,
)
from tierscan.connectors.inventory_reports import (
    MAX_TRIED,
    DataFile,
    Report,
    announce,
    falsy,
    report_refs,
    s3_report,
    s3_report_folder,
    truthy,
)
from tierscan.scanner.core.config import Config, InventorySettings
from tierscan.scanner.core.errors import (
    Cause,
    ObjectDenied,
    ObjectError,
    ObjectGone,
    ObjectUnreadable,
    TargetError,
    TransientError,
    UsageError,
)
from tierscan.scanner.core.models import ObjectRef

__all__ = ["S3Connector"]

log = logging.getLogger("tierscan.connectors.s3")

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-[0-9]+$")
_KMS = {"aws:kms", "aws:kms:dsse"}
_ARCHIVE_STATUS = {"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"}
# Full-object checksums that prove content (cryptographic hashes; CRCs and xxHash can be matched on purpose).
_VOUCHED_CHECKSUMS = ("sha256", "sha1", "sha512", "md5")
# Checksum kinds a HeadObject with ChecksumMode gives, by the listing's `ChecksumAlgorithm` and the HEAD's
# field; only kinds that are always of the whole object (never COMPOSITE).
_HEAD_CHECKSUMS = {"crc64nvme": ("CRC64NVME", "ChecksumCRC64NVME")}

# S3 error codes -> tierscan.scanner.core.errors; HTTP statuses not named here fall back to `_http.classify`.
_ERRORS: ErrorTable = {
    "NoSuchKey": ObjectGone,
    "NoSuchVersion": ObjectGone,
    "NoSuchBucket": ObjectGone,
    "NotFound": ObjectGone,
    "PreconditionFailed": ObjectGone,
    "AccessDenied": ObjectDenied,
    "AllAccessDisabled": ObjectDenied,
    "InvalidAccessKeyId": ObjectDenied,
    "SignatureDoesNotMatch": ObjectDenied,
    "ExpiredToken": ObjectDenied,
    "InvalidObjectState": ObjectUnreadable,
    "SlowDown": Throttled,
    "Throttling": Throttled,
    "ThrottlingException": Throttled,
    "RequestLimitExceeded": Throttled,
    "TooManyRequests": Throttled,
    "ServiceUnavailable": Throttled,
    "InternalError": TransientError,
    "RequestTimeout": TransientError,
}
# An answer that does not parse comes from something other than S3 (`_error`).
_NETWORK: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, BotoCoreError, aiohttp.ClientError, ResponseParserError)
_FIXES: Fixes = {
    Cause.credentials: "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an IAM role "
                       "gives them",
    Cause.denied: "grant these credentials s3:ListBucket on the bucket, or scan with credentials that have it",
    Cause.not_found: "check the bucket's name (and the endpoint, AWS_ENDPOINT_URL, if you use one)",
    Cause.network: "check the endpoint (AWS_ENDPOINT_URL), the network and any proxy settings",
    Cause.tls: "check the endpoint's certificate, or give its CA bundle in AWS_CA_BUNDLE",
    Cause.not_storage: "check the endpoint (AWS_ENDPOINT_URL): it must be an S3 API, not a web page or a proxy",
}
# Codes that reject the credentials themselves, whatever the request: no object or bucket is readable.
_REJECTED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"})
# Operations whose answer is an S3 document, errors included: an HTML one is from something else (a portal, a
# web server). Other answers may be HTML: an object's own type, or an emulator's bodiless HEAD error.
_DOCUMENT_OPS = frozenset({"get_bucket_location", "get_bucket_encryption", "get_bucket_versioning", "list_buckets",
                           "list_objects_v2", "list_object_versions"})
# Inventory report columns the listing takes (`inventory_reports.canonical` names).
_INVENTORY_COLUMNS = frozenset({"key", "size", "lastmodifieddate", "etag", "storageclass", "versionid", "islatest",
                                "isdeletemarker", "intelligenttieringaccesstier"})
# An inventory's IntelligentTieringAccessTier -> the `x-amz-archive-status` a HEAD would give.
_ACCESS_TIERS = {"ARCHIVE": "ARCHIVE_ACCESS", "DEEP_ARCHIVE": "DEEP_ARCHIVE_ACCESS"}


@dataclass(frozen=True)
class _Bucket:
    name: str
    region: str
    trust_etags: bool
    versioned: bool
    url: str  # the SDK's URL for the bucket's objects (`_s3_get.SignedGets.bucket_url`)


def _error(uri: str, exc: BaseException) -> ObjectError | TargetError:
    """The scanner error for an SDK or network failure; the message names no URL, header or credential.
    Failures no retry mends (no credentials, an endpoint that is not there or not S3) are `TargetError`s."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return TargetError(uri, Cause.credentials, "no AWS credentials found", _FIXES[Cause.credentials])
    if isinstance(exc, ResponseParserError):
        return TargetError(uri, Cause.not_storage, "the endpoint's answer is not from S3",
                           _FIXES[Cause.not_storage])
    if (failure := connection_failure(uri, exc, _FIXES)) is not None:
        return failure
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _REJECTED:
            return TargetError(uri, Cause.credentials, f"the credentials are not accepted, {code} (HTTP {status})",
                               _FIXES[Cause.credentials])
        return classify(status, code, _ERRORS)(f"{uri}: {code or 'error'} (HTTP {status})")
    return TransientError(f"{uri}: {type(exc).__name__} talking to S3")


def _web_page(uri: str) -> TargetError:
    return TargetError(uri, Cause.not_storage, "the endpoint answered with a web page, not S3",
                       _FIXES[Cause.not_storage])


def _html(answer: dict[str, Any]) -> bool:
    """Whether an answer is a web page (S3 answers XML, or an object's own bytes)."""
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return str(headers.get("content-type", "")).lower().startswith("text/html")


_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
_HTTP_DATE = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")


def _timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, without dateutil's generic parser for the two forms S3 sends (ISO 8601
    in listings, HTTP dates in headers): that parser was 8% of a scan's CPU, a `LastModified` a response.
    The same datetimes, with botocore's `tzutc` zone."""
    if isinstance(value, str):
        if _ISO_UTC.match(value):
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=tzutc())
        if _HTTP_DATE.match(value):
            return parsedate_to_datetime(value).replace(tzinfo=tzutc())
    parsed: datetime = parse_timestamp(value)
    return parsed


def _inventory_time(value: Any) -> datetime:
    """An inventory's LastModifiedDate as a listing gives it: ISO text (CSV) or a timestamp (ORC, Parquet)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=tzutc())
    return _timestamp(str(value))


def _hex(value: str) -> str:
    """A base64 checksum header as lowercase hex (the ETag's form), so an MD5 checksum meets an MD5 ETag."""
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return value


def _region_of(location: str | None) -> str:
    if not location:
        return "us-east-1"
    return "eu-west-1" if location == "EU" else location


class S3Connector(Connector):
    scheme = "s3"
    capabilities = Capabilities(
        name="s3",
        checksums={"md5": "listing", "s3mpu": "listing", "crc64nvme": "head"},
        ranged_reads=True,
        versioning=True,
        lists_all_buckets=True,
        tier_table="s3",
        max_concurrency=64,
        restores=True,
        writes=frozenset({"tag", "copy", "delete", "set_tier", "put"}),
    )

    def __init__(
        self,
        config: Config,
        *,
        max_concurrency: int | None = None,
        request_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        list_regions: Sequence[str] = (),
        bucket_concurrency: int = 8,
        session: AioSession | None = None,
    ):
        super().__init__(config, max_concurrency=max_concurrency, request_timeout=request_timeout, retry=retry)
        self._session = session or get_session()
        parsers = self._session.get_component("response_parser_factory")
        parsers.set_parser_defaults(timestamp_parser=_timestamp)
        # A fixed User-Agent: botocore otherwise rebuilds it from ~50 parts twice a request (10% of a scan's
        # client CPU on moto).
        self._user_agent = self._session.user_agent()
        self._default_region = (region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                or "us-east-1")
        self._endpoint_url = endpoint_url  # None: botocore reads AWS_ENDPOINT_URL itself
        self._list_regions = tuple(list_regions)
        self._bucket_concurrency = bucket_concurrency
        self._clients: dict[str, Any] = {}
        self._client_lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self._buckets: dict[str, asyncio.Task[_Bucket]] = {}
        self._it_archive: dict[str, asyncio.Task[bool]] = {}
        self._regions: dict[str, asyncio.Task[str]] = {}  # buckets only fetched from or put to
        self._gets = SignedGets(self._session, max_connections=self.max_concurrency,
                                connect_timeout=min(10.0, request_timeout), read_timeout=request_timeout,
                                user_agent=self._user_agent)

    async def aclose(self) -> None:
        for task in [*self._buckets.values(), *self._it_archive.values(), *self._regions.values()]:
            task.cancel()
        await self._gets.aclose()
        await self._stack.aclose()
        self._clients.clear()

    async def _client(self, region: str) -> Any:
        async with self._client_lock:
            if region not in self._clients:
                config = AioConfig(
                    retries={"total_max_attempts": 1, "mode": "standard"},  # one retry policy: the base's
                    connect_timeout=min(10.0, self.request_timeout),
                    read_timeout=self.request_timeout,
                    max_pool_connections=self.max_concurrency,
                    user_agent=self._user_agent,
                    # Every call is built here, from listed keys; validating each cost 1.5% of a scan's CPU.
                    parameter_validation=False,
                )
                self._clients[region] = await self._stack.enter_async_context(
                    self._session.create_client("s3", region_name=region, endpoint_url=self._endpoint_url,
                                                config=config)
                )
            return self._clients[region]

    async def _request(self, kind: str, uri: str, region: str, op: str, **params: Any) -> dict[str, Any]:
        """One S3 API call by operation name, retried by the base, errors translated."""

        async def attempt() -> dict[str, Any]:
            client = await self._client(region)
            try:
                answer: dict[str, Any] = await getattr(client, op)(**params)
            except ClientError as exc:
                raise (_web_page(uri) if op in _DOCUMENT_OPS and _html(exc.response) else _error(uri, exc)) from None
            except _NETWORK as exc:
                raise _error(uri, exc) from None
            if op in _DOCUMENT_OPS and _html(answer):
                raise _web_page(uri)
            return answer

        return await self.call(kind, attempt)

    # ---- buckets -------------------------------------------------------------------------------

    def _bucket(self, name: str) -> asyncio.Task[_Bucket]:
        """What a bucket's listing needs to know, looked up once per bucket (concurrent callers share it)."""
        task = self._buckets.get(name)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._buckets[name] = asyncio.ensure_future(self._describe(name))
        return task

    async def _describe(self, name: str) -> _Bucket:
        region = await self._bucket_region(name)
        encryption, versioning = await asyncio.gather(
            self._optional(f"s3://{name}", region, "get_bucket_encryption", Bucket=name),
            self._optional(f"s3://{name}", region, "get_bucket_versioning", Bucket=name),
        )
        if encryption is None:
            trust = False  # unknown: reading a little more is safer than trusting a KMS ETag
        else:
            rules = encryption.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
            algorithms = {r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
            trust = not (algorithms & _KMS)
        versioned = (versioning or {}).get("Status") in {"Enabled", "Suspended"}
        url = await SignedGets.bucket_url(await self._client(region), name)
        return _Bucket(name=name, region=region, trust_etags=trust, versioned=versioned, url=url)

    async def _optional(self, uri: str, region: str, op: str, **params: Any) -> dict[str, Any] | None:
        """A bucket setting: `{}` when the bucket has none (S3 answers 404 ...NotFound), None when unknown."""
        try:
            return await self._request("head", uri, region, op, **params)
        except ObjectGone:
            return {}
        except ObjectError as exc:
            log.debug("s3://%s: %s unavailable (%s)", params.get("Bucket"), op, type(exc).__name__)
            return None

    async def _bucket_region(self, name: str) -> str:
        uri = f"s3://{name}"
        try:
            answer = await self._request("head", uri, self._default_region, "get_bucket_location", Bucket=name)
            return _region_of(answer.get("LocationConstraint"))
        except ObjectGone:
            raise TargetError(uri, Cause.not_found, "no such bucket", _FIXES[Cause.not_found]) from None
        except TransientError:
            raise  # retried and still failing: the store is down, not the location hidden from us
        except ObjectError:
            pass  # GetBucketLocation denied (owners only): HeadBucket names the region even when denied
        client = await self._client(self._default_region)
        try:
            answer = await client.head_bucket(Bucket=name)
            headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except ClientError as exc:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except _NETWORK as exc:
            raise _error(uri, exc) from None
        finally:
            self.requests["head"] += 1
        if "x-amz-bucket-region" not in headers:
            raise TargetError(uri, Cause.denied, "the bucket's region cannot be found with these credentials",
                              _FIXES[Cause.denied])
        return str(headers["x-amz-bucket-region"])

    async def _bucket_names(self) -> list[str]:
        names: dict[str, None] = {}
        for region in (self._default_region, *self._list_regions):
            token: str | None = None
            while True:
                params: dict[str, Any] = {"ContinuationToken": token} if token else {}
                page = await self._request("list", f"s3://* ({region})", region, "list_buckets", **params)
                names.update((b["Name"], None) for b in page.get("Buckets", []))
                token = page.get("ContinuationToken")
                if not token:
                    break
        return list(names)

    # ---- listing -------------------------------------------------------------------------------

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        if not target.all_buckets:
            async for ref in named_target(self._list_bucket(target.location, target.prefix),
                                          f"s3://{target.location}", _FIXES):
                yield ref
            return
        streams = [skip_forbidden(self._list_bucket(name, target.prefix), what=f"s3://{name}")
                   for name in await self._bucket_names()]
        async for ref in merge_streams(streams, limit=self._bucket_concurrency):
            yield ref

    async def _list_bucket(self, name: str, prefix: str) -> AsyncIterator[ObjectRef]:
        inventory = self.config.bucket_settings(name, f"s3://{name}/").inventory
        if inventory is not None:
            async for ref in self._list_inventory(name, prefix, inventory):
                yield ref
            return
        bucket = await self._bucket(name)
        op = "list_object_versions" if bucket.versioned else "list_objects_v2"
        params: dict[str, Any] = {"Bucket": name, "Prefix": prefix}
        while True:
            page = await self._request("list", f"s3://{name}/{prefix}", bucket.region, op, **params)
            if bucket.versioned:
                entries = [v for v in page.get("Versions", []) if v.get("IsLatest")]
            else:
                entries = page.get("Contents", [])
            archived = await self._archive_statuses(bucket, entries)
            for entry in entries:
                yield self._ref(bucket, entry, archived.get(entry["Key"]))
            if not page.get("IsTruncated"):
                return
            if bucket.versioned:
                params.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
            else:
                params["ContinuationToken"] = page["NextContinuationToken"]

    # ---- listing from S3 Inventory reports (`tierscan.connectors.inventory_reports`) ------------------------

    async def _list_inventory(self, name: str, prefix: str, settings: InventorySettings) -> AsyncIterator[ObjectRef]:
        """The bucket's objects as its newest complete inventory report lists them: no LIST of the bucket.
        Versioned reports give their current versions; delete markers are no objects."""
        bucket = await self._bucket(name)
        report, region = await self._newest_report(name, settings)
        announce(f"s3://{name}", report, settings.max_age_days)
        dest = urlsplit(settings.uri).netloc
        encoded = report.format == "csv"  # CSV keys are URL-encoded

        async def fetch(data_file: DataFile, start: int, end: int) -> bytes:
            return await self._get(f"s3://{dest}/{data_file.name}", region, dest, data_file.name,
                                   Range=f"bytes={start}-{end - 1}")

        shard = self.inventory_shard

        def convert(row: dict[str, Any]) -> ObjectRef | None:
            if truthy(row.get("isdeletemarker")) or falsy(row.get("islatest")):
                return None
            key = unquote_plus(row["key"]) if encoded else row["key"]
            if not key.startswith(prefix) or (shard is not None and not shard.owns(f"s3://{name}/{key}")):
                return None
            entry = {"Key": key, "Size": int(row.get("size") or 0), "ETag": row.get("etag") or "",
                     "LastModified": _inventory_time(row["lastmodifieddate"]),
                     "StorageClass": row.get("storageclass") or "STANDARD", "VersionId": row.get("versionid")}
            return self._ref(bucket, entry, _ACCESS_TIERS.get(row.get("intelligenttieringaccesstier") or ""))

        async for ref in report_refs(report, fetch, _INVENTORY_COLUMNS, convert):
            yield ref

    async def _newest_report(self, name: str, settings: InventorySettings) -> tuple[Report, str]:
        """The newest report whose manifest.json is there and matches its manifest.checksum, found with a
        delimited LIST of the report folders (one request per 1,000 reports), and the destination's region."""
        parts = urlsplit(settings.uri)
        dest, base = parts.netloc, parts.path.strip("/")
        region = await self._bucket_region(dest)
        folders: list[tuple[datetime, str]] = []
        params: dict[str, Any] = {"Bucket": dest, "Prefix": f"{base}/" if base else "", "Delimiter": "/"}
        while True:
            page = await self._request("inventory", settings.uri, region, "list_objects_v2", **params)
            for common in page.get("CommonPrefixes", []):
                folder = common["Prefix"].rstrip("/")
                when = s3_report_folder(folder.rpartition("/")[2])
                if when is not None:
                    folders.append((when, folder))
            if not page.get("IsTruncated"):
                break
            params["ContinuationToken"] = page["NextContinuationToken"]
        for when, folder in sorted(folders, reverse=True)[:MAX_TRIED]:
            where = f"s3://{dest}/{folder}/manifest.json"
            manifest = await self._get_small(where, region, dest, f"{folder}/manifest.json")
            checksum = await self._get_small(where, region, dest, f"{folder}/manifest.checksum")
            report = None
            if manifest is not None and checksum is not None:
                report = s3_report(manifest, checksum, where, name, when)
            if report is not None:
                return report, region
            log.warning("%s: incomplete inventory report (no manifest, or its checksum does not match): passed over",
                        f"s3://{dest}/{folder}/")
        raise UsageError(f"s3://{name}: no complete inventory report among the {MAX_TRIED} newest under {settings.uri}")

    async def _get(self, uri: str, region: str, bucket: str, key: str, **params: Any) -> bytes:
        """An object's bytes (or the range `params` ask for) from a report's destination, retried."""

        async def attempt() -> bytes:
            client = await self._client(region)
            try:
                answer = await client.get_object(Bucket=bucket, Key=key, **params)
                async with answer["Body"] as body:
                    return bytes(await body.read())
            except (ClientError, *_NETWORK) as exc:
                raise _error(uri, exc) from None

        return await self.call("inventory", attempt)

    async def _get_small(self, uri: str, region: str, bucket: str, key: str) -> bytes | None:
        """A small object's bytes (a manifest), or None when it is not there."""
        try:
            return await self._get(uri, region, bucket, key)
        except ObjectGone:
            return None

    def _ref(self, bucket: _Bucket, entry: dict[str, Any], archive_status: str | None) -> ObjectRef:
        key = entry["Key"]
        etag = str(entry.get("ETag", "")).strip('"') or None
        storage_class = entry.get("StorageClass") or "STANDARD"
        if storage_class == "INTELLIGENT_TIERING" and archive_status in _ARCHIVE_STATUS:
            storage_class = f"INTELLIGENT_TIERING_{archive_status}"
        version = entry.get("VersionId") if bucket.versioned else None
        checksums: dict[str, str | None] = {}
        if bucket.trust_etags and etag is not None:
            if _MD5.fullmatch(etag):
                checksums["md5"] = etag
            elif _MULTIPART_ETAG.fullmatch(etag):
                checksums["s3mpu"] = etag
        algorithms = entry.get("ChecksumAlgorithm") or ()
        checksums.update((kind, None) for kind, (algorithm, _) in _HEAD_CHECKSUMS.items() if algorithm in algorithms)
        return self.make_ref(
            uri=f"s3://{bucket.name}/{key}",
            bucket=bucket.name,
            key=key,
            size=int(entry.get("Size", 0)),
            modified=entry["LastModified"],
            storage_class=storage_class,
            region=bucket.region,
            etag=etag,
            version=None if version in (None, "null") else version,
            checksums=checksums,
        )

    async def head_checksums(self, ref: ObjectRef, kinds: Iterable[str]) -> dict[str, str]:
        """The listed version's full-object checksums of these kinds, by one HeadObject with ChecksumMode
        (pinned like reads: its version, else its ETag). An object replaced meanwhile, or whose checksum
        the credentials may not see (SSE-KMS without kms:Decrypt, SSE-C), gives none."""
        wanted = {kind: _HEAD_CHECKSUMS[kind] for kind in kinds if kind in _HEAD_CHECKSUMS}
        if not wanted:
            return {}
        bucket = await self._bucket(ref.bucket)
        pin = {"VersionId": ref.version} if ref.version else ({"IfMatch": f'"{ref.etag}"'} if ref.etag else {})
        try:
            head = await self._request("head", ref.uri, bucket.region, "head_object", Bucket=ref.bucket,
                                       Key=ref.key, ChecksumMode="ENABLED", **pin)
        except (ObjectGone, ObjectDenied):
            return {}
        if int(head.get("ContentLength", -1)) != ref.size or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
            return {}
        return {kind: _hex(str(value)) for kind, (_, field) in wanted.items()
                if (value := head.get(field)) and "-" not in str(value)}

    async def _archive_statuses(self, bucket: _Bucket, entries: list[dict[str, Any]]) -> dict[str, str | None]:
        """`x-amz-archive-status` of the page's Intelligent-Tiering objects, when the bucket can archive them."""
        keys = [e["Key"] for e in entries if e.get("StorageClass") == "INTELLIGENT_TIERING"]
        if not keys or not await self._may_archive(bucket):
            return {}

        async def status(key: str) -> str | None:
            try:
                head = await self._request("head", f"s3://{bucket.name}/{key}", bucket.region, "head_object",
                                           Bucket=bucket.name, Key=key)
            except ObjectGone:
                return None  # deleted since the page was listed; the read will say so
            return head.get("ArchiveStatus")

        return dict(zip(keys, await asyncio.gather(*(status(k) for k in keys)), strict=True))

    async def _may_archive(self, bucket: _Bucket) -> bool:
        if bucket.name not in self._it_archive:
            self._it_archive[bucket.name] = asyncio.ensure_future(self._archive_configured(bucket))
        return await self._it_archive[bucket.name]

    async def _archive_configured(self, bucket: _Bucket) -> bool:
        answer = await self._optional(f"s3://{bucket.name}", bucket.region,
                                      "list_bucket_intelligent_tiering_configurations", Bucket=bucket.name)
        if answer is None:
            return True  # cannot tell: check each object
        return any(
            config.get("Status") == "Enabled" and config.get("Tierings")
            for config in answer.get("IntelligentTieringConfigurationList", [])
        )

    # ---- reads ---------------------------------------------------------------------------------

    async def read_range(self, ref: ObjectRef, start: int = 0, end: int | None = None) -> bytes:
        if ref.readable:
            # The bucket lookup sends requests of its own: do it before a request slot is held, so that
            # reads waiting on it cannot hold every slot (a deadlock at any `max_concurrency`).
            await self._bucket(ref.bucket)
        return await super().read_range(ref, start, end)

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        bucket = await self._bucket(ref.bucket)  # already looked up by `read_range`
        if_match = None if ref.version or not ref.etag else f'"{ref.etag}"'  # versions pin themselves
        try:
            status, body = await self._gets.get(bucket.url, ref.key, bucket.region, byte_range=(start, end),
                                                version=ref.version, if_match=if_match)
        except _NETWORK as exc:
            raise _error(ref.uri, exc) from None
        if status == 206:
            return body
        if status == 200:
            return body[start:end]  # a store that ignores Range sends the whole object
        code = error_code(body)
        if code == "InvalidRange":
            if ref.size == 0:
                return b""
            raise ObjectGone(f"{ref.uri}: shorter than when it was listed")
        raise classify(status, code, _ERRORS)(f"{ref.uri}: {code or 'error'} (HTTP {status})")

    # ---- writes (`tierscan apply` only) --------------------------------------------------------
    # Tags and copies pin the listed VersionId in versioned buckets; copies send CopySourceIfMatch and
    # deletes If-Match with the expected ETag; deletes in versioned buckets leave a delete marker (never a
    # VersionId, which would destroy that version), so the data stays recoverable.

    async def _write(self, kind: str, loc: Location, op: str, **params: Any) -> dict[str, Any]:
        bucket = await self._bucket(loc.bucket)
        return await self._request(kind, loc.uri, bucket.region, op, **params)

    async def versioned(self, bucket: str) -> bool:
        return (await self._bucket(bucket)).versioned

    async def stat(self, loc: Location) -> ObjectState | None:
        bucket = await self._bucket(loc.bucket)
        try:
            head = await self._write("head", loc, "head_object", Bucket=loc.bucket, Key=loc.key)
        except ObjectGone:
            return None
        version = head.get("VersionId") if bucket.versioned else None
        version = None if version in (None, "null") else version
        return ObjectState(size=int(head.get("ContentLength", 0)), etag=str(head.get("ETag", "")).strip('"') or None,
                           version=version, storage_class=head.get("StorageClass") or "STANDARD",
                           modified=head.get("LastModified"), identity=("s3", loc.bucket, loc.key, version or ""))

    async def vouched(self, loc: Location, state: ObjectState) -> dict[str, str]:
        """The ETag when it is a plain MD5 (not multipart, not SSE-KMS or SSE-C) and the full-object
        SHA-1/SHA-256/SHA-512/MD5 checksums (HeadObject with ChecksumMode). A multipart ETag and COMPOSITE
        checksums depend on the part layout, so their kind names it (`s3mpu@PARTS:FIRST_PART_SIZE`, from
        a HeadObject of part 1): equal values prove equal bytes, unequal ones prove nothing."""
        pin = self._pin(state) or ({"IfMatch": f'"{state.etag}"'} if state.etag else {})
        try:
            head = await self._write("head", loc, "head_object", Bucket=loc.bucket, Key=loc.key,
                                     ChecksumMode="ENABLED", **pin)
        except ObjectDenied:
            return {}  # e.g. no kms:Decrypt for a checksum of an SSE-KMS object: nothing vouched
        if int(head.get("ContentLength", -1)) != state.size:
            raise ObjectGone(f"{loc.uri}: changed since it was checked")
        plain = head.get("ServerSideEncryption") not in _KMS and not head.get("SSECustomerAlgorithm")
        etag = str(head.get("ETag", "")).strip('"')
        found: dict[str, str] = {}
        if plain and _MD5.fullmatch(etag):
            found["md5"] = etag
        # A COMPOSITE checksum (a checksum of the parts' checksums) ends in `-PARTS`, which base64 never holds;
        # stores that send no ChecksumType are read by that.
        checksums = {kind: str(value) for kind in _VOUCHED_CHECKSUMS if (value := head.get(f"Checksum{kind.upper()}"))}
        composite = {k: v for k, v in checksums.items() if head.get("ChecksumType") == "COMPOSITE" or "-" in v}
        found.update((kind, _hex(value)) for kind, value in checksums.items() if kind not in composite)
        multipart = plain and _MULTIPART_ETAG.fullmatch(etag)
        if multipart or composite:
            # Not conditional on the ETag (moto compares it with the part's): the values compared come from
            # the pinned HEAD above; the layout only keeps unlike uploads from being called different.
            part = await self._write("head", loc, "head_object", Bucket=loc.bucket, Key=loc.key, PartNumber=1,
                                     **self._pin(state))
            layout = f"@{part.get('PartsCount', 1)}:{part.get('ContentLength')}"
            if multipart:
                found[f"s3mpu{layout}"] = etag
            found.update((f"{kind}{layout}", value) for kind, value in composite.items())
        return found

    def _pin(self, expect: ObjectState) -> dict[str, Any]:
        return {"VersionId": expect.version} if expect.version else {}

    async def get_tags(self, loc: Location) -> dict[str, str]:
        answer = await self._write("head", loc, "get_object_tagging", Bucket=loc.bucket, Key=loc.key)
        return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}

    async def set_tags(self, loc: Location, tags: dict[str, str], *, expect: ObjectState) -> None:
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        if tag_set:
            await self._write("write", loc, "put_object_tagging", Bucket=loc.bucket, Key=loc.key,
                              Tagging={"TagSet": tag_set}, **self._pin(expect))
        else:
            await self._write("write", loc, "delete_object_tagging", Bucket=loc.bucket, Key=loc.key,
                              **self._pin(expect))

    async def _copy(self, src: Location, dst: Location, expect: ObjectState, **extra: Any) -> None:
        source = {"Bucket": src.bucket, "Key": src.key, **self._pin(expect)}
        condition = {"CopySourceIfMatch": f'"{expect.etag}"'} if expect.etag else {}
        await self._write("write", dst, "copy_object", Bucket=dst.bucket, Key=dst.key, CopySource=source,
                          MetadataDirective="COPY", **condition, **extra)

    async def copy(self, src: Location, dst: Location, *, expect: ObjectState) -> ObjectState:
        if await self.stat(dst) is not None:
            raise UsageError(f"{dst.uri}: already exists; not overwritten")
        await self._copy(src, dst, expect, TaggingDirective="COPY",
                         **({"StorageClass": expect.storage_class} if expect.storage_class else {}))
        state = await self.stat(dst)
        if state is None or state.size != expect.size:
            raise TransientError(f"{dst.uri}: the copy is not there after copying")
        return state

    async def delete(self, loc: Location, *, expect: ObjectState) -> str | None:
        # Conditional on the ETag that was checked (S3 answers 412 if the current object is another one).
        condition = {"IfMatch": f'"{expect.etag}"'} if expect.etag else {}
        answer = await self._write("write", loc, "delete_object", Bucket=loc.bucket, Key=loc.key, **condition)
        marker = answer.get("VersionId") if answer.get("DeleteMarker") else None
        return None if marker in (None, "null") else str(marker)

    async def remove_delete_marker(self, loc: Location, marker: str) -> None:
        await self._write("write", loc, "delete_object", Bucket=loc.bucket, Key=loc.key, VersionId=marker)

    async def set_tier(self, loc: Location, storage_class: str, *, expect: ObjectState) -> None:
        # An in-place copy with a new StorageClass; in a versioned bucket the old version stays too.
        await self._copy(loc, loc, expect, StorageClass=storage_class, TaggingDirective="COPY")

    # ---- whole objects (a results location) ----------------------------------------------------
    # Only the bucket's region is looked up: a results bucket's other settings do not matter here, and
    # the job may not be allowed to read them.

    async def _located(self, bucket: str) -> str:
        described = self._buckets.get(bucket)
        if described is not None and described.done() and not described.cancelled() and not described.exception():
            return described.result().region
        task = self._regions.get(bucket)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._regions[bucket] = asyncio.ensure_future(self._bucket_region(bucket))
        return await task

    async def get_object(self, loc: Location) -> bytes | None:
        region = await self._located(loc.bucket)

        async def attempt() -> bytes:
            client = await self._client(region)
            try:
                answer = await client.get_object(Bucket=loc.bucket, Key=loc.key)
                async with answer["Body"] as body:
                    return bytes(await body.read())
            except (ClientError, *_NETWORK) as exc:
                raise _error(loc.uri, exc) from None

        try:
            return await self.call("read", attempt)
        except ObjectGone:
            return None

    async def put_object(self, loc: Location, data: bytes, content_type: str = "application/octet-stream") -> None:
        region = await self._located(loc.bucket)
        await self._request("write", loc.uri, region, "put_object", Bucket=loc.bucket, Key=loc.key, Body=data,
                            ContentType=content_type)

    # ---- preflight (`tierscan doctor`) ---------------------------------------------------------

    async def preflight(self, target: Target) -> list[Check]:
        """Credentials (botocore's chain: which provider found them), identity (STS GetCallerIdentity),
        endpoint, and the bucket's region (the first request to S3)."""
        found = await self.checked("credentials", self._credential_source())
        checks = [found]
        if found.status == "fail":
            return checks
        checks.append(await self.checked("identity", self._caller()))
        if checks[-1].status == "fail":
            return checks
        client = await self._client(self._default_region)
        custom = self._endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        where = " (AWS_ENDPOINT_URL)" if custom and not self._endpoint_url else ""
        checks.append(Check("endpoint", "ok", f"{client.meta.endpoint_url}{where}"))
        if target.all_buckets:
            checks.append(Check("region", "ok", f"{self._default_region} lists the buckets; each bucket's own region "
                                "is looked up"))
        else:
            checks.append(await self.checked("region", self._region_detail(target.location)))
        return checks

    async def _credential_source(self) -> str:
        try:
            credentials = await self._session.get_credentials()
        except BotoCoreError as exc:  # a profile that is not there, an SSO login that expired, ...
            raise TargetError("s3", Cause.credentials, f"the credentials cannot be loaded ({type(exc).__name__})",
                              _FIXES[Cause.credentials]) from None
        if credentials is None:
            raise TargetError("s3", Cause.credentials, "no AWS credentials found", _FIXES[Cause.credentials])
        profile = self._session.get_config_variable("profile") or "default"
        return _SOURCES.get(credentials.method, "{method}").format(method=credentials.method, profile=profile)

    async def _caller(self) -> str | Check:
        """Whom the credentials are: STS GetCallerIdentity, at the endpoint S3 is reached at when one is set
        (an S3-compatible store may have no STS: then a warning, not a failure)."""
        config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"},
                           connect_timeout=min(10.0, self.request_timeout), read_timeout=self.request_timeout,
                           user_agent=self._user_agent)
        try:
            async with self._session.create_client("sts", region_name=self._default_region,
                                                   endpoint_url=self._endpoint_url, config=config) as sts:
                self.requests["identity"] += 1
                answer = await sts.get_caller_identity()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _REJECTED or code == "InvalidClientTokenId":
                raise TargetError("s3", Cause.credentials, f"the credentials are not accepted, {code} (HTTP {status})",
                                  _FIXES[Cause.credentials]) from None
            why = f"{code or 'error'} (HTTP {status})"
            return Check("identity", "warn", f"unknown: STS GetCallerIdentity answered {why}")
        except _NETWORK as exc:
            failure = connection_failure("s3", exc, _FIXES)
            why = failure.why if failure is not None else type(exc).__name__
            return Check("identity", "warn", f"unknown: STS GetCallerIdentity failed ({why})")
        return f"{answer.get('Arn')} (account {answer.get('Account')})"

    async def _region_detail(self, bucket: str) -> str:
        region = await self._bucket_region(bucket)
        return f"{region} (the bucket's location)"

    async def inventory_report(self, bucket: str, settings: InventorySettings) -> Report:
        return (await self._newest_report(bucket, settings))[0]


# botocore's credential providers (`Credentials.method`), as `tierscan doctor` names them.
_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE), "
                               "profile {profile}",
    "config-file": "config file (~/.aws/config or AWS_CONFIG_FILE), profile {profile}",
    "assume-role": "a role assumed by profile {profile} (role_arn)",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE: EKS service account role)",
    "sso": "IAM Identity Center (SSO) login, profile {profile}",
    "login": "an AWS console login session, profile {profile}",
    "custom-process": "credential_process of profile {profile}",
    "container-role": "the container's role (ECS task role or EKS Pod Identity)",
    "iam-role": "the instance's role (EC2 instance metadata)",
}

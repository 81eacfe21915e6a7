"""Azure Blob Storage, through azure-storage-blob's asyncio client (`azure.storage.blob.aio`).

Targets are `az://ACCOUNT/CONTAINER[/PREFIX]` and `az://ACCOUNT/*`. Credentials, per account:
- `AZURE_STORAGE_CONNECTION_STRING` (or `connection_string=`) when it names that account (AccountName,
  or the account in its BlobEndpoint; `UseDevelopmentStorage=true` is Azurite's devstoreaccount1);
- otherwise `DefaultAzureCredential` (environment, workload identity, managed identity, Azure CLI) against
  `https://ACCOUNT.<endpoint suffix>`. The suffix is `blob.core.windows.net`; for Azure China set
  `endpoint_suffix="blob.core.chinacloudapi.cn"` or `TIERSCAN_AZURE_ENDPOINT_SUFFIX` (and
  `AZURE_AUTHORITY_HOST=https://login.chinacloudapi.cn` for azure-identity).
The SDK's retry policy is off (`retry_total=0`): the base class's policy is the only one.

Region: an account's location is not visible in the data plane (only in Azure Resource Manager), so it
comes from configuration, first match wins: a `buckets:` entry matching `ACCOUNT/CONTAINER` or the URI
(for example `"hkacct/*": {region: eastasia}`), then `region=` / `AZURE_STORAGE_REGION`, then a
`defaults: region` written in the config file. With none of these the region is `unknown`.

Rules:
- **Checksums:** `Content-MD5` when the blob has one, as kind `content-md5`: a claim, not proof. Azure
  computes it for single-shot uploads, but for blobs committed from blocks it is whatever the writer set
  (often nothing), anyone with write access can change it (Set Blob Properties), and Azure does not check
  it. Equal claims only make two blobs candidates: the bytes are read to group them.
- **Tiers:** the access tier (an unset, inferred tier is the account default, Hot); Archive blobs, also
  while rehydrating, are never read. Reads send `If-Match` with the listed ETag, so a blob replaced since
  the listing reads as gone.
- **Versions:** not listed (current blobs only).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
)
from azure.storage.blob import ContentSettings, StandardBlobTier
from azure.storage.blob.aio import BlobPrefix, BlobServiceClient

from tierscan.connectors._http import (
    NETWORK_ERRORS,
    ErrorTable,
    Fixes,
    classify,
    connection_failure,
    named_target,
    skip_forbidden,
)
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
    azure_report,
    falsy,
    report_refs,
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

__all__ = ["AzureConnector", "account_of_connection_string"]

log = logging.getLogger("tierscan.connectors.azure")
# The credential chain logs every credential it tried, as warnings, before it fails: the one-line credentials
# error says what matters, and `--debug` shows the chain (it is in the exception's text).
logging.getLogger("azure.identity").addHandler(logging.NullHandler())

_DEV_ACCOUNT = "devstoreaccount1"
_PAGE = 5000

# Azure error codes (x-ms-error-code) -> tierscan.scanner.core.errors; other statuses fall back to `_http.classify`.
_ERRORS: ErrorTable = {
    "BlobNotFound": ObjectGone,
    "ContainerNotFound": ObjectGone,
    "ConditionNotMet": ObjectGone,
    "AuthorizationFailure": ObjectDenied,
    "AuthorizationPermissionMismatch": ObjectDenied,
    "AuthorizationSourceIPMismatch": ObjectDenied,
    "InsufficientAccountPermissions": ObjectDenied,
    "BlobArchived": ObjectUnreadable,
    "BlobBeingRehydrated": ObjectUnreadable,
    "ServerBusy": Throttled,
    "OperationTimedOut": TransientError,
    "InternalError": TransientError,
}
# An answer that does not parse comes from something other than the Blob service (`_error`).
_NETWORK: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, AzureError, DeserializationError)
# Codes that reject the credentials themselves (a wrong key, an expired SAS), whatever the request.
_REJECTED = frozenset({"AuthenticationFailed"})
_FIXES: Fixes = {
    Cause.credentials: "set AZURE_STORAGE_CONNECTION_STRING, or sign in (az login) for DefaultAzureCredential",
    Cause.denied: "grant these credentials Storage Blob Data Reader on the container, or scan with ones that have it",
    Cause.not_found: "check the account and container names",
    Cause.network: "check the account's endpoint (AZURE_STORAGE_CONNECTION_STRING), the network and any proxy",
    Cause.tls: "check the endpoint's certificate and the CA bundle (SSL_CERT_FILE)",
    Cause.not_storage: "check the account's endpoint: it must be the Blob service",
}
# Inventory columns the listing takes (`inventory_reports.canonical` names), and the run folders' levels.
_INVENTORY_COLUMNS = frozenset({"name", "contentlength", "lastmodified", "etag", "contentmd5", "accesstier",
                                "deleted", "snapshot", "iscurrentversion", "hdiisfolder"})
_RUN_LEVELS = (re.compile(r"\d{4}"), re.compile(r"\d\d"), re.compile(r"\d\d"), re.compile(r"\d\d-\d\d-\d\d"))


def _inventory_time(value: Any) -> datetime:
    """An inventory's Last-Modified as a listing gives it: to the second (ISO text with 7 decimals in CSV,
    or a timestamp)."""
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        try:
            when = datetime.fromisoformat(re.sub(r"\.(\d{6})\d*", r".\1", text))
        except ValueError:
            when = parsedate_to_datetime(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def _error(uri: str, exc: BaseException) -> ObjectError | TargetError:
    """The scanner error for a failed request; the message names no URL, header, key or SAS token. Failures
    no retry mends (an endpoint that is not there, a TLS failure) are `TargetError`s."""
    if (failure := connection_failure(uri, exc, _FIXES)) is not None:
        return failure
    if isinstance(exc, DeserializationError | DecodeError):  # a web page, a proxy's answer
        return TargetError(uri, Cause.not_storage, "the endpoint's answer is not from the Blob service",
                           _FIXES[Cause.not_storage])
    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:  # the credential chain found none
        return TargetError(uri, Cause.credentials, "no Azure credentials found", _FIXES[Cause.credentials])
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = getattr(exc, "error_code", None)  # set by the storage SDK from x-ms-error-code
        code = getattr(code, "value", code)  # the SDK's enum of the codes it knows, as the code
        if code in _REJECTED:
            why = f"the credentials are not accepted, {code} (HTTP {exc.status_code})"
            return TargetError(uri, Cause.credentials, why, _FIXES[Cause.credentials])
        return classify(exc.status_code, code, _ERRORS)(f"{uri}: {code or 'error'} (HTTP {exc.status_code})")
    return TransientError(f"{uri}: {type(exc).__name__} talking to Azure")


def account_of_connection_string(text: str) -> str | None:
    """The storage account a connection string is for, without keeping any of its secrets."""
    fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        return _DEV_ACCOUNT
    if fields.get("AccountName"):
        return fields["AccountName"]
    endpoint = urlsplit(fields.get("BlobEndpoint", ""))
    if not endpoint.hostname:
        return None
    if endpoint.hostname in {"127.0.0.1", "localhost"} or endpoint.hostname[0].isdigit():
        return endpoint.path.strip("/").split("/")[0] or None  # path-style (Azurite, IP endpoints)
    return endpoint.hostname.split(".")[0]


class AzureConnector(Connector):
    scheme = "az"
    capabilities = Capabilities(
        name="azure",
        checksums={"content-md5": "listing"},
        ranged_reads=True,
        versioning=False,
        lists_all_buckets=True,
        tier_table="azure",
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
        connection_string: str | None = None,
        credential: Any = None,
        endpoint_suffix: str | None = None,
        region: str | None = None,
        container_concurrency: int = 8,
    ):
        super().__init__(config, max_concurrency=max_concurrency, request_timeout=request_timeout, retry=retry)
        self._connection_string = connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        self._credential = credential
        self._own_credential = credential is None
        self._suffix = endpoint_suffix or os.environ.get("TIERSCAN_AZURE_ENDPOINT_SUFFIX") or "blob.core.windows.net"
        region = region or os.environ.get("AZURE_STORAGE_REGION")
        # `defaults: region` counts only when the config file wrote it: the built-in default is "local".
        self._region = region or (None if "defaults" in config.model_fields_set else "unknown")
        self._container_concurrency = container_concurrency
        self._services: dict[str, BlobServiceClient] = {}

    async def aclose(self) -> None:
        services, self._services = self._services, {}
        for service in services.values():
            await service.close()
        if self._own_credential and self._credential is not None:
            await self._credential.close()
            self._credential = None

    def _service(self, account: str) -> BlobServiceClient:
        if account not in self._services:
            options: dict[str, Any] = {
                "retry_total": 0,  # one retry policy: the base's
                "connection_timeout": min(10.0, self.request_timeout),
                "read_timeout": self.request_timeout,
            }
            cs = self._connection_string
            if cs and account_of_connection_string(cs) == account:
                try:
                    service = BlobServiceClient.from_connection_string(cs, **options)
                except ValueError:
                    raise UsageError("AZURE_STORAGE_CONNECTION_STRING is not a valid connection string") from None
            else:
                if self._credential is None:
                    from azure.identity.aio import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
                service = BlobServiceClient(f"https://{account}.{self._suffix}", credential=self._credential, **options)
            self._services[account] = service
        return self._services[account]

    async def _next_page(self, uri: str, pages: Any) -> list[Any] | None:
        """The next page of an SDK pager (None at the end), retried by the base; the pager keeps its
        continuation token when a fetch fails, so a retry asks for the same page."""

        async def attempt() -> list[Any] | None:
            try:
                page = await pages.__anext__()
                return [item async for item in page]
            except StopAsyncIteration:
                return None
            except _NETWORK as exc:
                raise _error(uri, exc) from None

        return await self.call("list", attempt)

    # ---- listing -------------------------------------------------------------------------------

    async def list_objects(self, target: Target) -> AsyncIterator[ObjectRef]:
        account, _, container = target.location.partition("/")
        if container != "*":
            async for ref in named_target(self._list_container(account, container, target.prefix),
                                          f"az://{account}/{container}", _FIXES):
                yield ref
            return
        service = self._service(account)
        pages = service.list_containers(results_per_page=_PAGE).by_page()
        names: list[str] = []
        while (page := await self._next_page(f"az://{account}/*", pages)) is not None:
            names.extend(c.name for c in page)
        streams = [skip_forbidden(self._list_container(account, name, target.prefix), what=f"az://{account}/{name}")
                   for name in names]
        async for ref in merge_streams(streams, limit=self._container_concurrency):
            yield ref

    async def _list_container(self, account: str, container: str, prefix: str) -> AsyncIterator[ObjectRef]:
        inventory = self.config.bucket_settings(f"{account}/{container}", f"az://{account}/{container}/").inventory
        if inventory is not None:
            async for ref in self._list_inventory(account, container, prefix, inventory):
                yield ref
            return
        client = self._service(account).get_container_client(container)
        uri = f"az://{account}/{container}/{prefix}"
        pages = client.list_blobs(name_starts_with=prefix or None, results_per_page=_PAGE).by_page()
        try:
            while (page := await self._next_page(uri, pages)) is not None:
                for blob in page:
                    yield self._ref(account, container, blob)
        except ObjectGone:
            raise TargetError(f"az://{account}/{container}", Cause.not_found, "no such container",
                              _FIXES[Cause.not_found]) from None

    # ---- listing from Azure Blob Inventory runs (`tierscan.connectors.inventory_reports`) ---------------------

    async def _list_inventory(self, account: str, container: str, prefix: str,
                              settings: InventorySettings) -> AsyncIterator[ObjectRef]:
        """The container's blobs as the newest succeeded inventory run lists them: no List Blobs of the
        container. Rows of other containers, snapshots, old versions, deleted blobs and folders are passed."""
        parts = urlsplit(settings.uri)
        dest_account, dest = parts.netloc, parts.path.strip("/")
        if not settings.rule or not dest or "/" in dest:
            raise UsageError(f"az://{account}/{container}: an Azure inventory is "
                             "{uri: az://ACCOUNT/DEST-CONTAINER, rule: RULE-NAME}")
        client = self._service(dest_account).get_container_client(dest)
        report = await self._newest_run(client, settings)
        announce(f"az://{account}/{container}", report, settings.max_age_days)

        async def fetch(data_file: DataFile, start: int, end: int) -> bytes:
            blob = client.get_blob_client(data_file.name)
            return await self._fetch(blob, f"{settings.uri}/{data_file.name}", offset=start, length=end - start)

        shard, head = self.inventory_shard, f"{container}/"

        def convert(row: dict[str, Any]) -> ObjectRef | None:
            name = row["name"]
            if not name.startswith(head) or truthy(row.get("deleted")) or truthy(row.get("hdiisfolder")):
                return None
            if row.get("snapshot") or falsy(row.get("iscurrentversion")):
                return None
            key = name[len(head):]
            uri = f"az://{account}/{container}/{key}"
            if not key.startswith(prefix) or (shard is not None and not shard.owns(uri)):
                return None
            md5 = row.get("contentmd5")  # base64 text (CSV), or the digest's bytes
            md5 = md5.hex() if isinstance(md5, bytes) else base64.b64decode(md5).hex() if md5 else None
            return self.make_ref(
                uri=uri, bucket=f"{account}/{container}", key=key, size=int(row.get("contentlength") or 0),
                modified=_inventory_time(row["lastmodified"]), storage_class=str(row.get("accesstier") or "Hot"),
                region=self._region, etag=str(row.get("etag") or "").strip('"') or None,
                checksums={"content-md5": md5} if md5 else None,
            )

        async for ref in report_refs(report, fetch, _INVENTORY_COLUMNS, convert):
            yield ref

    async def _newest_run(self, client: Any, settings: InventorySettings) -> Report:
        """The newest run of the rule whose manifest says it succeeded: the `YYYY/MM/DD/HH-MM-SS/` folders
        are walked newest first, one delimited listing a level, so older days are never listed."""
        rule = settings.rule or ""

        async def folders(prefix: str) -> list[str]:
            async def attempt() -> list[str]:
                try:
                    return [item.name
                            async for item in client.walk_blobs(name_starts_with=prefix or None, delimiter="/")
                            if isinstance(item, BlobPrefix)]
                except _NETWORK as exc:
                    raise _error(f"{settings.uri}/{prefix}", exc) from None

            return sorted(await self.call("inventory", attempt), reverse=True)

        async def walk(prefix: str, depth: int) -> AsyncIterator[str]:
            for folder in await folders(prefix):
                if _RUN_LEVELS[depth].fullmatch(folder[len(prefix):].rstrip("/")):
                    if depth == len(_RUN_LEVELS) - 1:
                        yield folder
                    else:
                        async for run in walk(folder, depth + 1):
                            yield run

        tried = 0
        async for run in walk("", 0):
            if tried == MAX_TRIED:
                break
            tried += 1
            where = f"{settings.uri}/{run}{rule}/{rule}-manifest.json"
            manifest = await self._small(client.get_blob_client(f"{run}{rule}/{rule}-manifest.json"), where)
            report = azure_report(manifest, where) if manifest is not None else None
            if report is not None:
                return report
            log.warning("%s: incomplete inventory run (no manifest, or it did not succeed): passed over", where)
        raise UsageError(f"{settings.uri}: no succeeded inventory run of rule {rule!r} among the {MAX_TRIED} newest")

    async def _fetch(self, blob: Any, uri: str, **params: Any) -> bytes:
        """A blob's bytes (or the range `params` ask for) from an inventory's destination, retried."""

        async def attempt() -> bytes:
            try:
                return bytes(await (await blob.download_blob(**params)).readall())
            except _NETWORK as exc:
                raise _error(uri, exc) from None

        return await self.call("inventory", attempt)

    async def _small(self, blob: Any, uri: str) -> bytes | None:
        """A small blob's bytes (a manifest), or None when it is not there."""
        try:
            return await self._fetch(blob, uri)
        except ObjectGone:
            return None

    def _ref(self, account: str, container: str, blob: Any) -> ObjectRef:
        md5 = blob.content_settings.content_md5 if blob.content_settings else None
        return self.make_ref(
            uri=f"az://{account}/{container}/{blob.name}",
            bucket=f"{account}/{container}",
            key=blob.name,
            size=int(blob.size or 0),
            modified=blob.last_modified,
            storage_class=str(getattr(blob.blob_tier, "value", blob.blob_tier) or "Hot"),
            region=self._region,
            etag=(blob.etag or "").strip('"') or None,
            checksums={"content-md5": bytes(md5).hex()} if md5 else None,
        )

    # ---- reads ---------------------------------------------------------------------------------

    async def _read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        account, _, container = ref.bucket.partition("/")
        blob = self._service(account).get_blob_client(container, ref.key)
        condition: dict[str, Any] = {}
        if ref.etag:
            condition = {"etag": f'"{ref.etag}"', "match_condition": MatchConditions.IfNotModified}
        try:
            stream = await blob.download_blob(offset=start, length=end - start, max_concurrency=1, **condition)
            data: bytes = await stream.readall()
            return data
        except HttpResponseError as exc:
            if exc.status_code == 416:
                if ref.size == 0:
                    return b""
                raise ObjectGone(f"{ref.uri}: shorter than when it was listed") from None
            raise _error(ref.uri, exc) from None
        except _NETWORK as exc:
            raise _error(ref.uri, exc) from None

    # ---- writes (`tierscan apply` only) --------------------------------------------------------
    # Copies and deletes are conditional on the expected ETag (If-Match), copies also on the destination
    # not existing (If-None-Match: *): Azure checks, not us. Blob index tags and tier changes take no ETag
    # condition, so the caller's fresh `stat` is the check. Tags are blob index tags.

    def _blob(self, loc: Location) -> Any:
        account, _, container = loc.bucket.partition("/")
        return self._service(account).get_blob_client(container, loc.key)

    async def _az(self, kind: str, loc: Location, fn: Any) -> Any:
        async def attempt() -> Any:
            try:
                return await fn()
            except _NETWORK as exc:
                raise _error(loc.uri, exc) from None

        return await self.call(kind, attempt)

    async def stat(self, loc: Location) -> ObjectState | None:
        try:
            props = await self._az("head", loc, lambda: self._blob(loc).get_blob_properties())
        except ObjectGone:
            return None
        tier = getattr(props.blob_tier, "value", props.blob_tier)
        account, _, container = loc.bucket.partition("/")
        # No checksums: Content-MD5 is whatever a writer set (Set Blob Properties changes it at will).
        return ObjectState(size=int(props.size or 0), etag=(props.etag or "").strip('"') or None,
                           storage_class=str(tier or "Hot"), modified=props.last_modified,
                           identity=("az", account.lower(), container, loc.key))

    async def get_tags(self, loc: Location) -> dict[str, str]:
        return dict(await self._az("head", loc, lambda: self._blob(loc).get_blob_tags()))

    async def set_tags(self, loc: Location, tags: dict[str, str], *, expect: ObjectState) -> None:
        await self._az("write", loc, lambda: self._blob(loc).set_blob_tags(dict(tags)))

    async def copy(self, src: Location, dst: Location, *, expect: ObjectState) -> ObjectState:
        source = self._blob(src)
        conditions: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
        if expect.etag:
            conditions.update(source_etag=f'"{expect.etag}"', source_match_condition=MatchConditions.IfNotModified)
        if expect.storage_class in ("Hot", "Cool", "Cold"):
            conditions["standard_blob_tier"] = StandardBlobTier(expect.storage_class)
        copied = await self._az("write", dst, lambda: self._blob(dst).start_copy_from_url(source.url, **conditions))
        for _ in range(600):  # same-account copies complete at once; others are polled (at most a minute)
            if copied.get("copy_status") in (None, "success"):
                break
            if copied.get("copy_status") in ("failed", "aborted"):
                raise TransientError(f"{dst.uri}: the copy {copied.get('copy_status')}")
            await asyncio.sleep(0.1)
            props = await self._az("head", dst, lambda: self._blob(dst).get_blob_properties())
            copied = {"copy_status": getattr(props.copy, "status", None)}
        state = await self.stat(dst)
        if state is None or state.size != expect.size:
            raise TransientError(f"{dst.uri}: the copy is not there after copying")
        return state

    async def delete(self, loc: Location, *, expect: ObjectState) -> str | None:
        conditions: dict[str, Any] = {}
        if expect.etag:
            conditions = {"etag": f'"{expect.etag}"', "match_condition": MatchConditions.IfNotModified}
        await self._az("write", loc, lambda: self._blob(loc).delete_blob(**conditions))
        return None

    async def set_tier(self, loc: Location, storage_class: str, *, expect: ObjectState) -> None:
        await self._az("write", loc, lambda: self._blob(loc).set_standard_blob_tier(StandardBlobTier(storage_class)))

    # ---- whole objects (a results location) ----------------------------------------------------

    async def get_object(self, loc: Location) -> bytes | None:
        async def download() -> bytes:
            return bytes(await (await self._blob(loc).download_blob()).readall())

        try:
            data: bytes = await self._az("read", loc, download)
        except ObjectGone:
            return None
        return data

    async def put_object(self, loc: Location, data: bytes, content_type: str = "application/octet-stream") -> None:
        settings = ContentSettings(content_type=content_type)
        await self._az("write", loc, lambda: self._blob(loc).upload_blob(data, overwrite=True,
                                                                         content_settings=settings))

    # ---- preflight (`tierscan doctor`) ---------------------------------------------------------

    async def preflight(self, target: Target) -> list[Check]:
        """Credentials (a connection string for the account, else DefaultAzureCredential and the credential
        that answered), identity (the connection string's account, or the token's principal), endpoint and
        region (configuration: the data plane does not tell)."""
        account, _, container = target.location.partition("/")
        cs = self._connection_string
        if cs and account_of_connection_string(cs) == account:
            source = "AZURE_STORAGE_CONNECTION_STRING" if cs == os.environ.get("AZURE_STORAGE_CONNECTION_STRING") \
                else "a connection string"
            checks = [Check("credentials", "ok", f"{source} for account {account}"),
                      Check("identity", "ok", _connection_identity(cs, account))]
        else:
            claims: dict[str, Any] = {}
            checks = [await self.checked("credentials", self._token_source(account, claims))]
            if checks[-1].status == "fail":
                return checks
            checks.append(_principal(claims))
        try:
            url = urlsplit(self._service(account).url)  # never the query: it may hold a SAS token
        except UsageError as exc:
            return [*checks, Check.failed("endpoint", exc)]
        checks.append(Check("endpoint", "ok", f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"))
        bucket = f"{account}/{container}"
        region = (self.config.bucket_settings(bucket, f"az://{bucket}/").region or self._region
                  or self.config.defaults.region)
        if region and region != "unknown":
            checks.append(Check("region", "ok", f"{region} (from the configuration)"))
        else:
            checks.append(Check("region", "warn", "unknown: the Blob service does not tell an account's region",
                                f'set AZURE_STORAGE_REGION, or the region in the config: buckets: {{"{bucket}": '
                                '{region: ...}}'))
        return checks

    async def _token_source(self, account: str, claims: dict[str, Any]) -> str:
        """Which of DefaultAzureCredential's credentials gives a storage token; the token's claims go to
        `claims`."""
        self._service(account)  # makes the credential
        credential = self._credential
        self.requests["identity"] += 1
        try:
            token = await credential.get_token(_STORAGE_SCOPE)
        except _NETWORK as exc:  # the chain found none (ClientAuthenticationError), or its endpoint failed
            raise _error(f"az://{account}", exc) from None
        claims.update(_claims(token.token))
        used = getattr(credential, "_successful_credential", None)  # DefaultAzureCredential's pick
        name = type(used or credential).__name__
        return f"DefaultAzureCredential: {name}" if used is not None else name

    async def inventory_report(self, bucket: str, settings: InventorySettings) -> Report:
        parts = urlsplit(settings.uri)
        dest_account, dest = parts.netloc, parts.path.strip("/")
        if not settings.rule or not dest or "/" in dest:
            raise UsageError(f"az://{bucket}: an Azure inventory is "
                             "{uri: az://ACCOUNT/DEST-CONTAINER, rule: RULE-NAME}")
        return await self._newest_run(self._service(dest_account).get_container_client(dest), settings)


_STORAGE_SCOPE = "https://storage.azure.com/.default"


def _connection_identity(text: str, account: str) -> str:
    """What a connection string signs requests with, named without its secrets."""
    fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if fields.get("UseDevelopmentStorage", "").lower() == "true" or account == _DEV_ACCOUNT:
        return f"the development account key of {account} (Azurite)"
    if fields.get("AccountKey"):
        return f"the account key of {account} (Shared Key)"
    if fields.get("SharedAccessSignature"):
        return f"a SAS token for {account}"
    return f"account {account}, anonymous (no key or SAS in the connection string)"


def _principal(claims: dict[str, Any]) -> Check:
    """Whom a token is for: its user, application or object id."""
    for claim, what in (("upn", "user"), ("unique_name", "user"), ("appid", "application"), ("oid", "principal")):
        if claims.get(claim):
            tenant = f" (tenant {claims['tid']})" if claims.get("tid") else ""
            return Check("identity", "ok", f"{what} {claims[claim]}{tenant}")
    return Check("identity", "warn", "unknown: the token names no principal")


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (only to name whom the token is for)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}

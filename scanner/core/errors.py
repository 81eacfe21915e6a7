"""Exceptions raised by tierscan.

    TierscanError
    ├── UsageError                 bad config or policy file (CLI exit 2); names file, line and field
    │   └── CatalogBusy            another command holds the catalog (scan, plan, merge, apply --execute)
    ├── TargetError                a whole target cannot be reached or used (CLI exit 3): never retried
    └── ObjectError                one object could not be used; the scan records it in `skipped`
        ├── ObjectGone             (also FileNotFoundError) vanished between listing and reading
        ├── ObjectDenied           (also PermissionError) the credentials may not read it
        ├── ObjectUnreadable       its tier needs a restore or rehydration first
        ├── ObjectRefused          not a regular file, or its real path leaves the scanned folder: not read
        ├── ObjectReadError        the read itself failed (EIO and other I/O errors)
        └── TransientError         throttling, timeouts, dropped connections: retried, then skipped

Connectors translate their SDK's errors into these at the edge, so the core never sees a provider's types.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CatalogBusy",
    "Cause",
    "ObjectDenied",
    "ObjectError",
    "ObjectGone",
    "ObjectReadError",
    "ObjectRefused",
    "ObjectUnreadable",
    "TargetError",
    "TierscanError",
    "TransientError",
    "UsageError",
]


class TierscanError(Exception):
    """Root of every error tierscan raises on purpose."""


class UsageError(TierscanError):
    """A bad argument, config file or policy file. The message names the file, line and field."""


class CatalogBusy(UsageError):
    """Another process holds the catalog's lock (`tierscan.scanner.scan.catalog_lock`); the message names it."""


class Cause(str, Enum):
    """Why a target cannot be scanned: none of these passes by waiting, so none is retried."""

    credentials = "credentials"  # none found, or the provider does not know them
    denied = "denied"  # the credentials may not list the target
    not_found = "not-found"  # no such bucket or container
    network = "network"  # the host name does not resolve, or nothing listens at the address
    tls = "tls"  # the TLS handshake failed: a certificate that does not verify, another protocol
    not_storage = "not-storage"  # something answered, but not a storage service (an HTML page, a proxy)


class TargetError(TierscanError):
    """A target (bucket, container, account or endpoint) cannot be scanned at all. The message is one line
    that names the target, the cause and the fix; `Connector.call` raises it at once, without retries."""

    def __init__(self, target: str, cause: Cause, why: str, fix: str):
        super().__init__(f"{target}: {why} ({cause.value}): {fix}")
        self.target = target
        self.cause = cause
        self.why = why
        self.fix = fix


class ObjectError(TierscanError):
    """One object could not be read or used. `reason` is the short text shown in `skipped`."""

    reason = "error"


class ObjectGone(ObjectError, FileNotFoundError):
    reason = "vanished"


class ObjectDenied(ObjectError, PermissionError):
    reason = "denied"


class ObjectUnreadable(ObjectError):
    reason = "unreadable tier"


class ObjectRefused(ObjectError):
    reason = "not read"


class ObjectReadError(ObjectError):
    reason = "read error"


class TransientError(ObjectError):
    reason = "transient"

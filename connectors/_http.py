"""Helpers the cloud backends share: turning an HTTP status and a provider error code into a
`tierscan.scanner.core.errors` type, and recognising network faults.

Each backend keeps its own table of error codes; the status fallback here covers what the tables leave
out, so an unknown code still lands in the right family (a 5xx is always worth retrying, a 404 never).
Messages are built by the backends from the URI, the code and the status only: never from the SDK's text,
which can quote request URLs (SAS tokens, signed URLs) or headers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

from tierscan.connectors.base import Throttled
from tierscan.scanner.core.errors import (
    Cause,
    ObjectDenied,
    ObjectError,
    ObjectGone,
    TargetError,
    TransientError,
    UsageError,
)

__all__ = ["NETWORK_ERRORS", "ErrorTable", "Fixes", "classify", "connection_failure", "named_target",
           "skip_forbidden"]

T = TypeVar("T")
log = logging.getLogger("tierscan.connectors")

ErrorTable = Mapping[str, type[ObjectError]]

# Connection refused or reset, broken pipes, DNS hiccups: all OSErrors; SDK-specific ones are added per
# backend. A timeout is retried too.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)

_BY_STATUS: dict[int, type[ObjectError]] = {
    401: ObjectDenied,
    403: ObjectDenied,
    404: ObjectGone,
    408: TransientError,
    410: ObjectGone,
    412: ObjectGone,  # the object changed since it was listed: the listed object is gone
    429: Throttled,
    503: Throttled,
}


def classify(status: int | None, code: str | None, table: ErrorTable) -> type[ObjectError]:
    """The error type for a failed request: the backend's code table first, then the HTTP status."""
    if code and code in table:
        return table[code]
    if status is None:
        return TransientError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return TransientError
    return ObjectError


# What the user can do about each `Cause`, in a backend's words (its credential chain, its endpoint setting).
Fixes = Mapping[Cause, str]
# Connection failures that waiting does not mend: nothing listens there, no route to it.
_UNREACHABLE = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
                errno.ENETUNREACH: "network unreachable"}


def connection_failure(target: str, exc: BaseException, fixes: Fixes) -> TargetError | None:
    """The `TargetError` for a failure no retry mends, found in `exc` or what it wraps (SDKs wrap the
    socket's error in their own): a host name that does not resolve, a refused or unroutable connection, a
    TLS handshake that fails. None for anything else (a reset or a timeout is transient)."""
    where = "the endpoint"
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        host, port = getattr(cause, "host", None), getattr(cause, "port", None)
        if isinstance(host, str) and host:
            where = f"{host}:{port}" if port else host
        # aiohttp's wrappers subclass these too, without their attributes: the innermost one says more.
        if isinstance(cause, ssl.SSLCertVerificationError) and getattr(cause, "verify_message", None):
            why = f"the TLS certificate of {where} does not verify ({cause.verify_message})"
            return TargetError(target, Cause.tls, why, fixes[Cause.tls])
        if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None):
            why = f"the TLS handshake with {where} failed ({cause.reason})"
            return TargetError(target, Cause.tls, why, fixes[Cause.tls])
        if isinstance(cause, socket.gaierror):
            why = f"the host name {where.rpartition(':')[0] or where} does not resolve"
            return TargetError(target, Cause.network, why, fixes[Cause.network])
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
            return TargetError(target, Cause.network, f"{_UNREACHABLE[cause.errno]} at {where}",
                               fixes[Cause.network])
        cause = cause.__cause__ or getattr(cause, "inner_exception", None) or cause.__context__
    return None


async def named_target(stream: AsyncIterator[T], target: str, fixes: Fixes) -> AsyncIterator[T]:
    """A named bucket's listing: denied or not there is the whole target's failure, a `TargetError`."""
    try:
        async for item in stream:
            yield item
    except ObjectDenied as exc:
        why = f"listing denied, {_code(exc)}"
        raise TargetError(target, Cause.denied, why, fixes[Cause.denied]) from exc
    except ObjectGone as exc:
        raise TargetError(target, Cause.not_found, f"no such bucket or container, {_code(exc)}",
                          fixes[Cause.not_found]) from exc


def _code(exc: ObjectError) -> str:
    """What a backend's message says after the URI: the provider's code and the HTTP status."""
    return str(exc).rpartition(": ")[2]


async def skip_forbidden(stream: AsyncIterator[T], *, what: str) -> AsyncIterator[T]:
    """A bucket's listing inside a `scheme://*` scan: a bucket the credentials may see but not list (or
    that vanished meanwhile) is logged and skipped instead of ending the whole scan. A named bucket gets
    no such grace; its error reaches the caller."""
    try:
        async for item in stream:
            yield item
    except (ObjectDenied, ObjectGone, UsageError) as exc:
        log.warning("%s: skipped: %s", what, exc)
    except TargetError as exc:
        if exc.cause not in (Cause.denied, Cause.not_found):
            raise
        log.warning("%s: skipped: %s", what, exc)

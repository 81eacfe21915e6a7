"""Helpers the cloud backends share: turning an HTTP status and a provider error code into a
`tierscan.scanner.core.errors` type, and recognising network faults.

Each backend keeps its own table of error codes; the status fallback here covers what the tables leave
out, so an unknown code still lands in the right family (a 5xx is always worth retrying, a 404 never).
Messages are built by the backends from the URI, the code and the status only: never from the SDK's text,
which can quote request URLs (SAS tokens, signed URLs) or headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

from tierscan.connectors.base import Throttled
from tierscan.scanner.core.errors import ObjectDenied, ObjectError, ObjectGone, TransientError, UsageError

__all__ = ["NETWORK_ERRORS", "ErrorTable", "classify", "skip_forbidden"]

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


async def skip_forbidden(stream: AsyncIterator[T], *, what: str) -> AsyncIterator[T]:
    """A bucket's listing inside a `scheme://*` scan: a bucket the credentials may see but not list (or
    that vanished meanwhile) is logged and skipped instead of ending the whole scan. A named bucket gets
    no such grace; its error reaches the caller."""
    try:
        async for item in stream:
            yield item
    except (ObjectDenied, ObjectGone, UsageError) as exc:
        log.warning("%s: skipped: %s", what, exc)

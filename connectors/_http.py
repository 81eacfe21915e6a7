"""Helpers the cloud backends share: turning an HTTP status and a provider error code into a
`scanner.errors` type, and recognising network faults.

Each backend keeps its own table of error codes; the status fallback here covers what the tables leave
out, so an unknown code still lands in the right family (a 5xx is always worth retrying, a 404 never).
Messages are built by the backends from the URI, the code and the status only: never from the SDK's text,
which can quote request URLs (SAS tokens, signed URLs) or headers.
"""

from __future__ import annotations

import asyncio
from typing import Mapping

from scanner.errors import ObjectDenied, ObjectError, ObjectGone, TransientError

from .base import Throttled

__all__ = ["NETWORK_ERRORS", "ErrorTable", "classify"]

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

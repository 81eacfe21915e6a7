"""moto server whose ranged GETs read only the range, as S3 does (benchmarks only; tests use stock moto).

Stock moto 5.2 answers every GET from `FakeKey.value`, which reads the whole object out of its buffer
(a temporary file for the benchmark's estate) and then slices the range: a 16 KiB read of an 8 MiB
object costs the server 8 MiB of file reads. On the 20,000-object estate (26 GB of temporary files, more
than this machine's page cache) that made each GET cost moto 7.5 ms of CPU on the cores the scanners run
on, whether it served 16 KiB or 8 MiB, so a scanner that reads ranges was charged for whole objects.
Here, while a GET with one `bytes=FIRST-LAST` range is answered, the key's value is a view that reads
only the slices asked of it (a range that moto answers with the whole object gets all of it); everything
else (listing, HEAD, whole GETs, errors) is stock moto.

    python benchmarks/moto_ranged.py -H 127.0.0.1 -p PORT      # the arguments of `python -m moto.server`
"""

from __future__ import annotations

import contextvars
import re
import sys
from typing import Any

from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import main

_RANGE = re.compile(r"bytes=\d+-\d*")
_RANGED_GET = contextvars.ContextVar("ranged_get", default=False)


class _Window(bytes):
    """An object's content as `S3Response._handle_range_header` uses it: its length, and the slices it
    takes, each read from the key's buffer when asked."""

    def __new__(cls, key: FakeKey) -> _Window:
        window = super().__new__(cls)
        window.key = key  # type: ignore[attr-defined]
        return window

    def __len__(self) -> int:
        return int(self.key.size)  # type: ignore[attr-defined]

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: Any) -> bytes:  # type: ignore[override]
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a ranged GET's content is read by slices")
        start, stop, _ = index.indices(len(self))
        key = self.key  # type: ignore[attr-defined]
        with key.lock:
            key._value_buffer.seek(start)
            return bytes(key._value_buffer.read(max(0, stop - start)))


_stock_value = FakeKey.value


def _value(key: FakeKey) -> bytes:
    return _Window(key) if _RANGED_GET.get() else _stock_value.fget(key)  # type: ignore[attr-defined]


_stock_key_response = S3Response.key_response


def _key_response(self: S3Response, request: Any, full_url: str, headers: Any) -> Any:
    ranged = request.method == "GET" and bool(_RANGE.fullmatch(request.headers.get("range", "")))
    token = _RANGED_GET.set(ranged)
    try:
        status, response_headers, body = _stock_key_response(self, request, full_url, headers)
    finally:
        _RANGED_GET.reset(token)
    # A range moto answers whole (such as bytes=5-2): the whole object, as stock moto sends it.
    return status, response_headers, body[:] if isinstance(body, _Window) else body


FakeKey.value = property(_value, _stock_value.fset)  # type: ignore[assignment, method-assign]
S3Response.key_response = _key_response  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])

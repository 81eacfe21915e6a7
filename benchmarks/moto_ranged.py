"""moto server whose ranged GETs read only the range, as S3 does (benchmarks only; tests use stock moto).

Stock moto 5.2 answers every GET from `FakeKey.value`, which reads the whole object out of its buffer
(a temporary file for the benchmark's estate) and then slices the range: a 16 KiB read of an 8 MiB
object costs the server 8 MiB of file reads. On the 20,000-object estate (26 GB of temporary files, more
than this machine's page cache) that made each GET cost moto 7.5 ms of CPU on the cores the scanners run
on, whether it served 16 KiB or 8 MiB, so a scanner that reads ranges was charged for whole objects.
Here, while a GET with one `bytes=FIRST-LAST` range is answered, the key's value is a view that reads
only the slices asked of it (a range that moto answers with the whole object gets all of it); everything
else (listing, HEAD, whole GETs, errors) is stock moto.

Connections are kept alive after a request without a body, as S3 keeps them: werkzeug's server closes
every connection after one answer, so each GET cost the scanner a TCP connect and moto an accept and a new
thread. Kept alive, 200 KB ranged reads through tierscan's S3 connector, 32 in flight, cost 1.4 ms of
client CPU a GET instead of 2.0-2.3; moto's own 5.5 ms a GET did not change. A request with a body (a PUT,
an upload part) still closes its connection: http.server cannot drain a body the application left unread
before the next request line, and werkzeug's drain after each answer would swallow the next request.

Two per-request costs of stock moto's server are dropped, neither of which S3 puts on the client's machine:
the lookup of the backend for a request's host, which lists moto's package directory (about 150 `stat`
calls) and tries the URL patterns of every service under one lock, is made once per host (its answer
depends only on the host and the installed moto); and successful answers are not written to the access
log (errors still are). On the read-plan estate's perceptual scan these were about 40% and 7% of moto's
sampled time (py-spy).

    python benchmarks/moto_ranged.py -H 127.0.0.1 -p PORT      # the arguments of `python -m moto.server`
"""

from __future__ import annotations

import contextvars
import re
import selectors
import sys
import threading
import types
from typing import Any

import werkzeug.serving
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import main
from werkzeug.serving import WSGIRequestHandler

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


class _KeptAlive(threading.local):
    """Whether the request this server thread answers has no body: its connection is kept alive."""

    bodiless = False


_KEPT_ALIVE = _KeptAlive()


class _NothingToDrain:
    """The selector werkzeug's `run_wsgi` drains unread request bytes with, after a bodiless request:
    there are none, and a read would swallow the next request on the kept connection."""

    def register(self, *_: object) -> None:
        pass

    def select(self, timeout: float | None = None) -> list[object]:
        return []

    def close(self) -> None:
        pass


class _Selectors(types.ModuleType):
    """`werkzeug.serving.selectors`, with the drain of a bodiless request skipped. Every other name is the
    real module's: `run_wsgi` also reads `EVENT_READ`, and a name missing here fails each request after
    its answer is sent, which werkzeug only logs."""

    def __getattr__(self, name: str) -> Any:
        return getattr(selectors, name)

    @staticmethod
    def DefaultSelector() -> Any:
        return _NothingToDrain() if _KEPT_ALIVE.bodiless else selectors.DefaultSelector()


_stock_run_wsgi = WSGIRequestHandler.run_wsgi
_stock_send_header = WSGIRequestHandler.send_header


def _run_wsgi(self: WSGIRequestHandler) -> None:
    _KEPT_ALIVE.bodiless = (self.headers.get("Content-Length", "0") == "0"
                            and "Transfer-Encoding" not in self.headers)
    try:
        _stock_run_wsgi(self)
    finally:
        _KEPT_ALIVE.bodiless = False


def _send_header(self: WSGIRequestHandler, keyword: str, value: str) -> None:
    if keyword.lower() == "connection" and value.lower() == "close" and _KEPT_ALIVE.bodiless:
        return  # http.server keeps a HTTP/1.1 connection open unless the client asks to close it
    _stock_send_header(self, keyword, value)


_stock_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_BACKENDS: dict[str | None, Any] = {}  # host -> the backend stock moto found for it


def _backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    # Called under the dispatcher's lock, so one thread fills the cache for a host.
    if host not in _BACKENDS:
        _BACKENDS[host] = _stock_backend_for_host(self, host)
    return _BACKENDS[host]


_stock_log_request = WSGIRequestHandler.log_request


def _log_request(self: WSGIRequestHandler, code: int | str = "-", size: int | str = "-") -> None:
    if not str(code).startswith("2"):
        _stock_log_request(self, code, size)


FakeKey.value = property(_value, _stock_value.fset)  # type: ignore[assignment, method-assign]
S3Response.key_response = _key_response  # type: ignore[method-assign]
WSGIRequestHandler.run_wsgi = _run_wsgi  # type: ignore[method-assign]
WSGIRequestHandler.send_header = _send_header  # type: ignore[method-assign]
WSGIRequestHandler.log_request = _log_request  # type: ignore[method-assign]
DomainDispatcherApplication.get_backend_for_host = _backend_for_host  # type: ignore[method-assign]
werkzeug.serving.selectors = _Selectors("selectors")

if __name__ == "__main__":
    main(sys.argv[1:])

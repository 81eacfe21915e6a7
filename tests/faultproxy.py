"""A small fault-injecting HTTP/1.1 proxy for tests: put it in front of an emulator and point a connector
at it to see throttling, dropped connections and odd answers on the wire.

It runs its own event loop in a thread, so tests of any kind (sync or async) can use it. Each request is
logged, then matched against the armed faults in order; a fault fires a given number of times:

    proxy = FaultProxy("http://127.0.0.1:5000").start()
    proxy.fail(status=503, body=SLOWDOWN_XML, times=2, match=lambda r: r.method == "GET")
    proxy.fail(reset=True, times=1)
    proxy.fail(add_headers={"x-amz-archive-status": "ARCHIVE_ACCESS"}, match=...)   # passes through, edited
    proxy.fail(delay=5.0)                                                            # a stalled server
    proxy.fail(truncate=100)                          # forwards, but the body stops after 100 bytes

Requests are forwarded one per upstream connection (`Connection: close`), and each answer closes the
client connection too: simple, and the SDKs reconnect as they would after any server-side close.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Fault", "FaultProxy", "Request"]

_REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]


@dataclass
class Fault:
    """What to do to matching requests: answer with `status`, drop the connection (`reset`), or forward
    and add headers to the answer (`add_headers` alone)."""

    match: Callable[[Request], bool]
    times: int
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    add_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before acting (a slow or hung server)
    truncate: int | None = None  # forward, then cut the body after this many bytes (Content-Length kept)


class FaultProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")  # e.g. Azurite's /devstoreaccount1
        self.requests: list[Request] = []
        self.fired = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The proxy's URL, with the upstream's path kept (so it can stand in for the upstream URL)."""
        return f"http://127.0.0.1:{self.port}{self.upstream_path}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:  # e.g. one still stalling on a `delay` fault
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def fail(
        self,
        *,
        times: int = 1,
        match: Callable[[Request], bool] = lambda r: True,
        status: int | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        reset: bool = False,
        add_headers: dict[str, str] | None = None,
        delay: float = 0.0,
        truncate: int | None = None,
    ) -> Fault:
        fault = Fault(match, times, status, body, headers or {}, reset, add_headers or {}, delay, truncate)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.fired = 0

    def _take(self, request: Request) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    self.fired += 1
                    return fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        headers = {k.strip(): v.strip() for k, v in headers.items()}
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        body = await reader.readexactly(length) if length else b""
        fault = self._take(Request(method, target, headers))
        try:
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                writer.transport.abort()
                return
            if fault is not None and fault.status is not None:
                writer.write(_response(fault.status, fault.headers, fault.body))
            else:
                answer = await self._forward(method, target, lines[1:], body)
                if fault is not None and fault.add_headers:
                    status_line, _, rest = answer.partition(b"\r\n")
                    extra = "".join(f"{k}: {v}\r\n" for k, v in fault.add_headers.items()).encode("latin-1")
                    answer = status_line + b"\r\n" + extra + rest
                if fault is not None and fault.truncate is not None:
                    head, sep, payload = answer.partition(b"\r\n\r\n")
                    answer = head + sep + payload[:fault.truncate]
                writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _forward(self, method: str, target: str, header_lines: list[str], body: bytes) -> bytes:
        """The upstream's whole answer, with `Connection: close` so it ends at EOF."""
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        kept = [line for line in header_lines if line and not line.lower().startswith(("connection:", "keep-alive:"))]
        request = "\r\n".join([f"{method} {target} HTTP/1.1", *kept, "Connection: close", "", ""])
        up_writer.write(request.encode("latin-1") + body)
        await up_writer.drain()
        answer = await up_reader.read()
        up_writer.close()
        head, sep, rest = answer.partition(b"\r\n\r\n")
        kept_head = [line for line in head.split(b"\r\n")
                     if not line.lower().startswith((b"connection:", b"keep-alive:"))]
        return b"\r\n".join([*kept_head, b"Connection: close"]) + sep + rest


def _response(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body

"""Turn an object's bytes into its fingerprint: SHA-256, perceptual hashes, format, size and EXIF.

This is the CPU-bound step; it runs in worker processes (`FingerprintPool`), so the functions here take
and return plain, picklable values. Perceptual hashes are computed after applying the EXIF orientation,
on a reduced decode: JPEGs use Pillow's DCT scaling (`draft`), four times faster than a full decode and
within a bit or two of its hashes (`benchmarks/draft_distance.py`). Every hash is made in one mode
(`PERCEPTUAL_MODE`), which the catalog records: a scan makes the hashes of another mode again
(`Catalog.keep_perceptual_mode`), so hashes made in different modes are never compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import signal
import threading
import warnings
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import cv2
import numpy as np
from PIL import Image

from .exif import ExifInfo, detect_format, read_metadata
from .shared_arena import SharedArena
from .signatures import compute_signature, grey_of, hash_copy, whole_hashes

__all__ = ["PERCEPTUAL_MODE", "FingerprintPool", "FingerprintResult", "fingerprint_bytes"]

log = logging.getLogger("tierscan")

# Grey, JPEG DCT-scaled to >= 256 px, EXIF orientation applied; hashes from a 128 px area-averaged copy.
PERCEPTUAL_MODE = "L-draft256-orient-area128"
# Formats Pillow decodes to pixels here; RAW files give metadata only.
_DECODABLE = frozenset({"JPEG", "MPO", "PNG", "TIFF", "WEBP", "HEIC", "AVIF", "GIF", "BMP"})
# Pillow's own limit warns at 89 MP and fails at twice that; tierscan treats anything over the limit as a
# decompression bomb: a finding for the report, never a decode that could exhaust memory.
MAX_PIXELS = 120_000_000
# pHash reads a 32x32 grey image: anything smaller (icons, test patterns of a few pixels) has too little
# detail to tell pictures apart, and would only produce false near duplicates.
MIN_PERCEPTUAL_SIDE = 32
# 16- and 32-bit greys (PNG, TIFF): Pillow's conversion to L clips them at 255, and `reduce` refuses them.
_DEEP_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# EXIF Orientation -> the transpose that shows the image upright (as Pillow's ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(slots=True)
class FingerprintResult:
    """What one object yielded. `error` set means the object is skipped with that reason."""

    sha256: str | None = None
    phash: str | None = None
    dhash: str | None = None
    near_sig: bytes | None = None  # `signatures.Signature` blob: extra hashes, ORB features, thumbnail
    format: str | None = None
    width: int | None = None
    height: int | None = None
    exif: ExifInfo | None = None
    error: str | None = None


# Shared memory for objects on their way to the workers: 256 MiB of address space, of which only what is in
# flight at once is ever touched (16 reads of a few MiB). Bigger objects, and pools on systems without
# ``fork``, go through the pool's pipe.
ARENA_BYTES = 256 << 20


def _init_worker() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _deep_grey_to_l(img: Image.Image) -> Image.Image:
    """A 16- or 32-bit grey image stretched to 8 bits over its own range (one pass, no float copy)."""
    deep = np.asarray(img)
    if not deep.dtype.isnative:  # I;16B: big-endian samples
        deep = deep.astype(deep.dtype.newbyteorder("="))
    return Image.fromarray(cv2.normalize(deep, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U), "L")


def _perceptual(data: bytes, orientation: int | None,
                signature: bool) -> tuple[str | None, str | None, bytes | None, int, int]:
    """pHash and dHash (hex), the near-duplicate signature blob (all None for images too small to hash;
    the blob None unless `signature`), and the displayed width and height."""
    with warnings.catch_warnings():
        # Over the limit Pillow only warns; here that is an error, raised before any pixel is decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
    with img:
        width, height = img.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if min(width, height) < MIN_PERCEPTUAL_SIDE:
            return None, None, None, width, height
        if img.format in ("JPEG", "MPO"):
            img.draft("L", (256, 256))
        img.load()
        if img.mode in _DEEP_GREY:
            pixels = _deep_grey_to_l(img)
        else:  # every draft JPEG decodes to L already: no copy
            pixels = img if img.mode == "L" else img.convert("L")
        transpose = _ORIENTATION.get(orientation or 1)
        if transpose is not None:
            # The orientation we parsed, not Pillow's reading of it, so the inventory and the hash agree.
            pixels = pixels.transpose(transpose)
        if max(pixels.size) > 512:
            pixels = pixels.reduce(max(1, max(pixels.size) // 256))
        grey = grey_of(pixels)
        small = hash_copy(grey)
        phash, dhash = whole_hashes(small)
        blob = compute_signature(grey, small).to_blob() if signature else None
        return f"{phash:016x}", f"{dhash:016x}", blob, width, height


def fingerprint_bytes(data: bytes, *, want_sha256: bool, want_perceptual: bool,
                      want_signature: bool = True) -> FingerprintResult:
    """Fingerprint one whole object. Never raises for bad input: the reason goes in `error`.
    `want_signature`: with the perceptual hashes, the near-duplicate signature too."""
    result = FingerprintResult()
    if want_sha256:
        result.sha256 = hashlib.sha256(data).hexdigest()
    fmt = detect_format(data[:64])
    result.format = fmt
    if fmt is None:
        result.error = "not an image"
        return result
    meta = read_metadata(data)
    result.exif = meta.exif
    result.width, result.height = meta.width, meta.height
    if not want_perceptual or fmt not in _DECODABLE:
        return result
    try:
        result.phash, result.dhash, result.near_sig, result.width, result.height = _perceptual(
            data, meta.exif.orientation, want_signature
        )
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        result.error = f"decompression bomb: {exc}"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        result.error = f"corrupt image ({fmt}): {exc}"
    except Exception as exc:  # a decoder bug on a hostile file must not end the scan
        result.error = f"corrupt image ({fmt}): {type(exc).__name__}: {exc}"
    return result


def _serve(conn: Connection, arena: SharedArena | None) -> None:
    """A worker: fingerprint each task its pipe brings, in order, and answer each on the same pipe. A task
    is (offset, length, wants) for bytes the parent placed in `arena`, or (None, data, wants); None ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _init_worker()
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        offset, payload, wants = task
        try:
            data = payload if offset is None else arena.take(offset, payload)  # type: ignore[union-attr]
            conn.send(fingerprint_bytes(data, **wants))
        except Exception as exc:  # fingerprint_bytes reports bad input itself: this is a bug, reported
            conn.send(FingerprintResult(error=f"fingerprinting failed: {type(exc).__name__}: {exc}"))


# A task's place in a worker's queue: the future its answer goes to, and its arena run (offset, length).
_Entry = tuple[asyncio.Future[FingerprintResult], int | None, int]


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    # Tasks sent and not yet answered, oldest first (a worker answers in order); each arena run is given
    # back once the worker no longer reads it.
    waiting: deque[_Entry] = field(default_factory=deque)
    sending: threading.Lock = field(default_factory=threading.Lock)  # one sender at a time on `conn`
    died: str | None = None


class FingerprintPool:
    """One worker process a core, fed by the event loop, so fingerprinting keeps every core busy. Each
    worker has one pipe: the loop writes a task on it and reads the answer when the pipe turns readable.
    No threads in between: a ProcessPoolExecutor moves each task through a manager and a feeder thread
    and wakes both, which cost the scanning process 0.24 ms more CPU an object than this pool, and four
    more context switches (2 busy workers, 14,000 tasks of 2.5 ms: 4.7 s of the parent's CPU against 1.4).
    Where processes fork, objects reach the workers through a `SharedArena`; what does not fit goes by
    the pipe, sent from a thread so that the loop does not wait for the worker to take it.

    A worker that dies (a decoder crash on a hostile file, the OOM killer) answers its unanswered tasks
    with an error; the pool goes on with the others."""

    def __init__(self, workers: int | None = None, arena_bytes: int = ARENA_BYTES):
        self.workers = workers or os.cpu_count() or 1
        forks = "fork" in multiprocessing.get_all_start_methods()
        self._arena = SharedArena(arena_bytes) if forks and arena_bytes else None
        # The arena is inherited, not pickled: the workers must fork (Python 3.14 defaults to forkserver).
        # They start now, before the scan starts any thread of its own that a fork could catch holding a lock.
        context = multiprocessing.get_context("fork") if self._arena is not None else multiprocessing.get_context()
        self._workers: list[_Worker] = []
        for _ in range(self.workers):
            conn, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, self._arena), daemon=True,
                                      name="tierscan-fingerprint")
            process.start()
            child.close()
            self._workers.append(_Worker(process, conn))
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that reads the answers

    def submit(self, data: bytes, *, want_sha256: bool, want_perceptual: bool,
               want_signature: bool = True) -> asyncio.Future[FingerprintResult]:
        """`fingerprint_bytes(data, ...)` in a worker; call it in the event loop that awaits the answer.
        Once it returns, the pool holds what it needs of `data`: the caller may drop it before waiting."""
        wants = {"want_sha256": want_sha256, "want_perceptual": want_perceptual, "want_signature": want_signature}
        loop = asyncio.get_running_loop()
        self._attach(loop)
        future: asyncio.Future[FingerprintResult] = loop.create_future()
        alive = [w for w in self._workers if w.died is None]
        if not alive:
            future.set_result(FingerprintResult(error="not fingerprinted: every fingerprint worker has died"))
            return future
        offset = self._arena.place(data) if self._arena is not None else None
        entry = (future, offset, len(data))
        if offset is not None:  # a few dozen bytes to send: the pipe takes them at once
            # Least loaded first; a worker whose pipe a thread is writing to is passed over (its lock is held).
            for worker in sorted(alive, key=lambda w: len(w.waiting)):
                if worker.sending.acquire(blocking=False):
                    try:
                        self._send_locked(worker, (offset, len(data), wants), entry)
                    finally:
                        worker.sending.release()
                    return future
        worker = min(alive, key=lambda w: len(w.waiting))
        task = (None, data, wants) if offset is None else (offset, len(data), wants)
        loop.run_in_executor(None, self._send, worker, task, entry).add_done_callback(
            lambda sent: self._unsent(sent, entry))
        return future

    def _send(self, worker: _Worker, task: tuple[object, ...], entry: _Entry) -> None:
        """Send `task` (in a thread: the worker takes a large one only when it has finished the last)."""
        with worker.sending:
            if worker.died is None:
                self._send_locked(worker, task, entry)
                return
        entry[0].get_loop().call_soon_threadsafe(self._settle, *entry, FingerprintResult(error=worker.died))

    @staticmethod
    def _send_locked(worker: _Worker, task: tuple[object, ...], entry: _Entry) -> None:
        """Send `task` to `worker`, whose `sending` lock the caller holds, its answer to go to `entry`."""
        worker.waiting.append(entry)
        try:
            worker.conn.send(task)
        except OSError:
            pass  # the worker has died: the loop reads its end and answers what it had, this too
        except BaseException:
            worker.waiting.remove(entry)  # never sent (it did not pickle): no answer will come
            raise

    def _unsent(self, sent: asyncio.Future[None], entry: _Entry) -> None:
        """After a thread's `_send`: if it raised, nothing was sent and no answer comes."""
        if not sent.cancelled() and sent.exception() is not None:
            self._settle(*entry, FingerprintResult(error=f"not fingerprinted: {sent.exception()!r}"))

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self._detach()
        for worker in self._workers:
            if worker.died is None:
                loop.add_reader(worker.conn.fileno(), self._answered, worker)
        self._loop = loop

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for worker in self._workers:
                if worker.died is None:
                    self._loop.remove_reader(worker.conn.fileno())
        self._loop = None

    def _answered(self, worker: _Worker) -> None:
        """The loop's callback when a worker's pipe is readable: every answer waiting there, or its death."""
        try:
            while worker.conn.poll():
                result = worker.conn.recv()
                future, offset, length = worker.waiting.popleft()
                self._settle(future, offset, length, result)
        except (EOFError, OSError):
            self._buried(worker)

    def _settle(self, future: asyncio.Future[FingerprintResult], offset: int | None, length: int,
                result: FingerprintResult) -> None:
        if offset is not None and self._arena is not None:
            self._arena.free(offset, length)
        if not future.done():  # a cancelled caller's answer is dropped
            future.set_result(result)

    def _buried(self, worker: _Worker) -> None:
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        with worker.sending:  # a thread sending to it fails at once, and later ones see it died
            worker.died = f"the fingerprint worker died ({how}) while it had this object"
            log.warning("a fingerprint worker died (%s); the %d objects it had are reported, the scan goes on "
                        "with %d workers", how, len(worker.waiting), sum(w.died is None for w in self._workers))
            while worker.waiting:
                self._settle(*worker.waiting.popleft(), FingerprintResult(error=worker.died))

    def close(self) -> None:
        """Stop the workers (after the tasks they have) and release the arena."""
        self._detach()
        for worker in self._workers:
            if worker.died is None:
                with worker.sending, contextlib.suppress(OSError):  # after a thread's send, not amid it
                    worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            worker.conn.close()
            for future, _, _ in worker.waiting:
                with contextlib.suppress(RuntimeError):  # its loop may have closed
                    future.cancel()
            worker.waiting.clear()
        if self._arena is not None:
            self._arena.close()

    def __enter__(self) -> FingerprintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

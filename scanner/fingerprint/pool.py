"""The fingerprint worker pool: worker processes that run `image.fingerprint_bytes` (and other jobs) on
objects' bytes, each under a deadline, with a worker that dies or overruns replaced, and batches of small
items with per-item deadlines. What a worker computes lives in `image`; this module owns the processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from tierscan.scanner.fingerprint.exif import ImageMeta
from tierscan.scanner.fingerprint.exif.reader import read_prefix
from tierscan.scanner.fingerprint.record import Fingerprint
from tierscan.scanner.fingerprint.shared_arena import SharedArena

__all__ = ["ARENA_BYTES", "BatchBroken", "FingerprintPool", "WorkerFailed", "available_memory", "note",
           "worker_count"]

log = logging.getLogger("tierscan")

# Shared memory for objects on their way to the workers: 256 MiB of address space, of which only what is in
# flight at once is ever touched (16 reads of a few MiB). Bigger objects, and pools on systems without
# ``fork``, go through the pool's pipe.
ARENA_BYTES = 256 << 20


class WorkerFailed(Exception):
    """A task the pool could not answer: it ran past the deadline, or its worker died on it."""


class BatchBroken(WorkerFailed):
    """A batch (`FingerprintPool.submit_batch`) whose worker overran the deadline or died on one item:
    `index` is that item, `note` what its job had `note`d before (b"" if nothing). The items before it
    were done but their answers are lost with the worker; the caller runs them again."""

    def __init__(self, reason: str, index: int, note: bytes):
        super().__init__(reason)
        self.index = index
        self.note = note


class _Ready:
    """A worker's first message: it has started and set up, so deadlines run from now on."""


# Where a worker is in a batch, in memory its parent reads (`_Stamp`): the batch's number, the item's index,
# when the item started (`time.monotonic`, one clock for every process), and the item's note. Set in each
# worker by `_serve`.
_STAMP: _Stamp | None = None
NOTE_BYTES = 120


class _Stamp:
    """Shared memory a worker writes as it goes through a batch and its parent reads when the deadline of
    the batch's item fires or the worker dies: per-item deadlines, and the item to blame, with one message
    a batch."""

    def __init__(self, context: Any):
        self.where = context.RawArray("d", 3)  # batch number (-1 while written), item index, item start
        self.note = context.RawArray("c", NOTE_BYTES)

    def mark(self, seq: int, index: int) -> None:
        self.where[0] = -1
        self.note.value = b""
        self.where[1], self.where[2] = index, time.monotonic()
        self.where[0] = seq

    def item(self, seq: int) -> tuple[int, float, bytes] | None:
        """(index, started, note) of the item of batch `seq` being worked on; None before it started."""
        if int(self.where[0]) != seq:
            return None
        return int(self.where[1]), self.where[2], self.note.value


def note(text: bytes) -> None:
    """In a batch job: leave `text` (at most `NOTE_BYTES`) for the caller, should this item overrun the
    deadline or kill its worker (`BatchBroken.note`); what the job knows so far, such as bytes read."""
    if _STAMP is not None:
        _STAMP.note.value = text[:NOTE_BYTES]


def _run_batch(items: list[Any], *, job: Callable[[Any], Any], seq: int) -> list[Any]:
    """A batch in a worker: `job(item)` for each, in order, each marked in the stamp as it starts. A job
    that raises gives its item a `WorkerFailed` answer, and the batch goes on."""
    answers: list[Any] = []
    for index, item in enumerate(items):
        if _STAMP is not None:
            _STAMP.mark(seq, index)
        try:
            answers.append(job(item))
        except Exception as exc:  # the jobs report bad input themselves: this is a bug, reported
            answers.append(WorkerFailed(f"fingerprinting failed: {type(exc).__name__}: {exc}"))
    return answers


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when the scanning process ends, however it ends (SIGKILL too):
    on Linux, PR_SET_PDEATHSIG. It fires when the thread that forked this worker ends, so the pool forks
    from the thread that runs it. A parent that died before the request took effect is seen by getppid."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


_WORKER_NICENESS = 5  # added to the scanning process's niceness


def _serve(conn: Connection, arena: SharedArena | None, parent: int, inherited: list[Connection],
           perceptual: bool, stamp: _Stamp) -> None:
    """A worker: run each task its pipe brings, in order, and answer each on the same pipe. A task is
    (offset, length, job, kwargs) for bytes the parent placed in `arena`, or (None, data, job, kwargs);
    the answer is `job(data, **kwargs)`, or a `WorkerFailed`. None ends.

    `inherited`: the parent's ends of every worker's pipe, this one's too, which a fork copied here. They
    are closed first: while any is open, the pipe never reaches EOF when the parent dies. `perceptual`:
    tasks will hash pixels, so the kernels are loaded before the worker says it is ready. `stamp`: where
    it marks its progress through a batch."""
    global _STAMP
    _STAMP = stamp
    _die_with_parent(parent)
    for end in inherited:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    # Below the scanning process that feeds it: where there are fewer cores than processes, the one that
    # hands out the work must not wait behind the work it handed out.
    os.nice(_WORKER_NICENESS)
    from tierscan.scanner.fingerprint import image  # here: a parent that never decodes pixels never loads it

    image.init_worker()
    if perceptual:
        image.warm_up()
    conn.send(_Ready())
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        offset, payload, job, kwargs = task
        try:
            data = payload if offset is None else arena.take(offset, payload)  # type: ignore[union-attr]
            conn.send(job(data, **kwargs))
        except Exception as exc:  # the jobs report bad input themselves: this is a bug, reported
            conn.send(WorkerFailed(f"fingerprinting failed: {type(exc).__name__}: {exc}"))


# Seconds a new worker may take to set up (imports, the hashing kernels) before its first task's time runs.
SETUP_TIME = 60.0

# Memory a worker may need at its peak: a decode at the pixel limit in grey, its reduced copies, the
# libraries. A pool starts no more workers than the available memory holds at this much each.
WORKER_MEMORY = 256 << 20


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable, or free pages where there is no
    /proc/meminfo, and no more than its cgroup (v2) limit leaves. None when nothing says."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    if not found:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    return max(0, min(found)) if found else None


def worker_count(asked: int | None, tasks: int | None = None) -> int:
    """How many workers to start: `asked` (default one per core), but no more than there are `tasks`
    (when known) or than the available memory holds at `WORKER_MEMORY` each; always at least one."""
    count = asked or os.cpu_count() or 1
    if tasks is not None:
        count = min(count, tasks)
    memory = available_memory()
    if memory is not None:
        count = min(count, memory // WORKER_MEMORY)
    return max(1, count)


@dataclass(slots=True, eq=False)
class _Task:
    """A task on its way through the pool: the future its answer goes to, what the worker is sent, its
    arena run (offset, length) if any, and how a reason becomes its answer (None: the future fails
    with `WorkerFailed`)."""

    future: asyncio.Future[Any]
    message: tuple[object, ...]
    offset: int | None
    length: int
    failed: Callable[[str], object] | None
    seq: int | None = None  # a batch's number (`submit_batch`)
    packed: bytes | None = None  # a batch's message, pickled (`submit_batch`): what goes through the pipe
    broken: tuple[int, bytes] | None = None  # a batch's item that failed it, and its note


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    stamp: _Stamp
    # Tasks sent and not yet answered, oldest first (a worker answers in order): the first is the one it
    # works on. Each arena run is given back once the worker no longer reads it.
    waiting: deque[_Task] = field(default_factory=deque)
    sending: threading.Lock = field(default_factory=threading.Lock)  # one sender at a time on `conn`
    died: str | None = None
    ready: bool = False  # set up and taking tasks: its first task's deadline runs from then
    deadline: asyncio.TimerHandle | None = None  # for the first waiting task


# Bytes of batch messages that may wait in a worker's pipe and be sent from the event loop's thread: well
# under what a pipe holds (64 KiB on Linux), so such a send never blocks the loop. A larger message goes
# through a thread, which may wait until the worker has taken what it had.
_PIPE_ROOM = 32 * 1024


def _fits(task: _Task, workers: list[_Worker]) -> bool:
    """Whether `task` is a batch that every one of `workers` has pipe room for, counting the batches it
    has not answered yet as still in its pipe."""
    if task.packed is None:
        return False
    return all(len(task.packed) + sum(len(t.packed or b"") for t in w.waiting) <= _PIPE_ROOM for w in workers)


def _compiler_lock() -> contextlib.AbstractContextManager[object]:
    """numba's compiler lock where this process has loaded numba (a thread of it may be compiling or
    loading kernels); else nothing can hold it."""
    loaded = sys.modules.get("numba.core.compiler_lock")
    lock = getattr(loaded, "global_compiler_lock", None)
    return lock if lock is not None else contextlib.nullcontext()


class FingerprintPool:
    """One worker process a core, fed by the event loop, so fingerprinting keeps every core busy. Each
    worker has one pipe: the loop writes a task on it and reads the answer when the pipe turns readable.
    No threads in between: a ProcessPoolExecutor moves each task through a manager and a feeder thread
    and wakes both, which cost the scanning process 0.24 ms more CPU an object than this pool, and four
    more context switches (2 busy workers, 14,000 tasks of 2.5 ms: 4.7 s of the parent's CPU against 1.4).
    Where processes fork, objects reach the workers through a `SharedArena`; what does not fit goes by
    the pipe, sent from a thread so that the loop does not wait for the worker to take it.

    No object holds a worker past `timeout` seconds (a loop timer on the task a worker works on): the
    worker is killed, that object answered "parse timeout", and the tasks queued behind it go to the
    other workers. A worker that dies (a decoder crash on a hostile file, the OOM killer) answers the
    object it worked on with an error, and its queue goes on elsewhere too. Either way a new worker takes
    its place. Workers end with the scanning process, even when it is killed (`_die_with_parent`).

    A batch (`submit_batch`) is one task of many small items, one message each way; each item keeps the
    whole deadline, from when the worker starts it (`_Stamp`), and one that overruns it fails the batch
    naming the item (`BatchBroken`)."""

    def __init__(self, workers: int | None = None, arena_bytes: int = ARENA_BYTES, *,
                 timeout: float | None = None, tasks: int | None = None, perceptual: bool = True):
        self.workers = worker_count(workers, tasks)
        self.timeout = timeout
        self._perceptual = perceptual  # tasks hash pixels: workers load the kernels as they set up
        forks = "fork" in multiprocessing.get_all_start_methods()
        self._arena = SharedArena(arena_bytes) if forks and arena_bytes else None
        # The arena is inherited, not pickled: the workers must fork (Python 3.14 defaults to forkserver).
        # They start now, before the scan starts any thread of its own that a fork could catch holding a lock.
        self._context = multiprocessing.get_context("fork") if forks else multiprocessing.get_context()
        if perceptual and forks:
            # The hashing kernels load here, once, and every worker forks with them loaded (numba's set-up
            # is most of a worker's start) rather than each loading them itself. OpenCV runs on the calling
            # thread only: its pool's threads would not survive the fork (a worker would wait on them for
            # ever), and each worker is one core's work already.
            import cv2

            from tierscan.scanner.fingerprint import image

            cv2.setNumThreads(0)
            image.warm_up()
        self._workers: list[_Worker] = []
        for _ in range(self.workers):
            self._workers.append(self._start())
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that reads the answers
        self._closing = False
        self._batches = itertools.count()

    def _start(self) -> _Worker:
        """Fork a worker; it closes the pipe ends of the parent that the fork copied.

        A worker that replaces another forks while the scan's threads run. The one lock a worker needs
        that they take is numba's compiler lock (its set-up loads the hashing kernels, if the pool did not
        before forking): it is held across the fork, waiting for a thread that compiles if need be, so the
        child starts with it held by its own thread, free to take again, rather than held by a thread that
        does not exist there."""
        conn, child = self._context.Pipe()
        stamp = _Stamp(self._context)
        inherited = [w.conn for w in self._workers] + [conn] if self._context.get_start_method() == "fork" else []
        process = self._context.Process(target=_serve, daemon=True, name="tierscan-fingerprint",
                                        args=(child, self._arena, os.getpid(), inherited, self._perceptual, stamp))
        with _compiler_lock():
            process.start()
        child.close()
        return _Worker(process, conn, stamp)

    def submit(self, data: bytes, *, want_sha256: bool, want_perceptual: bool,
               want_signature: bool = True, want_thumbnail: bool = False, want_faces: bool = False
               ) -> asyncio.Future[Fingerprint]:
        """`fingerprint_bytes(data, ...)` in a worker; call it in the event loop that awaits the answer.
        Once it returns, the pool holds what it needs of `data`: the caller may drop it before waiting."""
        wants: dict[str, object] = {"want_sha256": want_sha256, "want_perceptual": want_perceptual,
                                    "want_signature": want_signature, "want_thumbnail": want_thumbnail,
                                    "want_faces": want_faces}
        from tierscan.scanner.fingerprint.image import fingerprint_bytes

        return self._submit(data, fingerprint_bytes, wants, lambda reason: Fingerprint(error=reason))

    def read_prefix(self, data: bytes) -> asyncio.Future[tuple[ImageMeta, list[tuple[int, int]]]]:
        """`tierscan.scanner.fingerprint.exif.reader.read_prefix(data)` in a worker, under the same deadline; the
        future fails with `WorkerFailed` when it gives no answer."""
        return self._submit(data, read_prefix, {}, None)

    def submit_batch(self, job: Callable[[Any], Any], items: list[Any]) -> asyncio.Future[list[Any]]:
        """`[job(item) for item in items]` in one worker, sent and answered as one message each way; `job`
        and the items must pickle (small values: a batch goes through the pipe, not the arena). Each item
        has the whole deadline, from when it starts; an item that overruns it, or whose worker dies, fails
        the batch with `BatchBroken` naming it."""
        loop = asyncio.get_running_loop()
        self._attach(loop)
        future: asyncio.Future[list[Any]] = loop.create_future()
        seq = next(self._batches)
        message = (None, items, _run_batch, {"job": job, "seq": seq})
        task = _Task(future, message, None, 0, None, seq)
        try:
            task.packed = bytes(ForkingPickler.dumps(message))
        except Exception as exc:  # as a send that did not pickle: the batch fails, not the loop
            self._settle(task, f"not fingerprinted: {exc!r}")
            return future
        self._dispatch(task)
        return future

    def _submit(self, data: bytes, job: Callable[..., Any], kwargs: dict[str, object],
                failed: Callable[[str], object] | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        self._attach(loop)
        future: asyncio.Future[Any] = loop.create_future()
        offset = self._arena.place(data) if self._arena is not None else None
        message = (None, data, job, kwargs) if offset is None else (offset, len(data), job, kwargs)
        self._dispatch(_Task(future, message, offset, len(data), failed))
        return future

    def _dispatch(self, task: _Task) -> None:
        """Send `task` to the least loaded worker (in the loop's thread)."""
        alive = [w for w in self._workers if w.died is None]
        if not alive:
            self._settle(task, "not fingerprinted: every fingerprint worker has died")
            return
        if task.offset is not None or _fits(task, alive):  # the pipe takes it at once: no thread needed
            # Least loaded first; a worker whose pipe a thread is writing to is passed over (its lock is held).
            for worker in sorted(alive, key=lambda w: len(w.waiting)):
                if worker.sending.acquire(blocking=False):
                    try:
                        self._send_locked(worker, task)
                    finally:
                        worker.sending.release()
                    self._arm(worker)
                    return
        worker = min(alive, key=lambda w: len(w.waiting))
        assert self._loop is not None
        self._loop.run_in_executor(None, self._send, worker, task).add_done_callback(
            lambda sent: self._unsent(sent, task))

    def _send(self, worker: _Worker, task: _Task) -> None:
        """Send `task` (in a thread: the worker takes a large one only when it has finished the last)."""
        loop = task.future.get_loop()
        with worker.sending:
            if worker.died is None:
                self._send_locked(worker, task)
                loop.call_soon_threadsafe(self._arm, worker)
                return
        loop.call_soon_threadsafe(self._dispatch, task)  # the worker died meanwhile: another one takes it

    @staticmethod
    def _send_locked(worker: _Worker, task: _Task) -> None:
        """Send `task` to `worker`, whose `sending` lock the caller holds."""
        worker.waiting.append(task)
        try:
            if task.packed is not None:
                worker.conn.send_bytes(task.packed)
            else:
                worker.conn.send(task.message)
        except OSError:
            pass  # the worker has died: the loop reads its end and deals with what it had, this too
        except BaseException:
            worker.waiting.remove(task)  # never sent (it did not pickle): no answer will come
            raise

    def _unsent(self, sent: asyncio.Future[None], task: _Task) -> None:
        """After a thread's `_send`: if it raised, nothing was sent and no answer comes."""
        if not sent.cancelled() and sent.exception() is not None:
            self._settle(task, f"not fingerprinted: {sent.exception()!r}")

    def _arm(self, worker: _Worker) -> None:
        """Start the deadline of the task `worker` works on, unless one runs (in the loop's thread). Until
        the worker has set up, the deadline also allows `SETUP_TIME`, and starts again once it has."""
        if self.timeout is None or worker.deadline is not None or worker.died is not None or not worker.waiting:
            return
        if self._loop is not None:
            limit = self.timeout if worker.ready else self.timeout + SETUP_TIME
            worker.deadline = self._loop.call_later(limit, self._overdue, worker, worker.waiting[0])

    def _disarm(self, worker: _Worker) -> None:
        if worker.deadline is not None:
            worker.deadline.cancel()
            worker.deadline = None

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self._detach()
        self._loop = loop
        for worker in self._workers:
            if worker.died is None:
                loop.add_reader(worker.conn.fileno(), self._answered, worker)
                self._arm(worker)

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for worker in self._workers:
                self._disarm(worker)
                if worker.died is None:
                    self._loop.remove_reader(worker.conn.fileno())
        self._loop = None

    def _answered(self, worker: _Worker) -> None:
        """The loop's callback when a worker's pipe is readable: every answer waiting there, or its death."""
        if worker.died is not None:  # replaced by a callback that ran first in the same loop iteration
            return
        try:
            while worker.conn.poll():
                answer = worker.conn.recv()
                if isinstance(answer, _Ready):
                    worker.ready = True
                    self._disarm(worker)  # armed again below, from now
                    continue
                self._disarm(worker)
                task = worker.waiting.popleft()
                if isinstance(answer, WorkerFailed):
                    self._settle(task, str(answer))
                else:
                    self._settle(task, None, answer)
        except (EOFError, OSError):
            code = self._reap(worker)
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._replace(worker, f"the fingerprint worker died ({how}) while it had this object")
            return
        self._arm(worker)

    def _overdue(self, worker: _Worker, task: _Task) -> None:
        """The deadline of `task`, which `worker` works on: kill the worker, answer the task, go on."""
        assert self.timeout is not None  # armed only with one
        worker.deadline = None
        if worker.died is not None or not worker.waiting or worker.waiting[0] is not task:
            return
        if worker.conn.poll():  # its answer came in time; the loop had not read it yet
            self._answered(worker)
            return
        at = task.seq is not None and worker.ready and worker.stamp.item(task.seq)
        if at and at[1] + self.timeout > time.monotonic():  # a later item of the batch: its own deadline
            assert self._loop is not None
            worker.deadline = self._loop.call_later(at[1] + self.timeout - time.monotonic(), self._overdue,
                                                    worker, task)
            return
        worker.process.kill()
        self._reap(worker)
        if worker.ready:
            self._replace(worker, f"parse timeout: no answer within {self.timeout:g} s (scan.object_timeout); "
                                  "its worker was stopped")
        else:  # never set up: this object pays for it, so that a scan whose workers cannot start still ends
            limit = self.timeout + SETUP_TIME
            self._replace(worker, f"parse timeout: its worker did not start within {limit:g} s")

    @staticmethod
    def _reap(worker: _Worker) -> int | None:
        worker.process.join(timeout=5)
        return worker.process.exitcode

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Retire `worker`, gone or killed: the task it worked on is answered with `reason`, the tasks
        queued behind it go to the other workers, and a new worker takes its place."""
        assert self._loop is not None
        self._disarm(worker)
        self._loop.remove_reader(worker.conn.fileno())
        with worker.sending:  # a thread sending to it fails at once, and later ones see it died
            worker.died = reason
            tasks = list(worker.waiting)
            worker.waiting.clear()
        worker.conn.close()
        if tasks and tasks[0].seq is not None:  # a batch: the item its worker was on takes the blame
            at = worker.stamp.item(tasks[0].seq)
            tasks[0].broken = (at[0], at[2]) if at else (0, b"")
        self._workers.remove(worker)
        if not self._closing:
            new = self._start()
            self._workers.append(new)
            self._loop.add_reader(new.conn.fileno(), self._answered, new)
        log.warning("a fingerprint worker was replaced (%s); the objects queued behind that one (%d) went to "
                    "the other workers", reason, max(0, len(tasks) - 1))
        if tasks:
            self._settle(tasks[0], reason)
        for task in tasks[1:]:
            self._dispatch(task)

    def _settle(self, task: _Task, reason: str | None, answer: object = None) -> None:
        """Give back `task`'s arena run and answer its future: `answer`, or what `reason` makes of it."""
        if task.offset is not None and self._arena is not None:
            self._arena.free(task.offset, task.length)
        if task.future.done():  # a cancelled caller's answer is dropped
            return
        if reason is None:
            task.future.set_result(answer)
        elif task.seq is not None:
            index, said = task.broken or (0, b"")
            task.future.set_exception(BatchBroken(reason, index, said))
        elif task.failed is not None:
            task.future.set_result(task.failed(reason))
        else:
            task.future.set_exception(WorkerFailed(reason))

    def close(self) -> None:
        """Stop the workers (after the tasks they have) and release the arena."""
        self._closing = True
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
            for task in worker.waiting:
                with contextlib.suppress(RuntimeError):  # its loop may have closed
                    task.future.cancel()
            worker.waiting.clear()
        if self._arena is not None:
            self._arena.close()

    def __enter__(self) -> FingerprintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

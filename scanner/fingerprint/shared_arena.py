"""Shared memory that forked worker processes inherit, for handing them large byte strings.

A process pool pickles every argument through a pipe: the main process copies an object's bytes into the
pickle and the pipe, the worker copies them out again, each copy in a system call per 64 KiB. For the
read-plan benchmark's 5.9 GB of images that came to 17-20 s of CPU on 2 cores, against 3.6-4.2 s this way
(`benchmarks/pool_transfer.py`). Through an arena the main process copies the bytes once, into memory the
workers map too, and passes only where they lie.

The arena is an anonymous shared mapping made before the workers fork (so it needs the ``fork`` start
method) and handed out first fit: placements start at the lowest free offset, so only as many pages are
ever touched as are in flight at once. A placement that does not fit returns None: the caller sends those
bytes the ordinary way.
"""

from __future__ import annotations

import bisect
import mmap
import threading

__all__ = ["SharedArena"]

_ALIGN = 4096  # placements start on page boundaries: copies in and out run on whole pages


def _span(length: int) -> int:
    return max(_ALIGN, -(-length // _ALIGN) * _ALIGN)


class SharedArena:
    """`size` bytes of shared memory; `place` copies bytes in, `take` (in a worker) copies them out, `free`
    gives the space back. `place` and `free` may be called from different threads."""

    def __init__(self, size: int):
        self.size = size
        self._memory = mmap.mmap(-1, size)  # anonymous and shared: a forked child sees the same pages
        self._lock = threading.Lock()
        self._free: list[tuple[int, int]] = [(0, size)]  # (offset, length), by offset, never adjacent

    def place(self, data: bytes) -> int | None:
        """Copy `data` in and return its offset, or None when no free run holds it."""
        need = _span(len(data))
        with self._lock:
            for i, (offset, length) in enumerate(self._free):
                if length >= need:
                    if length == need:
                        del self._free[i]
                    else:
                        self._free[i] = (offset + need, length - need)
                    break
            else:
                return None
        self._memory[offset:offset + len(data)] = data
        return offset

    def take(self, offset: int, length: int) -> bytes:
        """A copy of `length` bytes at `offset` (placed by the parent before this process read them)."""
        return self._memory[offset:offset + length]

    def free(self, offset: int, length: int) -> None:
        """Give back the run `place` returned `offset` for, `length` being the length of what it placed."""
        start, end = offset, offset + _span(length)
        with self._lock:
            i = bisect.bisect(self._free, (start,))
            if i < len(self._free) and self._free[i][0] == end:  # joins the run after it
                end += self._free.pop(i)[1]
            if i > 0 and sum(self._free[i - 1]) == start:  # and the run before it
                start = self._free.pop(i - 1)[0]
                i -= 1
            self._free.insert(i, (start, end - start))

    def free_bytes(self) -> int:
        with self._lock:
            return sum(length for _, length in self._free)

    def close(self) -> None:
        self._memory.close()

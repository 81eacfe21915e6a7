"""What it costs to hand objects' bytes to the fingerprint workers (prints figures; not a test).

Sends the same random objects (not images, so each worker only looks at the first bytes and answers) through
a `FingerprintPool` twice: pickled through the pool's pipe (``arena_bytes=0``) and through its
`SharedArena`. At most `--in-flight` objects are submitted and unanswered at once, as a scan bounds them.
Prints wall time and the CPU of the main process and of the workers.

    python benchmarks/pool_transfer.py                      # 12,000 objects of 490 KB: 5.9 GB, as the
                                                            # read-plan benchmark's images
    python benchmarks/pool_transfer.py --objects 2000 --kb 4000

Measured on a 2-core VM (SHA-256 1.55 GB/s), two runs: 5.9 GB of 490 KB objects by pipe 13.2 and 11.3 s
wall, 20.0 and 17.3 s of CPU (main 5.7 and 4.8, workers 14.3 and 12.5); through the arena 2.9 and 2.5 s
wall, 4.2 and 3.6 s of CPU (main 2.9 and 2.5, workers 1.3 and 1.1). `--objects 4000 --kb 1283` (5.1 GB, the
naive scanner's mean object in `benchmarks/read_plan.py`): by pipe 8.6 s wall and 11.1 s of CPU, through
the arena 2.1 s and 2.9 s. Those runs used a ProcessPoolExecutor; with the pool fed by the event loop
instead (one pipe a worker, no manager or feeder thread; the pipe's large sends from a thread), on a later
VM, before and after: 5.9 GB by pipe 17.8 -> 7.7 s wall, through the arena 2.7 -> 1.5 s (main process 2.0
-> 1.4 s of CPU); `--objects 14000 --kb 1`, where the hand-over is all there is, main process 1.4 -> 0.3 s
of CPU through the arena.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from collections import deque

from tierscan.scanner.fingerprint.pool import ARENA_BYTES, FingerprintPool


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _hand_over(pool: FingerprintPool, distinct: list[bytes], objects: int, in_flight: int) -> None:
    waiting: deque = deque()
    for i in range(objects):
        waiting.append(pool.submit(distinct[i % len(distinct)], want_sha256=False, want_perceptual=False))
        if len(waiting) >= in_flight:
            await waiting.popleft()
    for answer in waiting:
        await answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=12_000)
    parser.add_argument("--kb", type=int, default=490, help="size of each object, in KB")
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    distinct = [os.urandom(args.kb * 1000) for _ in range(64)]
    print(f"{args.objects:,} objects of {args.kb:,} KB ({args.objects * args.kb / 1e6:,.1f} GB), "
          f"{args.workers} workers, at most {args.in_flight} in flight")
    for name, arena_bytes in (("pipe", 0), ("arena", ARENA_BYTES)):
        wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        with FingerprintPool(args.workers, arena_bytes=arena_bytes) as pool:
            asyncio.run(_hand_over(pool, distinct, args.objects, args.in_flight))
        # The pool has shut down: its workers have exited and their CPU is counted.
        print(f"  {name:5}: {time.perf_counter() - wall:5.1f} s wall, main {time.process_time() - cpu:5.1f} s "
              f"and workers {_children_cpu() - children:5.1f} s of CPU")


if __name__ == "__main__":
    main()

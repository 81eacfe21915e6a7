"""Hamming range search over 64-bit codes by multi-index hashing (Norouzi et al.), compiled with numba.

Split each code into `m` bands. If two codes are within distance r, by the pigeonhole principle some band
differs in at most floor(r/m) bits. Each band is bucketed once by a counting sort over its 2^w values, and a
pair is a candidate in a band when its two band values differ by a "mask" of at most floor(r/m) bits; only
candidates get a full 64-bit comparison. A pair found in several bands is kept in the first band that
could have found it.

Why the loop is shaped as it is. The earlier numpy version probed query by query and gathered every
candidate into temporary arrays: 1.4e10 candidates at 10M uniform codes and r=8, 25-55 ns each, every
bucket lookup a cache miss (702 s wall on 2 cores). Here the join is bucket against bucket in compiled
code: for a band and a mask, bucket v of the queries meets bucket v^mask of the codes, both runs
contiguous in band order, and a candidate costs an XOR, a popcount and a compare, with nothing stored
unless it is a pair. Bucket values are cut into blocks of 2^k values holding about 8k codes, and masks are
ordered by their bits above k, so the masks of one query block that reach the same code block come one
after another and both blocks stay in the core's L2 cache instead of the whole band streaming from memory
once per mask. Only buckets in use are visited (a sparse band would otherwise cost 2^w steps per mask).
In a self-join each unordered pair is met once: for mask 0 as i < j inside a bucket, otherwise only from
the smaller of v and v^mask; a pair close enough in an earlier band is dropped (checked on pairs only).
Work items are ranges of blocks run on threads, as the kernel releases the GIL: no fork, nothing copied.
Memory is the codes plus, per band, the codes in band order and that order (48 bytes a code for 3
bands) and the bucket offsets and buckets in use (up to 128 MB for 3 bands), never the candidates.

Measured (benchmarks/index_scale.py, r=8, 2 threads, on the 2-core machine shared with other jobs, load
averages 2-6): 10M uniform codes, build 4-5 s, query 57-81 s wall / 46-51 CPU s, 842 MB peak, planted
recall 1.0, about 3.5 ns of CPU a candidate (1.41e10). At 1M the 718 bucket probes a code cost more than
the 1.4e8 candidates: 5 CPU s. Codes seeded from real pHashes (bit noise around 60 photos' hashes, so
buckets fill unevenly) give 1.2x the candidates of uniform codes and about the same time (10M: 57 CPU s);
candidates grow with the sum of squared bucket sizes, so more tightly clustered hashes cost more.
Brute force at 1M: about 40 min of a core.

The first call compiles the kernels, about 10 s (20 s under load), and caches them next to this module
or in the user's cache folder; later processes load them in about 1 s. Where neither can be written (the
container image runs as an unprivileged user), each run compiles into a temporary folder. All of this
happens in `ensure_loaded`, which every search through the kernels calls first: importing the module
changes no numba setting.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations, pairwise
from typing import TYPE_CHECKING

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from numba.misc.appdirs import AppDirs

__all__ = ["HammingIndex", "best_band_count", "ensure_loaded", "pairs_within"]


def _writable(folder: str) -> bool:
    """Whether `folder` can be made and written to (the test numba puts a cache folder to)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _needs_cache_dir(package_cache: str, user_cache: str) -> bool:
    """Whether numba has nowhere to cache the kernels: neither the package's __pycache__ nor the user's
    cache folder can be written (an image installed by root, run by an unprivileged user without a home).
    Caching the kernels would then raise, and every command that groups images would fail."""
    return not _writable(package_cache) and not _writable(user_cache)


def _give_numba_a_cache_dir() -> None:
    """Where numba has nowhere to cache, a private folder for this process (a shared, predictable name in
    /tmp could be planted by another user), removed when it ends; the kernels compile once per run there."""
    if not numba.config.CACHE_DIR and _needs_cache_dir(  # type: ignore[attr-defined]
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__"),
            AppDirs(appname="numba", appauthor=False).user_cache_dir):
        numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="tierscan-numba-")  # type: ignore[attr-defined]
        atexit.register(shutil.rmtree, numba.config.CACHE_DIR, ignore_errors=True)  # type: ignore[attr-defined]


_BLOCK_CODES = 8192  # codes per block of bucket values: a block and its partner fit a core's L2
# Up to this many (query, code) pairs, numpy compares them all (under a second): a scan of a few thousand
# images then neither compiles the kernels (10-20 s the first time) nor allocates the bucket tables.
_PAIRWISE_MAX = 1 << 26
_ITEMS_PER_WORKER = 16  # work items per band and worker: evens out uneven (clustered) blocks


if TYPE_CHECKING:
    def _popcount(x: int) -> int:
        """As kernels call it: numba passes the typing context itself."""
else:
    @intrinsic
    def _popcount(typingctx, x):
        """The CPU's popcount instruction on a uint64 (numba has no popcount of its own), as a signed int
        so that comparing it with the radius stays in integers."""
        sig = types.int64(types.uint64)

        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return sig, codegen


@numba.njit(nogil=True)
def _counting_sort(values: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order of `values` (ints in [0, buckets)) and bucket offsets: O(N), unlike argsort."""
    offsets = np.zeros(buckets + 1, np.int64)
    for v in values:
        offsets[v + 1] += 1
    for b in range(buckets):
        offsets[b + 1] += offsets[b]
    fill = offsets[:-1].copy()
    order = np.empty(len(values), np.int64)
    for i in range(len(values)):
        v = values[i]
        order[fill[v]] = i
        fill[v] += 1
    return order, offsets


@numba.njit(nogil=True, inline="always")
def _found_in_earlier_band(x: int, earlier: np.ndarray, band_radius: int) -> bool:
    """Whether codes that differ by `x` are within `band_radius` in one of the earlier bands (`earlier`:
    their bit masks), so that the pair was found there already."""
    for e in earlier:  # noqa: SIM110 (a loop: numba compiles no any() over a generator)
        if _popcount(x & e) <= band_radius:
            return True
    return False


@numba.njit(nogil=True)
def _join(q_sorted: np.ndarray, q_order: np.ndarray, q_off: np.ndarray, q_used: np.ndarray,
          c_sorted: np.ndarray, c_order: np.ndarray, c_off: np.ndarray,
          masks: np.ndarray, block_bits: int, first_block: int, last_block: int,
          radius: int, band_radius: int, earlier: np.ndarray,
          self_join: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within `radius` whose band values differ by one of `masks`, for query blocks
    [first_block, last_block). Arrays are one band's: codes in band order, their original indices,
    bucket offsets and (queries) the bucket values in use, so that empty buckets cost nothing.
    `earlier` holds the bit masks of the earlier bands: a pair close enough in one of them was found
    there already."""
    cap = 1024
    out_q = np.empty(cap, np.int64)
    out_c = np.empty(cap, np.int64)
    out_d = np.empty(cap, np.uint8)
    n = 0
    block = 1 << block_bits
    for b in range(first_block, last_block):
        v0 = b * block
        used_a = np.searchsorted(q_used, v0)
        used_b = np.searchsorted(q_used, v0 + block)
        if used_a == used_b:
            continue
        for mask in masks:
            partner = (v0 ^ mask) & ~(block - 1)
            if self_join and partner < v0:
                continue  # every v here has v ^ mask < v: those pairs are met from the other side
            if c_off[partner] == c_off[partner + block]:
                continue
            for t in range(used_a, used_b):
                v = q_used[t]
                qa, qb = q_off[v], q_off[v + 1]
                u = v ^ mask
                if self_join and u < v:
                    continue
                ca, cb = c_off[u], c_off[u + 1]
                for i in range(qa, qb):
                    code = q_sorted[i]
                    start = i + 1 if self_join and mask == 0 else ca
                    for j in range(start, cb):
                        x = code ^ c_sorted[j]
                        d = _popcount(x)
                        if d > radius or _found_in_earlier_band(x, earlier, band_radius):
                            continue
                        if n == cap:
                            cap *= 2
                            grown_q = np.empty(cap, np.int64)
                            grown_c = np.empty(cap, np.int64)
                            grown_d = np.empty(cap, np.uint8)
                            grown_q[:n] = out_q[:n]
                            grown_c[:n] = out_c[:n]
                            grown_d[:n] = out_d[:n]
                            out_q, out_c, out_d = grown_q, grown_c, grown_d
                        qi, ci = q_order[i], c_order[j]
                        if self_join and qi > ci:
                            qi, ci = ci, qi
                        out_q[n] = qi
                        out_c[n] = ci
                        out_d[n] = d
                        n += 1
    return out_q[:n].copy(), out_c[:n].copy(), out_d[:n].copy()


def _bands(m: int) -> list[tuple[int, int]]:
    """(shift, width) of m bands covering 64 bits, widest first."""
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def _masks(width: int, radius: int, block_bits: int) -> np.ndarray:
    """Every width-bit value with at most `radius` bits set, ordered by the bits above `block_bits`:
    masks that lead to the same partner block come one after another."""
    out = [0]
    for k in range(1, min(radius, width) + 1):
        out += [sum(1 << b for b in bits) for bits in combinations(range(width), k)]
    return np.array(sorted(out, key=lambda m: (m >> block_bits, m)), dtype=np.int64)


# What one step of a search costs, fitted to CPU times of searches on a 2-core x86 VM: visiting a
# bucket pair, about 20 ns while a band's bucket table fits in L2 (2^16 rows) and 40 ns beyond; comparing a
# candidate, 1.35 ns; building a bucket table, about 10 ns a row, once for the codes and once for each set
# of queries. The choice, not the seconds, is what matters: it was the fastest of 3-6 bands in each case
# measured (224k and 1M uniform codes, a third as many queries in chunks of 32,768, r=8 and 10; at 1M and
# r=10, four bands took 5.9 CPU s against 37.8 with three); for a 1M self-join at r=8 it takes four where
# three are 20% faster (`benchmarks/index_scale.py 1e6 --bands 3`).
_PROBE_S, _PROBE_FAR_S, _CANDIDATE_S, _ROW_S = 20e-9, 40e-9, 1.35e-9, 10e-9
_MAX_AUTO_BANDS = 8


def best_band_count(codes: int, queries: int, radius: int) -> int:
    """The band count (3-8) whose estimated search cost is least. Fewer, wider bands visit more bucket
    pairs (every mask of floor(r/m) bits: 1,562 a band for r=10 on 21 bits, 137 on 16) over sparser
    buckets; more, narrower bands visit few but compare more codes in each. Uniform codes are assumed
    (clustered hashes crowd some buckets, which costs every count alike). Three bands suit r=8 at 10M
    codes; r=10, or a few hundred thousand codes, want four or five: 6-8x faster than three at r=10."""
    def cost(m: int) -> float:
        total = 0.0
        for _, width in _bands(m):
            rows = 1 << width
            masks = sum(math.comb(width, i) for i in range(min(radius // m, width) + 1))
            probe = _PROBE_S if width <= 16 else _PROBE_FAR_S
            compare = _CANDIDATE_S * queries * codes / rows
            total += masks * (probe * min(queries, rows) + compare) + 2 * _ROW_S * rows
        return total

    return min(range(3, _MAX_AUTO_BANDS + 1), key=cost)


class _Band:
    """One band of a set of codes: the codes in band order, that order, and bucket offsets."""

    def __init__(self, codes: np.ndarray, shift: int, width: int):
        values = ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        self.order, self.offsets = _counting_sort(values, 1 << width)
        self.sorted_codes = codes[self.order]
        self.used = np.flatnonzero(np.diff(self.offsets))


class HammingIndex:
    """An index of `codes` (uint64) answering "which codes are within distance r of these?".

    `bands`: how many bands the codes are split into; by default the count `best_band_count` estimates
    cheapest for the first search's query count and radius (later searches keep it: any count finds the
    same pairs, only the cost differs).
    """

    def __init__(self, codes: np.ndarray, bands: int | None = None):
        if bands is not None and not 3 <= bands <= 64:
            raise ValueError(f"bands must be 3..64, not {bands}: a band's bucket table has 2^(64/bands) rows")
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.layout: list[tuple[int, int]] | None = None if bands is None else _bands(bands)
        self._bands: list[_Band] | None = None  # built by the first search that needs them

    def __len__(self) -> int:
        return len(self.codes)

    def _bands_for(self, queries: int, radius: int) -> tuple[list[tuple[int, int]], list[_Band]]:
        """The layout (chosen now if it was left to the index) and the codes' bands."""
        if self.layout is None:
            self.layout = _bands(best_band_count(len(self.codes), queries, radius))
        if self._bands is None:
            self._bands = [_Band(self.codes, shift, width) for shift, width in self.layout]
        return self.layout, self._bands

    def search(self, queries: np.ndarray, radius: int, *, workers: int | None = None,
               self_join: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query index, code index, distance) with distance <= radius, each pair once.

        `self_join=True` means `queries` are the indexed codes: pairs are i < j, no self-pairs."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if len(queries) * len(self.codes) <= _PAIRWISE_MAX:
            return _pairwise(queries, self.codes, radius, self_join)
        return self._banded(queries, radius, workers or os.cpu_count() or 1, self_join)

    def _banded(self, queries: np.ndarray, radius: int, workers: int,
                self_join: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`search` by multi-index hashing, through the compiled kernels."""
        ensure_loaded()
        layout, bands = self._bands_for(len(queries), radius)
        band_radius = radius // len(layout)
        jobs = []
        for k, (shift, width) in enumerate(layout):
            c_band = bands[k]
            q_band = c_band if self_join else _Band(queries, shift, width)
            # Blocks of bucket values holding about _BLOCK_CODES codes at the uniform average.
            crowd = max(len(queries), len(self.codes)) / _BLOCK_CODES
            block_bits = max(0, width - math.ceil(math.log2(crowd))) if crowd > 1 else width
            blocks = 1 << (width - block_bits)
            masks = _masks(width, band_radius, block_bits)
            earlier = np.array([((1 << w) - 1) << s for s, w in layout[:k]], dtype=np.uint64)
            items = min(blocks, _ITEMS_PER_WORKER * workers)
            cuts = [blocks * t // items for t in range(items + 1)]  # strictly increasing: items <= blocks
            for lo, hi in pairwise(cuts):
                jobs.append((q_band.sorted_codes, q_band.order, q_band.offsets, q_band.used,
                             c_band.sorted_codes, c_band.order, c_band.offsets,
                             masks, block_bits, lo, hi, radius, band_radius, earlier, self_join))
        if workers == 1:
            parts = [_join(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda job: _join(*job), jobs))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def _pairwise(queries: np.ndarray, codes: np.ndarray, radius: int,
              self_join: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`HammingIndex.search` by comparing every pair, a block of query rows at a time."""
    found_q, found_c, found_d = [], [], []
    step = max(1, (1 << 22) // max(1, len(codes)))  # rows per block: a few million distances at once
    for start in range(0, len(queries), step):
        dist = np.bitwise_count(queries[start:start + step, None] ^ codes[None, :])
        hit = dist <= radius
        if self_join:  # i < j only
            hit &= np.arange(len(codes))[None, :] > np.arange(start, start + len(dist))[:, None]
        q, c = np.nonzero(hit)
        found_q.append(q + start)
        found_c.append(c)
        found_d.append(dist[q, c])
    if not found_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return (np.concatenate(found_q).astype(np.int64), np.concatenate(found_c).astype(np.int64),
            np.concatenate(found_d).astype(np.uint8))


_KERNELS = (_counting_sort, _found_in_earlier_band, _join)
_loading = threading.RLock()
_loaded = False


def ensure_loaded() -> None:
    """Make the kernels ready, once per process: give numba a cache folder if it has none it can write,
    have the kernels use numba's cache (as `cache=True` would, which needs that folder when the module is
    imported), and load them from it (compile them if it has none). Every search through the kernels calls
    this first; a scan calls it before its fingerprint workers fork, which then share numba's set-up (most
    of the cost of loading any kernel) rather than each paying it."""
    global _loaded
    with _loading:
        if _loaded:
            return
        _give_numba_a_cache_dir()
        if not numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
            for kernel in _KERNELS:
                kernel.enable_caching()
        _loaded = True  # the search below calls this again
        codes = np.arange(2, dtype=np.uint64)
        HammingIndex(codes, bands=4)._banded(codes, 4, 1, True)


def pairs_within(codes: np.ndarray, radius: int, *, bands: int | None = None,
                 workers: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) of `codes` within `radius` bits, with their distances."""
    return HammingIndex(codes, bands).search(codes, radius, workers=workers, self_join=True)

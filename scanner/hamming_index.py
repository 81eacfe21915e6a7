"""Hamming range search over 64-bit codes by multi-index hashing (Norouzi et al.), in numpy.

Split each code into `m` bands. If two codes are within distance r, by the pigeonhole principle some band
differs in at most floor(r/m) bits. So each band is bucketed once (a counting sort over its 2^w values),
every query band value is looked up together with its neighbours within floor(r/m) bits, and only the
codes found that way (the candidates) get a full 64-bit comparison. A pair found in several bands is
kept once: in the first band that could have found it. Work is split into query chunks across processes
(fork: the tables are shared copy-on-write), which bounds memory by the chunk, not by N².

PERFORMANCE.md: uniform codes at 10M and r=8 give about 1.4e10 candidates with 3 bands; numpy spends
25-55 ns on each.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations

import numpy as np

__all__ = ["HammingIndex", "pairs_within"]

_CHUNK = 32_768  # queries per work item: keeps per-mask arrays in cache and bounds memory


def _bands(m: int) -> list[tuple[int, int]]:
    """(shift, width) of m bands covering 64 bits, widest first."""
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths))


def _masks(width: int, radius: int) -> np.ndarray:
    """Every width-bit value with at most `radius` bits set, zero first."""
    out = [0]
    for k in range(1, radius + 1):
        out += [sum(1 << b for b in bits) for bits in combinations(range(width), k)]
    return np.array(out, dtype=np.int64)


class HammingIndex:
    """An index of `codes` (uint64) answering "which codes are within distance r of these?".

    `bands` defaults to 3, PERFORMANCE.md's best trade-off for r around 8 on 64 bits.
    """

    def __init__(self, codes: np.ndarray, bands: int = 3):
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.layout = _bands(bands)
        # Per band: every code's band value, the codes sorted by it, and bucket offsets into that order.
        self.values, self.order, self.sorted_codes, self.offsets = [], [], [], []
        for band in range(len(self.layout)):
            values = self._band_values(self.codes, band)
            order = np.argsort(values, kind="stable")
            offsets = np.zeros((1 << self.layout[band][1]) + 1, dtype=np.int64)
            np.cumsum(np.bincount(values, minlength=1 << self.layout[band][1]), out=offsets[1:])
            self.values.append(values)
            self.order.append(order)
            self.sorted_codes.append(self.codes[order])
            self.offsets.append(offsets)

    def __len__(self) -> int:
        return len(self.codes)

    def _band_values(self, codes: np.ndarray, band: int) -> np.ndarray:
        shift, width = self.layout[band]
        return ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)

    def _search_chunk(self, queries: np.ndarray, first: int, radius: int,
                      self_join: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (query index, code index, distance) for queries[first:...]; in a self-join only
        pairs i < j. The hot loop touches each candidate a handful of times, all contiguous arrays."""
        found_q, found_c, found_d = [], [], []
        qidx = np.arange(first, first + len(queries), dtype=np.int64)
        band_radius = radius // len(self.layout)
        qbands = [self._band_values(queries, b) for b in range(len(self.layout))]
        for band, (_, width) in enumerate(self.layout):
            offsets, sorted_codes = self.offsets[band], self.sorted_codes[band]
            for mask in _masks(width, band_radius):
                keys = qbands[band] ^ mask
                qsel, qcodes = qidx, queries
                if self_join and mask:
                    # (i, j) and (j, i) meet through the same mask: look up only the larger band value.
                    sel = keys > qbands[band]
                    keys, qsel, qcodes = keys[sel], qidx[sel], queries[sel]
                starts = offsets[keys]
                counts = offsets[keys + 1] - starts
                total = int(counts.sum())
                if total == 0:
                    continue
                # Position of each candidate in the band's sorted order: its bucket start + rank in bucket.
                pos = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
                dist = np.bitwise_count(np.repeat(qcodes, counts) ^ sorted_codes[pos])
                hit = np.flatnonzero(dist <= radius)
                if hit.size == 0:
                    continue
                owner = np.searchsorted(np.cumsum(counts), hit, side="right")
                q, c, d = qsel[owner], self.order[band][pos[hit]], dist[hit]
                keep = np.ones(len(q), bool) if not (self_join and not mask) else q != c
                # Drop pairs an earlier band already found (true pairs only: few).
                for earlier in range(band):
                    keep &= np.bitwise_count(
                        (qbands[earlier][q - first] ^ self.values[earlier][c]).astype(np.uint64)
                    ) > band_radius
                found_q.append(q[keep])
                found_c.append(c[keep])
                found_d.append(d[keep].astype(np.uint8))
        if not found_q:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.uint8)
        q, c, d = np.concatenate(found_q), np.concatenate(found_c), np.concatenate(found_d)
        if self_join:
            # Same-bucket pairs were seen from both sides; keep one orientation, as (smaller, larger).
            q, c = np.minimum(q, c), np.maximum(q, c)
            _, first_seen = np.unique(q * len(self.codes) + c, return_index=True)
            q, c, d = q[first_seen], c[first_seen], d[first_seen]
        return q, c, d

    def search(self, queries: np.ndarray, radius: int, *, workers: int | None = None,
               self_join: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query index, code index, distance) with distance <= radius, each pair once.

        `self_join=True` means `queries` are the indexed codes: pairs are i < j, no self-pairs."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        workers = workers or os.cpu_count() or 1
        step = _CHUNK
        starts = list(range(0, len(queries), step)) or [0]
        if workers == 1 or len(starts) == 1:
            parts = [self._search_chunk(queries[s:s + step], s, radius, self_join) for s in starts]
        else:
            global _SHARED
            _SHARED = (self, queries)
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                parts = list(pool.map(_chunk_job, [(s, step, radius, self_join) for s in starts]))
            _SHARED = None
        return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


_SHARED: tuple[HammingIndex, np.ndarray] | None = None  # set before forking the workers


def _chunk_job(args: tuple[int, int, int, bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start, step, radius, self_join = args
    assert _SHARED is not None
    index, queries = _SHARED
    return index._search_chunk(queries[start:start + step], start, radius, self_join)


def pairs_within(codes: np.ndarray, radius: int, *, bands: int = 3,
                 workers: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) of `codes` within `radius` bits, with their distances."""
    return HammingIndex(codes, bands).search(codes, radius, workers=workers, self_join=True)

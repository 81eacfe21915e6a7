"""Duplicate groups: exact (same content) and near (same picture, different bytes), each with a master.

Exact: objects are joined when their SHA-256 is equal, or when both have a trusted provider MD5 and the
same size (that is how copies in archive tiers, which are never read, still match). Master: the first
copy matching a configured `master.prefer` glob, else the best by `master.exact` (default: the oldest).

Near: among images with perceptual hashes (one per exact group: its master stands for its copies),
objects are near duplicates of a centre when both pHash and dHash are within the configured Hamming
distances. Groups are stars around a centre chosen best-first by `master.near` (default: highest
resolution, then largest file, then oldest), so two unrelated images never join through an intermediate
one; the centre is the master.
Comparison is blockwise all-pairs on numpy arrays: correct and fine to about 10^5 images; the scalable
index is a separate component.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .config import MasterRule, MasterSettings, NearSettings
from .models import Group, GroupMember, InventoryRecord

__all__ = ["MASTER_RULES", "choose_exact_master", "exact_groups", "near_groups"]

_BLOCK = 2048  # rows compared at a time: bounds the distance matrix to _BLOCK x N bytes


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# The master criteria a config may name (`master.exact`, `master.near`): each gives a sort key, best first.
MASTER_RULES: dict[MasterRule, Callable[[InventoryRecord], object]] = {
    "oldest": lambda r: r.modified.timestamp(),
    "newest": lambda r: -r.modified.timestamp(),
    "hottest": lambda r: r.tier.rank,
    "coldest": lambda r: -r.tier.rank,
    "highest-resolution": lambda r: -(r.width or 0) * (r.height or 0),
    "largest": lambda r: -r.size,
}


def _ranking(rules: Sequence[MasterRule]) -> Callable[[InventoryRecord], tuple[object, ...]]:
    """Sort key of the best master first: the rules in order, then the URI, so the choice is stable."""
    return lambda r: (*(MASTER_RULES[rule](r) for rule in rules), r.uri)


def choose_exact_master(members: Sequence[InventoryRecord], master: MasterSettings) -> InventoryRecord:
    """A configured master location first (in the order of `prefer`), else the best by `master.exact`."""
    rank = _ranking(master.exact)
    for pattern in master.prefer:
        preferred = [r for r in members if fnmatch.fnmatchcase(r.uri, pattern)]
        if preferred:
            return min(preferred, key=rank)
    return min(members, key=rank)


def _group(kind: str, key: str, master: InventoryRecord, members: list[InventoryRecord],
           distances: dict[str, int]) -> Group:
    ordered = [master] + sorted((m for m in members if m.uri != master.uri), key=lambda m: m.uri)
    return Group(
        id=f"{kind[0]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}",
        kind=kind,  # type: ignore[arg-type]
        master=master.uri,
        members=[
            GroupMember(uri=m.uri, size=m.size, tier=m.tier, region=m.region, jurisdiction=m.jurisdiction,
                        distance=distances.get(m.uri, 0))
            for m in ordered
        ],
        spans_tiers=len({m.tier for m in ordered}) > 1,
        spans_regions=len({(m.provider, m.region) for m in ordered}) > 1,
        spans_jurisdictions=len({m.jurisdiction for m in ordered}) > 1,
        has_personal_data=any(m.personal_data for m in ordered),
    )


def exact_groups(records: Sequence[InventoryRecord], master: MasterSettings) -> list[Group]:
    """Groups of two or more byte-identical objects."""
    candidates = [r for r in records if r.status != "gone" and r.size > 0 and (r.sha256 or r.md5)]
    uf = _UnionFind(len(candidates))
    first_by_key: dict[tuple[object, ...], int] = {}
    for i, r in enumerate(candidates):
        for key in ((("sha256", r.sha256),) if r.sha256 else ()) + ((("md5", r.size, r.md5),) if r.md5 else ()):
            if key in first_by_key:
                uf.union(first_by_key[key], i)
            else:
                first_by_key[key] = i
    clusters: dict[int, list[InventoryRecord]] = defaultdict(list)
    for i, r in enumerate(candidates):
        clusters[uf.find(i)].append(r)
    groups = []
    for members in clusters.values():
        if len(members) < 2:
            continue
        chosen = choose_exact_master(members, master)
        content_key = chosen.sha256 or f"{chosen.size}:{chosen.md5}"
        groups.append(_group("exact", content_key, chosen, members, {}))
    return sorted(groups, key=lambda g: g.id)


@dataclass(frozen=True, slots=True)
class _Candidate:
    record: InventoryRecord
    phash: int
    dhash: int


def near_groups(records: Sequence[InventoryRecord], exact: Sequence[Group], near: NearSettings,
                master: MasterSettings | None = None) -> list[Group]:
    """Star groups of perceptually similar images; exact copies are represented by their group's master.
    Centres, the masters, are taken best first by `master.near`."""
    rank = _ranking((master or MasterSettings()).near)
    non_masters = {m.uri for g in exact for m in g.members if m.uri != g.master}
    cands = sorted(
        (
            _Candidate(r, int(r.phash, 16), int(r.dhash, 16))
            for r in records
            if r.phash and r.dhash and r.status == "fingerprinted" and r.uri not in non_masters
        ),
        key=lambda c: rank(c.record),
    )
    if len(cands) < 2:
        return []
    ph = np.array([c.phash for c in cands], dtype=np.uint64)
    dh = np.array([c.dhash for c in cands], dtype=np.uint64)
    assigned = np.zeros(len(cands), dtype=bool)
    groups = []
    for start in range(0, len(cands), _BLOCK):
        block = range(start, min(start + _BLOCK, len(cands)))
        dp = np.bitwise_count(ph[block.start:block.stop, None] ^ ph[None, :])
        dd = np.bitwise_count(dh[block.start:block.stop, None] ^ dh[None, :])
        close = (dp <= near.phash_max_distance) & (dd <= near.dhash_max_distance)
        for row, i in enumerate(block):
            if assigned[i]:
                continue
            # Only later (lower-ranked) unassigned candidates can join a centre; earlier ones were centres.
            mates = np.flatnonzero(close[row] & ~assigned)
            mates = mates[mates > i]
            if mates.size == 0:
                continue
            assigned[i] = True
            assigned[mates] = True
            centre = cands[i].record
            members = [centre] + [cands[j].record for j in mates]
            distances = {cands[j].record.uri: int(dp[row, j]) for j in mates}
            groups.append(_group("near", centre.uri, centre, members, distances))
    return sorted(groups, key=lambda g: g.id)

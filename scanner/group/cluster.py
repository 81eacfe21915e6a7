"""Duplicate groups: exact (same content) and near (same picture, different bytes), each with a master.

Exact: objects are joined when their SHA-256 is equal, or when both have a trusted provider MD5 and the
same size (that is how copies in archive tiers, which are never read, still match). Master: the first
copy matching a configured `master.prefer` glob, else the best by `master.exact` (default: the oldest).

Near: among images with perceptual hashes (one per exact group: its master stands for its copies), candidate
pairs come from the Hamming index (`hamming_index`, no all-pairs work) over each image's pHash, mirror pHash
and window pHashes (`signatures`), and the hashes of its other readings (`readings`: inside a border, as
stored), and its levelled hash against the others' (a copy turned within its frame), each image keeping
its nearest (`_MAX_MATES`); images too plain to verify are left out. Pairs are confirmed by ORB + RANSAC
and aligned thumbnail blocks (`verify`), one process per core verifying whole connected components of the
candidate graph (components never share a pair, so the groups are those of one process). Groups are stars
around a centre chosen best-first by `master.near` (default: highest resolution, then largest file, then
oldest): the centre's candidates, and then, round by round, those of the members it confirmed, are each
confirmed against the centre itself, so two unrelated images never join through an intermediate one; the
one exception, for a centre that shows the picture small (a border added, stretched), is a candidate
confirmed by a member the centre confirmed directly, and it is left for the group of an image not yet
grouped that it matches better. No group holds
a pair the user listed as "not a duplicate", nor two different shots by their camera metadata
(`_other_shots`); candidates are admitted best match first, and a member that matches such a kept-out
image better than the centre is left for that image's group. The centre is the master. A member's
`distance` is the hash distance that made it the centre's candidate, or, when it was a member's candidate,
the pHash distance to the centre."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba.core.compiler_lock import global_compiler_lock

from tierscan.scanner.core.config import MasterSettings, NearSettings
from tierscan.scanner.core.models import (
    Group,
    ObjectStatus,
)
from tierscan.scanner.fingerprint.signatures import QUERY_WINDOWS, Signature
from tierscan.scanner.group.hamming_index import HammingIndex, pairs_within
from tierscan.scanner.group.members import (
    MASTER_RULES,
    ExactCopy,
    Image,
    NearImage,
    _group,
    _group_id,
    _ranking,
    choose_exact_master,
    exact_group,
    exact_groups,
)
from tierscan.scanner.group.readings import reading_queries
from tierscan.scanner.group.verify import MIN_POINTS, evidence

__all__ = ["MASTER_RULES", "ExactCopy", "NearGrouping", "NearImage", "choose_exact_master", "exact_group",
           "exact_groups", "iter_near_groups", "near_groups", "start_near_groups"]


@dataclass(slots=True)
class _Candidate:
    """An image of the near search. Its signature blob is decoded on first use, in the verification
    process that needs it: the index reads only the blob's hashes (`Signature.hashes_of`)."""

    record: Image
    phash: int
    dhash: int
    blob: bytes | None  # a `Signature` blob of the current layout, or None
    _decoded: Signature | None = None

    @property
    def signature(self) -> Signature | None:
        if self._decoded is None and self.blob is not None:
            self._decoded = Signature.from_blob(self.blob)
        return self._decoded


_PARALLEL_FROM = 50_000  # query hashes from which the index search uses every core
_QUERY_CHUNK = 32_768  # query hashes searched at once (bounds the raw matches held)


def _hash_pairs(cands: Sequence[_Candidate], radius: int) -> np.ndarray:
    """Candidate pairs as rows (i, j, distance), i < j indices into `cands`, by pair: the least distance
    between any of i's query hashes (whole, mirror, centre windows, inside a quiet border, other readings)
    and j's indexed hashes (whole, windows), or the reverse, or between their levelled hashes."""
    n = len(cands)
    signed = np.array([k for k, c in enumerate(cands) if c.blob is not None], np.int64)
    table = Signature.hash_table([cands[k].blob for k in signed.tolist()])
    whole = np.array([c.phash for c in cands], np.uint64)
    windows = table[:, 1:]
    query_windows = np.column_stack([table[:, :1], windows[:, list(QUERY_WINDOWS)]])
    reading_owner, readings = reading_queries([c.blob for c in cands], [_orientation(c.record) for c in cands])
    inside = Signature.inside_hashes([cands[k].blob for k in signed.tolist()])
    framed = inside != 0
    reading_owner = np.concatenate([reading_owner, signed[framed]])
    readings = np.concatenate([readings, inside[framed]])
    db = np.concatenate([whole, windows.ravel()])
    db_owner = np.concatenate([np.arange(n), np.repeat(signed, windows.shape[1])])
    query_codes = np.concatenate([whole, query_windows.ravel(), readings])
    q_owner_arr = np.concatenate([np.arange(n), np.repeat(signed, query_windows.shape[1]), reading_owner])
    # Below tens of thousands of hashes, threads save less than they cost (at 100k, 3.4 s wall against 4.1).
    workers = 1 if len(query_codes) < _PARALLEL_FROM else None
    index = HammingIndex(db)
    found: list[np.ndarray] = []
    # Near variants of one photo match window by window (tens of hash pairs per image pair), so the raw
    # matches are reduced to image pairs a chunk of queries at a time: 20k images of 300 photos would
    # otherwise hold 0.86 GB of matches at once.
    for start in range(0, len(query_codes), _QUERY_CHUNK):
        qi, di, dist = index.search(query_codes[start:start + _QUERY_CHUNK], radius, workers=workers)
        a, b = q_owner_arr[qi + start], db_owner[di]
        keep = a != b
        found.append(_least_per_pair(_pair_keys(np.minimum(a, b)[keep], np.maximum(a, b)[keep], dist[keep], n)))
    # Levelled hashes only meet each other: a turned copy's and its original's are made alike.
    level = Signature.level_hashes([cands[k].blob for k in signed.tolist()])
    levelled = signed[level != 0]
    li, lj, dist = pairs_within(level[level != 0], radius, workers=workers)
    found.append(_least_per_pair(_pair_keys(levelled[li], levelled[lj], dist, n)))  # li < lj: signed ascends
    keys = _least_per_pair(np.concatenate(found))
    pair = keys >> _DIST_BITS
    return _nearest_mates(np.column_stack([pair // n, pair % n, keys & ((1 << _DIST_BITS) - 1)]))


_MAX_MATES = 64  # candidates an image keeps, nearest first (the labelled sets' images have at most 45)


def _nearest_mates(pairs: np.ndarray) -> np.ndarray:
    """The pairs among each image's `_MAX_MATES` nearest candidates (by distance, then by index), of
    either image: at most that many an image, so verification is linear in the images. Thousands of frames
    of one scene, each close to all and verified by none (a burst with a moving subject), would otherwise
    make every frame a candidate of every other; a copy that only a farther member reaches joins through
    the members' candidates."""
    owner, other = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((other, np.concatenate([pairs[:, 2], pairs[:, 2]]), owner))
    ranked = owner[order]
    rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked)  # place within its owner's run
    kept = np.zeros(len(pairs), bool)
    kept[order[rank < _MAX_MATES] % len(pairs)] = True
    return pairs[kept]


def _orientation(record: Image) -> int | None:
    """The EXIF orientation an image's hashes were made upright by."""
    if isinstance(record, NearImage):
        return record.orientation
    return record.exif.orientation if record.exif is not None else None


def _least_per_pair(pairs: np.ndarray) -> np.ndarray:
    """Each image pair once, with its least distance, from `_pair_keys` (one sort of one int64 array: on
    the 20k-object benchmark's catalog, 1.3 s a grouping against 3.2 s for a lexsort of three)."""
    pairs = np.sort(pairs)
    first = np.ones(len(pairs), bool)
    first[1:] = (pairs[1:] >> _DIST_BITS) != (pairs[:-1] >> _DIST_BITS)
    return pairs[first]


_DIST_BITS = 7  # a distance (at most 64) in the low bits of a pair key


def _pair_keys(low: np.ndarray, high: np.ndarray, dist: np.ndarray, n: int) -> np.ndarray:
    """(low, high, distance) of candidate pairs among `n` images as one sortable int64 each: by pair,
    then by distance (exact for n up to 2^28)."""
    keys: np.ndarray = ((low.astype(np.int64) * n + high) << _DIST_BITS) | dist.astype(np.int64)
    return keys


def _verdict(centre: _Candidate, other: _Candidate, near: NearSettings) -> tuple[tuple[float, float] | None, bool]:
    """How well `other` shows the centre's picture, higher is better, or None when the pair is not
    confirmed; and whether it shows the scene from a shifted frame (`Evidence.shifted`): another shot.
    Geometric and photometric verification when both have signatures: RANSAC inliers, then block
    agreement (which saturates at 1.0 for most confirmed pairs, while a re-encode of the same exposure
    keeps two to three times the inliers of a neighbouring exposure); else both global hashes close
    (the closer, the better)."""
    if centre.signature is not None and other.signature is not None:
        found = evidence(centre.signature, other.signature)
        if found is None or found.inliers < near.min_inliers or found.agree < near.min_agreement:
            return None, found is not None and found.shifted
        return (found.inliers, found.agree), False
    phash, dhash = int.bit_count(centre.phash ^ other.phash), int.bit_count(centre.dhash ^ other.dhash)
    if phash > near.phash_max_distance or dhash > near.dhash_max_distance:
        return None, False
    return (0, 1 - (phash + dhash) / 128), False


def _match(centre: _Candidate, other: _Candidate, near: NearSettings) -> tuple[float, float] | None:
    """`_verdict`'s score."""
    return _verdict(centre, other, near)[0]


def _other_shots(a: Image, b: Image) -> bool:
    """Whether camera metadata shows two different exposures: both carry an original capture time and the
    times differ, or both name camera serials and share none. Bracketed exposures (HDR), bursts a second
    apart and shots from two bodies align almost perfectly and differ only in tone or timing, which pixels
    alone cannot tell from an edit; an edited copy keeps its original's capture time, and a copy stripped
    of its metadata is never kept apart by this."""
    ea, eb = a.exif, b.exif
    if ea is None or eb is None:
        return False
    taken_a, taken_b = (ea.datetime_original or "").strip(), (eb.datetime_original or "").strip()
    if taken_a and taken_b and taken_a != taken_b:
        return True
    return bool(ea.serials and eb.serials and not set(ea.serials) & set(eb.serials))


def _apart(a: Image, b: Image, separated: set[frozenset[str]],
           near: NearSettings) -> bool:
    """Whether two images must not share a near group: listed as "not a duplicate", or other shots."""
    return frozenset((a.uri, b.uri)) in separated or (near.split_shots and _other_shots(a, b))


def _separated(near: NearSettings, extra: Iterable[Sequence[str]], exact: Sequence[Group]) -> set[frozenset[str]]:
    """URI pairs that must not share a near group, exact copies mapped to their group's master."""
    master_of = {m.uri: g.master for g in exact for m in g.members}
    pairs: set[frozenset[str]] = set()
    for listed in (*near.not_duplicates, *extra):
        uris = sorted({master_of.get(u, u) for u in listed})
        pairs.update(frozenset(p) for p in itertools.combinations(uris, 2))
    return pairs


def _current(blob: bytes | None) -> bytes | None:
    """The blob if it has this version's layout; None without one or for a blob of an older layout (the
    catalog reads such objects again, and until then they use the global-hash rule)."""
    return blob if blob is not None and Signature.is_current(blob) else None


def _featureless(cand: _Candidate) -> bool:
    """Whether a signed image has too few features for any pair of it to verify (a blank or flat fill):
    it is never a near duplicate, and is left out of the search, where its hashes, alike for every such
    image, would make a candidate of each (thousands of placeholders: millions of pairs to refuse)."""
    return cand.blob is not None and Signature.feature_count(cand.blob) < MIN_POINTS


def near_groups(records: Iterable[Image], exact: Sequence[Group], near: NearSettings,
                master: MasterSettings | None = None, signatures: Mapping[str, bytes] | None = None,
                not_duplicates: Iterable[Sequence[str]] = (), workers: int | None = None) -> list[Group]:
    """`start_near_groups`'s groups as a list."""
    return list(iter_near_groups(records, exact, near, master, signatures, not_duplicates, workers))


def iter_near_groups(records: Iterable[Image], exact: Sequence[Group], near: NearSettings,
                     master: MasterSettings | None = None, signatures: Mapping[str, bytes] | None = None,
                     not_duplicates: Iterable[Sequence[str]] = (), workers: int | None = None) -> Iterator[Group]:
    """`start_near_groups`'s groups, each made as it is taken, its processes ended when they are."""
    with start_near_groups(records, exact, near, master, signatures, not_duplicates, workers) as grouping:
        yield from grouping.groups()


def start_near_groups(records: Iterable[Image], exact: Sequence[Group], near: NearSettings,
                      master: MasterSettings | None = None, signatures: Mapping[str, bytes] | None = None,
                      not_duplicates: Iterable[Sequence[str]] = (), workers: int | None = None) -> NearGrouping:
    """Start grouping perceptually similar images into stars, by id: candidate pairs are found now and
    their verification starts in forked processes when the work is worth it, so that the caller does work
    of its own before it takes the groups (`NearGrouping.groups`). Exact copies are represented by their
    group's master. Centres, the masters, are taken best first by `master.near`; an unassigned candidate
    joins a centre only when their pair is confirmed and it is not listed as "not a duplicate" of any
    member. `records`: whole inventory records, or `NearImage`s of the images with perceptual hashes.
    `signatures`: `Signature` blobs by URI (objects without one use the global-hash rule). `workers`:
    processes that verify candidate pairs (default: one per core)."""
    rank = _ranking((master or MasterSettings()).near)
    non_masters = {m.uri for g in exact for m in g.members if m.uri != g.master}
    blobs = signatures or {}
    hashed = (
        _Candidate(r, int(r.phash, 16), int(r.dhash, 16), _current(blobs.get(r.uri)))
        for r in records
        if r.phash and r.dhash and r.status == ObjectStatus.fingerprinted and r.uri not in non_masters
    )
    cands = sorted((c for c in hashed if not _featureless(c)), key=lambda c: rank(c.record))
    if len(cands) < 2:
        return NearGrouping(cands, None, [], 1)
    radius = max(near.candidate_radius, near.phash_max_distance)
    pairs = _hash_pairs(cands, radius)
    search = _Search(cands, _Mates.of(pairs, len(cands)), _separated(near, not_duplicates, exact), near)
    return NearGrouping(cands, search, _components(pairs, len(cands)), workers or os.cpu_count() or 1)



class _Mates:
    """Each image's candidate pairs, as (other image, distance) by other image ascending. Held as arrays
    (CSR) and made into lists only for the images verification looks at, in the processes that verify:
    lists of every pair up front cost 0.4 s of one core for the read-plan benchmark's 325,000 pairs."""

    def __init__(self, starts: np.ndarray, others: np.ndarray, distances: np.ndarray):
        self._starts, self._others, self._distances = starts, others, distances

    @classmethod
    def of(cls, pairs: np.ndarray, n: int) -> _Mates:
        """From `_hash_pairs` rows (i, j, distance) among `n` images: each pair is a mate of both."""
        one, other = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
        order = np.lexsort((other, one))
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(one, minlength=n), out=starts[1:])
        return cls(starts, other[order], np.concatenate([pairs[:, 2], pairs[:, 2]])[order])

    def __getitem__(self, i: int) -> list[tuple[int, int]]:
        start, end = self._starts[i], self._starts[i + 1]
        return list(zip(self._others[start:end].tolist(), self._distances[start:end].tolist(), strict=True))

    def count(self, images: list[int]) -> int:
        """How many mates `images` have in all."""
        return int((self._starts[np.add(images, 1)] - self._starts[images]).sum())


# A star: the centre's index, its members' indices, and each member's distance by URI.
_Star = tuple[int, list[int], dict[str, int]]


@dataclass(frozen=True, slots=True)
class _Search:
    """What forming the stars reads: candidates in rank order, their hash mates, pairs kept apart."""

    cands: Sequence[_Candidate]
    mates: _Mates
    separated: set[frozenset[str]]
    near: NearSettings

    def stars(self, component: list[int]) -> list[_Star]:
        """The stars of one connected component of the mates graph (indices ascending, so centres come best
        first). Every pair this looks at, candidates, later rounds' candidates and rivals, is of mates, so
        components are independent: taken one by one they give the stars one pass over all would."""
        cands, mates, near = self.cands, self.mates, self.near
        assigned: set[int] = set()
        stars = []
        for i in component:
            if i in assigned:
                continue
            centre = cands[i]
            members: dict[int, tuple[float, float]] = {}  # candidate index -> how well it matches the centre
            distances: dict[str, int] = {}
            kept_out: set[int] = set()  # candidates that must not share a group with a member
            # The centre's candidates first, then, round by round until none is new, the candidates of the
            # members it confirmed (a 60% crop whose hashes are near the original's but not near a resized
            # repost's, when the repost is the centre; an off-centre crop that no window of the original
            # finds, through a crop it overlaps). Every one is verified against the centre itself, so no
            # round drifts away from its picture; only one it fails joins through a member, below, and
            # never one it finds shifted across the scene (the other view of a stereo pair: a crop of one
            # view within the other's frame is a crop of both).
            direct = {j: d for j, d in mates[i] if j > i}
            tried: set[int] = set()
            confirmed: set[int] = set()  # members the centre itself confirmed
            relayed: set[int] = set()  # members confirmed by a member, not by the centre
            frontier = sorted(direct)
            while frontier:
                scored, failed = [], []
                for j in frontier:
                    tried.add(j)
                    if j in assigned:
                        continue
                    score, shifted = _verdict(centre, cands[j], near)
                    if score is not None:
                        scored.append((score, j))
                    elif not shifted:
                        failed.append(j)
                joined = self._admit(i, scored, members, distances, direct, kept_out, assigned)
                confirmed.update(joined)
                # A centre that shows the picture small (a copy with a border added, stretched, framed in a
                # screenshot) may fail to verify a crop or another such copy that its own picture verifies:
                # those join when confirmed against a member they are candidates of that the centre
                # confirmed directly, so the photo's variants are not split between two groups.
                scored = []
                for j in (j for j in failed if cands[j].blob is not None):
                    # Only by verified evidence: the global-hash rule never joins through a member.
                    near_members = sorted((m for m, _ in mates[j] if m in confirmed and cands[m].blob is not None),
                                          key=lambda m: members[m], reverse=True)[:_ANCHORS]
                    for m in near_members:
                        if (score := _match(cands[m], cands[j], near)) is not None:
                            scored.append((score, j))
                            break
                relayed.update(through := self._admit(i, scored, members, distances, direct, kept_out, assigned))
                joined += through
                # The next round: their candidates not yet tried, ranked below the centre (an unassigned
                # better-ranked image already had its turn as a centre).
                frontier = sorted({k for j in joined for k, _ in mates[j]
                                   if k > i and k not in tried and k not in assigned})
            # A member that matches an image kept out better than it matches the centre belongs with that
            # image (the re-encoded copy of the second shot of a bracket): it is left for that image's group.
            # So does one confirmed by a member, which the centre did not confirm, that matches an image not
            # yet grouped better than that member (another frame of a video; a crop of one view of a stereo
            # pair that the other view shows too).
            for j, score in list(members.items()):
                rivals = [k for k, _ in mates[j]
                          if k in kept_out or (j in relayed and k > i and k not in members and k not in assigned)]
                if any((rival := _match(cands[k], cands[j], near)) is not None and rival > score
                       for k in rivals):
                    assigned.discard(j)
                    del members[j]
                    del distances[cands[j].record.uri]
            if members:
                assigned.add(i)
                stars.append((i, list(members), distances))
        return stars


    def _admit(self, i: int, scored: list[tuple[tuple[float, float], int]], members: dict[int, tuple[float, float]],
               distances: dict[str, int], direct: dict[int, int], kept_out: set[int], assigned: set[int]
               ) -> list[int]:
        """Admit confirmed candidates to centre i's star, best match first: of two images kept apart (two
        shots of one scene, or a pair the user listed), the one closer to the centre joins. The admitted."""
        cands, centre = self.cands, self.cands[i]
        joined = []
        for score, j in sorted(scored, key=lambda s: (-s[0][0], -s[0][1], s[1])):
            if any(_apart(cands[m].record, cands[j].record, self.separated, self.near) for m in (i, *members)):
                kept_out.add(j)
                continue
            assigned.add(j)
            members[j] = score
            joined.append(j)
            distances[cands[j].record.uri] = direct.get(j, int.bit_count(centre.phash ^ cands[j].phash))
        return joined


_ANCHORS = 3  # members a candidate the centre did not confirm is verified against, at most


def _components(pairs: np.ndarray, n: int) -> list[list[int]]:
    """The connected components of the graph of candidate pairs (rows i, j, ... of `pairs`, among `n`
    images), each as ascending indices, largest first (of equal size, the one with the lower first index).
    A vectorised union-find: each edge hooks the larger of its two roots under the smaller, then pointers
    jump until every image points at a root; again until no edge spans two roots. Rounds grow like log n
    (13 for a chain of a million images in random order, 0.3 s). Vectorised because a scan's candidate
    pairs run to hundreds of thousands (325,000 among 14,000 images in the read-plan benchmark), each a
    step of a loop in Python."""
    low, high = pairs[:, 0], pairs[:, 1]
    root = np.arange(n)
    while True:
        a, b = root[low], root[high]
        spanning = a != b
        if not spanning.any():
            break
        a, b = a[spanning], b[spanning]
        np.minimum.at(root, np.maximum(a, b), np.minimum(a, b))  # roots only ever point lower: no cycles
        while not np.array_equal(jumped := root[root], root):
            root = jumped
    linked = np.unique(pairs[:, :2])  # the images with a candidate pair, ascending
    members: dict[int, list[int]] = defaultdict(list)
    for i, r in zip(linked.tolist(), root[linked].tolist(), strict=True):
        members[r].append(i)
    return sorted(members.values(), key=len, reverse=True)


# Candidate pairs from which verification is spread over processes: below this, forking costs more.
_PARALLEL_PAIRS = 20_000
_VERIFYING: _Search | None = None  # in a verification process: the search it inherited (never pickled)


def _adopt(search: _Search) -> None:
    """A verification process's set-up: the search it reads, inherited from its parent by the fork."""
    global _VERIFYING
    _VERIFYING = search


def _stars_of(components: list[list[int]]) -> list[_Star]:
    assert _VERIFYING is not None, "a verification process forked without its search"
    return [star for c in components for star in _VERIFYING.stars(c)]


class NearGrouping:
    """Near grouping under way (`start_near_groups`): it owns the processes that verify candidate pairs.
    When the work is large and fork is available, `workers` processes fork as this is made and verify
    while the caller goes on, largest components first so that no process is left with the biggest at the
    end (verification is CPU-bound Python and OpenCV on small arrays: threads would share one core);
    otherwise this process verifies when `groups` is taken. `close` (or leaving the `with`) ends them."""

    def __init__(self, cands: list[_Candidate], search: _Search | None, components: list[list[int]],
                 workers: int):
        self._cands, self._search, self._components = cands, search, components
        self._pool: ProcessPoolExecutor | None = None
        self._parts: Iterator[list[_Star]] | None = None
        if search is None:
            return
        work = [search.mates.count(c) for c in components]  # twice each component's pairs
        if workers < 2 or sum(work) < 2 * _PARALLEL_PAIRS or "fork" not in multiprocessing.get_all_start_methods():
            return
        batches: list[list[list[int]]] = [[] for _ in range(4 * workers)]
        loads = [0] * len(batches)
        for c, w in zip(components, work, strict=True):  # largest first, each to the least loaded batch
            k = loads.index(min(loads))
            batches[k].append(c)
            loads[k] += w
        # The search is handed to the processes by the fork, not copied to them.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_adopt, initargs=(search,))
        # A fork pool starts all its processes at the first submission, here. They fork holding numba's
        # compiler lock (waiting for a thread that compiles or loads kernels): a child forked while another
        # thread held it would wait on it forever.
        with global_compiler_lock:
            self._parts = self._pool.map(_stars_of, [b for b in batches if b])

    def groups(self) -> Iterator[Group]:
        """The groups, each made as it is taken, once the verification is done."""
        if self._search is None:
            return
        if self._parts is not None:
            stars = [star for part in self._parts for star in part]
            self.close()  # done: the processes end before the groups are made
        else:
            stars = [star for c in self._components for star in self._search.stars(c)]
        cands = self._cands
        for k in sorted(range(len(stars)), key=lambda k: _group_id("near", cands[stars[k][0]].record.uri)):
            i, members, distances = stars[k]
            yield _group("near", cands[i].record.uri, cands[i].record,
                         [cands[i].record, *(cands[j].record for j in members)], distances)

    def close(self) -> None:
        """End the verification processes (after the batch each has at hand)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> NearGrouping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Group members and masters: the records grouping ranks (`NearImage`, `ExactCopy`, inventory records), the
master rules, and exact grouping. Apart from near grouping (`cluster`), so that exact grouping loads no array
or image library."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tierscan.scanner.core.config import MasterRule, MasterSettings
from tierscan.scanner.core.models import (
    IDENTITY_KINDS,
    NOT_AN_IMAGE,
    Group,
    GroupMember,
    InventoryRecord,
    ObjectStatus,
    Tier,
    content_identity,
)

__all__ = ["MASTER_RULES", "ExactCopy", "Image", "Member", "NearImage", "Shot", "choose_exact_master", "exact_group",
           "exact_groups"]


@dataclass(frozen=True, slots=True)
class Shot:
    """What tells two exposures apart (`_other_shots`): the capture time and the camera serials."""

    datetime_original: str | None
    serials: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Ranked:
    """The fields of one object that the master ranking and a group's members and spans read."""

    uri: str
    provider: str
    size: int
    tier: Tier
    region: str
    jurisdiction: str
    modified: datetime
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class NearImage(_Ranked):
    """What near grouping reads of one image, in place of its whole inventory record: the ranked fields,
    the perceptual hashes and the camera metadata that keeps shots apart (`Catalog.near_rows` gives them
    as plain tuples)."""

    phash: str
    dhash: str
    exif: Shot | None
    personal_data: bool
    status: str = ObjectStatus.fingerprinted.value
    orientation: int | None = None  # the EXIF orientation its hashes were made upright by

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> NearImage:
        """From a `Catalog.near_rows` tuple (repeated texts such as regions are kept once)."""
        uri, provider, size, tier, region, jurisdiction, modified, width, height, phash, dhash, taken, serials, \
            personal, orientation = row
        shot = Shot(taken, tuple(json.loads(serials))) if taken or serials else None
        return cls(uri, sys.intern(provider), size, Tier(tier), sys.intern(region), sys.intern(jurisdiction),
                   datetime.fromisoformat(modified), width, height, phash, dhash, shot, bool(personal),
                   orientation=orientation)


@dataclass(frozen=True, slots=True)
class ExactCopy(_Ranked):
    """What exact grouping reads of one object, in place of its whole inventory record: the ranked fields
    and its content key (`Catalog.exact_candidates` gives them as plain tuples)."""

    personal_data: bool
    sha256: str | None
    content_id: str | None

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> ExactCopy:
        """From a `Catalog.exact_candidates` tuple without its label."""
        uri, provider, size, tier, region, jurisdiction, modified, width, height, personal, sha256, \
            *identities = row
        return cls(uri, provider, size, Tier(tier), region, jurisdiction, datetime.fromisoformat(modified),
                   width, height, bool(personal), sha256,
                   content_identity(dict(zip(IDENTITY_KINDS, identities, strict=True))))


# An image as near grouping reads it: a whole inventory record, or the part near grouping needs.
Image = InventoryRecord | NearImage
# A group member as grouping reads it: an image, or the part exact grouping needs.
Member = Image | ExactCopy


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
MASTER_RULES: dict[MasterRule, Callable[[Member], object]] = {
    "oldest": lambda r: r.modified.timestamp(),
    "newest": lambda r: -r.modified.timestamp(),
    "hottest": lambda r: r.tier.rank,
    "coldest": lambda r: -r.tier.rank,
    "highest-resolution": lambda r: -(r.width or 0) * (r.height or 0),
    "largest": lambda r: -r.size,
}


def _ranking(rules: Sequence[MasterRule]) -> Callable[[Member], tuple[object, ...]]:
    """Sort key of the best master first: the rules in order, then the URI, so the choice is stable."""
    return lambda r: (*(MASTER_RULES[rule](r) for rule in rules), r.uri)


def choose_exact_master(members: Sequence[InventoryRecord | ExactCopy],
                        master: MasterSettings) -> InventoryRecord | ExactCopy:
    """A configured master location first (in the order of `prefer`), else the best by `master.exact`."""
    rank = _ranking(master.exact)
    for pattern in master.prefer:
        preferred = [r for r in members if fnmatch.fnmatchcase(r.uri, pattern)]
        if preferred:
            return min(preferred, key=rank)
    return min(members, key=rank)


def _group_id(kind: str, key: str) -> str:
    return f"{kind[0]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _group(kind: str, key: str, master: Member, members: Sequence[Member],
           distances: dict[str, int]) -> Group:
    ordered = [master, *sorted((m for m in members if m.uri != master.uri), key=lambda m: m.uri)]
    return Group(
        id=_group_id(kind, key),
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
    candidates = [r for r in records if r.status != ObjectStatus.gone and r.size > 0 and (r.sha256 or r.content_id)
                  and not (r.status == ObjectStatus.skipped and r.reason == NOT_AN_IMAGE)]
    uf = _UnionFind(len(candidates))
    first_by_key: dict[tuple[object, ...], int] = {}
    for i, r in enumerate(candidates):
        # Every identity token joins: copies whose strongest kinds differ (an MD5 ETag, a multipart ETag)
        # may share a weaker one (a full-object CRC64NVME).
        for key in ((("sha256", r.sha256),) if r.sha256 else ()) + tuple(("id", r.size, t) for t in r.content_ids):
            if key in first_by_key:
                uf.union(first_by_key[key], i)
            else:
                first_by_key[key] = i
    clusters: dict[int, list[InventoryRecord]] = defaultdict(list)
    for i, r in enumerate(candidates):
        clusters[uf.find(i)].append(r)
    groups = [exact_group(members, master) for members in clusters.values() if len(members) > 1]
    return sorted(groups, key=lambda g: g.id)


def exact_group(members: Sequence[InventoryRecord | ExactCopy], master: MasterSettings) -> Group:
    """The group of these byte-identical objects (two or more), with its master chosen."""
    chosen = choose_exact_master(members, master)
    content_key = chosen.sha256 or f"{chosen.size}:{chosen.content_id}"
    return _group("exact", content_key, chosen, members, {})

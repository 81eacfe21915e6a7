"""tierscan's domain filters: tiers, regions, jurisdictions, the Greater Bay Area, personal data, groups.

Group-only filters read the group's own fields (`spans_tiers`, `kind`, the members' places). Filters about
one copy (tier, bucket, age, size, personal-data, outside-gba, taken-in) work on objects and, on a group, hold when
any member matches; their reason then says how many copies did.
"""

from __future__ import annotations

import fnmatch
from abc import abstractmethod
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import ByteSize, Field, model_validator

from tierscan.policies.filters import Size, parse_timestamp
from tierscan.policies.model import FILTERS, Context, Filter, Record, copies
from tierscan.policies.prefilter import Between, Condition, Flag, HasPersonalData, OneOf, every
from tierscan.scanner.core.models import Tier

__all__ = [
    "PERSONAL_DATA_KINDS",
    "PIXEL_KINDS",
    "AgeFilter",
    "BucketFilter",
    "CrossBoundary",
    "FacesFilter",
    "GroupKind",
    "OutsideGBA",
    "PersonalData",
    "PersonalDataKind",
    "PixelKind",
    "RedundantInHotterTier",
    "SizeFilter",
    "SpansJurisdictions",
    "SpansRegions",
    "SpansTiers",
    "TakenIn",
    "TierFilter",
]


def _tier_rank(tier: str) -> int:
    return Tier(tier).rank


def _tiers_text(tiers: Iterable[str]) -> str:
    return ", ".join(sorted(set(tiers), key=_tier_rank))


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class _GroupFilter(Filter):
    """A filter on a group's own fields: it has no meaning for a single object."""

    resources = frozenset({"group"})


class _PerCopy(Filter):
    """A filter about one copy. On a group it holds when any member matches, and the reason says how many."""

    @abstractmethod
    def match(self, copy: Record, ctx: Context) -> bool: ...

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return self.summary()

    def __call__(self, record: Record, ctx: Context) -> bool:
        return any(self.match(c, ctx) for c in copies(record, ctx))

    def reason(self, record: Record, ctx: Context) -> str:
        every = copies(record, ctx)
        hits = [c for c in every if self.match(c, ctx)]
        if ctx.resource == "object":
            return self.copy_reason(hits[0], ctx)
        texts = {self.copy_reason(c, ctx) for c in hits}
        text = texts.pop() if len(texts) == 1 else self.summary()
        return f"{text} ({len(hits)} of {len(every)} copies)"


@FILTERS.register("spans-tiers")
class SpansTiers(_GroupFilter):
    """Group whose copies sit in more than one storage tier: one of them is likely paying the wrong price.

    Example::

        policies:
          - name: tiers
            resource: group
            filters: [{type: spans-tiers}]
    """

    type: Literal["spans-tiers"]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return bool(record.get("spans_tiers"))

    def necessary(self) -> Condition:
        return Flag("spans_tiers")

    def summary(self) -> str:
        return "copies in more than one tier"

    def reason(self, record: Record, ctx: Context) -> str:
        members = copies(record, ctx)
        return f"{len(members)} copies across {_tiers_text(m['tier'] for m in members)} tiers"


@FILTERS.register("spans-regions")
class SpansRegions(_GroupFilter):
    """Group whose copies sit in more than one region (often deliberate replication; worth knowing).

    Example::

        policies:
          - name: regions
            resource: group
            filters: [spans-regions]
    """

    type: Literal["spans-regions"]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return bool(record.get("spans_regions"))

    def necessary(self) -> Condition:
        return Flag("spans_regions")

    def summary(self) -> str:
        return "copies in more than one region"

    def reason(self, record: Record, ctx: Context) -> str:
        members = copies(record, ctx)
        return f"{len(members)} copies across regions {', '.join(sorted({m['region'] for m in members}))}"


@FILTERS.register("spans-jurisdictions")
class SpansJurisdictions(_GroupFilter):
    """Group whose copies sit under more than one jurisdiction: a transfer of whatever the image holds.

    Example::

        policies:
          - name: jurisdictions
            resource: group
            filters: [{type: spans-jurisdictions}]
    """

    type: Literal["spans-jurisdictions"]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return bool(record.get("spans_jurisdictions"))

    def necessary(self) -> Condition:
        return Flag("spans_jurisdictions")

    def summary(self) -> str:
        return "copies in more than one jurisdiction"

    def reason(self, record: Record, ctx: Context) -> str:
        members = copies(record, ctx)
        places = ", ".join(sorted({m["jurisdiction"] for m in members}))
        return f"{len(members)} copies across jurisdictions {places}"


@FILTERS.register("cross-boundary")
class CrossBoundary(_GroupFilter):
    """Group with copies on both sides of the Hong Kong / Mainland China boundary (HK and CN), the
    transfer that HK PDPO and Mainland rules both care about.

    Example::

        policies:
          - name: hk-cn
            resource: group
            severity: high
            filters: [{type: cross-boundary}]
    """

    type: Literal["cross-boundary"]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return {"HK", "CN"} <= {m["jurisdiction"] for m in copies(record, ctx)}

    def necessary(self) -> Condition:
        return Flag("spans_jurisdictions")  # two jurisdictions at least

    def summary(self) -> str:
        return "copies in both Hong Kong and Mainland China"

    def reason(self, record: Record, ctx: Context) -> str:
        places = [m["jurisdiction"] for m in copies(record, ctx)]
        return f"copies in both Hong Kong ({places.count('HK')}) and Mainland China ({places.count('CN')})"


@FILTERS.register("outside-gba")
class OutsideGBA(_PerCopy):
    """Object stored in a region outside the Greater Bay Area (the record's `gba` flag is false).

    Example::

        policies:
          - name: outside-gba
            resource: object
            filters: [{type: outside-gba}]
    """

    type: Literal["outside-gba"]

    def match(self, copy: Record, ctx: Context) -> bool:
        return not copy.get("gba", False)

    def summary(self) -> str:
        return "stored outside the Greater Bay Area"

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"stored in {copy['region']}, outside the Greater Bay Area"


@FILTERS.register("taken-in")
class TakenIn(_PerCopy):
    """Photo whose GPS position lies in one of `territories` (where it was taken: ISO 3166-1 codes such as
    HK, MO, CN, resolved offline from the position; the inventory's `taken_in`), and, given `stored_in`,
    whose copy is stored in one of those jurisdictions (where it is kept: `jurisdiction`). Objects without
    a usable GPS position, or taken at sea, never match.

    Example::

        policies:
          - name: mainland-photos-kept-in-hk
            resource: object
            filters: [{type: taken-in, territories: [CN], stored_in: [HK]}]
    """

    type: Literal["taken-in"]
    territories: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(min_length=1)  # taken in one of these
    stored_in: list[str] | None = Field(default=None, min_length=1)  # and stored in one of these jurisdictions

    def match(self, copy: Record, ctx: Context) -> bool:
        # Where it is stored first: placing a photo costs more than reading a field.
        return (self.stored_in is None or copy.get("jurisdiction") in self.stored_in) and (
            copy.get("taken_in") in self.territories)

    def necessary(self) -> Condition:
        gps = HasPersonalData(frozenset({"gps"}))  # a territory needs a GPS position
        return gps if self.stored_in is None else every([gps, OneOf("jurisdiction", frozenset(self.stored_in))])

    def summary(self) -> str:
        stored = f", stored in {', '.join(self.stored_in)}" if self.stored_in else ""
        return f"taken in {', '.join(self.territories)}{stored}"

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        near = f" (near {copy['taken_near']})" if copy.get("taken_near") else ""
        return f"taken in {copy['taken_in']}{near}, stored in {copy['jurisdiction']}"


PersonalDataKind = Literal["gps", "serial", "owner", "timestamp", "people", "caption", "place"]
PERSONAL_DATA_KINDS: tuple[PersonalDataKind, ...] = ("gps", "serial", "owner", "timestamp", "people", "caption",
                                                     "place")
_KIND_WORDS = {"gps": "GPS", "serial": "device serial", "owner": "owner name", "timestamp": "capture time",
               "people": "people named", "caption": "caption", "place": "place named"}
# Kinds the pixels hold (`InventoryRecord.faces`): `personal-data` matches them when `kinds` names them, and
# no metadata stripping removes them.
PixelKind = Literal["faces"]
PIXEL_KINDS: tuple[PixelKind, ...] = ("faces",)


def _kinds_text(kinds: Iterable[str]) -> str:
    found = set(kinds)
    return _and_list([_KIND_WORDS[k] for k in PERSONAL_DATA_KINDS if k in found])


@FILTERS.register("personal-data")
class PersonalData(_PerCopy):
    """Image metadata holding personal data (HK PDPO Cap. 486): GPS position, device serials, owner name,
    capture time, people named (creators, people shown, named face regions, people keywords), a caption (free
    text that may name someone), a place named in words. `kinds` narrows which count; by default any of those
    does. `faces` (faces found in the pixels) counts when named.

    Example::

        policies:
          - name: located-images
            resource: object
            filters:
              - type: personal-data
                kinds: [gps, serial]
    """

    type: Literal["personal-data"]
    kinds: list[PersonalDataKind | PixelKind] = Field(
        default_factory=lambda: list[PersonalDataKind | PixelKind](PERSONAL_DATA_KINDS), min_length=1)

    def _found(self, copy: Record) -> list[str]:
        return [k for k in copy.get("personal_data") or [] if k in self.kinds]

    def match(self, copy: Record, ctx: Context) -> bool:
        return bool(self._found(copy))

    def necessary(self) -> Condition:
        return HasPersonalData(frozenset(self.kinds))

    def summary(self) -> str:
        return f"personal data ({', '.join(self.kinds)})"

    def reason(self, record: Record, ctx: Context) -> str:
        every = copies(record, ctx)
        hits = [c for c in every if self.match(c, ctx)]
        found = {k for c in hits for k in self._found(c)}
        text = " and ".join([*([_kinds_text(found) + " in metadata"] if found - set(PIXEL_KINDS) else []),
                             *(["faces in the pixels"] if "faces" in found else [])])
        return text if ctx.resource == "object" else f"{text} of {len(hits)} of {len(every)} copies"


@FILTERS.register("tier")
class TierFilter(_PerCopy):
    """Object in one of the listed tiers.

    Example::

        policies:
          - name: cold-storage
            resource: object
            filters: [{type: tier, tiers: [cold, archive]}]
    """

    type: Literal["tier"]
    tiers: list[Tier] = Field(min_length=1)

    def match(self, copy: Record, ctx: Context) -> bool:
        return copy.get("tier") in {t.value for t in self.tiers}

    def necessary(self) -> Condition:
        return OneOf("tier", frozenset(t.value for t in self.tiers))

    def summary(self) -> str:
        return f"in tier {', '.join(t.value for t in self.tiers)}"

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"in {copy['tier']} tier"


@FILTERS.register("redundant-in-hotter-tier")
class RedundantInHotterTier(_GroupFilter):
    """Group with a copy in a hotter tier while another copy sits in a colder one: the hotter copy pays
    hotter prices for bytes already kept more cheaply. It selects the hotter copies, so the policy's
    actions apply to them and never to the coldest copy; whether one of them is the master is the engine's
    concern (a hot master with an archive backup yields no deletion, only what a `report` shows).

    Example::

        policies:
          - name: hot-copies
            resource: group
            filters: [{type: redundant-in-hotter-tier}]
            actions: [delete-redundant]
    """

    type: Literal["redundant-in-hotter-tier"]

    @staticmethod
    def _hotter(record: Record, ctx: Context) -> list[Record]:
        """The copies in a tier hotter than the group's coldest copy."""
        members = copies(record, ctx)
        coldest = max(_tier_rank(m["tier"]) for m in members)
        return [m for m in members if _tier_rank(m["tier"]) < coldest]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return bool(self._hotter(record, ctx))

    def necessary(self) -> Condition:
        return Flag("spans_tiers")  # a hotter and a colder tier

    def selects(self, record: Record, ctx: Context) -> frozenset[str]:
        return frozenset(m["uri"] for m in self._hotter(record, ctx))

    def summary(self) -> str:
        return "a copy in a hotter tier while another copy is in a colder one"

    def reason(self, record: Record, ctx: Context) -> str:
        hot = self._hotter(record, ctx)
        coldest = max((m["tier"] for m in copies(record, ctx)), key=_tier_rank)
        noun = "copy" if len(hot) == 1 else "copies"
        return f"{len(hot)} {noun} in {_tiers_text(m['tier'] for m in hot)} tier while a copy is in {coldest}"


@FILTERS.register("bucket")
class BucketFilter(_PerCopy):
    """Object in a bucket whose name matches a glob.

    Example::

        policies:
          - name: marketing
            resource: object
            filters: [{type: bucket, glob: "marketing-*"}]
    """

    type: Literal["bucket"]
    glob: str = Field(min_length=1)

    def match(self, copy: Record, ctx: Context) -> bool:
        return fnmatch.fnmatchcase(str(copy.get("bucket", "")), self.glob)

    def summary(self) -> str:
        return f"in a bucket matching {self.glob}"

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"in bucket {copy['bucket']}"


@FILTERS.register("age")
class AgeFilter(_PerCopy):
    """Object last modified more than `days` days before the evaluation time.

    Example::

        policies:
          - name: stale
            resource: object
            filters: [{type: age, days: 365}]
    """

    type: Literal["age"]
    days: int = Field(ge=0)

    def match(self, copy: Record, ctx: Context) -> bool:
        try:
            return ctx.now - parse_timestamp(copy.get("modified")) > timedelta(days=self.days)
        except (TypeError, ValueError):
            return False

    def summary(self) -> str:
        return f"older than {self.days} days"

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"modified {(ctx.now - parse_timestamp(copy['modified'])).days} days ago"


class _Between(_PerCopy):
    """A copy's integer field `_key` at least `gte` and at most `lte` (give one or both); a copy without
    one never matches."""

    _key: ClassVar[str]
    gte: Any = None
    lte: Any = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.gte is None and self.lte is None:
            raise ValueError("give gte, lte or both")
        return self

    def match(self, copy: Record, ctx: Context) -> bool:
        value = copy.get(self._key)
        if not isinstance(value, int):
            return False
        return (self.gte is None or value >= self.gte) and (self.lte is None or value <= self.lte)

    def necessary(self) -> Condition:
        return Between(self._key, None if self.gte is None else int(self.gte),
                       None if self.lte is None else int(self.lte))

    def summary(self) -> str:
        bounds = [f"at least {self._shown(self.gte)}"] if self.gte is not None else []
        bounds += [f"at most {self._shown(self.lte)}"] if self.lte is not None else []
        return f"{self._key} " + " and ".join(bounds)

    @staticmethod
    def _shown(bound: Any) -> str:
        """A bound as the summary writes it."""
        return str(bound)


@FILTERS.register("size")
class SizeFilter(_Between):
    """Object at least `gte` and at most `lte` bytes (sizes like `10MB` or `1GiB`); give one or both.

    Example::

        policies:
          - name: big
            resource: object
            filters: [{type: size, gte: 10MB}]
    """

    _key: ClassVar[str] = "size"
    type: Literal["size"]
    gte: Size | None = None
    lte: Size | None = None

    @staticmethod
    def _shown(bound: Any) -> str:
        return str(bound.human_readable(decimal=True))

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"size {ByteSize(copy['size']).human_readable(decimal=True)}"


@FILTERS.register("faces")
class FacesFilter(_Between):
    """Image whose pixels show at least `gte` and at most `lte` faces (`InventoryRecord.faces`); give one
    or both. Images whose faces were not analysed never match.

    Example::

        policies:
          - name: group-photos
            resource: object
            filters: [{type: faces, gte: 3}]
    """

    _key: ClassVar[str] = "faces"
    type: Literal["faces"]
    gte: int | None = Field(default=None, ge=0)  # at least this many faces
    lte: int | None = Field(default=None, ge=0)  # at most this many faces

    def copy_reason(self, copy: Record, ctx: Context) -> str:
        return f"{copy['faces']} face{'' if copy['faces'] == 1 else 's'} in the pixels"


@FILTERS.register("group-kind")
class GroupKind(_GroupFilter):
    """Group of exact duplicates (same bytes) or near duplicates (similar pixels: a review, not a saving).

    Example::

        policies:
          - name: near
            resource: group
            filters: [{type: group-kind, kind: near}]
    """

    type: Literal["group-kind"]
    kind: Literal["exact", "near"]

    def __call__(self, record: Record, ctx: Context) -> bool:
        return record.get("kind") == self.kind

    def necessary(self) -> Condition:
        return OneOf("kind", frozenset({self.kind}))

    def summary(self) -> str:
        return f"{self.kind} duplicates"

"""Conditions that every record a policy can match meets, cheap enough to select records by before they are
built.

Policy filters are Python over a whole record, and a record costs more to build than to judge: an object's
is read and validated from the catalog, a group's holds every member's. Most filters imply a plain test of
one stored field (`status` is `unreadable`, the size is at least 10 MB, the metadata holds GPS, the group
spans tiers); `Filter.necessary` gives it, and `prefilter` combines them over a policy set, so that the
catalog hands the engine only the objects some policy may match (`Catalog.records_matching`), and a group
whose own fields rule out every policy is stored without its member records (`group_may_match`). A
condition may let through records that no policy matches (the engine's filters still decide), never the
reverse: a filter that cannot say gives None, and a key a test cannot read lets every record through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scanner.models import Group

from .model import Policy, Resource

__all__ = ["AllOf", "AnyOf", "Between", "Condition", "Flag", "HasPersonalData", "OneOf", "every",
           "group_may_match", "prefilter", "some"]


@dataclass(frozen=True, slots=True)
class OneOf:
    """The record's text `key` is one of `values` (or, `negated`, it is absent or none of them)."""

    key: str
    values: frozenset[str]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    """The record's integer `key` is at least `low` and at most `high` (None: unbounded)."""

    key: str
    low: int | None
    high: int | None


@dataclass(frozen=True, slots=True)
class Flag:
    """The record's `key` is true (a group's `spans_tiers`)."""

    key: str


@dataclass(frozen=True, slots=True)
class HasPersonalData:
    """The object's metadata holds one of these personal data kinds (`ExifRecord.personal_data`); of a group,
    some member's does."""

    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part holds; of no parts, always true."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Some part holds; of no parts, never true."""

    parts: tuple[Condition, ...]


Condition = OneOf | Between | Flag | HasPersonalData | AllOf | AnyOf


def every(conditions: Iterable[Condition | None]) -> Condition:
    """The conjunction of the conditions that say something (None says nothing: always true)."""
    parts = tuple(c for c in conditions if c is not None)
    return parts[0] if len(parts) == 1 else AllOf(parts)


def some(conditions: Iterable[Condition | None]) -> Condition | None:
    """The disjunction, or None when any part is None (it lets every object through)."""
    parts = tuple(conditions)
    if any(c is None for c in parts):
        return None
    return parts[0] if len(parts) == 1 else AnyOf(parts)  # type: ignore[arg-type,return-value]


def prefilter(policies: Iterable[Policy], resource: Resource) -> Condition:
    """What a record of `resource` meets when some policy of `policies` on it may match: `AnyOf(())`
    (nothing) when there are none, `AllOf(())` (everything) when one has no filter with a condition."""
    return AnyOf(tuple(every(f.necessary() for f in p.filters) for p in policies if p.resource == resource))


def group_may_match(condition: Condition, group: Group) -> bool:
    """Whether `group` may meet `condition`, judged from the group's own fields alone (its members' records
    unread): a key the group has no text or flag of holds."""
    match condition:
        case OneOf(key=key, values=values, negated=negated):
            actual = getattr(group, key) if key in Group.model_fields else True
            if actual is not None and not isinstance(actual, str):
                return True
            return (actual not in values) if negated else (actual in values)
        case Flag(key=key):
            return bool(getattr(group, key)) if key in Group.model_fields else True
        case HasPersonalData():
            return group.has_personal_data
        case AllOf(parts=parts):
            return all(group_may_match(part, group) for part in parts)
        case AnyOf(parts=parts):
            return any(group_may_match(part, group) for part in parts)
    return True

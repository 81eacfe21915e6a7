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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, get_origin

from tierscan.policies.model import Policy, Resource
from tierscan.scanner.core.models import Group

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
    return parts[0] if len(parts) == 1 else AnyOf(parts)  # type: ignore[arg-type]


def prefilter(policies: Iterable[Policy], resource: Resource) -> Condition:
    """What a record of `resource` meets when some policy of `policies` on it may match: `AnyOf(())`
    (nothing) when there are none, `AllOf(())` (everything) when one has no filter with a condition."""
    return AnyOf(tuple(every(f.necessary() for f in p.filters) for p in policies if p.resource == resource))


def group_may_match(condition: Condition) -> Callable[[Group], bool]:
    """Whether a group may meet `condition`, judged from the group's own fields alone (its members' records
    unread): a key the group has no text or flag of holds. Made once for the groups of an evaluation."""
    match condition:
        case OneOf(key=key, values=values, negated=negated) if key in _GROUP_TEXTS:
            if negated:
                return lambda group: getattr(group, key) not in values
            return lambda group: getattr(group, key) in values
        case Flag(key=key) if key in _GROUP_FLAGS:
            return lambda group: bool(getattr(group, key))
        case HasPersonalData():
            return lambda group: group.has_personal_data
        case AllOf(parts=parts):
            tests = tuple(map(group_may_match, parts))
            return lambda group: all(test(group) for test in tests)
        case AnyOf(parts=parts):
            tests = tuple(map(group_may_match, parts))
            return lambda group: any(test(group) for test in tests)
    return lambda group: True


# A group's own fields, by kind of value.
_GROUP_TEXTS = frozenset(k for k, f in Group.model_fields.items()
                         if f.annotation is str or get_origin(f.annotation) is Literal)
_GROUP_FLAGS = frozenset(k for k, f in Group.model_fields.items() if f.annotation is bool)

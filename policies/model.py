"""The vocabulary of policies: the file shape, the element bases, and a loaded policy.

A policy file is data (`PolicyFile` / `PolicySpec`, validated by pydantic with unknown keys forbidden).
Its `filters:` and `actions:` entries are built into registered element classes (`Filter`, `Action`) by
`validate.py`, which yields `Policy` objects the engine runs. Records are plain dicts: an object record is
`InventoryRecord.model_dump(mode="json")` plus `gba`; a group record has the `Group` keys with `members`
holding full object records (each with `distance`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from tierscan.policies.registry import Registry
from tierscan.scanner.core.models import Group, InventoryRecord, Severity

if TYPE_CHECKING:
    from tierscan.policies.costs import Pricing
    from tierscan.policies.prefilter import Condition

__all__ = [
    "ACTIONS",
    "FILTERS",
    "RECORD_KEYS",
    "RESOURCES",
    "ZERO",
    "Action",
    "Context",
    "Element",
    "Estimate",
    "Filter",
    "Issue",
    "Loc",
    "Policy",
    "PolicyFile",
    "PolicySet",
    "PolicySpec",
    "Record",
    "Resource",
    "copies",
    "resolve",
]

Resource = Literal["object", "group"]
RESOURCES: tuple[Resource, ...] = ("object", "group")
Record = Mapping[str, Any]
Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]  # a problem found in a policy file: where (relative to the element) and what

# Top-level keys a value filter may name, per resource: a typo in `key:` is caught before any scan.
RECORD_KEYS: dict[Resource, frozenset[str]] = {
    "object": frozenset(n for n, f in InventoryRecord.model_fields.items() if not f.exclude) | {"gba"},
    "group": frozenset(Group.model_fields),
}


@dataclass(frozen=True)
class Estimate:
    """What a recommendation saves each month and costs once, in USD, unrounded (the report rounds)."""

    monthly_savings_usd: float = 0.0
    one_time_cost_usd: float = 0.0

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.monthly_savings_usd + other.monthly_savings_usd,
                        self.one_time_cost_usd + other.one_time_cost_usd)


ZERO = Estimate()


@dataclass(frozen=True)
class Context:
    """What an element needs besides the record: the evaluation time and which resource it runs on."""

    now: datetime
    resource: Resource


def resolve(record: Record, path: str) -> Any:
    """The value at a dotted path (`exif.gps.lat`, `members.0.tier`), or None when any step is missing."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def copies(record: Record, ctx: Context) -> list[Record]:
    """The object records behind a record: a group's members, or the object itself."""
    return list(record["members"]) if ctx.resource == "group" else [record]


class Element(BaseModel):
    """Base of every filter and action: frozen, and unknown keys are errors (a typo must not widen a
    policy silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    element_kind: ClassVar[str] = "element"  # "filter" or "action", for messages
    # The resources this element makes sense on; `validate.py` rejects it elsewhere.
    resources: ClassVar[frozenset[Resource]] = frozenset(RESOURCES)

    def check(self, resource: Resource) -> list[Issue]:
        """Problems only visible once the policy's resource is known."""
        if resource in self.resources:
            return []
        name = getattr(self, "type", self.element_kind)
        allowed = " or ".join(sorted(self.resources))
        return [(("type",), f"{self.element_kind} {name!r} applies to {allowed} resources, not {resource}")]


class Filter(Element, ABC):
    """A predicate over one record. Object-level filters on a group hold when any member matches."""

    element_kind: ClassVar[str] = "filter"

    @abstractmethod
    def __call__(self, record: Record, ctx: Context) -> bool: ...

    @abstractmethod
    def summary(self) -> str:
        """What the filter looks for, without a record: for `policy list` and negations."""

    def reason(self, record: Record, ctx: Context) -> str:
        """What matched in this record, for a finding's reason. Called only when the filter matched."""
        return self.summary()

    def selects(self, record: Record, ctx: Context) -> frozenset[str] | None:
        """The URIs of the copies this filter singles out of a matched group, or None when it is about the
        record as a whole. The engine narrows every action of the policy to the copies all such filters
        select (as Cloud Custodian's actions act on what a filter matched), so `redundant-in-hotter-tier`
        with `delete-redundant` names only the hotter copies, never the colder one that keeps the bytes.
        Filters nested under `and`/`or`/`not` select nothing: narrowing is for top-level filters only."""
        return None

    def necessary(self) -> Condition | None:
        """A condition (`prefilter`) that every record this filter matches meets, so that records that
        cannot match are never built; None when there is no such cheap condition."""
        return None

    def compiled(self) -> Callable[[Record, Context], bool]:
        """The filter as a plain function, for the engine's loop over many records (the same answers)."""
        return self.__call__


class Action(Element, ABC):
    """What a finding recommends. Actions never change a bucket: they name the URIs they apply to."""

    element_kind: ClassVar[str] = "action"
    type: str
    # The engine drops a group's master from the URIs of every action that would remove, move or
    # re-tier copies. Opting out is for actions that leave every copy in place.
    protects_master: ClassVar[bool] = True

    # Said after the finding's reason when the finding is priced: what its figures leave out.
    cost_note: ClassVar[str] = ""

    @abstractmethod
    def targets(self, record: Record, ctx: Context) -> list[str]:
        """URIs the action applies to; an empty list means no finding."""

    def estimate(self, copy: Record, pricing: Pricing, now: datetime) -> Estimate:
        """What following the recommendation for one target copy saves monthly and costs once. Nothing by
        default: reporting or editing metadata leaves the bytes where they are."""
        return ZERO

    def summary(self) -> str:
        return self.type


FILTERS: Registry[Filter] = Registry("filter")
ACTIONS: Registry[Action] = Registry("action")


def _items(definition: str) -> WithJsonSchema:
    """JSON schema of a list whose entries are checked elsewhere: points editors at the generated union."""
    return WithJsonSchema({"type": "array", "items": {"$ref": f"#/$defs/{definition}"}})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicySpec(_Strict):
    """One entry of `policies:` as written. Filters and actions stay raw here; `validate.py` builds them
    through the registries so that each error names its own element."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    resource: Resource
    severity: Severity = Severity.medium
    filters: Annotated[list[Any], _items("filter")] = Field(default_factory=list)
    actions: Annotated[list[Any], _items("action")] = Field(default_factory=list)


class PolicyFile(_Strict):
    """A policy file: `policies`, and a `description` that `tierscan policy list` shows for a pack."""

    description: str = ""
    policies: Annotated[list[Any], _items("PolicySpec")]


@dataclass(frozen=True)
class Policy:
    """A validated policy, ready to evaluate. `source` is `file:line` of its entry."""

    name: str
    description: str
    resource: Resource
    severity: Severity
    filters: tuple[Filter, ...]
    actions: tuple[Action, ...]
    pack: str
    source: str


@dataclass(frozen=True)
class PolicySet:
    """The policies one scan evaluates, in load order; names are unique across the set."""

    policies: tuple[Policy, ...] = ()

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

"""Actions: what a finding recommends. None of them changes a bucket; each names the URIs it applies to.

The engine, not the action, keeps a group's master out of every action that removes, moves or re-tiers
copies (`Action.protects_master`), so no policy can recommend deleting the last good copy.

Each action prices one of its copies (`estimate`) from the scan's price table: what following the
recommendation saves per month and what it costs once. `report` and `strip-metadata` move no bytes, so
they cost and save nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from tierscan.policies.costs import Pricing
from tierscan.policies.domain import PERSONAL_DATA_KINDS, PersonalDataKind
from tierscan.policies.model import ACTIONS, Action, Context, Estimate, Record, copies
from tierscan.scanner.core.models import Tier

__all__ = ["ActionType", "DeleteRedundant", "Relocate", "Report", "StripMetadata", "Transition"]


class ActionType(StrEnum):
    """The actions' names, as policy files write them (each class's `type`). Members compare and hash
    as their text, so a finding's stored text meets its member."""

    report = "report"
    delete_redundant = "delete-redundant"
    transition = "transition"
    strip_metadata = "strip-metadata"
    relocate = "relocate"


@ACTIONS.register(ActionType.report)
class Report(Action):
    """Record the finding for every copy that matched; the default when a policy lists no actions.

    Example::

        policies:
          - name: everything
            resource: group
            actions: [{type: report}]
    """

    type: Literal["report"]
    protects_master = False  # reporting moves nothing, and the master belongs in the report

    def targets(self, record: Record, ctx: Context) -> list[str]:
        return [c["uri"] for c in copies(record, ctx)]


@ACTIONS.register(ActionType.delete_redundant)
class DeleteRedundant(Action):
    """Recommend deleting the group's redundant copies: every member but the master (which the engine
    removes from the list).

    Example::

        policies:
          - name: dedupe
            resource: group
            filters: [{type: group-kind, kind: exact}]
            actions: [delete-redundant]
    """

    type: Literal["delete-redundant"]
    resources = frozenset({"group"})  # "redundant" only means something against a master

    def targets(self, record: Record, ctx: Context) -> list[str]:
        return [m["uri"] for m in copies(record, ctx)]

    def estimate(self, copy: Record, pricing: Pricing, now: datetime) -> Estimate:
        """The copy's storage each month; once, its early-deletion charge (deleting reads nothing)."""
        cost = pricing.removal(pricing.inventory(copy), now)
        return Estimate(cost.monthly_saving_usd, cost.one_time_usd)


@ACTIONS.register(ActionType.transition)
class Transition(Action):
    """Recommend moving copies to another storage tier; copies already there are left out.

    Example::

        policies:
          - name: archive-old
            resource: object
            filters: [{type: age, days: 365}]
            actions: [{type: transition, to: archive}]
    """

    type: Literal["transition"]
    to: Tier

    def targets(self, record: Record, ctx: Context) -> list[str]:
        return [c["uri"] for c in copies(record, ctx) if c["tier"] != self.to.value]

    def estimate(self, copy: Record, pricing: Pricing, now: datetime) -> Estimate:
        """Monthly: the storage price of the copy's class minus that of the target tier's class (same
        provider and region; negative when warming up). Once: the current class's early-deletion charge,
        plus reading the copy back when it moves to a hotter tier (a lifecycle rule only moves colder, so
        warming is a copy). The price table has no transition request fees, so none are added."""
        record = pricing.inventory(copy)
        target = record.model_copy(update={"tier": self.to, "storage_class": self.to.value})
        here, there = pricing.removal(record, now), pricing.removal(target, now)
        warming = pricing.retrieval(record) if self.to.rank < record.tier.rank else 0.0
        return Estimate(here.monthly_saving_usd - there.monthly_saving_usd, here.one_time_usd + warming)

    def summary(self) -> str:
        return f"transition to {self.to.value}"


@ACTIONS.register(ActionType.strip_metadata)
class StripMetadata(Action):
    """Recommend removing personal data from image metadata, on the copies that carry one of `kinds`
    (any kind by default). Stripping leaves every copy in place, so it applies to the master too.

    Example::

        policies:
          - name: strip-gps
            resource: object
            filters: [{type: personal-data, kinds: [gps]}]
            actions: [{type: strip-metadata, kinds: [gps]}]
    """

    type: Literal["strip-metadata"]
    kinds: list[PersonalDataKind] = Field(default_factory=lambda: list(PERSONAL_DATA_KINDS), min_length=1)
    protects_master = False

    def targets(self, record: Record, ctx: Context) -> list[str]:
        wanted = set(self.kinds)
        return [c["uri"] for c in copies(record, ctx) if wanted & set(c.get("personal_data") or [])]

    def summary(self) -> str:
        return f"strip-metadata ({', '.join(self.kinds)})"


@ACTIONS.register(ActionType.relocate)
class Relocate(Action):
    """Recommend moving copies under another jurisdiction (a code from the region map, e.g. HK); copies
    already there are left out.

    Example::

        policies:
          - name: keep-in-hk
            resource: group
            filters: [{type: cross-boundary}]
            actions: [{type: relocate, to: HK}]
    """

    type: Literal["relocate"]
    to: str = Field(min_length=1)
    cost_note: ClassVar[str] = "one-time cost excludes data transfer between regions (not in the price table)"

    def targets(self, record: Record, ctx: Context) -> list[str]:
        return [c["uri"] for c in copies(record, ctx) if c["jurisdiction"] != self.to]

    def estimate(self, copy: Record, pricing: Pricing, now: datetime) -> Estimate:
        """Once: reading the copy out (retrieval fee and one GET) and deleting it here (early-deletion
        charge). Monthly: nothing, since a jurisdiction names no class or region to price the new home."""
        record = pricing.inventory(copy)
        return Estimate(0.0, pricing.removal(record, now).one_time_usd + pricing.retrieval(record))

    def summary(self) -> str:
        return f"relocate to {self.to}"

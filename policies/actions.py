"""Actions: what a finding recommends. None of them changes a bucket; each names the URIs it applies to.

The engine, not the action, keeps a group's master out of every action that removes, moves or re-tiers
copies (`Action.protects_master`), so no policy can recommend deleting the last good copy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from scanner.models import Tier

from .domain import PERSONAL_DATA_KINDS, PersonalDataKind
from .model import ACTIONS, Action, Context, Record, copies

__all__ = ["DeleteRedundant", "Relocate", "Report", "StripMetadata", "Transition"]


@ACTIONS.register("report")
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


@ACTIONS.register("delete-redundant")
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


@ACTIONS.register("transition")
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

    def summary(self) -> str:
        return f"transition to {self.to.value}"


@ACTIONS.register("strip-metadata")
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


@ACTIONS.register("relocate")
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

    def targets(self, record: Record, ctx: Context) -> list[str]:
        return [c["uri"] for c in copies(record, ctx) if c["jurisdiction"] != self.to]

    def summary(self) -> str:
        return f"relocate to {self.to}"

"""Evaluate a policy set over object and group records and produce findings.

Records are read once, in a single pass per resource, so the inputs may be generators over a large
catalog. Rules that belong to the engine rather than to any policy: a policy recommends its first action
that names any copy of a record (`report` only when no other does), and policies that recommend the same
action for the same copies make one finding (the most severe names it, the others are its `also`); an action
applies only to the copies the policy's filters single out (`Filter.selects`), a group's master never
appears in a finding whose action removes, moves or re-tiers copies, a finding left with no URIs is
dropped, and, given prices, each finding carries what its recommendation saves monthly and costs once
(the sum over its URIs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from tierscan.policies.costs import Pricing
from tierscan.policies.model import RESOURCES, ZERO, Action, Context, Policy, PolicySet, Record, Resource
from tierscan.scanner.core.models import Finding

__all__ = ["Evaluator", "evaluate", "in_order", "iter_findings", "order_key"]


def evaluate(
    policy_set: PolicySet,
    *,
    objects: Iterable[Record] = (),
    groups: Iterable[Record] = (),
    now: datetime | None = None,
    pricing: Pricing | None = None,
) -> list[Finding]:
    """Findings of every policy on every record it matches, ordered by policy name, then URIs, then action.

    `now` is the evaluation time for age filters and early-deletion charges (default: the current UTC
    time); pass the scan's time so that a report can be reproduced. Without `pricing`, every finding's
    money fields are zero.
    """
    return in_order(iter_findings(policy_set, objects=objects, groups=groups, now=now, pricing=pricing))


def iter_findings(
    policy_set: PolicySet,
    *,
    objects: Iterable[Record] = (),
    groups: Iterable[Record] = (),
    now: datetime | None = None,
    pricing: Pricing | None = None,
) -> Iterator[Finding]:
    """The findings `evaluate` gives, unordered: as each record is evaluated, object records first, so
    that a caller can store them as they come (`order_key` puts them in `evaluate`'s order)."""
    evaluator = Evaluator(policy_set, now=now, pricing=pricing)
    yield from evaluator.findings("object", objects)
    yield from evaluator.findings("group", groups)


class Evaluator:
    """A policy set made ready for many records at one evaluation time and price table: each policy's
    filters compiled once (`Filter.compiled`). `iter_findings` is one evaluator's pass over objects, then
    groups; a caller that evaluates record by record keeps one evaluator for them all."""

    def __init__(self, policy_set: PolicySet, *, now: datetime | None = None, pricing: Pricing | None = None):
        when = now or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._pricing = pricing
        self._passes = {
            resource: (Context(now=when, resource=resource),
                       tuple((p, tuple(f.compiled() for f in p.filters))
                             for p in policy_set if p.resource == resource))
            for resource in RESOURCES}

    def findings(self, resource: Resource, records: Iterable[Record]) -> Iterator[Finding]:
        """The findings of every policy on `resource` for each record it matches, as each is evaluated."""
        ctx, policies = self._passes[resource]
        if not policies:
            return
        pricing = self._pricing
        for record in records:
            matched = [policy for policy, tests in policies if all(test(record, ctx) for test in tests)]
            if matched:
                yield from _findings(matched, record, ctx, pricing)


def in_order(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in the order `evaluate` gives them: by policy name, then URIs, then action (stable, so the
    findings of separate passes, object records' first, come out as one call over both would give them)."""
    return sorted(findings, key=lambda f: (f.policy, f.uris, f.action))


def order_key(finding: Finding) -> bytes:
    """`in_order`'s sort key as bytes that sort the same way (so that a database can order findings):
    each text as UTF-8 (byte order is code point order; `surrogatepass` keeps undecodable file names in
    place) with NUL escaped as 00 FF and ended by 00 01, and the URI list ended by 00 00, below any URI."""
    def text(value: str) -> bytes:
        return value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x01"

    return text(finding.policy) + b"".join(map(text, finding.uris)) + b"\x00\x00" + text(finding.action)


def _findings(matched: list[Policy], record: Record, ctx: Context, pricing: Pricing | None) -> list[Finding]:
    """The record's findings: one per recommendation, so policies that recommend the same action for the
    same copies make one finding (the most severe policy names it, the others are `also`; every reason).
    A policy that names fewer copies keeps its own finding: scoping `apply` to it must not widen."""
    group = record["id"] if ctx.resource == "group" else None
    merged: dict[tuple[str, tuple[str, ...]], tuple[Action, list[Policy], list[str]]] = {}
    for policy in sorted(matched, key=lambda p: -p.severity.rank):  # stable: declared order among equals
        chosen = _recommendation(policy, record, ctx)
        if chosen is not None:
            action, uris = chosen
            merged.setdefault((action.model_dump_json(), tuple(uris)), (action, [], uris))[1].append(policy)
    found = []
    for action, policies, uris in merged.values():
        money = ZERO
        if pricing is not None:
            by_uri = {c["uri"]: c for c in (record["members"] if group is not None else [record])}
            for uri in uris:
                money += action.estimate(by_uri[uri], pricing, ctx.now)
        reasons = [part for p in policies for part in _reason(p, record, ctx).split("; ")]
        note = f"; {action.cost_note}" if pricing is not None and action.cost_note else ""
        found.append(Finding(
            policy=policies[0].name, also=[p.name for p in policies[1:]], severity=policies[0].severity,
            action=action.type, uris=uris, group=group, reason="; ".join(dict.fromkeys(reasons)) + note,
            monthly_savings_usd=money.monthly_savings_usd, one_time_cost_usd=money.one_time_cost_usd))
    return found


def _recommendation(policy: Policy, record: Record, ctx: Context) -> tuple[Action, list[str]] | None:
    """The policy's first action that names any copy of the record, and those copies; `report` only when
    no other action does (a group flagged for relocation is one finding, not a report and a relocation)."""
    selected = _selected(policy, record, ctx)
    for action in sorted(policy.actions, key=lambda a: a.type == "report"):  # stable: declared order
        uris = [u for u in action.targets(record, ctx) if selected is None or u in selected]
        if ctx.resource == "group" and action.protects_master:
            uris = [u for u in uris if u != record["master"]]
        if uris:
            return action, uris
    return None


def _selected(policy: Policy, record: Record, ctx: Context) -> frozenset[str] | None:
    """The copies every copy-selecting filter of the policy singled out; None when none selects."""
    chosen = [s for s in (f.selects(record, ctx) for f in policy.filters) if s is not None]
    return frozenset.intersection(*chosen) if chosen else None


def _reason(policy: Policy, record: Record, ctx: Context) -> str:
    """The matched filters' own words, joined; a policy without filters says what it matched. Filters
    that only exclude (a negation) say nothing: what a record is not is no reason to flag it."""
    parts = list(dict.fromkeys(f.reason(record, ctx) for f in policy.filters))
    return "; ".join(p for p in parts if p) or _everything(record, ctx.resource)


def _everything(record: Record, resource: Resource) -> str:
    if resource == "group":
        return f"{record['kind']} group of {len(record['members'])} copies"
    return f"{record['tier']} object in {record['bucket']}"

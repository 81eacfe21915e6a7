"""Policies as data: YAML packs of Cloud-Custodian-style policies evaluated over objects and groups.

    policy_set = load_policies(packs=["hk-pdpo", "cost"], files=[Path("mine.yaml")])  # UsageError if bad
    findings = evaluate(policy_set, objects=[...], groups=[...], now=scan_time,
                        pricing=Pricing(PriceTable.builtin()))
    write_resources(Path("out"), policy_set, findings, objects={...}, groups={...})  # dry-run folders

Filters and actions are registered classes (`FILTERS`, `ACTIONS`); `policy_schema()` is generated from
them, and `validate_files` / `describe_packs` / `describe_policies` back the `tierscan policy` commands.
"""

from tierscan.policies.costs import Pricing
from tierscan.policies.engine import Evaluator, evaluate, in_order, iter_findings, order_key
from tierscan.policies.model import ACTIONS, FILTERS, Action, Context, Estimate, Filter, Policy, PolicySet
from tierscan.policies.output import write_resources
from tierscan.policies.schema import policy_schema
from tierscan.policies.validate import (
    BUILTIN,
    PolicySource,
    builtin_pack_names,
    configured_policies,
    describe_packs,
    describe_policies,
    load_policies,
    load_policy_sources,
    policy_sources,
    validate_files,
)

__all__ = [
    "ACTIONS",
    "BUILTIN",
    "FILTERS",
    "Action",
    "Context",
    "Estimate",
    "Evaluator",
    "Filter",
    "Policy",
    "PolicySet",
    "PolicySource",
    "Pricing",
    "builtin_pack_names",
    "configured_policies",
    "describe_packs",
    "describe_policies",
    "evaluate",
    "in_order",
    "iter_findings",
    "load_policies",
    "load_policy_sources",
    "order_key",
    "policy_schema",
    "policy_sources",
    "validate_files",
    "write_resources",
]

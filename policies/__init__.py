"""Policies as data: YAML packs of Cloud-Custodian-style policies evaluated over objects and groups.

    policy_set = load_policies(packs=["builtin"], files=[Path("mine.yaml")])   # UsageError on any problem
    findings = evaluate(policy_set, objects=[...], groups=[...], now=scan_time)

Filters and actions are registered classes (`FILTERS`, `ACTIONS`); `policy_schema()` is generated from
them, and `validate_files` / `describe_policies` back the `tierscan policy` commands.
"""

from .engine import evaluate
from .model import ACTIONS, FILTERS, Action, Context, Filter, Policy, PolicySet
from .schema import policy_schema
from .validate import BUILTIN, builtin_pack_names, describe_policies, load_policies, validate_files

__all__ = [
    "ACTIONS",
    "BUILTIN",
    "FILTERS",
    "Action",
    "Context",
    "Filter",
    "Policy",
    "PolicySet",
    "builtin_pack_names",
    "describe_policies",
    "evaluate",
    "load_policies",
    "policy_schema",
    "validate_files",
]

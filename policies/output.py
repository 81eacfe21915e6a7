"""Dry-run output, laid out like Cloud Custodian's: one folder per policy holding what it matched.

    OUT/<policy>/resources.json   the matched records, each with the findings the policy made on it
    OUT/<policy>/metadata.json    the policy, how many resources and findings, and their money per action

Object policies list object records (the inventory record plus `gba`); group policies list group records
whose `members` are full object records (with `distance`), exactly what the filters saw. Records hold
exact values, GPS included, as the inventory does: this is audit output, not a human-facing report.
Every policy of the set gets a folder, with `[]` when it matched nothing, so "no match" is visible.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tierscan.policies.model import Policy, PolicySet, Record
from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.models import Finding

__all__ = ["write_resources"]

# The fields of a finding that a resource carries (the rest, policy and group, the folder already says).
_FINDING_FIELDS = ("action", "severity", "uris", "reason", "monthly_savings_usd", "one_time_cost_usd")


def write_resources(
    out_dir: Path,
    policy_set: PolicySet,
    findings: Iterable[Finding],
    *,
    objects: Mapping[str, Record],
    groups: Mapping[str, Record],
) -> list[Path]:
    """Write each policy's folder under `out_dir`; returns the resources.json paths in policy order.

    `objects` maps URI to object record, `groups` maps group id to group record. A finding of a policy
    outside `policy_set` (the config changed since the scan) has no folder; it stays in the report.
    """
    by_policy: dict[str, list[Finding]] = {}
    for finding in findings:
        for name in (finding.policy, *finding.also):
            by_policy.setdefault(name, []).append(finding)
    written = []
    for policy in policy_set:
        folder = out_dir / policy.name
        folder.mkdir(parents=True, exist_ok=True)
        found = by_policy.get(policy.name, [])
        resources = _resources(policy, found, objects, groups)
        _dump(folder / "resources.json", resources)
        _dump(folder / "metadata.json", _metadata(policy, found, len(resources)))
        written.append(folder / "resources.json")
    return written


def _resources(policy: Policy, found: list[Finding], objects: Mapping[str, Record],
               groups: Mapping[str, Record]) -> list[dict[str, Any]]:
    """The matched records in first-finding order, each once, with its findings attached."""
    matched: dict[str, dict[str, Any]] = {}
    for finding in found:
        # An object finding names exactly the object it matched; a group finding names its group.
        key = finding.group if policy.resource == "group" else finding.uris[0]
        if key is None:
            continue
        if key not in matched:
            record = groups.get(key) if policy.resource == "group" else objects.get(key)
            if record is None:  # gone since the scan that made the finding
                continue
            matched[key] = {**record, "findings": []}
        matched[key]["findings"].append(finding.model_dump(mode="json", include=set(_FINDING_FIELDS)))
    return list(matched.values())


def _metadata(policy: Policy, found: list[Finding], resources: int) -> dict[str, Any]:
    actions: dict[str, dict[str, Any]] = {}
    for finding in found:
        row = actions.setdefault(finding.action, {"findings": 0, "uris": 0, "monthly_savings_usd": 0.0,
                                                  "one_time_cost_usd": 0.0})
        row["findings"] += 1
        row["uris"] += len(finding.uris)
        row["monthly_savings_usd"] += finding.monthly_savings_usd
        row["one_time_cost_usd"] += finding.one_time_cost_usd
    return {
        "policy": {
            "name": policy.name,
            "pack": policy.pack,
            "resource": policy.resource,
            "severity": policy.severity.value,
            "description": policy.description,
            "filters": [f.summary() for f in policy.filters],
            "actions": [a.summary() for a in policy.actions],
            "source": policy.source,
        },
        "resources": resources,
        "findings": len(found),
        "actions": actions,
    }


def _dump(path: Path, data: Any) -> None:
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=False) + "\n")

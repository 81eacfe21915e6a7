"""The JSON Schema of policy files, generated from the registries (after Cloud Custodian's `schema.py`).

Editors use it for completion and inline errors; it is derived from the same pydantic models that
validate policies, so it cannot drift from what `tierscan policy validate` accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from tierscan.policies import actions, domain  # noqa: F401  (importing registers the actions and domain filters)
from tierscan.policies.filters import BOOLEANS
from tierscan.policies.model import ACTIONS, FILTERS, PolicyFile, PolicySpec

__all__ = ["policy_schema"]


def policy_schema() -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for a policy file, with `filter` and `action` unions in `$defs`."""
    filter_classes: list[type[BaseModel]] = [*(cls for _, cls in FILTERS), *BOOLEANS.values()]
    action_classes: list[type[BaseModel]] = [cls for _, cls in ACTIONS]
    models: list[type[BaseModel]] = [PolicyFile, PolicySpec, *filter_classes, *action_classes]
    refs, schema = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    defs["filter"] = _union([refs[(cls, "validation")] for cls in filter_classes], _bare_names(FILTERS))
    defs["action"] = _union([refs[(cls, "validation")] for cls in action_classes], _bare_names(ACTIONS))
    root = defs.pop("PolicyFile")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "title": "tierscan policy file",
        "$defs": defs,
    }


def _union(refs: list[dict[str, Any]], bare: list[str]) -> dict[str, Any]:
    return {"anyOf": [*refs, {"type": "string", "enum": bare}]}


def _bare_names(registry: Any) -> list[str]:
    """Elements that may be written as a bare name (`- spans-tiers`): those valid with no settings."""
    names = []
    for name, cls in registry:
        try:
            cls.model_validate({"type": name})
        except ValidationError:
            continue
        names.append(name)
    return names

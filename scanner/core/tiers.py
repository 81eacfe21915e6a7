"""The tier table and the region-to-jurisdiction map, loaded from the data files in `scanner/data/`.

Both are data so that users can extend them from the config file without touching code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from tierscan.scanner.core.models import Tier

__all__ = ["Jurisdiction", "JurisdictionMap", "TierTable", "load_yaml_resource"]


def load_yaml_resource(name: str) -> Any:
    """Load one of the YAML files shipped in `scanner/data/`."""
    return yaml.safe_load(resources.files("tierscan.scanner.data").joinpath(name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class TierClass:
    tier: Tier
    readable: bool


class TierTable:
    """Native storage class -> (normalised tier, readable without restore), per provider."""

    def __init__(self, table: Mapping[str, Mapping[str, Mapping[str, Any]]]):
        self._classes = {
            provider: {
                name.upper(): TierClass(Tier(spec["tier"]), bool(spec.get("readable", True)))
                for name, spec in classes.items()
            }
            for provider, classes in table.items()
        }

    @classmethod
    @cache
    def builtin(cls) -> TierTable:
        return cls(load_yaml_resource("tiers.yaml")["providers"])

    def lookup(self, provider: str, storage_class: str) -> TierClass:
        """The tier of a native class; unknown classes count as hot and readable (the safe guess for reads
        is to try, and the error is then recorded per object)."""
        return self._classes.get(provider, {}).get(storage_class.upper(), TierClass(Tier.hot, True))

    def providers(self) -> set[str]:
        return set(self._classes)

    def classes(self, provider: str) -> dict[str, TierClass]:
        return dict(self._classes.get(provider, {}))


@dataclass(frozen=True)
class Jurisdiction:
    code: str  # HK, CN, US, EU, ... or "unknown"
    gba: bool  # inside the Guangdong-Hong Kong-Macao Greater Bay Area


class JurisdictionMap:
    """Region -> jurisdiction. Exact keys win over prefix keys (`chinaeast*`); matching ignores case."""

    def __init__(self, regions: Mapping[str, Mapping[str, Any]]):
        self._exact: dict[str, Jurisdiction] = {}
        self._prefixes: list[tuple[str, Jurisdiction]] = []
        for key, spec in regions.items():
            j = Jurisdiction(str(spec["jurisdiction"]), bool(spec.get("gba", False)))
            if key.endswith("*"):
                self._prefixes.append((key[:-1].lower(), j))
            else:
                self._exact[key.lower()] = j
        # Longest prefix first, so a specific prefix beats a general one.
        self._prefixes.sort(key=lambda item: -len(item[0]))

    @classmethod
    def builtin(cls, extra: Mapping[str, Mapping[str, Any]] | None = None) -> JurisdictionMap:
        regions = dict(load_yaml_resource("jurisdictions.yaml")["regions"])
        regions.update(extra or {})
        return cls(regions)

    def lookup(self, region: str) -> Jurisdiction:
        r = region.lower()
        if r in self._exact:
            return self._exact[r]
        for prefix, j in self._prefixes:
            if r.startswith(prefix):
                return j
        return Jurisdiction("unknown", False)

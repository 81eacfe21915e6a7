"""The config's bucket settings checked against the price table and the region map before a scan: a
misspelt `price_as`, `storage_class` or `region` would otherwise price every object at zero or as unknown,
silently."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from tierscan.scanner.core.config import BucketSettings, Config
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.tiers import JurisdictionMap, TierTable
from tierscan.scanner.pricing.table import PriceTable

__all__ = ["check_bucket_settings"]


def check_bucket_settings(config: Config, prices: PriceTable, where: str = "config") -> None:
    """Raise UsageError, one line per problem with a "did you mean" where one is close, for a `price_as`
    that is no provider of the price table, a `storage_class` no provider has, and a `region` that neither
    the price table nor the region map knows (`jurisdictions:` in the config adds regions)."""
    providers = prices.provider_names()
    tiers = TierTable.builtin()
    regions = JurisdictionMap.builtin(config.jurisdictions)
    problems = []
    for field, settings in _entries(config):
        known_provider = settings.price_as is not None and settings.price_as.lower() in providers
        if settings.price_as is not None and not known_provider:
            problems.append(_unknown(f"{field}.price_as", settings.price_as, "a provider of the price table",
                                     providers, f" (providers: {', '.join(sorted(providers))})"))
        if settings.storage_class is not None:
            owners = [settings.price_as.lower()] if settings.price_as and known_provider else \
                sorted(tiers.providers())
            classes = {c for p in owners for c in (*tiers.classes(p), *prices.class_names(p))}
            if settings.storage_class.upper() not in {c.upper() for c in classes}:
                owner = owners[0] if len(owners) == 1 else "any provider"
                problems.append(_unknown(f"{field}.storage_class", settings.storage_class,
                                         f"a storage class of {owner}", classes))
        region = settings.region
        if region is not None and region.lower() not in prices.region_names() and \
                regions.lookup(region).code == "unknown" and region.lower() not in ("local", "unknown"):
            problems.append(_unknown(f"{field}.region", region, "a region of the price table or the region map",
                                     prices.region_names(), "; if the name is right, map it under `jurisdictions:`"))
    if problems:
        raise UsageError("\n".join(f"{where}: {p}" for p in problems))


def _entries(config: Config) -> Iterator[tuple[str, BucketSettings]]:
    yield "defaults", config.defaults
    for pattern, settings in config.buckets.items():
        yield f"buckets.{pattern}", settings


def _unknown(field: str, value: str, what: str, known: Iterable[str], fix: str = "") -> str:
    close = difflib.get_close_matches(value, sorted(set(known), key=str.lower), n=1, cutoff=0.5) or \
        difflib.get_close_matches(value.lower(), sorted({k.lower() for k in known}), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{field}: {value!r} is not {what}{hint}{fix}"

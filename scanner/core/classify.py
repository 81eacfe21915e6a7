"""Where a listed object sits: its tier, native storage class, readability, region and jurisdiction, from
what its listing gives, the config's `buckets:` entries and defaults, the tier table and the region map.
One step that every listing goes through (`Connector.make_ref`): connectors give the raw facts (bucket,
URI, class, region), and the same facts always place an object the same way, whichever backend listed it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import Tier
from tierscan.scanner.core.tiers import JurisdictionMap, TierTable

__all__ = ["Classifier", "Placement"]


@dataclass(frozen=True, slots=True)
class Placement:
    tier: Tier
    storage_class: str  # the native class (a config entry's `storage_class` wins over the listing's)
    readable: bool  # readable without a restore
    region: str
    jurisdiction: str  # the region's code in the region map: HK, CN, ... or "unknown"


class Classifier:
    """Places objects for one backend: `tier_table` is its key in the tier table (a config entry's
    `price_as` replaces it), `restores` whether some of its tiers must be restored before a read.

    Placements are kept per set of matching `buckets:` entries, class, region and readability: the
    config's globs are compiled once, and each bucket name is matched once."""

    def __init__(self, config: Config, tier_table: str, restores: bool):
        self.config, self.tier_table, self.restores = config, tier_table, restores
        self.tiers = TierTable.builtin()
        self.jurisdictions = JurisdictionMap.builtin(config.jurisdictions)
        # As `Config.bucket_settings` matches them: against the bucket name or the object URI.
        self._globs = [(i, re.compile(fnmatch.translate(pattern)).match, _literal_head(pattern))
                       for i, pattern in enumerate(config.buckets)]
        self._bucket_globs: dict[str, frozenset[int]] = {}
        self._placed: dict[tuple[object, ...], Placement] = {}

    def place(self, bucket: str, uri: str, storage_class: str | None, region: str | None,
              readable: bool | None = None) -> Placement:
        """The placement of an object the listing gives this class and region. `readable` overrides the
        tier table when the backend knows better (an S3 Intelligent-Tiering object in an archive access
        tier)."""
        matching = self._matching(bucket, uri) if self._globs else ()
        key = (matching, storage_class, region, readable)
        placed = self._placed.get(key)
        if placed is None:
            placed = self._placed[key] = self._place(bucket, uri, storage_class, region, readable)
        return placed

    def _matching(self, bucket: str, uri: str) -> tuple[int, ...]:
        """The `buckets:` entries (by position) that match the bucket name or the object URI."""
        by_bucket = self._bucket_globs.get(bucket)
        if by_bucket is None:
            by_bucket = self._bucket_globs[bucket] = frozenset(i for i, match, _ in self._globs if match(bucket))
        return tuple(i for i, match, head in self._globs
                     if i in by_bucket or (uri.startswith(head) and match(uri) is not None))

    def _place(self, bucket: str, uri: str, storage_class: str | None, region: str | None,
               readable: bool | None) -> Placement:
        explicit = self.config.bucket_settings(bucket, uri)
        defaults = self.config.defaults
        table = explicit.price_as or self.tier_table
        native = explicit.storage_class or storage_class or (explicit.tier or defaults.tier or "hot")
        native = getattr(native, "value", native)
        cls = self.tiers.lookup(table, native)
        # An explicit tier in the config wins; else the table's tier for the native class.
        tier = explicit.tier or cls.tier
        if readable is None:
            readable = cls.readable or not self.restores
        region = explicit.region or region or defaults.region or "unknown"
        return Placement(tier, native, readable, region, self.jurisdictions.lookup(region).code)


def _literal_head(pattern: str) -> str:
    """What every string a glob matches starts with: the pattern up to its first wildcard."""
    return re.split(r"[*?[]", pattern, maxsplit=1)[0]

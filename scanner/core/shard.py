"""Shards: split one scan's reading and fingerprinting over N processes or machines.

Every shard lists every target and records every listed object in its own catalog, but reads and
fingerprints only the objects whose URI hashes to it. Listing is the cheap part (one request per 1,000
objects, no bytes); reading and decoding are what scale. Listing everything has two consequences that make
the merged result equal to a one-process scan without any coordination between shards:
- each shard knows every size class, so the rule "SHA-256 only where sizes collide" (`Catalog.work`) sees
  the global collisions, not just its share's;
- each shard sees every object of a fully listed target, so no shard marks another shard's objects gone.
Sharding by bucket or prefix instead would leave shards as uneven as the buckets and need a size exchange.

Buckets listed from inventory reports (`tierscan.connectors.inventory_reports`) are the exception: reading a report
of hundreds of millions of rows into every shard's catalog would not scale, so there each shard keeps only
the rows it `owns` (the connector's `inventory_shard`), and its size classes are its share's. By hash, not
by data file: a provider splits each report into files differently, and an object must stay with its
shard from one report to the next (parts are kept between runs, and `tierscan merge` takes from each part
the rows it owns).

The hash is the first 8 bytes of SHA-256 of the object URI, so the split is stable across runs, machines
and Python versions (unlike `hash()`), and an object stays with its shard while N stays the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tierscan.scanner.core.errors import UsageError

__all__ = ["Shard", "parse_shard", "shard_from_env"]


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int
    count: int

    def owns(self, uri: str) -> bool:
        """Whether this shard reads and fingerprints the object at `uri`."""
        return int.from_bytes(hashlib.sha256(uri.encode("utf-8")).digest()[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def part_name(self) -> str:
        """The part catalog's file name in a results location: count included, so that parts of an
        earlier run with another shard count are never merged with this run's."""
        return f"part-{self.index}-of-{self.count}.db"


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N."""
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not sep or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UsageError(f"--shard {text}: expected I/N with 0 <= I < N, e.g. 0/4")
    return shard


# (index variable, count variables): Cloud Run Jobs set both; AWS Batch array jobs set only the index and
# reserve the AWS_BATCH_ prefix in job definitions, so the deployment passes the count as TIERSCAN_SHARD_COUNT.
_ENVIRONMENTS = (
    ("CLOUD_RUN_TASK_INDEX", ("CLOUD_RUN_TASK_COUNT",)),
    ("AWS_BATCH_JOB_ARRAY_INDEX", ("AWS_BATCH_JOB_ARRAY_SIZE", "TIERSCAN_SHARD_COUNT")),
)


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard a batch platform assigned this task, or None when no platform index is set."""
    env = os.environ if env is None else env
    for index_var, count_vars in _ENVIRONMENTS:
        if index_var not in env:
            continue
        count = next((env[v] for v in count_vars if env.get(v)), None)
        if count is None:
            raise UsageError(f"{index_var} is set but none of {', '.join(count_vars)}: cannot tell the shard count")
        return parse_shard(f"{env[index_var]}/{count}")
    return None

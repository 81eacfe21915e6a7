"""What the HTML page's review sections read besides the report stream: where the scan's settings came from
(version, targets, digests, policy files), each policy's description, and the objects that carry personal
data, streamed from the catalog when the page is written (the catalog must stay open until then).

All of it is read back from the catalog's stored scan settings (`tierscan.scanner.scan.settings`) and rows;
nothing is recomputed from files that may have changed since the scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.settings import SettingsError, policy_descriptions, settings_digests, stored_settings

__all__ = ["PolicyFile", "Provenance", "ReviewContext", "review_context"]


@dataclass(frozen=True)
class PolicyFile:
    """One policy file the scan evaluated: its pack, its path (None: shipped with tierscan) and the SHA-256
    of its text as the scan stored it."""

    pack: str
    file: str | None
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """What was scanned, and with which settings."""

    scanned_with: str  # the tierscan version that stored the scan's settings; "" when none were stored
    targets: list[str]  # the last scan's targets, as given to it
    digests: Mapping[str, str]  # SHA-256 per settings aspect, and `settings` over the whole
    stored: bool  # the digests are the scan's stored ones (else the config's, for a catalog without them)
    policy_files: list[PolicyFile]
    packs: list[str]  # the config's `policies.packs`


@dataclass(frozen=True)
class ReviewContext:
    provenance: Provenance
    # Objects whose metadata holds personal data, in URI order, streamed afresh at each call.
    personal: Callable[[], Iterable[InventoryRecord]]
    policies: Mapping[str, str] = field(default_factory=dict)  # policy name -> description


def review_context(config: Config, catalog: Catalog) -> ReviewContext:
    """The review context of `catalog`, reported with `config` (its prices). The scan's own settings, as
    stored in the catalog, name the version, digests, policies and their descriptions when they are there."""
    try:
        stored = stored_settings(catalog)
    except SettingsError:
        stored = None  # the command already said so, or runs with a config of its own
    scanned = stored.config if stored else config
    embedded = scanned.embedded
    files = [PolicyFile(pack, file, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
             for pack, file, text in (embedded.policies if embedded else ())]
    provenance = Provenance(
        scanned_with=stored.version if stored else "",
        targets=catalog.last_scan_targets(),
        digests=dict(stored.digests) if stored else settings_digests(config),
        stored=stored is not None,
        policy_files=files,
        packs=list(scanned.policies.packs),
    )
    return ReviewContext(provenance, catalog.personal_records, policy_descriptions(scanned))

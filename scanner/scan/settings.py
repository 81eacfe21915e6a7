"""The settings a scan's figures depend on, stored in its catalog, so that `report`, `merge`, `apply` and
`near ignore` give the scan's figures without being handed its config again.

A scan, a plan, a shard scan, a merge and `near ignore` store (meta key `settings`) the effective config,
self-contained: the config itself (`scan.workers` left out: it is this machine's), the whole price table
it priced with (the built-in one merged with its override file: the built-in table changes with tierscan
versions too) and the text of every policy file it evaluated, built-in packs included. Beside them go a
SHA-256 per aspect a reader compares (`ASPECTS`), and one over everything.

A later command reads them back with the same pydantic models as a config file and the price and policy
loaders, and checks every digest: a catalog whose settings do not parse or do not match their digests is
refused with a message that names it and the way out (`--config`). Given a config of its own, a command
uses it and says in one line what differs from the scan's settings (`command_settings`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tierscan.policies import configured_policies, load_policy_sources, policy_sources
from tierscan.scanner import __version__
from tierscan.scanner.core.config import Config, Embedded
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.scan.catalog import Catalog

__all__ = ["ASPECTS", "EVALUATED", "PRICED", "SettingsError", "StoredSettings", "command_settings", "differing",
           "merge_settings", "policy_descriptions", "settings_digests", "store_settings", "stored_settings"]

_KEY = "settings"  # the `meta` key
_MAX_BYTES = 16 << 20  # a config and a price file of 4 MiB each, policy files of 1 MiB each

# What a later command may compare, in the words its warning uses.
ASPECTS = {
    "prices": "prices",
    "price_as": "bucket price_as",
    "buckets": "bucket tiers, classes and regions",
    "jurisdictions": "jurisdictions",
    "master": "master rules",
    "near": "near-duplicate settings",
    "policies": "policies",
}
# What a report applies from its settings (the rest is in the catalog's rows, groups and findings), and
# what grouping and policy evaluation (merge, near ignore) apply; the buckets' tiers and regions are the
# ones each object was listed with.
PRICED = frozenset({"prices", "price_as"})
EVALUATED = frozenset(ASPECTS) - {"buckets"}


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal[1]
    tierscan: str  # the version that stored them, for the reader
    config: dict[str, Any]  # a `Config` dump, as stored (its digests are checked on it)
    prices: dict[str, Any]  # `PriceTable.dump`
    prices_origin: str
    policies: list[tuple[str, str | None, str]]  # `tierscan.policies.PolicySource`
    digests: dict[str, str]


class SettingsError(UsageError):
    """A catalog's stored settings that cannot be used: corrupt, altered, or refused by this tierscan."""

    def __init__(self, catalog: Catalog, problem: str):
        super().__init__(f"{catalog.path}: the scan settings stored in this catalog {problem}; give --config "
                         "FILE to use a config instead (the next scan stores its settings again)")
        self.problem = problem


@dataclass(frozen=True)
class StoredSettings:
    """A catalog's stored settings: the config (carrying its price table and policies: `Config.embedded`)
    and the digests of its aspects."""

    config: Config
    digests: Mapping[str, str]
    version: str = ""  # the tierscan version that stored them


def _digest(value: Any) -> str:
    """SHA-256 of `value` as compact JSON, in its own order (the order of `buckets:` entries matters)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _stored_config(config: Config) -> dict[str, Any]:
    dumped = config.model_dump(mode="json")
    dumped["scan"]["workers"] = None  # how many processes this machine runs: no figure depends on it
    return dumped


def _digests(config: Mapping[str, Any], prices: Any, policies: Any) -> dict[str, str]:
    """A digest per aspect, and `settings` over the whole, of a config as dumped (or as stored: keys that
    a later tierscan added to the models are missing there, and so do not change the digests)."""
    entries = {"defaults": config.get("defaults") or {}, **(config.get("buckets") or {})}
    # An entry that sets only price_as changes no tier, class or region, and the reverse.
    where = {name: fields for name, entry in entries.items()
             if any((fields := {k: v for k, v in entry.items() if k not in ("price_as", "inventory")}).values())}
    parts = {
        "prices": prices,
        "price_as": {name: entry["price_as"] for name, entry in entries.items() if entry.get("price_as") is not None},
        "buckets": where,
        "jurisdictions": config.get("jurisdictions"),
        "master": config.get("master"),
        "near": config.get("near"),
        "policies": policies,
    }
    return {**{name: _digest(part) for name, part in parts.items()},
            "settings": _digest([config, prices, policies])}


def _contents(config: Config) -> tuple[dict[str, Any], dict[str, Any], str, list[Any]]:
    """The config as stored, its price table, the table's origin and its policy sources."""
    table = PriceTable.of_config(config)
    if config.embedded is not None:
        sources = [list(s) for s in config.embedded.policies]
    else:
        sources = [list(s) for s in policy_sources(packs=config.policies.packs, files=config.policies.files)]
    return _stored_config(config), table.dump(), table.origin, sources


def settings_digests(config: Config) -> dict[str, str]:
    """The digests `store_settings` would store for `config` (its files read now)."""
    stored, prices, _, policies = _contents(config)
    return _digests(stored, prices, policies)


def store_settings(config: Config, catalog: Catalog) -> None:
    """Store `config`'s settings in `catalog`, replacing any stored before."""
    stored, prices, origin, policies = _contents(config)
    record = {"format": 1, "tierscan": __version__, "config": stored, "prices": prices, "prices_origin": origin,
              "policies": policies, "digests": _digests(stored, prices, policies)}
    catalog.set_meta(_KEY, json.dumps(record, separators=(",", ":"), ensure_ascii=False))


def stored_settings(catalog: Catalog) -> StoredSettings | None:
    """The settings stored in `catalog`, checked; None for a catalog written before settings were stored.
    SettingsError naming the catalog when they are corrupt, do not match their digests, or hold a price
    table or policies this tierscan refuses."""
    def refused(problem: str) -> SettingsError:
        return SettingsError(catalog, problem)

    # Measured before it is read: a catalog may come from anyone who can write to a results location.
    row = catalog.db.execute("SELECT length(CAST(value AS BLOB)) FROM meta WHERE key=?", (_KEY,)).fetchone()
    if row is None:
        return None
    if row[0] > _MAX_BYTES:
        raise refused(f"are larger than {_MAX_BYTES >> 20} MiB")
    text = catalog.meta(_KEY) or ""
    try:
        record = _Stored.model_validate_json(text)
    except ValidationError as exc:
        raise refused(f"are not valid ({_first_error(exc)})") from None
    try:
        scanned_with = Config.model_validate(record.config)
    except ValidationError as exc:
        raise refused(f"are not valid ({_first_error(exc, 'config')})") from None
    # Checked as stored, so that settings a tierscan stored before its models grew a field still check.
    policies = [list(s) for s in record.policies]
    found = _digests(record.config, record.prices, policies)
    wrong = sorted(name for name, value in record.digests.items() if found.get(name, value) != value)
    if wrong or "settings" not in record.digests:
        raise refused(f"do not match their digests ({', '.join(wrong) or 'none'}): the catalog was altered")
    embedded = Embedded(record.prices, record.prices_origin, tuple(record.policies))
    config = scanned_with.with_embedded(embedded)
    try:
        PriceTable.from_dump(record.prices, record.prices_origin)
        load_policy_sources(embedded.policies)
    except ValidationError as exc:
        raise refused(f"hold a price table this tierscan refuses ({exc.error_count()} error(s))") from None
    except UsageError as exc:
        raise refused(f"hold policies this tierscan refuses ({str(exc).splitlines()[0]})") from None
    # Compared with a given config as this tierscan dumps both.
    digests = _digests(_stored_config(config), record.prices, policies)
    return StoredSettings(config, digests, record.tierscan)


def policy_descriptions(config: Config) -> dict[str, str]:
    """Each policy's description by name, of the policies `config` selects (a config read back from a
    catalog: those its scan evaluated)."""
    return {p.name: p.description for p in configured_policies(config)}


def _first_error(exc: ValidationError, *within: str) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in (*within, *first['loc'])) or '(top level)'}: {first['msg']}"


def differing(given: Mapping[str, str], stored: Mapping[str, str]) -> list[str]:
    """The aspects (`ASPECTS` keys) whose digests differ."""
    return [name for name in ASPECTS if given.get(name) != stored.get(name)]


def command_settings(catalog: Catalog, given: Config | None, given_name: str, applies: Collection[str]
                     ) -> tuple[Config, str | None]:
    """The settings a command that reads `catalog` uses, and a warning to print, if any.

    Without a config given: the catalog's stored settings (the defaults for a catalog that holds none).
    With one: that config, and, when it differs from the stored settings, one line naming what differs,
    what of it this command applies (`applies`: aspect names) and that without it the scan's are used;
    stored settings that cannot be used are then only warned about.
    """
    if given is None:
        stored = stored_settings(catalog)
        return (stored.config if stored is not None else Config()), None
    try:
        stored = stored_settings(catalog)
    except SettingsError as exc:
        return given, (f"warning: {catalog.path}: the scan settings stored in this catalog {exc.problem}; "
                       f"using {given_name}")
    if stored is None:
        return given, None
    differs = differing(settings_digests(given), stored.digests)
    if not differs:
        return given, None
    used = "; ".join(ASPECTS[name] for name in differs if name in applies)
    later = "; ".join(ASPECTS[name] for name in differs if name not in applies)
    omit = "Unset TIERSCAN_CONFIG" if given_name.startswith("$") else "Omit --config"
    warning = (f"warning: {given_name} differs from the settings {catalog.path} was scanned with in "
               f"{'; '.join(ASPECTS[name] for name in differs)}."
               + (f" Used here: {used}." if used else "")
               + (f" Applied at the next scan: {later}." if later else "")
               + f" {omit} to use the scan's settings.")
    return given, warning


def merge_settings(parts: list[tuple[str, StoredSettings | None]], given: Config | None, given_name: str
                   ) -> tuple[Config, list[str]]:
    """The settings a merge groups and evaluates the parts with, and the warnings to print.

    Without a config given: the parts' stored settings, which must agree in what grouping and evaluation
    apply (UsageError naming two parts that differ and the way out: --config); parts without stored
    settings (scanned before they were stored) count as agreeing; none stored: the defaults. With a
    config: that one, with a warning when it differs from a part's. Parts listed with different tiers,
    classes or regions are warned about either way: each object keeps what its part listed it with.
    """
    known = [(name, s) for name, s in parts if s is not None]
    warnings = []
    for name, s in known[1:]:
        if "buckets" in differing(s.digests, known[0][1].digests):
            warnings.append(f"warning: parts {known[0][0]} and {name} were listed with different "
                            f"{ASPECTS['buckets']}: each object keeps its part's; scan every shard with one config")
            break
    if given is not None:
        digests = settings_digests(given)
        differs = [a for a in ASPECTS if a in EVALUATED and any(a in differing(digests, s.digests) for _, s in known)]
        if differs:
            warnings.append(f"warning: {given_name} differs from the settings the parts were scanned with in "
                            f"{'; '.join(ASPECTS[a] for a in differs)}; the merge groups and evaluates with "
                            f"{given_name}")
        return given, warnings
    if not known:
        return Config(), warnings
    first_name, first = known[0]
    for name, s in known[1:]:
        differs = [ASPECTS[a] for a in differing(s.digests, first.digests) if a in EVALUATED]
        if differs:
            raise UsageError(f"merge: parts {first_name} and {name} were scanned with different "
                             f"{'; '.join(differs)}; give --config FILE to choose the settings the merged "
                             "catalog is grouped and evaluated with")
    return first.config, warnings

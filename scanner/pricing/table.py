"""What keeping and reading one object costs: the price table in `scanner/data/prices.yaml`, optionally
merged with a user's override file, and lookups with explicit, flagged fallbacks.

Prices are data, not code, because they differ by provider, class, region and contract, and they change.
A lookup never fails: when the table has no figure, the caller gets a zero price marked `unknown` (or a
fallback marked with a `note`) so that the report can say which numbers are guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from tierscan.scanner.core.config import Config, format_validation_error, read_yaml
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import InventoryRecord, Tier
from tierscan.scanner.core.tiers import TierTable

__all__ = ["GIB", "Price", "PriceAs", "PriceTable", "price_as_from_config"]

GIB = 1 << 30  # prices are per GiB (storage per GiB-month, retrieval per GiB)

WILDCARD = "*"

# Which provider's price list applies to a record (a local folder standing in for a cloud bucket), or
# None for the record's own provider.
PriceAs = Callable[[InventoryRecord], str | None]


@dataclass(frozen=True)
class Price:
    """Prices for one storage class in one region, in USD. GB means GiB (2^30 bytes); month, 30 days."""

    storage_gb_month: float
    min_days: int
    retrieval_gb: float
    get_per_1000: float
    source: str
    as_of: date | None
    estimate: bool = False
    unknown: bool = False  # the table had no figure: every price is zero and the report says so
    priced_as: str = ""  # "provider/CLASS/region" of the table entry actually used
    currency: str = "USD"  # the currency of the price list, converted at `usd_rate`
    usd_rate: float = 1.0
    note: str | None = None  # why the entry used differs from the one asked for

    def describe(self) -> str:
        """One line of provenance for the report's `prices` map."""
        if self.unknown:
            return f"unpriced (counted as zero): {self.note}"
        text = f"{self.priced_as}: {self.source}"
        if self.as_of:
            text += f", as of {self.as_of.isoformat()}"
        if self.estimate:
            text += " (estimate)"
        if self.currency != "USD":
            text += f", {self.currency} converted at {self.usd_rate} USD"
        if self.note:
            text += f"; {self.note}"
        return text


# --- the price file (validated with pydantic) ------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ClassPrice(_Strict):
    storage_gb_month: float = Field(ge=0)
    retrieval_gb: float = Field(default=0.0, ge=0)
    get_per_1000: float = Field(default=0.0, ge=0)
    source: str | None = None  # defaults to the region's
    as_of: date | None = None
    estimate: bool | None = None  # defaults to the region's


class _Region(_Strict):
    source: str
    as_of: date
    currency: str = "USD"
    estimate: bool = False
    classes: dict[str, _ClassPrice]


class _Provider(_Strict):
    aliases: list[str] = Field(default_factory=list)
    default_region: str | None = None
    min_days: dict[str, int] = Field(default_factory=dict)
    regions: dict[str, _Region]


class _Currency(_Strict):
    usd: float = Field(gt=0)  # USD per unit of this currency
    as_of: date
    source: str


class _PriceFile(_Strict):
    version: Literal[1] = 1
    currencies: dict[str, _Currency] = Field(default_factory=dict)
    providers: dict[str, _Provider]


def _items(mapping: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (name, mapping) entries of a raw mapping, skipping anything not shaped like one (validation
    reports that)."""
    return [(k, v) for k, v in mapping.items() if isinstance(v, dict)] if isinstance(mapping, dict) else []


def _rekey(mapping: Any, fold: Callable[[str], str]) -> None:
    if isinstance(mapping, dict):
        items = list(mapping.items())
        mapping.clear()
        mapping.update((fold(str(k)), v) for k, v in items)


def _normalise_keys(raw: dict[str, Any]) -> None:
    """Names are case-insensitive, as in the tier and region tables: classes upper-case (`Hot` is `HOT`),
    providers and regions lower-case. Done in place and before merging, so that an override meets the
    built-in keys."""
    _rekey(raw.get("providers"), str.lower)
    for _, provider in _items(raw.get("providers")):
        _rekey(provider.get("min_days"), str.upper)
        _rekey(provider.get("regions"), str.lower)
        if isinstance(provider.get("default_region"), str):
            provider["default_region"] = provider["default_region"].lower()
        for _, region in _items(provider.get("regions")):
            _rekey(region.get("classes"), str.upper)


def _credit_override(raw: dict[str, Any], builtin: dict[str, Any], path: Path) -> None:
    """Make the override's figures carry the override's provenance, in place.

    A region new to the table brings its own (required) source and date. In a built-in region, provenance
    given at region level, or else the override file and the day it was last edited, moves onto the
    classes the override lists: the built-in classes it leaves alone keep their own source, and a user's
    figure is never credited to a provider's page. A user who names no estimate vouches for the figure.
    """
    edited = date.fromtimestamp(path.stat().st_mtime)
    for pname, provider in _items(raw.get("providers")):
        known = builtin["providers"].get(pname, {}).get("regions", {})
        for rname, region in _items(provider.get("regions")):
            if rname not in known:
                continue
            credit = {
                "source": region.pop("source", f"override {path}"),
                "as_of": region.pop("as_of", edited),
                "estimate": region.pop("estimate", False),
            }
            for _, entry in _items(region.get("classes")):
                for key, value in credit.items():
                    entry.setdefault(key, value)


def _merge(base: Any, over: Any) -> Any:
    """`over` merged into `base`: mappings recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return over


def _cross_check(file: _PriceFile) -> list[InitErrorDetails]:
    """References pydantic cannot check field by field: currencies and default regions must exist, and a
    provider name must not be another provider's alias."""
    errors: list[InitErrorDetails] = []

    def error(loc: tuple[str, ...], value: str, message: str) -> None:
        errors.append({"type": PydanticCustomError("price_reference", message), "loc": loc, "input": value})

    aliases = {alias.lower(): name for name, p in file.providers.items() for alias in p.aliases}
    for pname, provider in file.providers.items():
        if pname in aliases:
            error(
                ("providers", pname), pname, f"{pname} is an alias of {aliases[pname]}: use {aliases[pname]}"
            )
        if provider.default_region is not None and provider.default_region not in provider.regions:
            error(
                ("providers", pname, "default_region"),
                provider.default_region,
                f"no region {provider.default_region} in this provider's regions",
            )
        for rname, region in provider.regions.items():
            if region.currency != "USD" and region.currency not in file.currencies:
                error(
                    ("providers", pname, "regions", rname, "currency"),
                    region.currency,
                    f"no rate for {region.currency} under currencies:",
                )
    return errors


def _validate(data: Any) -> _PriceFile:
    """Raises ValidationError, with locations, for shape errors and broken references alike."""
    file = _PriceFile.model_validate(data)
    errors = _cross_check(file)
    if errors:
        raise ValidationError.from_exception_data("prices", errors)
    return file


def _builtin_raw() -> dict[str, Any]:
    text = resources.files("tierscan.scanner.data").joinpath("prices.yaml").read_text(encoding="utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    _normalise_keys(raw)
    return raw


# --- lookups -------------------------------------------------------------------------------------------


class PriceTable:
    """Prices by provider, storage class and region, with fallbacks region -> provider default -> unknown."""

    def __init__(self, file: _PriceFile, origin: str):
        self.origin = origin  # "builtin", or "builtin + PATH" when an override was merged
        self._file = file
        self._aliases = {
            alias.lower(): name for name, p in file.providers.items() for alias in [name, *p.aliases]
        }
        self._classes = {
            name: {c for r in p.regions.values() for c in r.classes} for name, p in file.providers.items()
        }
        self._cache: dict[tuple[str, str, str, Tier | None], Price] = {}

    @classmethod
    @cache
    def builtin(cls) -> PriceTable:
        return cls(_validate(_builtin_raw()), "builtin")

    @classmethod
    def load(cls, override_path: Path | None) -> PriceTable:
        """The built-in table, with `override_path` (any subset of the same shape) merged over it.

        Provider, region and class names are case-insensitive; providers go by their table names (s3, gcs,
        azure, local), not aliases. See `_credit_override` for how provenance is kept honest. Errors raise
        UsageError naming the override file, line and field.
        """
        if override_path is None:
            return cls.builtin()
        text, raw = read_yaml(override_path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UsageError(
                f"{override_path}:1: a price file must be a mapping (version, currencies, providers)"
            )
        _normalise_keys(raw)
        builtin = _builtin_raw()
        _credit_override(raw, builtin, override_path)
        try:
            file = _validate(_merge(builtin, raw))
        except ValidationError as exc:
            raise UsageError(format_validation_error(override_path, text, exc)) from exc
        return cls(file, f"builtin + {override_path}")

    @classmethod
    def of_config(cls, config: Config) -> PriceTable:
        """The table `config` prices with: the one its scan stored, for a config read back from a catalog
        (`Config.embedded`); else the built-in table with the config's override file."""
        if config.embedded is not None:
            return cls.from_dump(config.embedded.prices, config.embedded.prices_origin)
        return cls.load(config.prices)

    @classmethod
    def from_dump(cls, data: Any, origin: str) -> PriceTable:
        """A table from `dump`'s data, validated like a price file (ValidationError when it does not fit)."""
        return cls(_validate(data), origin)

    def dump(self) -> dict[str, Any]:
        """The whole table as JSON data (the built-in figures with any override merged), in file order."""
        return self._file.model_dump(mode="json")

    def provider_names(self) -> set[str]:
        """Every name a provider goes by (table names and aliases), lower-cased."""
        return set(self._aliases)

    def class_names(self, provider: str) -> set[str]:
        """The storage classes the table prices for `provider` (a name or alias); none when unknown."""
        name = self._aliases.get(provider.lower())
        return self._classes[name] - {WILDCARD} if name is not None else set()

    def region_names(self) -> set[str]:
        """Every region the table prices, for any provider, lower-cased."""
        return {r.lower() for p in self._file.providers.values() for r in p.regions} - {WILDCARD}

    def price_for(self, provider: str, storage_class: str, region: str, tier: Tier | None = None) -> Price:
        """The price of keeping `storage_class` in `region`.

        A class the provider's table lacks is priced as the first class of its tier in the tier table (for
        example a local folder priced as S3 whose class is just `archive`), when `tier` is given.
        """
        key = (provider, storage_class, region, tier)
        if key not in self._cache:
            self._cache[key] = self._lookup(provider, storage_class, region, tier)
        return self._cache[key]

    def price_for_object(self, record: InventoryRecord, price_as: str | None) -> Price:
        """The price of `record`, under `price_as` (a provider name) when the config says so."""
        return self.price_for(price_as or record.provider, record.storage_class, record.region, record.tier)

    def _lookup(self, provider: str, storage_class: str, region: str, tier: Tier | None) -> Price:
        asked = f"{provider}/{storage_class}/{region}"
        name = self._aliases.get(provider.lower())
        if name is None:
            return _unknown(asked, f"no prices for provider {provider!r}")
        spec = self._file.providers[name]
        cls = storage_class.upper()
        notes = []
        if cls not in self._classes[name] and WILDCARD not in self._classes[name] and tier is not None:
            substitute = _tier_class(name, tier)
            if substitute in self._classes[name]:
                notes.append(f"class {storage_class} priced as {substitute}, the {tier.value} tier's class")
                cls = substitute
        candidates: list[tuple[str, str | None]] = [(region.lower(), None), (WILDCARD, None)]
        if spec.default_region:
            candidates.append(
                (spec.default_region, f"region {region} not in the table: priced as {spec.default_region}")
            )
        for region_key, fallback in candidates:
            entry = spec.regions.get(region_key)
            if entry is None:
                continue
            price = entry.classes.get(cls) or entry.classes.get(WILDCARD)
            if price is None:
                continue
            rate = self._file.currencies[entry.currency].usd if entry.currency != "USD" else 1.0
            note = "; ".join(notes + ([fallback] if fallback else [])) or None
            return Price(
                storage_gb_month=price.storage_gb_month * rate,
                min_days=spec.min_days.get(cls, 0),
                retrieval_gb=price.retrieval_gb * rate,
                get_per_1000=price.get_per_1000 * rate,
                source=price.source or entry.source,
                as_of=price.as_of or entry.as_of,
                estimate=entry.estimate if price.estimate is None else price.estimate,
                priced_as=f"{name}/{cls}/{region_key}",
                currency=entry.currency,
                usd_rate=rate,
                note=note,
            )
        return _unknown(
            asked, f"no price for class {storage_class} of {name} in {region} or a default region"
        )


def _unknown(asked: str, reason: str) -> Price:
    return Price(0.0, 0, 0.0, 0.0, source="unknown", as_of=None, unknown=True, priced_as=asked, note=reason)


def _tier_class(provider: str, tier: Tier) -> str | None:
    """The first class of `tier` in the tier table (for S3: STANDARD, STANDARD_IA, GLACIER_IR, GLACIER)."""
    for name, cls in TierTable.builtin().classes(provider).items():
        if cls.tier is tier:
            return name
    return None


def price_as_from_config(config: Config) -> PriceAs:
    """`price_as` from the config: the `buckets:` entries matching a record's bucket name or URI."""

    def price_as(record: InventoryRecord) -> str | None:
        return config.bucket_settings(record.bucket, record.uri).price_as

    return price_as

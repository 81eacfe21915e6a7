"""`tierscan prices refresh`: fetch current list prices from the providers' public price APIs and write a
price override file (the `scanner/data/prices.yaml` layout) that `prices:` in the config can name.

Why an override file rather than editing the built-in table: the fetched figures carry their own
provenance (the API URL and the fetch date) and are merged over the built-in table, so a class or fee the
API did not return keeps its built-in figure instead of turning into zero.

Sources (all public; only Google's needs an API key):
- AWS Price List bulk API: one offer file per region,
  `{endpoint}/offers/v1.0/aws/AmazonS3/current/{region}/index.json` (`products` keyed by SKU with
  `attributes.usagetype`; `terms.OnDemand[sku][offer].priceDimensions[..].pricePerUnit`). Mainland China
  regions come from the aws-cn partition's own endpoint and are priced in CNY.
- Google Cloud Billing Catalog: `{endpoint}/v1/services/{GCS_SERVICE_ID}/skus?key=...`, paginated by
  `nextPageToken`; SKUs chosen by `category.resourceGroup`, `serviceRegions` and
  `pricingExpression.usageUnit`, prices in `tieredRates[].unitPrice {units, nanos}`.
- Azure Retail Prices: `{endpoint}/api/retail/prices?$filter=...`, paginated by `NextPageLink`; items
  chosen by `meterName`, `skuName` (LRS) and `type` Consumption, priced per `unitOfMeasure`.

Where an API lists volume tiers, the first paid tier is taken (the list price of the first band, as in the
built-in table). The parsers are pure functions of the decoded responses, tested against recorded
responses; the fetchers are the thin aiohttp layer around them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.errors import UsageError

__all__ = [
    "AWS_CN_ENDPOINT",
    "AWS_ENDPOINT",
    "AZURE_ENDPOINT",
    "DEFAULT_REGIONS",
    "GCP_ENDPOINT",
    "GCS_SERVICE_ID",
    "Endpoints",
    "Fetched",
    "RefreshResult",
    "parse_aws_offer",
    "parse_azure_items",
    "parse_gcp_skus",
    "refresh",
    "render_override",
]

AWS_ENDPOINT = "https://pricing.us-east-1.amazonaws.com"
AWS_CN_ENDPOINT = "https://pricing.cn-north-1.amazonaws.com.cn"
GCP_ENDPOINT = "https://cloudbilling.googleapis.com"
AZURE_ENDPOINT = "https://prices.azure.com"
GCS_SERVICE_ID = "95FF-2EF5-5EA1"  # Cloud Storage in the Cloud Billing Catalog

# Hong Kong first, then Mainland China, then the US defaults (GCP has no Mainland region; Azure China's
# prices are a CSV download from prices.azure.cn, not this API).
DEFAULT_REGIONS: dict[str, tuple[str, ...]] = {
    "s3": ("ap-east-1", "cn-north-1", "cn-northwest-1", "us-east-1"),
    "gcs": ("asia-east2", "us-central1"),
    "azure": ("eastasia", "eastus"),
}

Classes = dict[str, dict[str, float]]  # storage class -> {storage_gb_month, retrieval_gb, get_per_1000}

# --- AWS --------------------------------------------------------------------------------------------------

# usagetype without its region prefix ("APE1-", "CNN1-"; us-east-1 has none) -> (class, field).
# Glacier Flexible and Deep Archive retrieval and restore requests depend on the restore speed and are
# not mapped: they keep the built-in figures.
_AWS_USAGE: dict[str, tuple[str, str]] = {
    "TimedStorage-ByteHrs": ("STANDARD", "storage_gb_month"),
    "TimedStorage-INT-FA-ByteHrs": ("INTELLIGENT_TIERING", "storage_gb_month"),
    "TimedStorage-SIA-ByteHrs": ("STANDARD_IA", "storage_gb_month"),
    "TimedStorage-ZIA-ByteHrs": ("ONEZONE_IA", "storage_gb_month"),
    "TimedStorage-GIR-ByteHrs": ("GLACIER_IR", "storage_gb_month"),
    "TimedStorage-GlacierByteHrs": ("GLACIER", "storage_gb_month"),
    "TimedStorage-GDA-ByteHrs": ("DEEP_ARCHIVE", "storage_gb_month"),
    "TimedStorage-RRS-ByteHrs": ("REDUCED_REDUNDANCY", "storage_gb_month"),
    "Retrieval-SIA": ("STANDARD_IA", "retrieval_gb"),
    "Retrieval-ZIA": ("ONEZONE_IA", "retrieval_gb"),
    "Retrieval-GIR": ("GLACIER_IR", "retrieval_gb"),
    "Requests-Tier2": ("STANDARD", "get_per_1000"),
    "Requests-INT-Tier2": ("INTELLIGENT_TIERING", "get_per_1000"),
    "Requests-SIA-Tier2": ("STANDARD_IA", "get_per_1000"),
    "Requests-ZIA-Tier2": ("ONEZONE_IA", "get_per_1000"),
    "Requests-GIR-Tier2": ("GLACIER_IR", "get_per_1000"),
}
_AWS_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}[0-9]?-")
# Per unit of the price dimension, the factor to the table's unit (requests are priced per 1,000).
_AWS_UNITS = {"GB-Mo": 1.0, "GB": 1.0, "Requests": 1000.0}


def _first_paid(rates: Iterable[tuple[float, float]]) -> float | None:
    """The price of the lowest volume band that charges anything: (band start, price) pairs."""
    paid = sorted((start, price) for start, price in rates if price > 0)
    return paid[0][1] if paid else None


def parse_aws_offer(offer: Mapping[str, Any], currency: str) -> Classes:
    """S3 prices from one region's offer file, in `currency` (USD; CNY for the aws-cn partition)."""
    wanted: dict[str, tuple[str, str]] = {}
    for sku, product in offer.get("products", {}).items():
        usage = _AWS_REGION_PREFIX.sub("", product.get("attributes", {}).get("usagetype", ""))
        if usage in _AWS_USAGE:
            wanted[sku] = _AWS_USAGE[usage]
    classes: Classes = {}
    on_demand = offer.get("terms", {}).get("OnDemand", {})
    for sku, (cls, name) in wanted.items():
        rates = []
        for term in on_demand.get(sku, {}).values():
            for dim in term.get("priceDimensions", {}).values():
                factor = _AWS_UNITS.get(dim.get("unit", ""))
                price = dim.get("pricePerUnit", {}).get(currency)
                if factor is not None and price is not None:
                    rates.append((float(dim.get("beginRange", 0)), float(price) * factor))
        price = _first_paid(rates)
        if price is not None:
            # A usagetype can sit on several SKUs (one per API operation): take the dearest, so that a
            # fee is never understated.
            entry = classes.setdefault(cls, {})
            entry[name] = max(price, entry.get(name, 0.0))
    return _complete(classes)


# --- Google Cloud -----------------------------------------------------------------------------------------

_GCP_GROUPS = {
    "RegionalStorage": "STANDARD",
    "NearlineStorage": "NEARLINE",
    "ColdlineStorage": "COLDLINE",
    "ArchiveStorage": "ARCHIVE",
}
_GCP_KEYWORDS = (("Nearline", "NEARLINE"), ("Coldline", "COLDLINE"), ("Archive", "ARCHIVE"))
# SKUs of the same class that are not a plain single-region bucket's price ("Autoclass Coldline Storage Hong
# Kong", "Standard Storage Asia Multi-region").
_GCP_OTHER_SKUS = re.compile(r"autoclass|multi-region|dual-region", re.IGNORECASE)


def _gcp_class_of(description: str) -> str:
    return next((cls for word, cls in _GCP_KEYWORDS if word in description), "STANDARD")


def _gcp_money(unit_price: Mapping[str, Any]) -> float:
    """google.type.Money: whole `units` (a string in JSON) plus `nanos` (10^-9)."""
    return int(unit_price.get("units", 0) or 0) + int(unit_price.get("nanos", 0) or 0) / 1e9


def parse_gcp_skus(skus: Iterable[Mapping[str, Any]], region: str) -> Classes:
    """Cloud Storage prices for one single region (e.g. asia-east2) from Billing Catalog SKUs.

    Storage: SKUs whose `resourceGroup` names a class, priced per GiBy.mo; retrieval: "Retrieval" SKUs per
    GiBy; GET: "Class B" operation SKUs per count (times 1,000). Autoclass, multi-region and dual-region
    SKUs are not used: they are not a plain regional bucket's price.
    """
    classes: Classes = {}
    for sku in skus:
        category = sku.get("category", {})
        if category.get("resourceFamily") != "Storage" or category.get("usageType") != "OnDemand":
            continue
        description = sku.get("description", "")
        if region not in sku.get("serviceRegions", []) or _GCP_OTHER_SKUS.search(description):
            continue
        for info in sku.get("pricingInfo", [])[:1]:  # the current price comes first
            expression = info.get("pricingExpression", {})
            unit = expression.get("usageUnit")
            rates = [
                (float(r.get("startUsageAmount", 0)), _gcp_money(r.get("unitPrice", {})))
                for r in expression.get("tieredRates", [])
            ]
            group = category.get("resourceGroup", "")
            if unit == "GiBy.mo" and group in _GCP_GROUPS:
                target = (_GCP_GROUPS[group], "storage_gb_month", 1.0)
            elif unit == "GiBy" and "Retrieval" in description:
                target = (_gcp_class_of(description), "retrieval_gb", 1.0)
            elif unit == "count" and "Class B" in description:
                target = (_gcp_class_of(description), "get_per_1000", 1000.0)
            else:
                continue
            price = _first_paid(rates)
            if price is not None:
                cls, name, factor = target
                classes.setdefault(cls, {})[name] = price * factor
    return _complete(classes)


# --- Azure ------------------------------------------------------------------------------------------------

_AZURE_TIERS = ("Hot", "Cool", "Cold", "Archive")
_AZURE_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KM]?)\b")


def _azure_per_unit(unit_of_measure: str) -> float | None:
    """How many units one price buys: "1 GB/Month" -> 1, "10K" -> 10,000, "1M" -> 1,000,000."""
    match = _AZURE_UNIT.match(unit_of_measure)
    if not match:
        return None
    return float(match.group(1)) * {"": 1, "K": 1_000, "M": 1_000_000}[match.group(2)]


def parse_azure_items(items: Iterable[Mapping[str, Any]], region: str) -> Classes:
    """Blob prices (LRS, flat namespace) for one region from Retail Prices API items.

    Storage: "<Tier> LRS Data Stored" per GB/month; retrieval: "<Tier> Data Retrieval" per GB; GET:
    "<Tier> Read Operations" per 10K (divided down to per 1,000). Only the "<Tier> LRS" SKUs, consumption
    prices and block blobs (General Block Blob v2 or Blob Storage) count.
    """
    meters = {}
    for tier in _AZURE_TIERS:
        cls = tier.upper()
        meters[f"{tier} LRS Data Stored"] = (cls, "storage_gb_month")
        meters[f"{tier} Data Retrieval"] = (cls, "retrieval_gb")
        meters[f"{tier} Read Operations"] = (cls, "get_per_1000")
    rates: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for item in items:
        if item.get("armRegionName") != region or item.get("type") != "Consumption":
            continue
        if item.get("productName") not in ("General Block Blob v2", "Blob Storage"):
            continue
        target = meters.get(item.get("meterName", ""))
        if target is None or item.get("skuName") != f"{target[0].title()} LRS":
            continue
        per = _azure_per_unit(item.get("unitOfMeasure", ""))
        if not per:
            continue
        price = float(item.get("retailPrice", 0.0)) / per * (1000 if target[1] == "get_per_1000" else 1)
        rates.setdefault(target, []).append((float(item.get("tierMinimumUnits", 0.0)), price))
    classes: Classes = {}
    for (cls, name), found in rates.items():
        paid = _first_paid(found)
        if paid is not None:
            classes.setdefault(cls, {})[name] = paid
    return _complete(classes)


def _complete(classes: Classes) -> Classes:
    """Only classes with a storage price: an entry in the price file must have one, and a fee alone
    would be credited to the API while its storage figure came from the built-in table."""
    return {
        cls: dict(sorted(fields.items()))
        for cls, fields in sorted(classes.items())
        if "storage_gb_month" in fields
    }


# --- fetching ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the price APIs; tests point them at a local server."""

    aws: str = AWS_ENDPOINT
    aws_cn: str = AWS_CN_ENDPOINT
    gcp: str = GCP_ENDPOINT
    azure: str = AZURE_ENDPOINT


@dataclass(frozen=True)
class Fetched:
    """One provider region's prices and where they came from."""

    provider: str
    region: str
    source: str
    currency: str
    classes: Classes


@dataclass
class RefreshResult:
    fetched: list[Fetched] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "provider/region: reason", one per failure


async def _json(session: Any, url: str, params: Mapping[str, str] | None = None) -> Any:
    async with session.get(url, params=params) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        return await response.json(content_type=None)


async def _aws(session: Any, endpoints: Endpoints, region: str) -> Fetched:
    china = region.startswith("cn-")
    base, partition, currency = (endpoints.aws_cn, "cn", "CNY") if china else (endpoints.aws, "aws", "USD")
    url = f"{base}/offers/v1.0/{partition}/AmazonS3/current/{region}/index.json"
    return Fetched("s3", region, url, currency, parse_aws_offer(await _json(session, url), currency))


async def _gcp_skus(session: Any, endpoints: Endpoints, api_key: str) -> tuple[str, list[Any]]:
    url = f"{endpoints.gcp}/v1/services/{GCS_SERVICE_ID}/skus"
    skus: list[Any] = []
    params = {"key": api_key, "currencyCode": "USD"}
    while True:
        page = await _json(session, url, params)
        skus.extend(page.get("skus", []))
        token = page.get("nextPageToken")
        if not token:
            return url, skus
        params = {**params, "pageToken": token}


async def _azure(session: Any, endpoints: Endpoints, region: str) -> Fetched:
    query = f"serviceName eq 'Storage' and armRegionName eq '{region}' and priceType eq 'Consumption'"
    source = f"{endpoints.azure}/api/retail/prices?$filter={quote(query)}"
    url: str | None = source
    items: list[Any] = []
    while url:
        page = await _json(session, url)
        items.extend(page.get("Items", []))
        url = page.get("NextPageLink")
    return Fetched("azure", region, source, "USD", parse_azure_items(items, region))


async def refresh(
    regions: Mapping[str, Iterable[str]],
    endpoints: Endpoints = Endpoints(),
    gcp_api_key: str | None = None,
    timeout_s: float = 120.0,
) -> RefreshResult:
    """Fetch every provider region in `regions` ({"s3": [...], "gcs": [...], "azure": [...]})
    concurrently. A failing region is reported in `errors` and the others still count."""
    import aiohttp  # optional: the `prices` extra

    result = RefreshResult()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def guarded(label: str, job: Any) -> None:
            try:
                fetched = await job
            except Exception as exc:  # one bad region must not lose the others
                result.errors.append(f"{label}: {exc}")
                return
            for one in fetched if isinstance(fetched, list) else [fetched]:
                if one.classes:
                    result.fetched.append(one)
                else:
                    result.errors.append(f"{one.provider}/{one.region}: no storage prices in the response")

        async def gcs(wanted: list[str]) -> list[Fetched]:
            url, skus = await _gcp_skus(session, endpoints, gcp_api_key or "")
            return [Fetched("gcs", r, url, "USD", parse_gcp_skus(skus, r)) for r in wanted]

        jobs = [guarded(f"s3/{r}", _aws(session, endpoints, r)) for r in regions.get("s3", ())]
        jobs += [guarded(f"azure/{r}", _azure(session, endpoints, r)) for r in regions.get("azure", ())]
        gcs_regions = list(regions.get("gcs", ()))
        if gcs_regions and gcp_api_key:
            jobs.append(guarded("gcs", gcs(gcs_regions)))
        elif gcs_regions:
            result.errors.append("gcs: the Cloud Billing Catalog needs an API key (--gcp-api-key)")
        await asyncio.gather(*jobs)
    result.fetched.sort(key=lambda f: (f.provider, f.region))
    return result


def render_override(fetched: Iterable[Fetched], today: date) -> str:
    """The override file's text: `prices.yaml` layout, each region credited to its API URL and `today`."""
    providers: dict[str, Any] = {}
    for one in fetched:
        region = {"source": one.source, "as_of": today, "classes": one.classes}
        if one.currency != "USD":
            region["currency"] = one.currency
        providers.setdefault(one.provider, {"regions": {}})["regions"][one.region] = region
    if not providers:
        raise UsageError("no prices were fetched: nothing to write")
    header = (
        f"# Written by `tierscan prices refresh` on {today.isoformat()} from the providers' price APIs.\n"
        "# Name this file under `prices:` in the config; it is merged over the built-in table, so a fee the\n"
        "# API did not return keeps its built-in figure. Units as in scanner/data/prices.yaml.\n"
    )
    table: str = yaml.safe_dump({"version": 1, "providers": providers}, sort_keys=False)
    return header + table


def write_override(fetched: Iterable[Fetched], path: Path, today: date) -> None:
    """Write `render_override` to `path`, replacing the previous file only once the new one is whole."""
    text = render_override(fetched, today)
    with atomic_write(path) as fh:
        fh.write(text)

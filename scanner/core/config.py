"""The config file (`--config FILE`, YAML): what to scan and how to judge it.

Every field has a default, so no config file is needed for a plain local scan. Errors name the file, the
line and the field, and the CLI turns them into exit status 2.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import Tier
from tierscan.scanner.core.safe_yaml import line_at, parse_yaml, read_yaml_file

__all__ = ["BucketSettings", "Config", "Embedded", "InventorySettings", "MasterRule", "MasterSettings",
           "format_validation_error", "load_config", "load_config_text"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InventorySettings(_Strict):
    """Where a bucket's inventory reports are published, to list the bucket from its newest complete report
    instead of LIST requests (`tierscan.connectors.inventory_reports`). `uri` is the folder one report configuration
    writes into:

    - S3 Inventory: `s3://DEST-BUCKET/DEST-PREFIX/SOURCE-BUCKET/CONFIG-ID` (holding `YYYY-MM-DDTHH-MMZ/` folders);
    - GCS Storage Insights: `gs://DEST-BUCKET/DEST-PATH` (the reports' manifests, or date folders holding them);
    - Azure Blob Inventory: `az://ACCOUNT/DEST-CONTAINER` (holding `YYYY/MM/DD/HH-MM-SS/RULE/` folders),
      with `rule` naming the inventory rule.

    A report older than `max_age_days` is used, with a warning: objects changed since are read as changed.
    """

    uri: str = Field(min_length=6)
    rule: str | None = None
    max_age_days: float = Field(default=8.0, gt=0)

    @field_validator("uri")
    @classmethod
    def _scheme(cls, uri: str) -> str:
        if not uri.startswith(("s3://", "gs://", "az://")):
            raise ValueError("an inventory URI starts with s3://, gs:// or az://")
        return uri.rstrip("/")


class BucketSettings(_Strict):
    """Settings for buckets a connector cannot describe itself (local folders), or overrides for any."""

    model_config = ConfigDict(frozen=True)  # one shared instance stands for "no entry matches"

    tier: Tier | None = None
    storage_class: str | None = None
    region: str | None = None
    # Which provider's price list applies: local folders standing in for a cloud bucket say so here.
    price_as: str | None = None
    # List this bucket from its provider's inventory reports instead of LIST requests.
    inventory: InventorySettings | None = None


_NO_SETTINGS = BucketSettings()


class NearSettings(_Strict):
    """How near-duplicate pairs are found and confirmed (`tierscan.scanner.group.cluster.near_groups`).

    Candidates: pairs whose pHashes (whole image, mirror image, centre and corner windows) are within
    `candidate_radius` bits, found through the Hamming index. Confirmed: ORB features agree under one
    similarity transform (or a resize to another aspect ratio) with at least `min_inliers` RANSAC inliers, and
    at least `min_agreement` of the aligned thumbnail blocks correlate. `min_agreement` is the value
    benchmarks/neardup_eval.py chooses on the development set (precision first, then recall, then the
    stricter; 5-fold cross-validation by group picks 0.90 on every fold): there, 99% of true candidate pairs
    keep >= 0.92 of their blocks, frames of one video at most 0.87. Objects fingerprinted before signatures
    existed fall back to the global-hash rule: both pHash and dHash within `phash_max_distance` /
    `dhash_max_distance`.

    `not_duplicates`: lists of two or more URIs that must never share a near group (user decisions,
    also stored in the catalog by `tierscan near ignore`). `split_shots`: keep images apart whose camera
    metadata shows different shots (capture times differ, or camera serials share none); turn it off when
    a tool has rewritten capture times on some copies.
    """

    candidate_radius: int = Field(default=8, ge=0, le=12)
    min_inliers: int = Field(default=6, ge=3)
    min_agreement: float = Field(default=0.90, ge=0, le=1)
    phash_max_distance: int = Field(default=10, ge=0, le=32)
    dhash_max_distance: int = Field(default=8, ge=0, le=32)
    not_duplicates: list[Annotated[list[str], Field(min_length=2)]] = Field(default_factory=list)
    split_shots: bool = True


# Criteria for choosing a group's master, by name; `tierscan.scanner.group.cluster.MASTER_RULES` gives each its sort
# key.
MasterRule = Literal["oldest", "newest", "hottest", "coldest", "highest-resolution", "largest"]
_Rules = Annotated[
    list[MasterRule],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),  # `exact: hottest` is a list of one
    Field(min_length=1),
]
_EXACT_DEFAULT: tuple[MasterRule, ...] = ("oldest", "hottest")
_NEAR_DEFAULT: tuple[MasterRule, ...] = ("highest-resolution", "largest", "oldest")


class MasterSettings(_Strict):
    """How a group's master (the copy no finding may recommend removing) is chosen.

    Exact groups: the first copy under a `prefer` URI glob (a bucket or prefix, tried in order), else the
    best by the `exact` criteria. Near groups: the best by the `near` criteria; near groups are stars
    around their master, so these criteria also decide which images become centres. Each list is tried in
    order, ties going to the next criterion and finally to the URI.
    """

    prefer: list[str] = Field(default_factory=list)
    exact: _Rules = Field(default_factory=lambda: list(_EXACT_DEFAULT))
    near: _Rules = Field(default_factory=lambda: list(_NEAR_DEFAULT))


MAX_CONFIG_BYTES = 4 << 20  # config and price override files (the built-in price table is 10 KiB)
MAX_WORKERS = 256  # fingerprint processes a scan may ask for, and no more than 4 a core


def workers_bound() -> int:
    """The most fingerprint processes `scan.workers` and `--workers` accept on this machine."""
    return min(MAX_WORKERS, 4 * (os.cpu_count() or 1))


def check_workers(workers: int) -> int:
    """`workers`, or a ValueError that says the bound: each is a process, and past a few per core they
    only compete for the cores and the memory."""
    if workers > workers_bound():
        raise ValueError(f"{workers} fingerprint processes is too many: at most {workers_bound()} here "
                         f"(4 per CPU core, never more than {MAX_WORKERS})")
    return workers


class ScanSettings(_Strict):
    concurrency: int = Field(default=16, ge=1, le=1024)  # object reads in flight
    # Fingerprint processes; default: one per core. Fewer start when memory or the work is short.
    workers: int | None = Field(default=None, ge=1)
    perceptual: bool = True
    # Near-duplicate signatures (`tierscan.scanner.fingerprint.signatures`): crops, flips and verified groups. Off:
    # pHash and
    # dHash alone, about half the CPU an image, near groups by the global-hash rule.
    signatures: bool = True
    # Small pictures (WebP, 160 px) of each image, made from the perceptual decode and kept in the catalog
    # for the report. A thumbnail is a copy of a personal image: off, a scan makes none and deletes those
    # the catalog holds.
    thumbnails: bool = True
    # Faces counted in the pixels (YuNet, on the perceptual decode): personal-data kind `faces`. Off, a scan
    # counts none and forgets those the catalog holds; on again, images without a count are read once more.
    faces: bool = True
    # Retrieval fees (USD) the scan may incur reading cool/cold data; reads beyond it are left for later.
    max_retrieval_usd: float | None = Field(default=None, ge=0)
    max_object_bytes: int = Field(default=256 * 1024 * 1024, ge=1)  # larger objects are not decoded
    # Seconds one object may take in a fingerprint worker (decode, hashes, metadata): past it the worker
    # is replaced and the object skipped with reason "parse timeout".
    object_timeout: float = Field(default=30.0, gt=0)

    @field_validator("workers")
    @classmethod
    def _bounded(cls, workers: int | None) -> int | None:
        return None if workers is None else check_workers(workers)


class LocalSettings(_Strict):
    """Local folders (`tierscan.connectors.local`). `follow_symlinks_out`: read files and folders that symlinks in
    the scanned folder point to outside it. Off by default: such a link is listed as skipped, never read,
    so a link to /etc/shadow or to someone else's photos cannot bring their bytes or metadata into the
    inventory."""

    follow_symlinks_out: bool = False


class PolicySettings(_Strict):
    packs: list[str] = Field(default_factory=lambda: ["builtin"])  # built-in pack names
    files: list[Path] = Field(default_factory=list)  # extra policy files, relative to the config file


@dataclass(frozen=True)
class Embedded:
    """What a config read back from a catalog (`tierscan.scanner.scan.settings`) carries in place of the files
    it names, which may have moved or changed since the scan: the price table the scan priced with (the
    built-in table merged with the override file, as `PriceTable.dump` gives it, and its `origin`), and
    its policy sources as (pack, file or None for a built-in pack, text)."""

    prices: Mapping[str, Any]
    prices_origin: str
    policies: tuple[tuple[str, str | None, str], ...]


class Config(_Strict):
    version: int = 1
    targets: list[str] = Field(default_factory=list)  # used when the command line names none
    db: Path | None = None
    defaults: BucketSettings = Field(default_factory=lambda: BucketSettings(tier=Tier.hot, region="local"))
    buckets: dict[str, BucketSettings] = Field(default_factory=dict)  # bucket name or URI glob -> settings
    jurisdictions: dict[str, dict[str, Any]] = Field(default_factory=dict)  # extends the region map
    prices: Path | None = None  # a price override file, merged over the built-in table
    master: MasterSettings = Field(default_factory=MasterSettings)
    near: NearSettings = Field(default_factory=NearSettings)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    _embedded: Embedded | None = PrivateAttr(default=None)

    @property
    def embedded(self) -> Embedded | None:
        """The scan's price table and policies, when this config was read back from a catalog; None: read
        the files it names."""
        return self._embedded

    def with_embedded(self, embedded: Embedded) -> Config:
        copy = self.model_copy()
        copy._embedded = embedded
        return copy

    def bucket_settings(self, bucket: str, uri: str) -> BucketSettings:
        """Every `buckets:` entry matching the bucket name or the object URI (glob), merged in file order.

        These override what a connector lists; `defaults` only fill what neither gives.
        """
        merged: dict[str, Any] = {}
        for pattern, settings in self.buckets.items():
            if fnmatch.fnmatchcase(bucket, pattern) or fnmatch.fnmatchcase(uri, pattern):
                merged.update(settings.model_dump(exclude_none=True))
        # Asked per object read and per record priced: no model built when no entry matches.
        return BucketSettings(**merged) if merged else _NO_SETTINGS


def format_validation_error(path: Path | str, text: str, err: ValidationError, prefix: str = "") -> str:
    """One line per error: `file:line: field: message`."""
    lines = []
    node = _node_of(text)
    for e in err.errors():
        loc = tuple(e["loc"])
        line = line_at(node, loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{where}: {prefix}{field}: {e['msg']}")
    return "\n".join(lines)


def _node_of(text: str) -> yaml.Node | None:
    """The node tree of text that has parsed before (for error lines); None if it does not parse."""
    try:
        return parse_yaml(text, "", aliases=True).node
    except UsageError:
        return None


def read_yaml(path: Path) -> tuple[str, Any]:
    """Read a config or price file (bounded: `tierscan.scanner.core.safe_yaml`), with UsageError naming file and
    line."""
    doc = read_yaml_file(path, MAX_CONFIG_BYTES, "config and price files", aliases=True)
    return doc.text, doc.data


def _parse_yaml(text: str, name: str) -> Any:
    return parse_yaml(text, name, "config and price files", aliases=True).data


def load_config(path: Path | None) -> Config:
    """The config at `path`, or the defaults when no file is given. Relative paths resolve against it."""
    if path is None:
        return Config()
    text, data = read_yaml(path)
    return _validated(text, data, str(path), path.parent)


def load_config_text(text: str, name: str) -> Config:
    """A config given as text (the `TIERSCAN_CONFIG` variable, or an object fetched from `--config URI`):
    containers get it without a mounted file. `name` stands for the file in messages; relative paths
    resolve against the working directory, as there is no folder to resolve them against."""
    if len(text) > MAX_CONFIG_BYTES:
        raise UsageError(f"{name}: config and price files are limited to {MAX_CONFIG_BYTES // 1024} KiB")
    return _validated(text, _parse_yaml(text, name), name, Path("."))


def _validated(text: str, data: Any, path: str, base: Path) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}:1: the config file must be a mapping of settings")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise UsageError(format_validation_error(path, text, exc)) from exc
    updates: dict[str, Any] = {}
    if config.prices is not None and not config.prices.is_absolute():
        updates["prices"] = base / config.prices
    if config.db is not None and not config.db.is_absolute():
        updates["db"] = base / config.db
    files = [f if f.is_absolute() else base / f for f in config.policies.files]
    updates["policies"] = config.policies.model_copy(update={"files": files})
    updates["targets"] = [
        t if "://" in t or Path(t).is_absolute() else str(base / t) for t in config.targets
    ]
    return config.model_copy(update=updates)

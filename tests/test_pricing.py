"""Price table: built-in figures and provenance, lookups and fallbacks, override merging and errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tierscan.scanner.core.config import BucketSettings, Config
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import InventoryRecord, Tier
from tierscan.scanner.pricing.check import check_bucket_settings
from tierscan.scanner.pricing.table import PriceTable, price_as_from_config


def record(**overrides: object) -> InventoryRecord:
    fields: dict[str, object] = dict(
        uri="file:///data/photos/archive/a.jpg",
        provider="local",
        bucket="archive",
        key="a.jpg",
        size=1,
        tier=Tier.archive,
        storage_class="DEEP_ARCHIVE",
        region="ap-east-1",
        jurisdiction="HK",
        modified=datetime(2025, 1, 1, tzinfo=UTC),
        status="listed",
    )
    fields.update(overrides)
    return InventoryRecord(**fields)


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.builtin()


def test_every_builtin_region_names_its_source_and_date() -> None:
    raw = yaml.safe_load(resources.files("tierscan.scanner.data").joinpath("prices.yaml").read_text(encoding="utf-8"))
    for provider in raw["providers"].values():
        for region in provider["regions"].values():
            assert region["source"] and region["as_of"]
    # Hong Kong first, then Mainland China, then the US defaults.
    assert list(raw["providers"]["s3"]["regions"]) == [
        "ap-east-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-east-1",
    ]
    assert next(iter(raw["providers"]["gcs"]["regions"])) == "asia-east2"
    assert next(iter(raw["providers"]["azure"]["regions"])) == "eastasia"


@pytest.mark.parametrize(
    ("provider", "cls", "days"),
    [
        ("s3", "STANDARD", 0),
        ("s3", "STANDARD_IA", 30),
        ("s3", "ONEZONE_IA", 30),
        ("s3", "GLACIER_IR", 90),
        ("s3", "GLACIER", 90),
        ("s3", "DEEP_ARCHIVE", 180),
        ("gcs", "NEARLINE", 30),
        ("gcs", "COLDLINE", 90),
        ("gcs", "ARCHIVE", 365),
        ("azure", "Cool", 30),
        ("azure", "Cold", 90),
        ("azure", "Archive", 180),
    ],
)
def test_minimum_storage_durations(table: PriceTable, provider: str, cls: str, days: int) -> None:
    assert table.price_for(provider, cls, "anywhere").min_days == days


def test_region_lookup_hong_kong(table: PriceTable) -> None:
    price = table.price_for("s3", "DEEP_ARCHIVE", "ap-east-1")
    assert price.priced_as == "s3/DEEP_ARCHIVE/ap-east-1"
    assert price.note is None and not price.unknown
    assert price.source.startswith("https://aws.amazon.com/")
    assert price.storage_gb_month > 0 and price.retrieval_gb > 0 and price.as_of is not None


def test_cny_prices_are_converted_at_the_fixed_rate(table: PriceTable) -> None:
    raw = yaml.safe_load(resources.files("tierscan.scanner.data").joinpath("prices.yaml").read_text(encoding="utf-8"))
    cny = raw["providers"]["s3"]["regions"]["cn-north-1"]["classes"]["STANDARD"]["storage_gb_month"]
    rate = raw["currencies"]["CNY"]["usd"]
    price = table.price_for("s3", "STANDARD", "cn-north-1")
    assert price.currency == "CNY" and price.usd_rate == rate
    assert price.storage_gb_month == pytest.approx(cny * rate)
    assert price.estimate
    assert "CNY converted at" in price.describe()


def test_aliases_and_case_insensitive_names(table: PriceTable) -> None:
    assert table.price_for("gs", "nearline", "ASIA-EAST2").priced_as == "gcs/NEARLINE/asia-east2"
    assert table.price_for("az", "Hot", "eastasia").priced_as == "azure/HOT/eastasia"


def test_unknown_region_falls_back_to_the_provider_default(table: PriceTable) -> None:
    price = table.price_for("s3", "STANDARD", "eu-west-1")
    assert price.priced_as == "s3/STANDARD/us-east-1"
    assert price.note and "eu-west-1" in price.note
    assert price.storage_gb_month == table.price_for("s3", "STANDARD", "us-east-1").storage_gb_month


def test_unknown_provider_or_class_is_zero_and_flagged(table: PriceTable) -> None:
    for price in (
        table.price_for("wasabi", "STANDARD", "us-east-1"),
        table.price_for("s3", "SNOW", "us-east-1"),
    ):
        assert price.unknown
        assert (price.storage_gb_month, price.retrieval_gb, price.get_per_1000, price.min_days) == (
            0,
            0,
            0,
            0,
        )
        assert price.describe().startswith("unpriced")


def test_unknown_class_with_a_tier_is_priced_as_that_tiers_class(table: PriceTable) -> None:
    price = table.price_for("s3", "archive", "us-east-1", Tier.archive)
    assert price.priced_as == "s3/GLACIER/us-east-1"
    assert price.note and "archive" in price.note


def test_local_is_free_but_not_unknown(table: PriceTable) -> None:
    price = table.price_for("local", "hot", "local")
    assert not price.unknown and price.note is None
    assert price.storage_gb_month == 0


def test_price_as_prices_a_local_folder_as_a_cloud_bucket(table: PriceTable) -> None:
    rec = record()
    assert table.price_for_object(rec, None).storage_gb_month == 0
    as_s3 = table.price_for_object(rec, "s3")
    assert as_s3 == table.price_for("s3", "DEEP_ARCHIVE", "ap-east-1")
    config = Config(buckets={"archive": BucketSettings(price_as="s3")})
    assert price_as_from_config(config)(rec) == "s3"
    assert price_as_from_config(config)(record(bucket="other", uri="file:///data/photos/other/a.jpg")) is None


def test_load_without_override_is_the_builtin() -> None:
    assert PriceTable.load(None) is PriceTable.builtin()


def test_override_merges_over_the_builtin(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n"
        "  s3:\n"
        "    regions:\n"
        "      ap-east-1:\n"
        "        classes:\n"
        "          standard: {storage_gb_month: 0.03}\n"
        "      ap-southeast-1:\n"
        "        source: https://example.com/negotiated\n"
        "        as_of: 2026-01-01\n"
        "        classes:\n"
        "          STANDARD: {storage_gb_month: 0.02, get_per_1000: 0.0003}\n"
        "currencies:\n"
        "  CNY: {usd: 0.1}\n",
        encoding="utf-8",
    )
    table = PriceTable.load(path)
    builtin = PriceTable.builtin()
    assert table.origin == f"builtin + {path}"
    changed = table.price_for("s3", "STANDARD", "ap-east-1")
    assert changed.storage_gb_month == 0.03
    assert changed.source == f"override {path}"  # a user's figure is not credited to AWS
    assert changed.as_of == date.fromtimestamp(path.stat().st_mtime) and not changed.estimate
    # Fields the override left alone keep their built-in values.
    assert changed.get_per_1000 == builtin.price_for("s3", "STANDARD", "ap-east-1").get_per_1000
    assert table.price_for("s3", "DEEP_ARCHIVE", "ap-east-1") == builtin.price_for(
        "s3", "DEEP_ARCHIVE", "ap-east-1"
    )
    added = table.price_for("s3", "STANDARD", "ap-southeast-1")
    assert (added.storage_gb_month, added.source, added.note) == (
        0.02,
        "https://example.com/negotiated",
        None,
    )
    assert table.price_for("s3", "STANDARD", "cn-north-1").usd_rate == 0.1


def test_malformed_override_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n"
        "  s3:\n"
        "    regions:\n"
        "      ap-east-1:\n"
        "        classes:\n"
        "          STANDARD:\n"
        "            storage_gb_month: cheap\n",
        encoding="utf-8",
    )
    with pytest.raises(UsageError) as err:
        PriceTable.load(path)
    message = str(err.value)
    assert f"{path}:7:" in message
    assert "storage_gb_month" in message


def test_override_with_unknown_currency_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n"
        "  azure:\n"
        "    regions:\n"
        "      chinaeast2:\n"
        "        source: https://www.azure.cn/pricing/details/storage/blobs/\n"
        "        as_of: 2026-01-01\n"
        "        currency: EUR\n"
        "        classes:\n"
        "          HOT: {storage_gb_month: 0.1}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        UsageError, match=rf"{path}:7: providers\.azure\.regions\.chinaeast2\.currency: .*EUR"
    ):
        PriceTable.load(path)


def test_override_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("providers:\n  s3: [unclosed\n", encoding="utf-8")
    with pytest.raises(UsageError, match=rf"{path}:\d+: not valid YAML"):
        PriceTable.load(path)


def test_override_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match=rf"{path}:1:"):
        PriceTable.load(path)


def test_override_of_a_builtin_region_keeps_untouched_classes_provenance(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n"
        "  GCS:\n"
        "    regions:\n"
        "      asia-east2:\n"
        "        source: https://example.com/quote\n"
        "        as_of: 2026-02-01\n"
        "        classes:\n"
        "          Standard: {storage_gb_month: 0.021}\n",
        encoding="utf-8",
    )
    table = PriceTable.load(path)
    quoted = table.price_for("gs", "STANDARD", "asia-east2")
    assert (quoted.storage_gb_month, quoted.source, quoted.as_of, quoted.estimate) == (
        0.021,
        "https://example.com/quote",
        date(2026, 2, 1),
        False,
    )
    # NEARLINE was not in the override: still the built-in figure, source, date and estimate flag.
    assert table.price_for("gs", "NEARLINE", "asia-east2") == PriceTable.builtin().price_for(
        "gs", "NEARLINE", "asia-east2"
    )


def test_override_must_use_provider_names_not_aliases(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n"
        "  gs:\n"
        "    regions:\n"
        "      x: {source: s, as_of: 2026-01-01, classes: {STANDARD: {storage_gb_month: 0.1}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(UsageError, match=rf"{path}:2: providers\.gs: .*alias of gcs"):
        PriceTable.load(path)


def _settings_problems(buckets: dict[str, dict[str, str]], **extra: object) -> str:
    config = Config.model_validate({"buckets": buckets, **extra})
    try:
        check_bucket_settings(config, PriceTable.builtin(), "t.yaml")
    except UsageError as exc:
        return str(exc)
    return ""


def test_bucket_settings_that_the_price_table_knows_pass() -> None:
    assert _settings_problems({
        "hk": {"price_as": "s3", "storage_class": "deep_archive", "region": "ap-east-1"},
        "az": {"price_as": "az", "storage_class": "Cool", "region": "eastasia"},
        "local": {"storage_class": "archive"},
        "eu": {"storage_class": "NEARLINE", "region": "europe-west3"},
    }) == ""


def test_misspelt_bucket_settings_are_refused_with_what_was_meant() -> None:
    text = _settings_problems({"a": {"price_as": "s4", "storage_class": "STANDARD_AI", "region": "ap-east1"}})
    lines = text.splitlines()
    assert len(lines) == 3 and all(line.startswith("t.yaml: buckets.a.") for line in lines)
    assert "'s4' is not a provider of the price table; did you mean 's3'?" in lines[0]
    assert "did you mean 'STANDARD_IA'?" in lines[1]
    assert "did you mean 'ap-east-1'?" in lines[2] and "jurisdictions:" in lines[2]


def test_a_class_is_checked_against_the_provider_it_is_priced_as() -> None:
    text = _settings_problems({"a": {"price_as": "azure", "storage_class": "GLACIER"}})
    assert "'GLACIER' is not a storage class of azure" in text


def test_a_region_mapped_in_the_config_is_known() -> None:
    assert "region" in _settings_problems({"a": {"region": "hk-private-dc"}})
    assert _settings_problems({"a": {"region": "hk-private-dc"}},
                              jurisdictions={"hk-private-dc": {"jurisdiction": "HK", "gba": True}}) == ""

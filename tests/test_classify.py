"""The one classification step: tier, native class, readability, region and jurisdiction of a listed object
from its raw facts, the config's bucket entries and defaults, the tier table and the region map."""

from __future__ import annotations

from tierscan.scanner.core.classify import Classifier, Placement
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import Tier


def s3(config: Config | None = None) -> Classifier:
    return Classifier(config or Config(), "s3", restores=True)


def test_the_listings_class_and_region_place_an_object() -> None:
    assert s3().place("photos", "s3://photos/a.jpg", "STANDARD_IA", "ap-east-1") == Placement(
        Tier.cool, "STANDARD_IA", True, "ap-east-1", "HK")
    assert s3().place("cn", "s3://cn/a.jpg", "GLACIER_IR", "cn-north-1") == Placement(
        Tier.cold, "GLACIER_IR", True, "cn-north-1", "CN")


def test_archive_tiers_need_a_restore_only_where_the_backend_has_restores() -> None:
    assert not s3().place("b", "s3://b/a.jpg", "DEEP_ARCHIVE", "us-east-1").readable
    gcs = Classifier(Config(), "gcs", restores=False)
    assert gcs.place("b", "gs://b/a.jpg", "ARCHIVE", "asia-east2") == Placement(
        Tier.archive, "ARCHIVE", True, "asia-east2", "HK")
    # The backend knows better (an Intelligent-Tiering object in an archive access tier).
    assert not s3().place("b", "s3://b/a.jpg", "INTELLIGENT_TIERING", "us-east-1", readable=False).readable


def test_config_entries_win_over_the_listing_and_defaults_fill_the_gaps() -> None:
    config = Config.model_validate({
        "defaults": {"region": "eastasia"},
        "buckets": {"hk-*": {"price_as": "s3", "storage_class": "GLACIER_IR", "region": "ap-east-1"},
                    "s3://mixed/cold/*": {"tier": "cold"}}})
    local = Classifier(config, "local", restores=False)
    assert local.place("hk-archive", "file:///e/hk-archive/x.jpg", None, None) == Placement(
        Tier.cold, "GLACIER_IR", True, "ap-east-1", "HK")  # priced as S3: S3's table places the class
    assert local.place("other", "file:///e/other/x.jpg", None, None) == Placement(
        Tier.hot, "hot", True, "eastasia", "HK")
    placed = s3(config)
    assert placed.place("mixed", "s3://mixed/cold/a.jpg", "STANDARD", "us-east-1").tier is Tier.cold
    assert placed.place("mixed", "s3://mixed/hot/a.jpg", "STANDARD", "us-east-1").tier is Tier.hot


def test_unknown_classes_and_regions_are_placed_safely() -> None:
    placed = s3(Config.model_validate({"defaults": {}})).place("b", "s3://b/a.jpg", "SOMETHING_NEW", None)
    assert placed == Placement(Tier.hot, "SOMETHING_NEW", True, "unknown", "unknown")  # read, and say so
    assert s3().place("b", "s3://b/a.jpg", "STANDARD", None).region == "local"  # the built-in default


def test_the_config_region_map_extends_the_builtin_one() -> None:
    config = Config.model_validate({"jurisdictions": {"hk-private-dc": {"jurisdiction": "HK", "gba": True}}})
    assert s3(config).place("b", "s3://b/a.jpg", "STANDARD", "hk-private-dc").jurisdiction == "HK"
    assert s3().place("b", "s3://b/a.jpg", "STANDARD", "hk-private-dc").jurisdiction == "unknown"

import pytest

from tierscan.scanner.core.models import Tier
from tierscan.scanner.core.tiers import JurisdictionMap, TierTable


@pytest.mark.parametrize(
    "provider, storage_class, tier, readable",
    [
        ("s3", "STANDARD", Tier.hot, True),
        ("s3", "INTELLIGENT_TIERING", Tier.hot, True),
        ("s3", "STANDARD_IA", Tier.cool, True),
        ("s3", "ONEZONE_IA", Tier.cool, True),
        ("s3", "GLACIER_IR", Tier.cold, True),
        ("s3", "GLACIER", Tier.archive, False),
        ("s3", "DEEP_ARCHIVE", Tier.archive, False),
        ("gcs", "NEARLINE", Tier.cool, True),
        ("gcs", "COLDLINE", Tier.cold, True),
        ("gcs", "ARCHIVE", Tier.archive, True),
        ("azure", "Hot", Tier.hot, True),
        ("azure", "Cool", Tier.cool, True),
        ("azure", "Cold", Tier.cold, True),
        ("azure", "Archive", Tier.archive, False),
        ("azure", "archive", Tier.archive, False),
    ],
)
def test_tier_table_matches_the_design(provider, storage_class, tier, readable):
    cls = TierTable.builtin().lookup(provider, storage_class)
    assert (cls.tier, cls.readable) == (tier, readable)


def test_unknown_class_is_hot_and_readable():
    cls = TierTable.builtin().lookup("s3", "SOMETHING_NEW")
    assert (cls.tier, cls.readable) == (Tier.hot, True)


@pytest.mark.parametrize(
    "region, code, gba",
    [
        ("ap-east-1", "HK", True),
        ("asia-east2", "HK", True),
        ("ASIA-EAST2", "HK", True),
        ("eastasia", "HK", True),
        ("cn-north-1", "CN", False),
        ("cn-northwest-1", "CN", False),
        ("chinaeast2", "CN", False),
        ("chinanorth3", "CN", False),
        ("us-east-1", "US", False),
        ("US-CENTRAL1", "US", False),
        ("mars-1", "unknown", False),
    ],
)
def test_jurisdiction_map(region, code, gba):
    j = JurisdictionMap.builtin().lookup(region)
    assert (j.code, j.gba) == (code, gba)


def test_users_extend_the_map_and_exact_keys_beat_prefixes():
    m = JurisdictionMap.builtin({"us-hk-edge": {"jurisdiction": "HK", "gba": True}})
    assert m.lookup("us-hk-edge").code == "HK"
    assert m.lookup("us-west-2").code == "US"

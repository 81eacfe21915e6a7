from pathlib import Path

import pytest

from tierscan.scanner.core.config import MAX_CONFIG_BYTES, Config, load_config, load_config_text
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import Tier


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tierscan.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_defaults():
    config = load_config(None)
    assert config.defaults.tier is Tier.hot
    assert config.defaults.region == "local"
    assert config.policies.packs == ["builtin"]


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    config = load_config(write(tmp_path, "targets: [estate]\nprices: p.yaml\npolicies: {files: [x.yaml]}\n"))
    assert config.targets == [str(tmp_path / "estate")]
    assert config.prices == tmp_path / "p.yaml"
    assert config.policies.files == [tmp_path / "x.yaml"]


def test_bucket_settings_merge_in_file_order_and_match_globs():
    config = Config.model_validate(
        {"buckets": {"hk-*": {"region": "ap-east-1"}, "hk-cold": {"tier": "cold"}}}
    )
    s = config.bucket_settings("hk-cold", "file:///x/hk-cold/a.jpg")
    assert (s.region, s.tier) == ("ap-east-1", Tier.cold)
    assert config.bucket_settings("cn-hot", "file:///x/cn-hot/a.jpg").region is None


def test_unknown_key_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "version: 1\nbuckets:\n  hk:\n    teir: hot\n")
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert f"{path}:4: buckets.hk.teir: Extra inputs are not permitted" in str(err.value)


def test_bad_value_names_the_field(tmp_path):
    path = write(tmp_path, "near:\n  phash_max_distance: 99\n")
    with pytest.raises(UsageError, match=r":2: near.phash_max_distance: Input should be less than or equal to 32"):
        load_config(path)


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "buckets:\n  hk: {tier: hot\n")
    with pytest.raises(UsageError, match=rf"{path}:\d+: not valid YAML"):
        load_config(path)


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_config_must_be_a_mapping(tmp_path):
    with pytest.raises(UsageError, match=":1: the config file must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_aliases_in_a_config_may_share_settings_but_not_explode(tmp_path):
    """Anchors that share bucket settings are ordinary YAML; a config may come from a results store or a
    shared folder, so a billion-laughs value must not expand."""
    shared = tmp_path / "shared.yaml"
    shared.write_text("buckets:\n  hk-*: &hk {region: ap-east-1, tier: hot}\n  photos-hk: *hk\n", encoding="utf-8")
    assert load_config(shared).bucket_settings("photos-hk", "s3://photos-hk/a.jpg").region == "ap-east-1"
    laughs = tmp_path / "laughs.yaml"
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    laughs.write_text("jurisdictions:\n" + "".join(f"  {line}\n" for line in levels), encoding="utf-8")
    with pytest.raises(UsageError, match=rf"^{laughs}: its YAML aliases expand to more than"):
        load_config(laughs)


def test_oversized_or_non_utf8_configs_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("targets: []\n" + "#" * (MAX_CONFIG_BYTES + 1) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match="limited to"):
        load_config(big)
    with pytest.raises(UsageError, match="limited to"):
        load_config_text(big.read_text(encoding="utf-8"), "s3://results/tierscan.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("targets: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        load_config(latin)

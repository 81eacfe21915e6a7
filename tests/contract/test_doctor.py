"""`tierscan doctor` against the emulators, as a user runs it: a clean environment, the command line, its
lines and exit status. Azurite is reached through a connection string only (DefaultAzureCredential's
token path needs Azure AD, which no emulator serves); fake-gcs-server is anonymous."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from emulators import AZURITE_ACCOUNT, Emulator

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "tierscan.scanner", "doctor"]


def _env(**extra: str) -> dict[str, str]:
    """The machine's environment without any cloud settings or credentials, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AZURE_", "STORAGE_EMULATOR", "GOOGLE_", "TIERSCAN_"))}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
               **extra)
    return env


def _doctor(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    done = subprocess.run([*CLI, *args], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def _checks(lines: list[str]) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail and fix) of one target's lines."""
    found = {}
    for line in lines:
        status, _, rest = line.partition("  ")
        name, _, detail = rest.strip().split("  ", 1)[1].partition(": ")
        found[name] = (status.strip(), detail)
    return found


@pytest.fixture
def moto_env(emulators: dict[str, Emulator], s3_seeded: str) -> dict[str, str]:
    return _env(**emulators["moto"].env)


def _s3(endpoint: str) -> boto3.client:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_s3_with_credentials_passes_every_check(moto_env: dict[str, str], s3_seeded: str) -> None:
    status, lines = _doctor(moto_env, "s3://ts-data")
    assert status == 0, lines
    checks = _checks(lines)
    assert list(checks) == ["credentials", "identity", "endpoint", "region", "list", "read", "versioning", "inventory"]
    assert all(line.startswith("ok    s3://ts-data  ") for line in lines), lines
    assert checks["credentials"][1] == "environment variables (AWS_ACCESS_KEY_ID)"
    assert checks["identity"][1].startswith("arn:aws:") and "(account 123456789012)" in checks["identity"][1]
    assert checks["endpoint"][1] == f"{s3_seeded} (AWS_ENDPOINT_URL)"
    assert checks["region"][1] == "us-east-1 (the bucket's location)"
    assert checks["list"][1].startswith("works: ")
    assert checks["read"][1].startswith("64 bytes of s3://ts-data/")
    assert checks["versioning"][1].startswith("off")
    assert checks["inventory"][1].startswith("none configured")


def test_s3_without_credentials_fails_first_with_the_fix(moto_env: dict[str, str]) -> None:
    env = {k: v for k, v in moto_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    status, lines = _doctor(env, "s3://ts-data")
    assert status == 3
    assert lines == ["fail  s3://ts-data  credentials: no AWS credentials found (credentials) -- fix: set AWS_PROFILE, "
                     "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an IAM role gives them"]


def test_s3_wrong_bucket_fails_at_its_region(moto_env: dict[str, str]) -> None:
    status, lines = _doctor(moto_env, "s3://ts-data", "s3://no-such-bucket-tierscan")
    assert status == 3
    wrong = [line for line in lines if "no-such-bucket" in line]
    assert wrong[-1].startswith("fail  s3://no-such-bucket-tierscan  region: no such bucket (not-found) -- fix: check "
                                "the bucket's name")
    assert "list" not in _checks(wrong)  # checks stop at the first failure
    # The other target's lines are all there, padded to the longer target.
    assert sum(line.startswith("ok    s3://ts-data                 ") for line in lines) == 8


def test_s3_versioned_bucket_and_json(moto_env: dict[str, str], s3_seeded: str) -> None:
    s3 = _s3(s3_seeded)
    s3.create_bucket(Bucket="ts-doctor-versioned")
    s3.put_bucket_versioning(Bucket="ts-doctor-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="ts-doctor-versioned", Key="a.bin", Body=b"x" * 10)
    status, lines = _doctor(moto_env, "s3://ts-doctor-versioned", "--format", "json")
    assert status == 0
    answer = json.loads("\n".join(lines))
    checks = {c["check"]: c for c in answer["checks"]}
    assert checks["versioning"]["status"] == "ok"
    assert checks["versioning"]["detail"].startswith("on: ")
    assert checks["read"]["detail"] == "10 bytes of s3://ts-doctor-versioned/a.bin"
    assert answer["summary"] == {"ok": 8, "warn": 0, "fail": 0}
    assert {c["target"] for c in answer["checks"]} == {"s3://ts-doctor-versioned"}


def test_s3_inventory_configured_without_a_report_fails_with_the_fix(moto_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    config = tmp_path / "tierscan.yaml"
    config.write_text("buckets:\n  ts-data:\n    inventory: {uri: s3://ts-page/inventory/ts-data/daily}\n")
    status, lines = _doctor(moto_env, "s3://ts-data", "--config", str(config))
    assert status == 3
    checks = _checks(lines)
    assert checks["list"][0] == "ok"  # the listing check lists the bucket itself, not the report
    assert checks["inventory"][0] == "fail"
    assert "no complete inventory report" in checks["inventory"][1]
    assert "-- fix: check the inventory's uri" in checks["inventory"][1]


def test_an_endpoint_nothing_listens_on_fails_the_target(moto_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status, lines = _doctor({**moto_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}, "s3://ts-data")
    assert status == 3
    checks = _checks(lines)
    assert checks["identity"][0] == "warn"  # STS at that endpoint: unknown, not the cause
    assert checks["region"] == ("fail", f"connection refused at 127.0.0.1:{port} (network) -- fix: check the "
                                "endpoint (AWS_ENDPOINT_URL), the network and any proxy settings")
    assert list(checks)[-1] == "region"


def test_azurite_through_a_connection_string(emulators: dict[str, Emulator], azure_seeded: str) -> None:
    env = _env(**emulators["azurite"].env)
    target = f"az://{AZURITE_ACCOUNT}/ts-data"
    status, lines = _doctor(env, target)
    assert status == 0, lines  # a warning (the region) is no failure
    checks = _checks(lines)
    assert checks["credentials"] == ("ok", f"AZURE_STORAGE_CONNECTION_STRING for account {AZURITE_ACCOUNT}")
    assert checks["identity"] == ("ok", f"the development account key of {AZURITE_ACCOUNT} (Azurite)")
    assert checks["endpoint"] == ("ok", azure_seeded)
    assert checks["region"][0] == "warn" and "-- fix: set AZURE_STORAGE_REGION" in checks["region"][1]
    assert checks["list"][0] == "ok"
    # archive.bin is listed first and is never read: the first readable object is.
    assert checks["read"] == ("ok", f"64 bytes of {target}/big.bin")
    assert "versioning" not in checks  # the connector has none


def test_azurite_missing_container(emulators: dict[str, Emulator], azure_seeded: str) -> None:
    env = _env(**emulators["azurite"].env)
    target = f"az://{AZURITE_ACCOUNT}/no-such-container"
    status, lines = _doctor(env, target)
    assert status == 3
    assert lines[-1].startswith(f"fail  {target}  list: no such container")
    assert lines[-1].endswith("(not-found) -- fix: check the account and container names")


def test_fake_gcs_anonymous_and_a_missing_bucket(emulators: dict[str, Emulator], gcs_seeded: str) -> None:
    env = _env(**emulators["fakegcs"].env)
    status, lines = _doctor(env, "gs://ts-data")
    assert status == 0, lines
    checks = _checks(lines)
    assert checks["credentials"] == ("ok", "none: requests to an emulator are anonymous (STORAGE_EMULATOR_HOST)")
    assert checks["identity"] == ("ok", "anonymous")
    assert checks["endpoint"] == ("ok", gcs_seeded)
    assert checks["region"] == ("ok", "us-central1 (the bucket's location)")
    assert checks["read"][1].startswith("64 bytes of gs://ts-data/")
    assert checks["versioning"][1].startswith("off")

    status, lines = _doctor(env, "gs://no-such-bucket-tierscan")
    assert status == 3
    assert lines[-1].startswith("fail  gs://no-such-bucket-tierscan  region: no such bucket (not-found) -- fix: "
                                "check the bucket's name")


def test_s3_listing_stops_at_the_first_page(moto_env: dict[str, str]) -> None:
    status, lines = _doctor(moto_env, "s3://ts-page")
    assert status == 0
    assert _checks(lines)["list"] == ("ok", "works: 1,000 objects listed, not further")


def test_s3_inventory_report_found_and_its_age(moto_env: dict[str, str], s3_seeded: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from inventory_report import put_s3_report

    s3 = _s3(s3_seeded)
    s3.create_bucket(Bucket="doc-inv-dest")
    rows = [{"Bucket": "ts-data", "Key": "big.bin", "IsLatest": True, "IsDeleteMarker": False, "Size": 1,
             "LastModifiedDate": datetime.now(UTC), "ETag": "0" * 32, "StorageClass": "STANDARD",
             "IsMultipartUploaded": False}]
    now = datetime.now(UTC)
    put_s3_report(s3, dest="doc-inv-dest", prefix="", bucket="ts-data", config_id="daily", files=[rows], fmt="CSV",
                  when=now - timedelta(days=1))
    put_s3_report(s3, dest="doc-inv-dest", prefix="", bucket="ts-data", config_id="weekly", files=[rows], fmt="CSV",
                  when=now - timedelta(days=30))
    config = tmp_path / "tierscan.yaml"
    for config_id, status_wanted in (("daily", "ok"), ("weekly", "warn")):
        config.write_text(f"buckets:\n  ts-data:\n    inventory: {{uri: s3://doc-inv-dest/ts-data/{config_id}}}\n")
        status, lines = _doctor(moto_env, "s3://ts-data", "--config", str(config))
        assert status == 0, lines
        found, detail = _checks(lines)["inventory"]
        assert found == status_wanted
        assert detail.startswith(f"s3://doc-inv-dest/ts-data/{config_id}: ")
    assert "30.0 days old (more than 8)" in detail and "-- fix: check that the inventory configuration" in detail

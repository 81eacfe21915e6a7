"""`tierscan doctor` without emulators: local folders through the command line, the output's form, and the
credential checks each cloud connector makes before any request to storage (the emulator runs are in
tests/contract/test_doctor.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from click.testing import CliRunner

from tierscan.connectors.base import Check
from tierscan.scanner.cli import cli
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import Cause, ObjectDenied, TargetError, TransientError, UsageError
from tierscan.scanner.scan.preflight import as_json, lines


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", *args])
    return result.exit_code, result.stdout


def test_a_local_folder_passes_and_one_object_is_read(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket" / "a.jpg").write_bytes(b"\xff\xd8" + b"x" * 500)
    (tmp_path / "bucket" / "b.jpg").write_bytes(b"small")
    status, out = _run(str(tmp_path))
    assert status == 0
    assert out.splitlines() == [
        f"ok    {tmp_path}  folder: {tmp_path} on a local disk",
        f"ok    {tmp_path}  list: works: 2 objects",
        f"ok    {tmp_path}  read: 64 bytes of {(tmp_path / 'bucket' / 'a.jpg').as_uri()}",
        f"ok    {tmp_path}  inventory: none configured: scans list the objects",
    ]


def test_an_empty_folder_warns_that_nothing_was_read(tmp_path: Path) -> None:
    status, out = _run(str(tmp_path))
    assert status == 0  # a warning is no failure
    assert f"warn  {tmp_path}  read: nothing read: no readable object among the first 1,000 listed" in out


def test_a_missing_folder_fails_with_the_fix_and_exit_3(tmp_path: Path) -> None:
    status, out = _run(str(tmp_path), str(tmp_path / "gone"))
    assert status == 3
    assert out.splitlines()[-1] == (f"fail  {tmp_path / 'gone'}  folder: no such folder -- fix: check the path (each "
                                    "top-level sub-folder of it is a bucket)")
    # The first target, shorter, is padded to the longer one's width.
    assert out.splitlines()[0].startswith(f"ok    {tmp_path}{' ' * len('/gone')}  folder: ")


def test_json_output(tmp_path: Path) -> None:
    status, out = _run(str(tmp_path / "gone"), "--format", "json")
    assert status == 3
    assert json.loads(out) == {
        "checks": [{"target": str(tmp_path / "gone"), "check": "folder", "status": "fail",
                    "detail": "no such folder", "fix": "check the path (each top-level sub-folder of it is a bucket)"}],
        "summary": {"ok": 0, "warn": 0, "fail": 1},
    }


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _run("ftp://host/x")[0] == 2
    config = tmp_path / "tierscan.yaml"
    config.write_text("defaults: {tier: hot}\n")
    assert _run("--config", str(config))[0] == 2  # no targets named, none in the config


def test_the_config_targets_are_the_default(tmp_path: Path) -> None:
    config = tmp_path / "tierscan.yaml"
    config.write_text(f"targets: [{tmp_path}]\n")
    status, out = _run("--config", str(config))
    assert status == 0
    assert out.startswith(f"ok    {tmp_path}  folder: ")


def test_lines_give_the_fix_of_failures_and_warnings_only() -> None:
    results = [("s3://a", Check("list", "ok", "works", "unused")),
               ("s3://bb", Check("region", "warn", "unknown", "set it")),
               ("s3://a", Check("read", "fail", "denied", "grant it"))]
    assert lines(results) == ["ok    s3://a   list: works",
                              "warn  s3://bb  region: unknown -- fix: set it",
                              "fail  s3://a   read: denied -- fix: grant it"]
    assert as_json(results)["summary"] == {"ok": 1, "warn": 1, "fail": 1}


def test_failed_checks_take_the_errors_fix() -> None:
    target = Check.failed("list", TargetError("s3://b", Cause.denied, "listing denied", "grant s3:ListBucket"))
    assert target == Check("list", "fail", "listing denied (denied)", "grant s3:ListBucket")
    assert Check.failed("read", ObjectDenied("s3://b/k: AccessDenied (HTTP 403)")).fix.startswith("grant these")
    assert Check.failed("list", TransientError("s3://b: SlowDown (HTTP 503)")).detail.endswith("retries spent")
    assert Check.failed("x", UsageError("bad")).detail == "bad"


def test_a_check_that_hangs_fails_within_its_timeout() -> None:
    from tierscan.connectors.local import LocalConnector

    conn = LocalConnector(Config())
    conn.check_timeout = 0.05
    check = asyncio.run(conn.checked("list", asyncio.sleep(5, result="never")))
    assert check == Check("list", "fail", "no answer within 0.05 s",
                          "check the endpoint, the network and any proxy settings")


# ---- the cloud connectors' own checks, before any request to storage -------------------------------


def _refused() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text("[audit]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_PROFILE", "audit")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _preflight(conn: Any, target: str) -> list[Check]:
    from tierscan.connectors.base import parse_target

    async def run() -> list[Check]:
        async with conn:
            result: list[Check] = await conn.preflight(parse_target(target))
            return result

    return asyncio.run(run())


def test_s3_names_the_profile_its_credentials_come_from(aws_profile: None) -> None:
    from tierscan.connectors.s3 import S3Connector

    endpoint = _refused()
    checks = _preflight(S3Connector(Config(), endpoint_url=endpoint, request_timeout=5), "s3://bucket")
    assert checks[0] == Check("credentials", "ok", "shared credentials file (~/.aws/credentials or "
                              "AWS_SHARED_CREDENTIALS_FILE), profile audit")
    assert checks[1].name == "identity" and checks[1].status == "warn"  # STS there does not answer
    assert checks[2] == Check("endpoint", "ok", endpoint)
    assert checks[3].name == "region" and checks[3].status == "fail" and "connection refused" in checks[3].detail


def test_s3_a_profile_that_is_not_there_fails_the_credentials(aws_profile: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.connectors.s3 import S3Connector

    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    checks = _preflight(S3Connector(Config(), endpoint_url=_refused()), "s3://bucket")
    assert checks == [Check("credentials", "fail", "the credentials cannot be loaded (ProfileNotFound) (credentials)",
                            "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an IAM "
                            "role gives them")]


def test_gcs_names_the_service_account_of_its_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.connectors.gcs import GCSConnector

    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "audit@proj.iam.gserviceaccount.com",
                               "private_key": "unused", "token_uri": "https://oauth2.googleapis.com/token"}))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))

    async def run() -> tuple[Check, Check]:
        async with GCSConnector(Config()) as conn:
            return (await conn.checked("credentials", conn._credential_source()),
                    await conn.checked("identity", conn._identity()))

    credentials, identity = asyncio.run(run())
    assert credentials == Check("credentials", "ok", f"GOOGLE_APPLICATION_CREDENTIALS ({key}): a service account key")
    assert identity == Check("identity", "ok", "audit@proj.iam.gserviceaccount.com")


def _jwt(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class _Credential:
    """A token credential as azure-identity's are: `get_token` and `close`."""

    def __init__(self, token: str | None):
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.token is None:
            raise ClientAuthenticationError("no credential in the chain answered")
        return AccessToken(self.token, 2**31)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> _Credential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def test_azure_names_the_principal_of_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.connectors.azure import AzureConnector

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    token = _jwt({"upn": "auditor@example.com", "tid": "tenant-1", "oid": "o-1"})
    conn = AzureConnector(Config(), credential=_Credential(token), region="westeurope")
    assert _preflight(conn, "az://acct/photos") == [
        Check("credentials", "ok", "_Credential"),
        Check("identity", "ok", "user auditor@example.com (tenant tenant-1)"),
        Check("endpoint", "ok", "https://acct.blob.core.windows.net"),
        Check("region", "ok", "westeurope (from the configuration)"),
    ]
    app = AzureConnector(Config(), credential=_Credential(_jwt({"appid": "app-1"})), region="westeurope")
    assert _preflight(app, "az://acct/photos")[1] == Check("identity", "ok", "application app-1")


def test_azure_without_credentials_fails_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.connectors.azure import AzureConnector

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    conn = AzureConnector(Config(), credential=_Credential(None))
    assert _preflight(conn, "az://acct/photos") == [
        Check("credentials", "fail", "no Azure credentials found (credentials)",
              "set AZURE_STORAGE_CONNECTION_STRING, or sign in (az login) for DefaultAzureCredential")]


def test_azure_connection_strings_are_named_without_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierscan.connectors.azure import AzureConnector

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    secret = base64.b64encode(b"k" * 32).decode()
    for text, identity in (
        (f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret}",
         "the account key of acct (Shared Key)"),
        ("BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=SECRET",
         "a SAS token for acct"),
    ):
        checks = _preflight(AzureConnector(Config(), connection_string=text), "az://acct/photos")
        assert checks[0] == Check("credentials", "ok", "a connection string for account acct")
        assert checks[1] == Check("identity", "ok", identity)
        assert checks[2] == Check("endpoint", "ok", "https://acct.blob.core.windows.net")
        assert secret not in repr(checks) and "SECRET" not in repr(checks)

"""The S3 read path outside the SDK (`tierscan.connectors._s3_get`): the URL it takes from the SDK, the signature
it sends, the proxy it picks, the error codes it reads. Reads themselves are tested against moto in the
contract suite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import botocore.auth
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tierscan.connectors._s3_get import SignedGets, _GetSigner, error_code


def bucket_url(bucket: str, region: str, endpoint: str | None = None, style: str = "auto") -> str:
    async def ask() -> str:
        session = get_session()
        session.set_credentials("AKIDEXAMPLE", "secret")
        config = AioConfig(s3={"addressing_style": style})
        client = session.create_client("s3", region_name=region, endpoint_url=endpoint, config=config)
        async with client as s3:
            return await SignedGets.bucket_url(s3, bucket)

    return asyncio.run(ask())


def test_bucket_url_follows_the_sdks_addressing_rules() -> None:
    # Regional, virtual-hosted: Hong Kong is an opt-in region, which the global endpoint does not serve.
    assert bucket_url("hk-photos", "ap-east-1") == "https://hk-photos.s3.ap-east-1.amazonaws.com/"
    assert bucket_url("cn-marketing", "cn-north-1") == "https://cn-marketing.s3.cn-north-1.amazonaws.com.cn/"
    # Names that cannot be a TLS host name, a forced style, and an endpoint by IP address: path style.
    assert bucket_url("hk.photos", "ap-east-1") == "https://s3.ap-east-1.amazonaws.com/hk.photos/"
    assert bucket_url("photos", "eu-west-1", style="path") == "https://s3.eu-west-1.amazonaws.com/photos/"
    local = "http://127.0.0.1:9000"
    assert bucket_url("photos", "us-east-1", endpoint=local) == f"{local}/photos/"


@pytest.mark.parametrize(("url", "token", "if_match"), [
    ("https://hk-photos.s3.ap-east-1.amazonaws.com/2024/IMG_0001.JPG", None, None),
    ("https://hk-photos.s3.ap-east-1.amazonaws.com/" + quote("相片/a b+c~(1).jpg", safe="/~"),
     "session-token/with+chars==", '"9b2cf535f27731c974343645a3985328"'),
    ("http://127.0.0.1:9000/photos/k", None, '"d41d8cd98f00b204e9800998ecf8427e-3"'),
    ("https://s3.cn-north-1.amazonaws.com.cn:443/cn.marketing/x.png?" + urlencode({"versionId": "3/L4kq+z_a.b"}),
     None, None),
    ("http://[::1]:80/photos/k?" + urlencode({"versionId": "null"}), "t", None),
])
def test_get_signature_is_the_sdks(url: str, token: str | None, if_match: str | None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The same headers, signature included, as botocore's S3 signer gives the same GET at the same time.
    now = datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token).get_frozen_credentials()
    headers = {"Range": "bytes=0-262143"}
    if if_match:
        headers["If-Match"] = if_match
    expected = AWSRequest("GET", url, headers=headers)
    S3SigV4Auth(credentials, "s3", "ap-east-1").add_auth(expected)
    signer = _GetSigner()
    assert signer.sign(url, headers, credentials, "ap-east-1", now) == dict(expected.headers.items())
    # The signing key is kept; a request signed with it again is signed the same.
    assert signer.sign(url, headers, credentials, "ap-east-1", now) == dict(expected.headers.items())
    other = signer.sign(url, headers, credentials, "cn-north-1", now)["Authorization"]
    assert other != expected.headers["Authorization"]  # the region is part of the scope and the key


def test_proxy_is_taken_from_the_environment_unless_the_host_is_excluded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    gets = SignedGets(get_session(), max_connections=1, connect_timeout=1, read_timeout=1, user_agent="t")
    base = "https://b.s3.ap-east-1.amazonaws.com/"
    assert gets._proxy(base) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    gets = SignedGets(get_session(), max_connections=1, connect_timeout=1, read_timeout=1, user_agent="t")
    assert gets._proxy(base) == "http://proxy.internal:3128"
    assert gets._proxy("http://127.0.0.1:9000/b/") is None  # HTTPS_PROXY is for https only
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    gets = SignedGets(get_session(), max_connections=1, connect_timeout=1, read_timeout=1, user_agent="t")
    assert gets._proxy(base) is None


def test_error_code_is_read_from_the_xml_body() -> None:
    body = b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>'
    assert error_code(body) == "SlowDown"
    assert error_code(b"") is None
    assert error_code(b"<html>502 Bad Gateway</html>") is None

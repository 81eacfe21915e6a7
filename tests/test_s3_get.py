"""The S3 read path outside the SDK (`connectors._s3_get`): the URL it takes from the SDK, the proxy it
picks, the error codes it reads. Reads themselves are tested against moto in the contract suite."""

from __future__ import annotations

import asyncio

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from connectors._s3_get import SignedGets, error_code


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

"""S3 object reads without the SDK's per-call machinery: a GET signed with SigV4 and sent on aiohttp.

Why: a perceptual scan sends one GET per distinct image, and through aiobotocore each cost 4.2 ms of
client CPU (event hooks, endpoint rules, the CRT signer, response parsing); this path cost 2.9 ms with
botocore's `S3SigV4Auth`, most of it opening a connection, which stock moto closes after every answer
(`benchmarks/connectors.py`, 64 KiB reads, 32 in flight). Listing, HEADs, bucket settings and writes stay
on the SDK, where their per-call cost does not matter.

Signing: `S3SigV4Auth` builds an `HTTPHeaders` map, parses the URL three times and derives the signing key
with four HMACs for every request: 0.20-0.22 ms of CPU a GET (5,000 signs), where `_GetSigner` takes
0.04. `_GetSigner` signs the one request shape sent here, a bodiless GET with `Range` and
perhaps `If-Match`, exactly as `S3SigV4Auth` does (tests/test_s3_get.py compares their headers), keeping
the signing key per secret, day and region.

The request is the one the SDK would send: the bucket's URL comes from the SDK's endpoint rules, once per
bucket (endpoint, addressing style, region, partition); keys are quoted as
the SDK quotes them; requests are signed for the bucket's region with the session's credentials, which
the SDK's provider chain refreshes. TLS trusts the SDK's CA bundle (`AWS_CA_BUNDLE`, the profile's
`ca_bundle`); a proxy comes from the environment (`HTTPS_PROXY`/`HTTP_PROXY`, `NO_PROXY`), decided once
per bucket URL: aiohttp's own `trust_env` looks it up, and reads `~/.netrc`, on every request (1.6 ms).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, quote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from aiobotocore.session import AioSession
from botocore.httpsession import get_cert_path
from yarl import URL

__all__ = ["SignedGets", "error_code"]

_PROBE_KEY = "k"
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload hash
_DEFAULT_PORTS = {"http": 80, "https": 443}


def error_code(body: bytes) -> str | None:
    """The `<Code>` of an S3 XML error body (None when the body has none, as a HEAD's or a proxy's)."""
    found = _CODE.search(body[:4096])
    return found.group(1).decode("ascii", "replace") if found else None


def _host(parts: SplitResult) -> str:
    """The host SigV4 signs: lowercase, IPv6 in brackets, the port unless it is the scheme's default."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _canonical_query(query: str) -> str:
    """The URL's query as SigV4 signs it: its pairs (already encoded) sorted by key, then value."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


class _GetSigner:
    """SigV4 (`AWS4-HMAC-SHA256`) for a bodiless S3 GET, with the signing key derived once per secret, day
    and region."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str], bytes] = {}

    def sign(self, url: str, headers: dict[str, str], credentials: Any, region: str,
             now: datetime | None = None) -> dict[str, str]:
        """`headers` with the date, payload hash, session token and Authorization headers added.
        `credentials`: botocore frozen credentials (access_key, secret_key, token)."""
        parts = urlsplit(url)
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed = dict(headers, **{"X-Amz-Date": stamp, "X-Amz-Content-SHA256": _EMPTY_SHA256})
        if credentials.token:
            signed["X-Amz-Security-Token"] = credentials.token
        canonical = {k.lower(): " ".join(v.split()) for k, v in signed.items()}
        canonical["host"] = _host(parts)
        names = sorted(canonical)
        request = "\n".join((
            "GET", parts.path, _canonical_query(parts.query),
            "".join(f"{n}:{canonical[n]}\n" for n in names), ";".join(names), _EMPTY_SHA256))
        scope = f"{stamp[:8]}/{region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        signature = hmac.new(self._key(credentials.secret_key, stamp[:8], region), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        signed["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                                   f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return signed

    def _key(self, secret: str, day: str, region: str) -> bytes:
        found = self._keys.get((secret, day, region))
        if found is None:
            found = f"AWS4{secret}".encode()
            for part in (day, region, "s3", "aws4_request"):
                found = hmac.new(found, part.encode(), hashlib.sha256).digest()
            if len(self._keys) > 64:  # rotated secrets and past days
                self._keys.clear()
            self._keys[(secret, day, region)] = found
        return found


class SignedGets:
    """Signed GETs on one aiohttp session, created on first use and closed by `aclose`."""

    def __init__(self, session: AioSession, *, max_connections: int, connect_timeout: float,
                 read_timeout: float, user_agent: str):
        self._session = session
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._user_agent = user_agent
        self._http: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}  # bucket URL -> proxy URL
        self._credentials: object | None = None
        self._have_credentials = False
        self._signer = _GetSigner()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @staticmethod
    async def bucket_url(client: object, bucket: str) -> str:
        """The URL the SDK's own GetObject calls address `bucket`'s objects under (keys are appended,
        quoted), from the client's endpoint rules; no request is sent. Not a presigned URL: those use the
        global endpoint, which buckets in opt-in regions such as ap-east-1 (Hong Kong) do not answer."""
        operation = client.meta.service_model.operation_model("GetObject")  # type: ignore[attr-defined]
        # aiobotocore's resolver, the one `_make_api_call` uses (a private method: aiobotocore is pinned,
        # and tests/test_s3_get.py checks the URL forms).
        url, _, _ = await client._resolve_endpoint_ruleset(  # type: ignore[attr-defined]
            operation, {"Bucket": bucket, "Key": _PROBE_KEY}, {})
        return str(url).rstrip("/") + "/"

    async def get(self, base_url: str, key: str, region: str, *, byte_range: tuple[int, int],
                  version: str | None, if_match: str | None) -> tuple[int, bytes]:
        """GET bytes [start, end) of `key`: the HTTP status and the body (an XML error unless 200/206)."""
        url = base_url + quote(key, safe="/~")
        if version:
            url += "?" + urlencode({"versionId": version})
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"}
        if if_match:
            headers["If-Match"] = if_match
        credentials = await self._frozen_credentials()
        if credentials is not None:
            headers = self._signer.sign(url, headers, credentials, region)
        http = self._open()
        # `encoded=True`: the path is sent exactly as signed; redirects are errors (a wrong region).
        async with http.get(URL(url, encoded=True), headers=headers,
                            proxy=self._proxy(base_url), allow_redirects=False) as response:
            return response.status, await response.read()

    def _proxy(self, base_url: str) -> str | None:
        if base_url not in self._proxies:
            parts = urlsplit(base_url)
            proxy = getproxies().get(parts.scheme)
            self._proxies[base_url] = None if proxy is None or proxy_bypass(parts.hostname or "") else proxy
        return self._proxies[base_url]

    async def _frozen_credentials(self) -> object | None:
        """The current keys (refreshed by the SDK when they are about to expire); None: send unsigned."""
        if not self._have_credentials:
            self._credentials = await self._session.get_credentials()  # the session caches its chain's answer
            self._have_credentials = True
        if self._credentials is None:
            return None
        frozen: object = await self._credentials.get_frozen_credentials()  # type: ignore[attr-defined]
        return frozen

    def _open(self) -> aiohttp.ClientSession:
        if self._http is None:
            ca_bundle = self._session.get_config_variable("ca_bundle")
            tls = ssl.create_default_context(cafile=get_cert_path(ca_bundle or True))
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=tls),
                timeout=self._timeout,
                # The bytes as stored: an object saved with `Content-Encoding: gzip` is not unpacked.
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                headers={"User-Agent": self._user_agent},
            )
        return self._http

"""Every cloud backend, on its emulator: a bucket (container) that is not there, and an endpoint nothing
listens on, fail the target at once, without retries, with a `TargetError` that names it, the cause and the fix."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest
from emulators import AZURITE_ACCOUNT, AZURITE_KEY, Emulator, azurite_connection_string

from tierscan.connectors.base import Connector, parse_target
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import Cause, TargetError

from .conftest import FAST_RETRY, Backend

pytestmark = pytest.mark.integration


def _listing_error(conn: Connector, target: str) -> TargetError:
    async def run() -> None:
        async with conn:
            async for _ in conn.list_objects(parse_target(target)):
                pass

    with pytest.raises(TargetError) as raised:
        asyncio.run(run())
    return raised.value


def _missing(backend: Backend) -> str:
    """A target like the backend's, in a bucket (container) that does not exist."""
    real = backend.target("data", "")
    scheme, _, rest = real.partition("://")
    if scheme == "az":
        account = rest.split("/")[0]
        return f"az://{account}/no-such-container"
    return f"{scheme}://no-such-bucket-tierscan"


def test_no_such_bucket_fails_the_target_at_once(http_backend: Backend) -> None:
    conn = http_backend.connector()
    target = _missing(http_backend)
    error = _listing_error(conn, target)
    assert error.cause is Cause.not_found
    assert str(error).startswith(f"{target}: no such ")
    assert conn.requests["retried"] == 0


def test_an_endpoint_nothing_listens_on_fails_the_target_at_once(http_backend: Backend) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = http_backend.connector(endpoint=f"http://127.0.0.1:{port}")
    target = http_backend.target("data", "")
    error = _listing_error(conn, target)
    assert error.cause is Cause.network
    assert f"connection refused at 127.0.0.1:{port} (network)" in str(error)
    assert conn.requests["retried"] == 0


def test_azurite_refusing_a_wrong_account_key_fails_the_target_at_once(emulators: dict[str, Emulator]) -> None:
    """Azurite answers a wrong key with AuthorizationFailure, the code Azure gives what the credentials may
    not do (Azure's own answer to a wrong key, AuthenticationFailed, is tested in tests/test_cloud_errors.py)."""
    from tierscan.connectors.azure import AzureConnector

    endpoint = emulators["azurite"].endpoint
    wrong = base64.b64encode(b"not the account key" * 3).decode()
    connection = azurite_connection_string(endpoint).replace(AZURITE_KEY, wrong)
    conn = AzureConnector(Config(), connection_string=connection, retry=FAST_RETRY)
    error = _listing_error(conn, f"az://{AZURITE_ACCOUNT}/ts-data")
    assert error.cause is Cause.denied
    assert str(error).startswith(f"az://{AZURITE_ACCOUNT}/ts-data: listing denied, AuthorizationFailure (HTTP 403)")
    assert conn.requests["retried"] == 0

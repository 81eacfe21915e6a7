"""A target that cannot be scanned fails at once, in one line that names it, the cause and the fix, with exit
status 3: no credentials, an endpoint that refuses connections, a host name that does not resolve, a TLS
certificate that does not verify, an answer that is a web page, denied access, no such bucket. Each is
raised on its first attempt (the connector's request counts say so), never retried as a transient fault."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.connectors.base import Connector, RetryPolicy, parse_target
from tierscan.connectors.s3 import S3Connector
from tierscan.scanner.cli import EXIT_INCOMPLETE, cli
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import Cause, TargetError, TransientError

HTML = b"<html><body>Welcome to the hotel network</body></html>"
DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied'
          b"</Message></Error>")


class _Answer(http.server.BaseHTTPRequestHandler):
    """Every request gets the server's one answer."""

    server: _Server

    def _answer(self) -> None:
        status, content_type, body = self.server.answer
        self.send_response(status)
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    answer: tuple[int, str, bytes]
    headers: dict[str, str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`serve(status, content_type, body, tls=False, headers={})` -> the URL of a local server giving that
    answer."""
    servers: list[_Server] = []

    def start(status: int, content_type: str, body: bytes, tls: bool = False,
              headers: dict[str, str] | None = None) -> str:
        server = _Server(("127.0.0.1", 0), _Answer)
        server.answer = (status, content_type, body)
        server.headers = headers or {}
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*_self_signed(tmp_path))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment only: no profile files, no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


async def _drain(conn: Connector, target: str) -> None:
    async with conn:
        async for _ in conn.list_objects(parse_target(target)):
            pass


def _list(conn: Connector, target: str) -> TargetError:
    """The error listing `target` raises (it must raise one)."""
    with pytest.raises(TargetError) as raised:
        asyncio.run(_drain(conn, target))
    return raised.value


def _s3(endpoint: str) -> S3Connector:
    return S3Connector(Config(), endpoint_url=endpoint, retry=RetryPolicy(attempts=5, base_delay=0.01))


def _sent(conn: Connector) -> int:
    return sum(n for kind, n in conn.requests.items() if kind not in ("retried", "throttled"))


@pytest.mark.usefixtures("aws")
def test_a_refused_connection_fails_on_the_first_attempt() -> None:
    port = _refused_port()
    conn = _s3(f"http://127.0.0.1:{port}")
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.network
    assert str(error) == (f"s3://photos: connection refused at 127.0.0.1:{port} (network): check the endpoint "
                          "(AWS_ENDPOINT_URL), the network and any proxy settings")
    assert _sent(conn) == 1 and conn.requests["retried"] == 0


@pytest.mark.usefixtures("aws")
def test_a_host_name_that_does_not_resolve_fails_on_the_first_attempt() -> None:
    conn = _s3("http://nonexistent.invalid")
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.network
    assert "the host name nonexistent.invalid does not resolve" in str(error)
    assert _sent(conn) == 1 and conn.requests["retried"] == 0


@pytest.mark.usefixtures("aws")
def test_a_self_signed_certificate_fails_on_the_first_attempt(serve: Callable[..., str]) -> None:
    conn = _s3(serve(200, "application/xml", b"", tls=True))
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.tls
    assert "does not verify (self-signed certificate)" in str(error) and "AWS_CA_BUNDLE" in str(error)
    assert _sent(conn) == 1 and conn.requests["retried"] == 0


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("status", [200, 404, 500])
def test_an_html_page_is_no_storage_service_whatever_its_status(serve: Callable[..., str], status: int) -> None:
    conn = _s3(serve(status, "text/html; charset=utf-8", HTML))
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.not_storage
    assert str(error).startswith("s3://photos: the endpoint")
    assert conn.requests["retried"] == 0  # a 500 page too: it is not S3 failing


@pytest.mark.usefixtures("aws")
def test_denied_listing_of_a_named_bucket_fails_the_target(serve: Callable[..., str]) -> None:
    conn = _s3(serve(403, "application/xml", DENIED))
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.denied
    assert "s3:ListBucket" in str(error)
    assert conn.requests["retried"] == 0


def test_missing_credentials_fail_before_any_request(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    conn = _s3(f"http://127.0.0.1:{_refused_port()}")
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.credentials
    assert str(error).startswith("s3://photos: no AWS credentials found (credentials): set AWS_PROFILE")
    assert conn.requests["retried"] == 0


@pytest.mark.usefixtures("aws")
def test_the_cli_prints_one_line_and_exits_3_and_debug_adds_the_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_refused_port()}")
    args = ["scan", "s3://photos", "--db", str(tmp_path / "c.db"), "--format", "none"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_INCOMPLETE == 3
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith("tierscan: s3://photos: connection refused at 127.0.0.1:")
    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code == 3
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == result.stderr.splitlines()[0]


@pytest.mark.slow
def test_ctrl_c_says_what_is_committed_exits_130_and_the_same_command_resumes(tmp_path: Path) -> None:
    from PIL import Image

    bucket = tmp_path / "estate" / "photos"
    bucket.mkdir(parents=True)
    for i in range(3000):  # enough that results are committed well before the scan could end
        Image.new("RGB", (32, 32), (i % 256, i // 256 % 256, 7)).save(bucket / f"{i:04}.png")
    db = tmp_path / "c.db"
    command = [sys.executable, "-m", "tierscan.scanner", "scan", str(tmp_path / "estate"), "--db", str(db),
               "--format", "none", "--workers", "1"]
    scan = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while scan.poll() is None and not _committed(db):
            time.sleep(0.05)
        assert scan.poll() is None, "the scan ended before it could be interrupted"
        scan.send_signal(signal.SIGINT)
        _, stderr = scan.communicate(timeout=120)
    finally:
        if scan.poll() is None:
            scan.kill()
    assert scan.returncode == 130
    done = _committed(db)
    assert 0 < done < 3000
    assert stderr.splitlines()[-1] == (f"tierscan: interrupted: {db} holds the results of {done:,} objects "
                                       f"({3000 - done:,} listed objects not read yet); the same command "
                                       "resumes from there")
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    assert _committed(db) == 3000


def _committed(db: Path) -> int:
    """Objects whose results a fresh reader of the catalog sees."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(db)) as con:
            return int(con.execute("SELECT COUNT(*) FROM objects WHERE status='fingerprinted'").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def _gcs(api_root: str | None = None) -> Connector:
    from tierscan.connectors.gcs import GCSConnector

    return GCSConnector(Config(), api_root=api_root, retry=RetryPolicy(attempts=5, base_delay=0.01))


def test_gcs_without_credentials_off_google_cloud_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from gcloud.aio.auth import token

    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent")  # no gcloud login either
    # The metadata server's host, as off Google Cloud: a name that never resolves.
    monkeypatch.setattr(token, "GCE_ENDPOINT_TOKEN", "http://nonexistent.invalid/computeMetadata/v1/token")
    conn = _gcs()
    error = _list(conn, "gs://photos")
    assert error.cause is Cause.credentials
    assert str(error).startswith("gs://photos: no Google credentials found")
    assert _sent(conn) == 0


def test_gcs_with_a_missing_credentials_file_fails_before_any_request(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    conn = _gcs()
    error = _list(conn, "gs://photos")
    assert error.cause is Cause.credentials and "the credentials file cannot be used" in str(error)
    assert _sent(conn) == 0


def test_gcs_answered_by_a_web_page_is_no_storage_service(serve: Callable[..., str]) -> None:
    conn = _gcs(serve(200, "text/html", HTML))
    error = _list(conn, "gs://photos")
    assert error.cause is Cause.not_storage
    assert conn.requests["retried"] == 0


def _azure(endpoint: str) -> Connector:
    from tierscan.connectors.azure import AzureConnector

    # Azurite's well-known development key (public, documented by Microsoft), not a secret.
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
                  f"BlobEndpoint={endpoint}/devstoreaccount1;")
    return AzureConnector(Config(), connection_string=connection, retry=RetryPolicy(attempts=5, base_delay=0.01))


def test_azure_answered_by_a_web_page_is_no_storage_service(serve: Callable[..., str]) -> None:
    conn = _azure(serve(200, "text/html", HTML))
    error = _list(conn, "az://devstoreaccount1/photos")
    assert error.cause is Cause.not_storage
    assert conn.requests["retried"] == 0


def test_azure_without_credentials_fails_on_the_first_attempt() -> None:
    from azure.core.credentials import AccessToken
    from azure.identity import CredentialUnavailableError

    from tierscan.connectors.azure import AzureConnector

    class Nothing:
        """A credential chain that finds nothing, as DefaultAzureCredential on a machine without any."""

        async def get_token(self, *scopes: str, **options: object) -> AccessToken:
            raise CredentialUnavailableError("no credential in the chain")

        async def close(self) -> None:
            pass

        async def __aenter__(self) -> Nothing:
            return self

        async def __aexit__(self, *exc: object) -> None:
            pass

    conn = AzureConnector(Config(), credential=Nothing(), retry=RetryPolicy(attempts=5, base_delay=0.01))
    error = _list(conn, "az://someaccount/photos")
    assert error.cause is Cause.credentials
    assert str(error).startswith("az://someaccount/photos/: no Azure credentials found (credentials): set ")
    assert conn.requests["retried"] == 0


def test_azure_rejecting_the_account_key_is_a_credentials_error(serve: Callable[..., str]) -> None:
    body = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server '
            b"failed to authenticate the request.</Message></Error>")
    conn = _azure(serve(403, "application/xml", body, headers={"x-ms-error-code": "AuthenticationFailed"}))
    error = _list(conn, "az://devstoreaccount1/photos")
    assert error.cause is Cause.credentials
    assert "the credentials are not accepted, AuthenticationFailed (HTTP 403)" in str(error)
    assert _sent(conn) == 1 and conn.requests["retried"] == 0


@pytest.mark.usefixtures("aws")
def test_a_listing_that_keeps_failing_ends_the_scan_in_one_line_after_its_retries(serve: Callable[..., str],
                                                                                 tmp_path: Path) -> None:
    body = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
    conn = _s3(serve(500, "application/xml", body))
    with pytest.raises(TransientError, match=r"^s3://photos: InternalError \(HTTP 500\)$"):
        asyncio.run(_drain(conn, "s3://photos"))
    assert _sent(conn) == conn.retry.attempts == 5  # transient: retried, then given up
    endpoint = serve(500, "application/xml", body)
    result = CliRunner().invoke(cli, ["scan", "s3://photos", "--db", str(tmp_path / "c.db"), "--format", "none"],
                                env={"AWS_ENDPOINT_URL": endpoint})
    assert result.exit_code == 3
    assert result.stderr.splitlines() == ["tierscan: s3://photos: InternalError (HTTP 500)"]



@pytest.mark.usefixtures("aws")
def test_s3_rejecting_the_access_key_is_a_credentials_error(serve: Callable[..., str]) -> None:
    body = (b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in "
            b"our records.</Message></Error>")
    conn = _s3(serve(403, "application/xml", body))
    error = _list(conn, "s3://photos")
    assert error.cause is Cause.credentials
    assert "the credentials are not accepted, InvalidAccessKeyId (HTTP 403)" in str(error)
    assert _sent(conn) == 1 and conn.requests["retried"] == 0

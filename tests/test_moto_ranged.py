"""The read-plan benchmark's moto (`benchmarks/moto_ranged.py`) answers every GET as stock moto does:
same status, body and range headers, for objects in moto's memory and in its temporary files, ranged or
not, and for ranges stock moto rejects. Only how much of the object it reads differs, and that it keeps a
connection open after a request without a body, as S3 does."""

from __future__ import annotations

import http.client
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from emulators import Emulator, start_moto

pytestmark = pytest.mark.integration

_SERVER = [sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "moto_ranged.py")]
_BODIES = {"small": os.urandom(1000), "spooled": os.urandom(300_000), "empty": b""}
_RANGES = [None, "bytes=0-15", "bytes=100-", "bytes=-50", "bytes=299990-400000", "bytes=0-0",
           "bytes=999-999", "bytes=1000-2000", "bytes=5-2", "bytes=0-9,20-29", "bytes=x-y"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Emulator]]:
    logs = tmp_path_factory.mktemp("moto-ranged")
    env = os.environ.get("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE")
    os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(64 * 1024)  # "spooled" lives in a temporary file
    try:
        pair = (start_moto(log_dir=logs), start_moto(log_dir=logs, server=_SERVER))
    finally:
        if env is None:
            del os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"]
        else:
            os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = env
    try:
        for emu in pair:
            s3 = boto3.client("s3", endpoint_url=emu.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
            s3.create_bucket(Bucket="ranged")
            for key, body in _BODIES.items():
                s3.put_object(Bucket="ranged", Key=key, Body=body)
            parts = s3.create_multipart_upload(Bucket="ranged", Key="multipart")
            chunk = _BODIES["spooled"] * 18  # parts of 5.4 MB and 300 kB
            etags = [s3.upload_part(Bucket="ranged", Key="multipart", UploadId=parts["UploadId"], PartNumber=n,
                                    Body=body)["ETag"] for n, body in ((1, chunk), (2, _BODIES["spooled"]))]
            s3.complete_multipart_upload(Bucket="ranged", Key="multipart", UploadId=parts["UploadId"],
                                         MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                                                    for n, e in enumerate(etags, 1)]})
        yield pair
    finally:
        for emu in pair:
            emu.stop()


_AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
                           "SignedHeaders=host, Signature=0"}


def _answer(emu: Emulator, key: str, byte_range: str | None, method: str = "GET") -> tuple[object, ...]:
    headers = dict(_AUTH)
    if byte_range:
        headers["Range"] = byte_range
    r = requests.request(method, f"{emu.endpoint}/ranged/{key}", headers=headers, timeout=30)
    kept = {h: r.headers.get(h) for h in ("Content-Range", "Content-Length", "ETag", "Accept-Ranges")}
    body = r.content if r.status_code < 300 else r.content.split(b"<RequestId>")[0]
    return r.status_code, kept, body


@pytest.mark.parametrize("key", [*_BODIES, "multipart"])
@pytest.mark.parametrize("byte_range", _RANGES)
def test_a_get_is_answered_as_stock_moto_answers_it(servers: tuple[Emulator, Emulator], key: str,
                                                    byte_range: str | None) -> None:
    stock, ranged = servers
    assert _answer(ranged, key, byte_range) == _answer(stock, key, byte_range)


def test_ranged_bytes_are_the_objects_bytes(servers: tuple[Emulator, Emulator]) -> None:
    _, ranged = servers
    body = _BODIES["spooled"]
    status, headers, got = _answer(ranged, "spooled", "bytes=1000-70999")
    assert status == 206 and got == body[1000:71000]
    assert headers["Content-Range"] == f"bytes 1000-70999/{len(body)}"
    status, _, got = _answer(ranged, "multipart", "bytes=5399990-5400009")
    assert status == 206 and got == (body * 19)[5399990:5400010]


def test_head_requests_are_stock(servers: tuple[Emulator, Emulator]) -> None:
    stock, ranged = servers
    for key in _BODIES:
        assert _answer(ranged, key, "bytes=0-9", "HEAD") == _answer(stock, key, "bytes=0-9", "HEAD")


def test_bodiless_requests_keep_the_connection_and_a_body_closes_it(servers: tuple[Emulator, Emulator]) -> None:
    _, ranged = servers
    host, port = ranged.endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        answers, sockets = [], []
        for byte_range in ("bytes=0-9", "bytes=10-19", "bytes=5-2"):  # the last one answered whole
            conn.request("GET", "/ranged/small", headers={**_AUTH, "Range": byte_range})
            response = conn.getresponse()
            answers.append((response.status, response.read(), response.getheader("Connection")))
            sockets.append(conn.sock)
        conn.request("HEAD", "/ranged/spooled", headers=_AUTH)
        head = conn.getresponse()
        head.read()
        sockets.append(conn.sock)
        assert sockets[0] is not None and all(s is sockets[0] for s in sockets)  # four answers, one connection
        body = _BODIES["small"]
        assert answers == [(206, body[:10], None), (206, body[10:20], None), (200, body, None)]
        assert head.status == 200 and head.getheader("Connection") is None
        conn.request("PUT", "/ranged/put", body=b"x" * 10, headers=_AUTH)
        put = conn.getresponse()
        put.read()
        assert put.status == 200 and put.getheader("Connection") == "close"
    finally:
        conn.close()


def test_no_request_fails_in_the_server_after_its_answer(servers: tuple[Emulator, Emulator]) -> None:
    """werkzeug catches what fails after an answer is sent and only logs it, a traceback a request: the
    client sees nothing wrong, the server's CPU a GET does. On a kept connection the server thread finishes
    a request, logging included, before it reads the next: the last answer vouches for the ones before."""
    _, ranged = servers
    host, port = ranged.endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for byte_range in ("bytes=0-9", "bytes=5-2", "bytes=10-19", "bytes=0-0"):
            conn.request("GET", "/ranged/small", headers={**_AUTH, "Range": byte_range})
            assert conn.getresponse().read()
    finally:
        conn.close()
    assert b"Error on request" not in ranged.log.read_bytes()


def test_successful_answers_are_not_logged_and_errors_are(servers: tuple[Emulator, Emulator]) -> None:
    _, ranged = servers
    assert _answer(ranged, "small", "bytes=0-9")[0] == 206
    assert _answer(ranged, "logged-missing", None)[0] == 404
    log = re.sub(r"\x1b\[[0-9;]*m", "", ranged.log.read_text(errors="replace"))  # werkzeug colours lines
    assert '"GET /ranged/logged-missing HTTP/1.1" 404' in log
    assert re.search(r'" 2\d\d ', log) is None  # no answer of this module's many GETs and HEADs that succeeded


_LOOKUPS = """
import sys
sys.path.insert(0, sys.argv[1])
import moto.backends
if sys.argv[2] == "ranged":
    import moto_ranged
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
calls = []
stock = moto.backends.list_of_moto_modules
moto.backends.list_of_moto_modules = lambda: calls.append(1) or stock()
app = DomainDispatcherApplication(create_backend_app)
environ = {"PATH_INFO": "/ranged/small", "HTTP_HOST": "127.0.0.1",
           "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, x"}
apps = [app.get_application(dict(environ)) for _ in range(3)]
backends = getattr(sys.modules.get("moto_ranged"), "_BACKENDS", {})
print(len(calls), len({id(a) for a in apps}), sorted(filter(None, backends.values())))
"""


def test_the_backend_of_a_host_is_looked_up_once() -> None:
    """Stock moto lists its package directory for every request; the benchmark's moto, once per host."""
    import subprocess

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    runs = {server: subprocess.run([sys.executable, "-c", _LOOKUPS, bench, server], check=True,
                                   capture_output=True, text=True).stdout.strip() for server in ("stock", "ranged")}
    assert runs == {"stock": "3 1 []", "ranged": "1 1 ['s3']"}

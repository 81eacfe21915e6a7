"""`tierscan apply` and `tierscan undo` end to end against moto (S3), fake-gcs-server and Azurite, through the
CLI: scan, write a plan, review, execute the approved plan, check the buckets, undo.

Every step checks that the group master is never touched, and the delete step replaces one copy between
plan and execution to see the ETag re-check refuse it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from emulators import AZURITE_ACCOUNT, Emulator, azurite_connection_string
from faultproxy import FaultProxy, Request

from tierscan.scanner.cli import cli
from tierscan.scanner.remediate.apply import plan_digest

from .conftest import gcs_client

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
OTHER = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
POLICY = """policies:
  - name: redundant-copies
    resource: group
    severity: medium
    filters:
      - {type: group-kind, kind: exact}
    actions:
      - delete-redundant
"""
MASTER = "golden/photo.jpg"
COPIES = ["copies/photo-1.jpg", "odd/相片 ../x.jpg"]  # unicode, a space and `../` inside a key


@dataclass
class Store:
    scheme: str
    bucket: str
    env: dict[str, str]
    put: Callable[[str, bytes], None]
    get: Callable[[str], bytes | None]
    tags: Callable[[str], dict[str, str]]
    storage_class: Callable[[str], str]
    cold_class: str

    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.bucket}"


def _s3(emulators: dict[str, Emulator], versioned: bool = False) -> Store:
    import boto3

    endpoint = emulators["moto"].endpoint
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    bucket = f"apply-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def get(key: str) -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    return Store(
        "s3", bucket,
        {**emulators["moto"].env, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"},
        put=lambda key, data: s3.put_object(Bucket=bucket, Key=key, Body=data),
        get=get,
        tags=lambda key: {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]},
        storage_class=lambda key: s3.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD"),
        cold_class="STANDARD_IA",
    )


def _gcs(emulators: dict[str, Emulator]) -> Store:
    from google.api_core.exceptions import NotFound

    endpoint = emulators["fakegcs"].endpoint
    client = gcs_client(endpoint)
    bucket = f"apply-{uuid.uuid4().hex[:10]}"
    b = client.create_bucket(bucket)

    def get(key: str) -> bytes | None:
        try:
            return bytes(b.blob(key).download_as_bytes())
        except NotFound:
            return None

    def blob(key: str) -> Any:
        found = b.get_blob(key)
        assert found is not None, key
        return found

    return Store(
        "gs", bucket, dict(emulators["fakegcs"].env),
        put=lambda key, data: b.blob(key).upload_from_string(data),
        get=get,
        tags=lambda key: dict(blob(key).metadata or {}),
        storage_class=lambda key: blob(key).storage_class,
        cold_class="NEARLINE",
    )


def _azure(emulators: dict[str, Emulator]) -> Store:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    conn = azurite_connection_string(emulators["azurite"].endpoint)
    service = BlobServiceClient.from_connection_string(conn)
    name = f"apply-{uuid.uuid4().hex[:10]}"
    container = service.create_container(name)

    def get(key: str) -> bytes | None:
        try:
            return bytes(container.download_blob(key).readall())
        except ResourceNotFoundError:
            return None

    return Store(
        "az", f"{AZURITE_ACCOUNT}/{name}",
        {"AZURE_STORAGE_CONNECTION_STRING": conn, "AZURE_STORAGE_REGION": "eastasia"},
        put=lambda key, data: container.upload_blob(key, data, overwrite=True),
        get=get,
        tags=lambda key: dict(container.get_blob_client(key).get_blob_tags()),
        storage_class=lambda key: str(container.get_blob_client(key).get_blob_properties().blob_tier),
        cold_class="Cool",
    )


_STORES = {"s3": _s3, "gcs": _gcs, "azure": _azure}


@pytest.fixture(params=list(_STORES))
def store(request: pytest.FixtureRequest, emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch) -> Store:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION", "STORAGE_EMULATOR_HOST",
                 "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    made = _STORES[request.param](emulators)
    for key, value in made.env.items():
        monkeypatch.setenv(key, value)
    return made


class Cli:
    def __init__(self, store: Store, tmp: Path):
        self.store, self.tmp = store, tmp
        (tmp / "policy.yaml").write_text(POLICY)
        self.config = tmp / "tierscan.yaml"
        self.config.write_text(f"policies: {{packs: [], files: ['{tmp / 'policy.yaml'}']}}\n"
                               f"master: {{prefer: ['{store.root}/golden/*']}}\n")
        self.db = tmp / "t.db"
        self.n = 0

    def run(self, *args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [*args, "--config", str(self.config)], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    def scan(self) -> None:
        self.run("scan", self.store.root, "--db", str(self.db), "--format", "none", "--workers", "1")

    def apply(self, action: str, *extra: str, change: Callable[[], None] | None = None) -> tuple[Path, str]:
        """Scan, plan, review, execute; returns the journal and the run's output."""
        self.n += 1
        self.scan()
        plan, journal = self.tmp / f"plan{self.n}.json", self.tmp / f"journal{self.n}.jsonl"
        self.run("apply", "--db", str(self.db), "--action", action, *extra, "--plan", str(plan))
        data = json.loads(plan.read_text())
        assert sorted(i["key"] for i in data["items"]) == sorted(COPIES)  # never the master
        review = self.run("apply", "--execute", str(plan))
        assert data["digest"] in review
        if change:
            change()
        out = self.run("apply", "--execute", str(plan), "--approve", data["digest"][:16], "--journal", str(journal))
        return journal, out


def _seed(store: Store) -> None:
    store.put(MASTER, PHOTO)
    for key in COPIES:
        store.put(key, PHOTO)
    store.put("other.jpg", OTHER)


def test_apply_and_undo_end_to_end(store: Store, tmp_path: Path) -> None:
    _seed(store)
    runner = Cli(store, tmp_path)

    # tag, then undo: the tags come off again; the master never gets any
    journal, _ = runner.apply("tag", "--tag", "review=redundant")
    for key in COPIES:
        assert store.tags(key).get("review") == "redundant"
    assert "review" not in store.tags(MASTER)
    runner.run("undo", str(journal))
    for key in COPIES:
        # GCS removes a metadata key patched to null; fake-gcs-server keeps it with an empty value.
        assert store.tags(key).get("review") in ((None, "") if store.scheme == "gs" else (None,))

    # quarantine to a prefix, then undo: the bytes come back to their keys
    journal, _ = runner.apply("quarantine", "--to", "quarantine/")
    for key in COPIES:
        assert store.get(key) is None
        assert store.get(f"quarantine/{key}") == PHOTO
    assert store.get(MASTER) == PHOTO
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["type"] for e in entries] == ["header", "intent", "done", "intent", "done"]
    runner.run("undo", str(journal))
    for key in COPIES:
        assert store.get(key) == PHOTO
        assert store.get(f"quarantine/{key}") is None

    # transition to a colder class (fake-gcs-server ignores the class in a rewrite, even from Google's own
    # client, so on GCS only the request and its journal are checked)
    journal, _ = runner.apply("transition", "--to", store.cold_class)
    assert sum('"type": "done"' in line for line in journal.read_text().splitlines()) == len(COPIES)
    for key in COPIES:
        assert store.storage_class(key) == store.cold_class or store.scheme == "gs"
    assert store.storage_class(MASTER) != store.cold_class

    # delete, with one copy replaced between plan and execution: that one is refused by the ETag check
    journal, out = runner.apply("delete", change=lambda: store.put(COPIES[0], OTHER))
    assert "changed since the plan" in out
    assert store.get(COPIES[0]) == OTHER
    assert store.get(COPIES[1]) is None
    assert store.get(MASTER) == PHOTO
    # the master was proven to hold the copy's bytes before the delete: by the MD5 that S3 and GCS compute
    # themselves, by reading both on Azure (whose Content-MD5 any writer can set)
    [intent] = [e for e in map(json.loads, journal.read_text().splitlines()) if e["type"] == "intent"]
    assert intent["key"] == COPIES[1] and intent["master"]["uri"] == f"{store.root}/{MASTER}"
    if store.scheme == "az":
        assert intent["master"] == {"uri": f"{store.root}/{MASTER}", "by": "read",
                                    "sha256": hashlib.sha256(PHOTO).hexdigest()}
    else:
        assert intent["master"] == {"uri": f"{store.root}/{MASTER}", "by": "md5",
                                    "value": hashlib.md5(PHOTO).hexdigest()}


def test_s3_versioned_bucket_keeps_versions(emulators: dict[str, Emulator], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """In a versioned bucket quarantine and delete leave delete markers; undo removes them, so the very
    versions (same VersionId) are current again."""
    import boto3

    store = _s3(emulators, versioned=True)
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    _seed(store)
    s3 = boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    versions = {key: s3.head_object(Bucket=store.bucket, Key=key)["VersionId"] for key in COPIES}
    runner = Cli(store, tmp_path)

    journal, _ = runner.apply("quarantine", "--to", "quarantine/")
    assert all(store.get(key) is None for key in COPIES)
    runner.run("undo", str(journal))
    assert {key: s3.head_object(Bucket=store.bucket, Key=key)["VersionId"] for key in COPIES} == versions
    assert all(store.get(f"quarantine/{key}") is None for key in COPIES)

    journal, _ = runner.apply("delete")
    assert all(store.get(key) is None for key in COPIES)
    done = [json.loads(line) for line in journal.read_text().splitlines() if '"done"' in line]
    assert all(e["delete_marker"] for e in done)
    runner.run("undo", str(journal))
    assert {key: s3.head_object(Bucket=store.bucket, Key=key)["VersionId"] for key in COPIES} == versions
    assert store.get(MASTER) == PHOTO


def _same_size_other(data: bytes) -> bytes:
    """Other bytes of the same length: one byte in the middle flipped."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_edited_bucket_and_key_are_refused(store: Store, tmp_path: Path) -> None:
    """The plan's copy item gets the master's key and a re-approved digest: the review still shows the
    reviewed URI, so execution takes every location from the catalog and skips the edited item."""
    _seed(store)
    runner = Cli(store, tmp_path)
    runner.scan()
    plan_path, journal = tmp_path / "plan.json", tmp_path / "journal.jsonl"
    runner.run("apply", "--db", str(runner.db), "--action", "delete", "--plan", str(plan_path))
    plan = json.loads(plan_path.read_text())
    edited = next(i for i in plan["items"] if i["key"] == COPIES[0])
    edited["key"] = MASTER
    plan["digest"] = plan_digest(plan)
    plan_path.write_text(json.dumps(plan))
    review = runner.run("apply", "--execute", str(plan_path))
    assert f"key {MASTER!r}" in review  # the review names the key the plan holds, not only its URI
    assert f"WILL BE SKIPPED: the plan's key {MASTER!r} is not the catalog's" in review
    out = runner.run("apply", "--execute", str(plan_path), "--approve", plan["digest"][:16], "--journal", str(journal))
    assert store.get(MASTER) == PHOTO and store.get(COPIES[0]) == PHOTO
    assert f"skipped {edited['uri']!r}: the plan's key {MASTER!r} is not the catalog's" in out
    assert store.get(COPIES[1]) is None  # the item nobody edited was deleted as reviewed


def _moto(emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch) -> tuple[Store, Any]:
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    store = _s3(emulators)
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    return store, boto3.client("s3", endpoint_url=emulators["moto"].endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")


def test_s3_master_overwritten_with_same_size_bytes_keeps_the_copies(
        emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The master is overwritten with other bytes of its size after the scan, and the catalog's record of
    it carries the new ETag (a catalog restored from a results store says whatever it was given) while
    still grouping it with the copies: the ETags S3 computes now differ, so no copy is deleted."""
    store, s3 = _moto(emulators, monkeypatch)
    _seed(store)
    runner = Cli(store, tmp_path)
    runner.scan()
    plan_path = tmp_path / "plan.json"
    runner.run("apply", "--db", str(runner.db), "--action", "delete", "--plan", str(plan_path))
    plan = json.loads(plan_path.read_text())
    store.put(MASTER, _same_size_other(PHOTO))
    etag = s3.head_object(Bucket=store.bucket, Key=MASTER)["ETag"].strip('"')
    with sqlite3.connect(runner.db) as db:
        db.execute("UPDATE objects SET etag=?, checksums=json_set(checksums, '$.md5', ?) WHERE uri=?",
                   (etag, etag, f"{store.root}/{MASTER}"))
    out = runner.run("apply", "--execute", str(plan_path), "--approve", plan["digest"][:16],
                     "--journal", str(tmp_path / "journal.jsonl"))
    assert all(store.get(key) == PHOTO for key in COPIES)
    assert out.count("master differs: its md5 is another") == len(COPIES)


def test_s3_delete_is_conditional_on_the_checked_etag(emulators: dict[str, Emulator],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """DeleteObject carries If-Match with the ETag that was checked: an object replaced in between stays."""
    from tierscan.connectors.base import Location
    from tierscan.connectors.s3 import S3Connector
    from tierscan.scanner.core.config import Config
    from tierscan.scanner.core.errors import ObjectGone

    store, _ = _moto(emulators, monkeypatch)
    store.put("photo.jpg", PHOTO)
    loc = Location(f"{store.root}/photo.jpg", store.bucket, "photo.jpg")

    async def run() -> None:
        async with S3Connector(Config()) as conn:
            state = await conn.stat(loc)
            assert state is not None
            store.put("photo.jpg", OTHER)
            with pytest.raises(ObjectGone):
                await conn.delete(loc, expect=state)

    asyncio.run(run())
    assert store.get("photo.jpg") == OTHER


def test_s3_multipart_master_is_proven_by_etag_of_the_same_layout_else_read(
        emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy uploaded with the master's part layout is proven by the equal multipart ETag (no read); one
    with another part size has another ETag, which proves nothing: both are read and compared."""
    store, s3 = _moto(emulators, monkeypatch)
    mib = 1024 * 1024
    body = PHOTO + hashlib.shake_256(b"trailer").digest(11 * mib)

    def upload(key: str, part: int) -> None:
        upload = s3.create_multipart_upload(Bucket=store.bucket, Key=key)
        parts = []
        for n, start in enumerate(range(0, len(body), part), start=1):
            answer = s3.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                                    Body=body[start:start + part])
            parts.append({"ETag": answer["ETag"], "PartNumber": n})
        s3.complete_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})

    upload(MASTER, 5 * mib)
    upload(COPIES[0], 5 * mib)
    upload(COPIES[1], 8 * mib)
    runner = Cli(store, tmp_path)
    journal, _ = runner.apply("delete")
    assert store.get(MASTER) == body and all(store.get(key) is None for key in COPIES)
    proofs = {e["key"]: e["master"] for e in map(json.loads, journal.read_text().splitlines())
              if e["type"] == "intent"}
    master_etag = s3.head_object(Bucket=store.bucket, Key=MASTER)["ETag"].strip('"')
    assert proofs[COPIES[0]]["by"] == f"s3mpu@3:{5 * mib}" and proofs[COPIES[0]]["value"] == master_etag
    assert proofs[COPIES[1]]["by"] == "read" and proofs[COPIES[1]]["sha256"] == hashlib.sha256(body).hexdigest()


def test_quarantine_never_trusts_an_existing_destination_by_its_size(store: Store, tmp_path: Path) -> None:
    """A quarantine destination that already exists (as after an interrupted run) is taken as the copy only
    when it holds the source's bytes; another object of the same size there keeps the source in place."""
    _seed(store)
    squatter = _same_size_other(PHOTO)
    store.put(f"quarantine/{COPIES[0]}", squatter)
    runner = Cli(store, tmp_path)
    runner.scan()
    plan_path = tmp_path / "plan.json"
    runner.run("apply", "--db", str(runner.db), "--action", "quarantine", "--to", "quarantine/",
               "--plan", str(plan_path))
    plan = json.loads(plan_path.read_text())
    out = runner.run("apply", "--execute", str(plan_path), "--approve", plan["digest"][:16],
                     "--journal", str(tmp_path / "journal.jsonl"), code=1)
    assert "is not proven to be this object" in out
    assert store.get(COPIES[0]) == PHOTO and store.get(f"quarantine/{COPIES[0]}") == squatter
    assert store.get(COPIES[1]) is None and store.get(f"quarantine/{COPIES[1]}") == PHOTO


def test_gcs_quarantine_keeps_the_source_when_the_copy_is_not_there_after_copying(
        emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GCS answers the copy, but the destination is not found right after it (a proxy answers 404 to its
    metadata once a copy was requested): each item fails with a transient error, the sources are not
    deleted, and the run ends with an error instead of a traceback."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    store = _gcs(emulators)
    _seed(store)
    proxy = FaultProxy(emulators["fakegcs"].endpoint).start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)

        def destination_after_a_copy(r: Request) -> bool:
            target = unquote(r.target)
            return (r.method == "GET" and "/quarantine/" in target and "alt=media" not in target
                    and any(p.method == "POST" and "/rewriteTo/" in p.target for p in proxy.requests))

        proxy.fail(times=1000, match=destination_after_a_copy, status=404,
                   body=b'{"error": {"code": 404, "message": "No such object"}}',
                   headers={"Content-Type": "application/json"})
        runner = Cli(store, tmp_path)
        runner.scan()
        plan_path, journal = tmp_path / "plan.json", tmp_path / "journal.jsonl"
        runner.run("apply", "--db", str(runner.db), "--action", "quarantine", "--to", "quarantine/",
                   "--plan", str(plan_path))
        plan = json.loads(plan_path.read_text())
        out = runner.run("apply", "--execute", str(plan_path), "--approve", plan["digest"][:16],
                         "--journal", str(journal), code=1)
    finally:
        proxy.stop()
    assert out.count("the copy is not there after copying") == len(COPIES)
    assert all(store.get(key) == PHOTO for key in COPIES)  # the sources stay
    assert store.get(MASTER) == PHOTO
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["type"] for e in entries] == ["header", "intent", "failed", "intent", "failed"]


def test_mixed_estate_scope_and_backends(emulators: dict[str, Emulator], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """One catalog over an S3 bucket and a local folder. Without --policy only the redundant copies are
    planned (not an object an object policy flags); naming that policy takes it. A transition, which
    local folders cannot do, is refused at plan time for the whole plan, naming the backend; a tag,
    which both can, is planned on both."""
    store, _ = _moto(emulators, monkeypatch)
    _seed(store)
    local = tmp_path / "local"
    local.mkdir()
    (local / "photo-2.jpg").write_bytes(PHOTO)
    runner = Cli(store, tmp_path)
    (tmp_path / "policy.yaml").write_text(POLICY + "  - name: every-object\n    resource: object\n"
                                          "    severity: low\n    actions: [report]\n")
    runner.run("scan", store.root, str(local), "--db", str(runner.db), "--format", "none", "--workers", "1")
    copies = {f"{store.root}/{key}" for key in COPIES} | {(local / "photo-2.jpg").as_uri()}

    def plan(*args: str, code: int = 0) -> tuple[dict[str, Any] | None, str]:
        path = tmp_path / f"plan-{uuid.uuid4().hex[:6]}.json"
        out = runner.run("apply", "--db", str(runner.db), *args, "--plan", str(path), code=code)
        return (json.loads(path.read_text()) if path.exists() else None), out

    tagged, out = plan("--action", "tag")
    assert tagged is not None and {i["uri"] for i in tagged["items"]} == copies
    assert {i["scheme"] for i in tagged["items"]} == {"s3", "file"}
    assert "left out: 1 object(s) in no exact group" in out  # other.jpg, flagged by every-object only
    everything, _ = plan("--action", "tag", "--policy", "every-object")
    assert everything is not None
    assert {i["uri"] for i in everything["items"]} == copies | {f"{store.root}/other.jpg"}
    assert f"{store.root}/{MASTER}" in {e["uri"] for e in everything["excluded"]}

    refused, out = plan("--action", "transition", "--to", store.cold_class, code=2)
    assert refused is None
    assert "--action transition: the local connector cannot transition objects: 1 object(s) in scope on file://" \
        in out
    assert "s3://" not in out.split("first", 1)[0]  # S3 can transition: only the local backend is named
    _, out = plan("--action", "tag", "--policy", "every-objects", code=2)
    assert "did you mean 'every-object'" in out

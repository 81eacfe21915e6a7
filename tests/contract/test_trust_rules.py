"""The checksum trust rules on listing entries a real GCS sends and the emulator cannot (componentCount)."""

from __future__ import annotations

import base64
import hashlib

from tierscan.connectors.gcs import checksums_of


def test_gcs_md5_is_trusted_for_plain_objects() -> None:
    digest = hashlib.md5(b"x").digest()
    item = {"md5Hash": base64.b64encode(digest).decode(), "crc32c": "AAAAAQ=="}
    assert checksums_of(item) == {"md5": digest.hex(), "crc32c": "00000001"}


def test_gcs_composite_objects_keep_only_crc32c() -> None:
    item = {"md5Hash": base64.b64encode(b"0" * 16).decode(), "crc32c": "AAAAAQ==", "componentCount": 2}
    assert checksums_of(item) == {"crc32c": "00000001"}

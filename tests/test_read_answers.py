"""What the read path stores of an object's metadata: the catalog's EXIF JSON is the same whether it is
made in full or taken as the constant for metadata without a field set, and reads back as the same record;
the people, caption and place fields are left out of it when empty."""

from __future__ import annotations

import pytest

from tierscan.scanner.core.models import ExifRecord
from tierscan.scanner.fingerprint.exif import ExifInfo
from tierscan.scanner.fingerprint.record import exif_json, exif_record


@pytest.mark.parametrize("fields", [
    {},
    {"image_unique_id": "abc"},  # not an audited field: the record has no place for it
    {"gps_lat": 22.3},  # half a position is no position
    {"gps_lat": 22.3, "gps_lon": 114.2},
    {"serials": [("BodySerialNumber", "123"), ("LensSerialNumber", "123")]},
    {"make": ""},
    {"model": "X100"},
    {"datetime_original": "2024:01:01 10:00:00"},
    {"software": "GIMP"},
    {"owner": "Ann"},
    {"orientation": 6},
    {"people": ["Ann Lee"]},
    {"caption": "Ann at home"},
    {"place": "Kowloon, Hong Kong"},
])
def test_the_exif_json_of_a_read_is_the_full_records(fields: dict[str, object]) -> None:
    info = ExifInfo(**fields)
    record = exif_record(info)
    assert record is not None
    stored = exif_json(info)
    empty = {f for f in ("people", "caption", "place") if not getattr(record, f)}
    assert stored == record.model_dump_json(exclude=empty)
    assert stored is not None and ExifRecord.model_validate_json(stored) == record


def test_no_metadata_has_noexif_json() -> None:
    assert exif_json(None) is None

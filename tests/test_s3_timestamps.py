"""The S3 connector's timestamp parser gives botocore's datetimes for every form it may meet."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from tierscan.connectors.s3 import _timestamp


@pytest.mark.parametrize("value", [
    "2026-11-25T15:19:36.000Z",  # listings
    "2026-11-25T15:19:36Z",
    "2026-11-25T15:19:36.123456Z",
    "2026-11-25T15:19:36.123456789Z",  # more digits than a datetime holds: botocore's own parser
    "2026-11-25T15:19:36+02:00",
    "Wed, 25 Nov 2026 15:24:30 GMT",  # headers
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "1700000000",
    1700000000,
])
def test_same_datetimes_as_botocore(value: object) -> None:
    ours, theirs = _timestamp(value), parse_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()
    assert ours.isoformat() == theirs.isoformat()

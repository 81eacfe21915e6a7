"""Results written into a catalog the way tests find easiest to spell them: (uri, {column: value})."""

from __future__ import annotations

from collections.abc import Iterable

from tierscan.scanner.core.models import ExifRecord
from tierscan.scanner.scan.catalog import Catalog


def record_fingerprints(catalog: Catalog, rows: Iterable[tuple[str, dict[str, object]]]) -> None:
    """`Catalog.record_rows` of (uri, fields), fields being catalog columns (exif as an ExifRecord)."""
    catalog.record_rows(
        (tuple(fields), (*(v.model_dump_json() if isinstance(v, ExifRecord) else v for v in fields.values()), uri))
        for uri, fields in rows)

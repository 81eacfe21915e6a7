"""Personal-data exposure by jurisdiction (where copies are stored), for the human-facing reports.

The inventory holds exact GPS positions (it is the audit record); anything people read shows positions
rounded to `GPS_DECIMALS` decimal places, about 1 km (0.01 degree of latitude is 1.1 km), so that a report
passed around does not pinpoint a home. Rounding happens here, while the records stream by, so the exact
values never reach a renderer. Each place keeps where it was taken (`InventoryRecord.taken_in`, resolved
from the exact position) beside the jurisdiction it is stored in, so a ~1 km cell astride a boundary
counts once per side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tierscan.scanner.core.models import InventoryRecord, ObjectStatus

__all__ = ["GPS_DECIMALS", "KINDS", "Exposure", "JurisdictionExposure", "exposure"]

GPS_DECIMALS = 2
# the kinds `InventoryRecord.personal_data` can name: the metadata's, then the pixels'
KINDS = ("gps", "serial", "owner", "timestamp", "people", "caption", "place", "faces")


@dataclass
class JurisdictionExposure:
    """Objects of one jurisdiction, and how many carry each kind of personal data."""

    objects: int = 0
    with_personal_data: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    # (lat, lon) rounded to GPS_DECIMALS, territory taken in, nearest place -> objects at that position
    places: Counter[tuple[float, float, str | None, str | None]] = field(default_factory=Counter)


@dataclass
class Exposure:
    """Exposure per jurisdiction, in the order jurisdictions were first seen."""

    jurisdictions: dict[str, JurisdictionExposure] = field(default_factory=dict)

    @property
    def with_personal_data(self) -> int:
        return sum(j.with_personal_data for j in self.jurisdictions.values())


def exposure(records: Iterable[InventoryRecord]) -> Exposure:
    """One pass over `records` (a stream); memory grows with jurisdictions and ~1 km cells, not objects.
    Objects that are gone are not counted, as in the savings figures."""
    result = Exposure()
    for record in records:
        if record.status == ObjectStatus.gone:
            continue
        entry = result.jurisdictions.setdefault(record.jurisdiction, JurisdictionExposure())
        entry.objects += 1
        if record.personal_data:
            entry.with_personal_data += 1
            entry.kinds.update(record.personal_data)
        gps = record.exif.gps if record.exif else None
        if gps is not None:
            entry.places[(round(gps.lat, GPS_DECIMALS), round(gps.lon, GPS_DECIMALS), record.taken_in,
                          record.taken_near)] += 1
    return result

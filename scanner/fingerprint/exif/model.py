"""Result types of the metadata reader, and the collector the walkers fill in.

The result types are plain slotted dataclasses, not pydantic models: they are built once per object in the
fingerprint worker's hot loop, and nothing here needs validation beyond what the walkers already do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Collector", "ExifInfo", "ImageMeta", "Rank"]


@dataclass(slots=True)
class ExifInfo:
    """The personal-data and device fields of one image, as exiftool ``-n`` would print them."""

    gps_lat: float | None = None
    gps_lon: float | None = None
    serials: list[tuple[str, str]] = field(default_factory=list)
    make: str | None = None
    model: str | None = None
    datetime_original: str | None = None
    software: str | None = None
    owner: str | None = None
    image_unique_id: str | None = None
    orientation: int | None = None


@dataclass(slots=True)
class ImageMeta:
    """What :func:`tierscan.scanner.fingerprint.exif.read_metadata` learnt about one file; ``error`` explains a partial
    result."""

    format: str | None
    exif: ExifInfo
    width: int | None = None
    height: int | None = None
    error: str | None = None


class Rank:
    """Where a value came from; a lower rank wins, so EXIF beats maker notes, which beat XMP.

    Capture time has a second tier: any DateTimeOriginal beats any CreateDate, which is how exiftool's
    "any group" lookup behaves for the fields the inventory records.
    """

    EXIF = 0
    MAKERNOTE = 1
    XMP = 2
    COMPOSITE = 3  # a value exiftool builds from parts (IPTC DateCreated + TimeCreated)
    CREATE_DATE = 10  # added to the source rank for CreateDate-style fallbacks


# Real files carry a handful of serials (body, lens, internal...); a hostile file could repeat a tag.
MAX_SERIALS = 32

_SCALAR_FIELDS = (
    "make", "model", "datetime_original", "software", "owner", "image_unique_id", "orientation",
)


class Collector:
    """Accumulates values offered by the walkers, keeping the best-ranked one per field.

    Walkers never decide precedence themselves; they offer what they read with its rank, which keeps
    them independent of each other and of the order in which a container stores its blocks.
    """

    __slots__ = ("_best", "_gps", "errors", "needed", "serials", "size")

    def __init__(self) -> None:
        self._best: dict[str, tuple[int, str | int]] = {}
        self.serials: list[tuple[str, str]] = []
        self._gps: tuple[int, float, float] | None = None
        self.errors: list[str] = []
        # (offset, length) ranges of the file a walker wanted but did not have: the ranged-read seam.
        self.needed: list[tuple[int, int]] = []
        # (width, height) read from a vendor record (CRW's ImageInfo): used when the container gave none.
        self.size: tuple[int, int] | None = None

    def uses(self, offset: int, length: int) -> None:
        """Record a range a record reader read where the buffer may be the file in pieces (see
        `Blocks.uses`)."""
        self.needed.append((offset, max(length, 0)))

    def offer(self, name: str, value: str | int | None, rank: int) -> None:
        """Record ``value`` for field ``name`` unless a value of equal or better rank is already known."""
        if value is None or value == "":
            return
        best = self._best.get(name)
        if best is None or rank < best[0]:
            self._best[name] = (rank, value)

    def value(self, name: str) -> str | int | None:
        """The best value offered so far for field ``name`` (maker-note tables that depend on the model)."""
        best = self._best.get(name)
        return None if best is None else best[1]

    def serial(self, tag: str, value: str | None) -> None:
        """Record a non-empty serial number; the same (tag, value) pair is kept once."""
        if value and len(self.serials) < MAX_SERIALS and (tag, value) not in self.serials:
            self.serials.append((tag, value))

    def gps(self, lat: float, lon: float, rank: int) -> None:
        """Record a validated position; the best-ranked one wins."""
        if self._gps is None or rank < self._gps[0]:
            self._gps = (rank, lat, lon)

    def error(self, reason: str) -> None:
        """Note why part of the metadata could not be read (only the first few are kept)."""
        if len(self.errors) < 8 and reason not in self.errors:
            self.errors.append(reason)

    def build(self) -> ExifInfo:
        """Freeze what was collected into an :class:`ExifInfo`."""
        values: dict[str, str | int | None] = {
            name: (best[1] if (best := self._best.get(name)) else None) for name in _SCALAR_FIELDS
        }
        orientation = values.pop("orientation")
        info = ExifInfo(serials=list(self.serials), **values)  # type: ignore[arg-type]
        info.orientation = orientation if isinstance(orientation, int) else None
        if self._gps is not None:
            _, info.gps_lat, info.gps_lon = self._gps
        return info

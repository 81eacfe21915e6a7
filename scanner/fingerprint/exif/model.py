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
    people: list[str] = field(default_factory=list)  # people named: creators, contacts, people shown
    caption: str | None = None  # the description: free text that may name or describe someone
    place: str | None = None  # the location text: "sub-location, city, state, country"


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
    IPTC = 4  # IPTC-IIM text (caption, location): the MWG guidelines read XMP's copy first
    CREATE_DATE = 10  # added to the source rank for CreateDate-style fallbacks


# Real files carry a handful of serials (body, lens, internal...); a hostile file could repeat a tag.
MAX_SERIALS = 32
# Named people: a team photo names a few dozen; a hostile packet could list a million.
MAX_PEOPLE = 64
MAX_NAME = 128  # characters of a name kept (longer is not a name a person goes by)
MAX_CAPTION = 1024  # characters of a caption kept: enough for an auditor to read what it says
MAX_PLACE_PART = 128  # characters of each part of the location text
# The parts of the location text, most precise first (IPTC Sub-location, City, Province-State, Country).
PLACE_PARTS = ("sublocation", "city", "state", "country")

_SCALAR_FIELDS = (
    "make", "model", "datetime_original", "software", "owner", "image_unique_id", "orientation",
)


class Collector:
    """Accumulates values offered by the walkers, keeping the best-ranked one per field.

    Walkers never decide precedence themselves; they offer what they read with its rank, which keeps
    them independent of each other and of the order in which a container stores its blocks.
    """

    __slots__ = ("_best", "_gps", "_named", "errors", "needed", "people", "serials", "size")

    def __init__(self) -> None:
        self._best: dict[str, tuple[int, str | int]] = {}
        self.serials: list[tuple[str, str]] = []
        self._gps: tuple[int, float, float] | None = None
        self.errors: list[str] = []
        # (offset, length) ranges of the file a walker wanted but did not have: the ranged-read seam.
        self.needed: list[tuple[int, int]] = []
        # (width, height) read from a vendor record (CRW's ImageInfo): used when the container gave none.
        self.size: tuple[int, int] | None = None
        self.people: list[str] = []
        self._named: set[str] = set()  # casefolded names of `people`, for de-duplication

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

    def person(self, name: str) -> None:
        """Record a person's name (whitespace collapsed, cut to ``MAX_NAME``); each name is kept once,
        whatever its case, up to ``MAX_PEOPLE`` names."""
        if len(self.people) >= MAX_PEOPLE:
            return
        name = " ".join(name[: MAX_NAME * 4].split())[:MAX_NAME]
        key = name.casefold()
        if name and key not in self._named:
            self._named.add(key)
            self.people.append(name)

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
        info.people = list(self.people)
        caption = self._best.get("caption")
        info.caption = str(caption[1])[:MAX_CAPTION] if caption else None
        parts = [str(best[1])[:MAX_PLACE_PART] for part in PLACE_PARTS if (best := self._best.get(part))]
        info.place = ", ".join(dict.fromkeys(parts)) or None
        if self._gps is not None:
            _, info.gps_lat, info.gps_lon = self._gps
        return info

"""What reading one object yields, as the catalog stores it (`Fingerprint`), and the catalog's form of its
metadata: apart from the modules that compute fingerprints, so that the scanning process handles them
without loading an image library."""

from __future__ import annotations

from dataclasses import dataclass

from tierscan.scanner.core.models import GPS, ExifRecord
from tierscan.scanner.fingerprint.exif.model import ExifInfo

__all__ = ["Fingerprint", "exif_json", "exif_record"]


@dataclass(slots=True)
class Fingerprint:
    """What reading one object yields, as the catalog stores it: the one type from the worker that reads
    the bytes to the catalog row (`tierscan.scanner.scan.read_session` writes its fields). `error` set: the
    object is skipped with that reason."""

    sha256: str | None = None
    headtail: str | None = None  # the head/tail key narrowing compares (set by whoever read head and tail)
    phash: str | None = None
    dhash: str | None = None
    near_sig: bytes | None = None  # `signatures.Signature` blob: extra hashes, ORB features, thumbnail
    format: str | None = None
    width: int | None = None
    height: int | None = None
    exif: str | None = None  # the `ExifRecord` as the catalog's JSON; None: no metadata read
    error: str | None = None
    thumb: bytes | None = None  # the report's thumbnail (WebP), when the scan makes them
    md5: str | None = None  # a read for the SHA-256 alone: its MD5, which settles trusted-MD5 copies of its key
    faces: int | None = None  # faces found in the pixels; None: not analysed
    faces_error: str | None = None  # why the faces of an image decoded for its hashes were not analysed


def exif_record(info: ExifInfo | None) -> ExifRecord | None:
    """A walker's `ExifInfo` as the catalog's `ExifRecord` (what an audit keeps of it)."""
    if info is None:
        return None
    gps = GPS(lat=info.gps_lat, lon=info.gps_lon) if info.gps_lat is not None and info.gps_lon is not None else None
    return ExifRecord(gps=gps, serials=list(dict.fromkeys(value for _, value in info.serials)), make=info.make,
                      model=info.model, datetime_original=info.datetime_original, software=info.software,
                      owner=info.owner, orientation=info.orientation, people=list(info.people),
                      caption=info.caption, place=info.place)


# Fields the catalog's JSON leaves out when empty (reading it back gives the same `ExifRecord`): most images
# name nobody, and a million rows need not each store that they do not.
_SPARSE = ("people", "caption", "place")
# The catalog's JSON of metadata without one field set: most images of many estates.
_BLANK_EXIF = ExifRecord().model_dump_json(exclude=set(_SPARSE))


def exif_json(info: ExifInfo | None) -> str | None:
    """The catalog's JSON of a walker's `ExifInfo` (None: no metadata read)."""
    if info is not None and (
            info.make is None and info.model is None and info.datetime_original is None and info.software is None
            and info.owner is None and info.orientation is None and not info.serials
            and not info.people and info.caption is None and info.place is None
            and (info.gps_lat is None or info.gps_lon is None)):
        return _BLANK_EXIF  # the same JSON, without a record made and dumped
    record = exif_record(info)
    return None if record is None else record.model_dump_json(exclude={f for f in _SPARSE if not getattr(record, f)})

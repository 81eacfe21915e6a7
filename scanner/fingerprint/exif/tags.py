"""Tag tables for the standard IFDs (IFD0, ExifIFD, SubIFDs, DNG), as data.

Only tags that feed the inventory are listed: device identity, capture time, owner, serials. exiftool's
tag names are used so that results can be compared with ``exiftool -G1 -n``.
"""

from __future__ import annotations

from tierscan.scanner.fingerprint.exif.model import Rank
from tierscan.scanner.fingerprint.exif.tiff import Tag

__all__ = [
    "DNG_PRIVATE",
    "DNG_VERSION",
    "EXIF_TAGS",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "IPTC_NAA",
    "MAKE",
    "MAKER_NOTE",
    "PHOTOMETRIC",
    "PHOTOSHOP",
    "POINTERS",
    "XMP_PACKET",
]

# IFD0, ExifIFD and SubIFDs share one table: writers put tags in the "wrong" IFD often enough (DNG serials
# in IFD0, BodySerialNumber in IFD0) that keeping them apart would only lose data.
EXIF_TAGS: dict[int, Tag] = {
    0x010F: Tag("make", "Make"),
    0x0110: Tag("model", "Model"),
    0x0112: Tag("orientation", "Orientation"),
    0x0131: Tag("software", "Software"),
    0x013B: Tag("owner", "Artist"),
    0x9003: Tag("datetime_original", "DateTimeOriginal"),
    0x9004: Tag("datetime_original", "CreateDate", Rank.CREATE_DATE),
    0xA420: Tag("image_unique_id", "ImageUniqueID"),
    0xA430: Tag("owner", "OwnerName"),  # EXIF 2.3 CameraOwnerName; exiftool calls it OwnerName
    0xA431: Tag("serial", "SerialNumber"),  # EXIF 2.3 BodySerialNumber
    0xA435: Tag("serial", "LensSerialNumber"),
    0xC62F: Tag("serial", "CameraSerialNumber"),  # DNG
    0xFDE8: Tag("owner", "OwnerName"),  # Photoshop Camera Raw's private copies
    0xFDE9: Tag("serial", "SerialNumber"),
}

# Tags whose value is the offset of another IFD, and what that IFD holds.
POINTERS: dict[int, str] = {0x8769: "exif", 0x8825: "gps", 0x014A: "subifd"}

MAKE = 0x010F
MAKER_NOTE = 0x927C
XMP_PACKET = 0x02BC
DNG_PRIVATE = 0xC634
DNG_VERSION = 0xC612
IMAGE_WIDTH = 0x0100
IMAGE_HEIGHT = 0x0101
PHOTOMETRIC = 0x0106
IPTC_NAA = 0x83BB  # an IPTC-IIM stream (TIFF, RAW)
PHOTOSHOP = 0x8649  # Photoshop image resources, holding IPTC-IIM (TIFF)

"""Image format detection and a pure-Python metadata reader (EXIF, maker notes, XMP, GPMF).

The public surface is deliberately tiny, the way imagehash's is: the fingerprint worker calls
:func:`detect_format` on the first bytes of an object and :func:`read_metadata` on its bytes.
"""

from __future__ import annotations

from tierscan.scanner.fingerprint.exif.formats import detect_format
from tierscan.scanner.fingerprint.exif.model import ExifInfo, ImageMeta
from tierscan.scanner.fingerprint.exif.reader import read_metadata

__all__ = ["ExifInfo", "ImageMeta", "detect_format", "read_metadata"]

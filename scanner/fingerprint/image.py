"""Turn an object's bytes into its fingerprint: SHA-256, perceptual hashes, format, size and EXIF.

This is the CPU-bound step; it runs in worker processes (`tierscan.scanner.fingerprint.pool`), so the
functions here take and return plain, picklable values; no process or pool code lives here. Perceptual
hashes are computed after applying the EXIF orientation, on a reduced decode: JPEGs use Pillow's DCT
scaling (`draft`), four times faster than a full decode and within a bit or two of its hashes
(`benchmarks/draft_distance.py`). Every hash is made in one mode
(`PERCEPTUAL_MODE`), which the catalog records: a scan makes the hashes of another mode again
(`Catalog.keep_perceptual_mode`), so hashes made in different modes are never compared.

The report's thumbnail (`THUMB_SIDE` on its long side, WebP, upright) is made from the same decode: a
JPEG is then decoded as YCbCr rather than grey, whose Y channel is the grey decode itself, so the hashes
are the same either way. Faces (`tierscan.scanner.fingerprint.faces`) are counted on that colour decode
too: one small upright copy of it serves the detector and the thumbnail.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import cv2
import numpy as np
from PIL import Image

from tierscan.scanner.core.models import NOT_AN_IMAGE
from tierscan.scanner.fingerprint.exif import detect_format, read_metadata
from tierscan.scanner.fingerprint.faces import FACE_SIDE, count_faces, load_detector, not_analysed, upright_colour
from tierscan.scanner.fingerprint.layout import PERCEPTUAL_MODE
from tierscan.scanner.fingerprint.record import Fingerprint, exif_json
from tierscan.scanner.fingerprint.signatures import compute_signature, grey_of, hash_copy, whole_hashes

__all__ = ["MAX_PIXELS", "PERCEPTUAL_MODE", "THUMB_SIDE", "fingerprint_bytes", "init_worker", "thumbnail_of",
           "warm_up"]

# Formats Pillow decodes to pixels here; RAW files give metadata only.
_DECODABLE = frozenset({"JPEG", "MPO", "PNG", "TIFF", "WEBP", "HEIC", "AVIF", "GIF", "BMP"})
# Pillow's own limit warns at 89 MP and fails at twice that; tierscan treats anything over the limit as a
# decompression bomb: a finding for the report, never a decode that could exhaust memory.
MAX_PIXELS = 120_000_000
# pHash reads a 32x32 grey image: anything smaller (icons, test patterns of a few pixels) has too little
# detail to tell pictures apart, and would only produce false near duplicates.
MIN_PERCEPTUAL_SIDE = 32
# 16- and 32-bit greys (PNG, TIFF): Pillow's conversion to L clips them at 255, and `reduce` refuses them.
_DEEP_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# The report's thumbnails: long side in pixels, and WebP settings (a few KB; benchmarks in docs/benchmarks.md).
THUMB_SIDE = 160  # squeezed from the detector's copy (`faces.upright_colour`) when faces are counted
_THUMB_QUALITY = 50
_THUMB_METHOD = 2
# EXIF Orientation -> the transpose that shows the image upright (as Pillow's ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def init_worker() -> None:
    """Set up a process that will fingerprint: HEIF/AVIF decoding, the pixel limit, and the face detector
    (loaded once). OpenCV's thread count is left as the fork found it: changing it in a child whose parent
    had OpenCV threads at work waits forever on the parent's thread pool."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    load_detector()


def warm_up() -> None:
    """Compile (or load from numba's cache) the hashing kernels, so that the first object's time limit
    does not pay for it: a worker that will hash does this as it sets up."""
    sample = io.BytesIO()
    Image.linear_gradient("L").resize((64, 64)).save(sample, "PNG")
    _perceptual(sample.getvalue(), None, True, False, False)


def _deep_grey_to_l(img: Image.Image) -> Image.Image:
    """A 16- or 32-bit grey image stretched to 8 bits over its own range (one pass, no float copy)."""
    deep = np.asarray(img)
    if not deep.dtype.isnative:  # I;16B: big-endian samples
        deep = deep.astype(deep.dtype.newbyteorder("="))
    return Image.fromarray(cv2.normalize(deep, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U), "L")


def thumbnail_of(colour: Image.Image) -> bytes:
    """The report's thumbnail of an upright RGB or grey picture (`faces.upright_colour`): at most
    `THUMB_SIDE` on its long side, WebP."""
    width, height = colour.size
    scale = min(1.0, THUMB_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = colour.resize(size, Image.Resampling.BILINEAR) if size != colour.size else colour
    out = io.BytesIO()
    small.save(out, "WEBP", quality=_THUMB_QUALITY, method=_THUMB_METHOD)
    return out.getvalue()


def _pictured(img: Image.Image, transpose: Image.Transpose | None, thumbnail: bool, faces: bool
              ) -> tuple[bytes | None, int | None, str | None]:
    """The thumbnail (None unless `thumbnail`) and the faces with the reason they are None (None and None
    unless `faces`), both from one small upright colour copy of the decode. Pixels that copy cannot be
    made of cost these two alone, never the hashes."""
    if not (thumbnail or faces):
        return None, None, None
    try:
        colour = upright_colour(img, transpose, FACE_SIDE if faces else THUMB_SIDE)
    except Exception as exc:  # a conversion Pillow refuses, a library bug on hostile pixels
        return None, None, not_analysed(exc) if faces else None
    found, why = count_faces(colour) if faces else (None, None)
    return (thumbnail_of(colour) if thumbnail else None), found, why


def _perceptual(data: bytes, orientation: int | None, signature: bool, thumbnail: bool, faces: bool
                ) -> tuple[str | None, str | None, bytes | None, int, int, bytes | None, int | None, str | None]:
    """pHash and dHash (hex), the near-duplicate signature blob (all None for images too small to hash;
    the blob None unless `signature`), the displayed width and height, the thumbnail (None unless
    `thumbnail`, or when the image is too small to hash), and the number of faces with the reason it is
    None when the detector failed (None without a reason unless `faces`, or when too small to hash)."""
    with warnings.catch_warnings():
        # Over the limit Pillow only warns; here that is an error, raised before any pixel is decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
    with img:
        width, height = img.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if min(width, height) < MIN_PERCEPTUAL_SIDE:
            return None, None, None, width, height, None, None, None
        if img.format in ("JPEG", "MPO"):
            img.draft("YCbCr" if thumbnail or faces else "L", (256, 256))
        img.load()
        # Every draft JPEG decodes to L (or YCbCr, whose Y is that L) already: no conversion.
        if img.mode in _DEEP_GREY:
            pixels = _deep_grey_to_l(img)
        elif img.mode in ("L", "YCbCr"):
            pixels = img if img.mode == "L" else img.getchannel(0)
        else:
            pixels = img.convert("L")
        transpose = _ORIENTATION.get(orientation or 1)
        thumb, found, why = _pictured(pixels if img.mode in _DEEP_GREY else img, transpose, thumbnail, faces)
        if transpose is not None:
            # The orientation we parsed, not Pillow's reading of it, so the inventory and the hash agree.
            pixels = pixels.transpose(transpose)
        if max(pixels.size) > 512:
            pixels = pixels.reduce(max(1, max(pixels.size) // 256))
        grey = grey_of(pixels)
        small = hash_copy(grey)
        phash, dhash = whole_hashes(small)
        blob = compute_signature(grey, small).to_blob() if signature else None
        return f"{phash:016x}", f"{dhash:016x}", blob, width, height, thumb, found, why


def fingerprint_bytes(data: bytes, *, want_sha256: bool, want_perceptual: bool,
                      want_signature: bool = True, want_thumbnail: bool = False, want_faces: bool = False
                      ) -> Fingerprint:
    """Fingerprint one whole object. Never raises for bad input: the reason goes in `error` (or, for a
    face count alone that failed, in `faces_error`). `want_signature`, `want_thumbnail`, `want_faces`: with
    the perceptual hashes, the near-duplicate signature, the report's thumbnail and the faces too."""
    result = Fingerprint()
    if want_sha256:
        result.sha256 = hashlib.sha256(data).hexdigest()
    fmt = detect_format(data[:64])
    result.format = fmt
    if fmt is None:
        result.error = NOT_AN_IMAGE
        return result
    meta = read_metadata(data)
    result.exif = exif_json(meta.exif)
    result.width, result.height = meta.width, meta.height
    if not want_perceptual or fmt not in _DECODABLE:
        return result
    try:
        (result.phash, result.dhash, result.near_sig, result.width, result.height, result.thumb, result.faces,
         result.faces_error) = _perceptual(data, meta.exif.orientation, want_signature, want_thumbnail, want_faces)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        result.error = f"decompression bomb: {exc}"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        result.error = f"corrupt image ({fmt}): {exc}"
    except Exception as exc:  # a decoder bug on a hostile file must not end the scan
        result.error = f"corrupt image ({fmt}): {type(exc).__name__}: {exc}"
    return result

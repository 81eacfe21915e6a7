"""Turn an object's bytes into its fingerprint: SHA-256, perceptual hashes, format, size and EXIF.

This is the CPU-bound step; it runs in worker processes (`FingerprintPool`), so the functions here take
and return plain, picklable values. Perceptual hashes are computed after applying the EXIF orientation,
on a reduced decode: JPEGs use Pillow's DCT scaling (`draft`), four times faster than a full decode and
within a bit or two of its hashes (`benchmarks/draft_distance.py`). Every hash is made in one mode
(`PERCEPTUAL_MODE`), which the catalog records: a scan makes the hashes of another mode again
(`Catalog.keep_perceptual_mode`), so hashes made in different modes are never compared.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .exif import ExifInfo, detect_format, read_metadata
from .shared_arena import SharedArena
from .signatures import compute_signature, grey_of, hash_copy, whole_hashes

__all__ = ["PERCEPTUAL_MODE", "FingerprintPool", "FingerprintResult", "fingerprint_bytes"]

# Grey, JPEG DCT-scaled to >= 256 px, EXIF orientation applied; hashes from a 128 px area-averaged copy.
PERCEPTUAL_MODE = "L-draft256-orient-area128"
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


@dataclass(slots=True)
class FingerprintResult:
    """What one object yielded. `error` set means the object is skipped with that reason."""

    sha256: str | None = None
    phash: str | None = None
    dhash: str | None = None
    near_sig: bytes | None = None  # `signatures.Signature` blob: extra hashes, ORB features, thumbnail
    format: str | None = None
    width: int | None = None
    height: int | None = None
    exif: ExifInfo | None = None
    error: str | None = None


# Shared memory for objects on their way to the workers: 256 MiB of address space, of which only what is in
# flight at once is ever touched (16 reads of a few MiB). Bigger objects, and pools on systems without
# ``fork``, go through the pool's pipe.
ARENA_BYTES = 256 << 20
_ARENA: SharedArena | None = None  # a worker's view of its pool's arena


def _init_worker(arena: SharedArena | None = None) -> None:
    import pillow_heif

    global _ARENA
    _ARENA = arena
    pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _deep_grey_to_l(img: Image.Image) -> Image.Image:
    """A 16- or 32-bit grey image stretched to 8 bits over its own range (one pass, no float copy)."""
    deep = np.asarray(img)
    if not deep.dtype.isnative:  # I;16B: big-endian samples
        deep = deep.astype(deep.dtype.newbyteorder("="))
    return Image.fromarray(cv2.normalize(deep, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U), "L")


def _perceptual(data: bytes, orientation: int | None,
                signature: bool) -> tuple[str | None, str | None, bytes | None, int, int]:
    """pHash and dHash (hex), the near-duplicate signature blob (all None for images too small to hash;
    the blob None unless `signature`), and the displayed width and height."""
    with warnings.catch_warnings():
        # Over the limit Pillow only warns; here that is an error, raised before any pixel is decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
    with img:
        width, height = img.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if min(width, height) < MIN_PERCEPTUAL_SIDE:
            return None, None, None, width, height
        if img.format in ("JPEG", "MPO"):
            img.draft("L", (256, 256))
        img.load()
        if img.mode in _DEEP_GREY:
            pixels = _deep_grey_to_l(img)
        else:  # every draft JPEG decodes to L already: no copy
            pixels = img if img.mode == "L" else img.convert("L")
        transpose = _ORIENTATION.get(orientation or 1)
        if transpose is not None:
            # The orientation we parsed, not Pillow's reading of it, so the inventory and the hash agree.
            pixels = pixels.transpose(transpose)
        if max(pixels.size) > 512:
            pixels = pixels.reduce(max(1, max(pixels.size) // 256))
        grey = grey_of(pixels)
        small = hash_copy(grey)
        phash, dhash = whole_hashes(small)
        blob = compute_signature(grey, small).to_blob() if signature else None
        return f"{phash:016x}", f"{dhash:016x}", blob, width, height


def fingerprint_bytes(data: bytes, *, want_sha256: bool, want_perceptual: bool,
                      want_signature: bool = True) -> FingerprintResult:
    """Fingerprint one whole object. Never raises for bad input: the reason goes in `error`.
    `want_signature`: with the perceptual hashes, the near-duplicate signature too."""
    result = FingerprintResult()
    if want_sha256:
        result.sha256 = hashlib.sha256(data).hexdigest()
    fmt = detect_format(data[:64])
    result.format = fmt
    if fmt is None:
        result.error = "not an image"
        return result
    meta = read_metadata(data)
    result.exif = meta.exif
    result.width, result.height = meta.width, meta.height
    if not want_perceptual or fmt not in _DECODABLE:
        return result
    try:
        result.phash, result.dhash, result.near_sig, result.width, result.height = _perceptual(
            data, meta.exif.orientation, want_signature
        )
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        result.error = f"decompression bomb: {exc}"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        result.error = f"corrupt image ({fmt}): {exc}"
    except Exception as exc:  # a decoder bug on a hostile file must not end the scan
        result.error = f"corrupt image ({fmt}): {type(exc).__name__}: {exc}"
    return result


def _fingerprint_placed(offset: int, length: int, **wants: bool) -> FingerprintResult:
    """`fingerprint_bytes` of what the parent placed in this worker's arena."""
    assert _ARENA is not None
    return fingerprint_bytes(_ARENA.take(offset, length), **wants)


class FingerprintPool:
    """A process pool sized to the cores, so fingerprinting keeps every core busy. Where processes fork,
    objects reach the workers through a `SharedArena` rather than pickled through a pipe."""

    def __init__(self, workers: int | None = None, arena_bytes: int = ARENA_BYTES):
        self.workers = workers or os.cpu_count() or 1
        forks = "fork" in multiprocessing.get_all_start_methods()
        self._arena = SharedArena(arena_bytes) if forks and arena_bytes else None
        # The arena is inherited, not pickled: the workers must fork (Python 3.14 defaults to forkserver).
        context = multiprocessing.get_context("fork") if self._arena is not None else None
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_worker,
                                         initargs=(self._arena,))
        # Fork the workers now (a pool that forks starts them all at its first submit), not at the first
        # object: then, and not while a thread of the caller's holds a lock a worker would inherit held.
        self._pool.submit(int)

    def submit(self, data: bytes, *, want_sha256: bool, want_perceptual: bool,
               want_signature: bool = True) -> Future[FingerprintResult]:
        wants = {"want_sha256": want_sha256, "want_perceptual": want_perceptual, "want_signature": want_signature}
        arena, length = self._arena, len(data)
        offset = arena.place(data) if arena is not None else None
        if arena is None or offset is None:
            return self._pool.submit(fingerprint_bytes, data, **wants)
        future = self._pool.submit(_fingerprint_placed, offset, length, **wants)
        # Done (or cancelled before a worker took it) means no worker reads the run again.
        future.add_done_callback(lambda _: arena.free(offset, length))
        return future

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._arena is not None:
            self._arena.close()

    def __enter__(self) -> FingerprintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

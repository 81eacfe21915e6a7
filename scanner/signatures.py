"""Near-duplicate signatures: what the fingerprint worker keeps of an image's pixels beyond pHash/dHash.

Global hashes miss mirrored copies and crops, and cannot tell a re-encode from the next frame of a burst.
So each image also gets, from the same reduced, upright grey decode (`PERCEPTUAL_MODE`):

- the pHash of its mirror image, so horizontal flips are found through the index;
- pHashes of fifteen windows (the centre and the four corners, at 85%, 72% and 60% of the area: steps of
  0.85 down to the smallest crop we promise to find), so a crop of this image, hashed whole, lands within
  the index radius of one of them;
- ORB keypoints and descriptors of the image and of its mirror (at most `ORB_FEATURES` each), to verify
  candidate pairs geometrically (RANSAC), never to search;
- a `THUMB` x `THUMB` grey thumbnail, to compare the aligned pixels of a verified pair: burst shots and
  stereo pairs align well on their static parts but differ where something moved.

`to_blob`/`from_blob` pack it compactly for the catalog (about 9.3 KB an image at the defaults: 16 x 8 B
of hashes, 2 x 96 x 36 B of features, 48 x 48 B of thumbnail).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
from PIL import Image

__all__ = ["ORB_FEATURES", "THUMB", "WINDOWS", "Features", "Signature", "compute_signature", "phash_int"]

ORB_FEATURES = 96
THUMB = 48
_HASH_SIDE = 128  # window and mirror hashes are made from a copy reduced to 128-255 px
_ORB_MIN_SIDE = 256  # long side, in pixels, below which images are enlarged for ORB
# (area fraction, x anchor, y anchor): the anchor 0 / 0.5 / 1 puts the window at the left/centre/right.
WINDOWS: tuple[tuple[float, float, float], ...] = tuple(
    (area, fx, fy) for area in (0.85, 0.72, 0.6) for fx, fy in ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1))
)
# Windows that also serve as queries: the centred ones, which survive rotation (black corners) and crops.
QUERY_WINDOWS = tuple(i for i, (_, fx, fy) in enumerate(WINDOWS) if (fx, fy) == (0.5, 0.5))
_HEADER = struct.Struct("<HHBB")  # decode width, height; ORB count of the image, of its mirror
_ORB = cv2.ORB_create(nfeatures=ORB_FEATURES, edgeThreshold=15, patchSize=15, fastThreshold=10)


def phash_int(pixels: Image.Image) -> int:
    """imagehash's pHash as a 64-bit integer (the form the index and the catalog's hex share)."""
    return int.from_bytes(np.packbits(imagehash.phash(pixels).hash.ravel()).tobytes(), "big")


@dataclass(frozen=True, slots=True)
class Features:
    """ORB keypoints (x, y in decode pixels, float32 N x 2) and their 32-byte descriptors (uint8 N x 32)."""

    points: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def detect(cls, grey: np.ndarray) -> Features:
        keypoints, descriptors = _ORB.detectAndCompute(grey, None)
        if descriptors is None:
            return cls(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        return cls(np.array([k.pt for k in keypoints], np.float32), descriptors)


@dataclass(frozen=True, slots=True)
class Signature:
    """Everything near-duplicate search and verification need of one image."""

    width: int  # of the image the features were found in
    height: int
    mirror: int  # pHash of the mirror image
    windows: tuple[int, ...]  # pHashes of `WINDOWS`
    features: Features
    mirror_features: Features
    thumb: np.ndarray  # uint8 THUMB x THUMB, the whole image squeezed

    def to_blob(self) -> bytes:
        """Little-endian: header, mirror + window hashes (u64), then per feature set x/y (u16) and
        descriptors, then the thumbnail."""
        parts = [
            _HEADER.pack(self.width, self.height, len(self.features.points), len(self.mirror_features.points)),
            np.array((self.mirror, *self.windows), "<u8").tobytes(),
        ]
        for f in (self.features, self.mirror_features):
            parts += [np.round(f.points).astype("<u2").tobytes(), f.descriptors.tobytes()]
        parts.append(self.thumb.tobytes())
        return b"".join(parts)

    @classmethod
    def from_blob(cls, blob: bytes) -> Signature:
        width, height, n, m = _HEADER.unpack_from(blob)
        pos = _HEADER.size
        hashes = np.frombuffer(blob, "<u8", 1 + len(WINDOWS), pos)
        pos += hashes.nbytes
        sets = []
        for count in (n, m):
            points = np.frombuffer(blob, "<u2", 2 * count, pos).reshape(count, 2).astype(np.float32)
            pos += 4 * count
            descriptors = np.frombuffer(blob, np.uint8, 32 * count, pos).reshape(count, 32)
            pos += 32 * count
            sets.append(Features(points, descriptors))
        thumb = np.frombuffer(blob, np.uint8, THUMB * THUMB, pos).reshape(THUMB, THUMB)
        return cls(width, height, int(hashes[0]), tuple(int(h) for h in hashes[1:]), sets[0], sets[1], thumb)


def _window(pixels: Image.Image, area: float, fx: float, fy: float) -> Image.Image:
    w, h = pixels.size
    side = area ** 0.5
    ww, hh = round(w * side), round(h * side)
    x, y = round((w - ww) * fx), round((h - hh) * fy)
    return pixels.crop((x, y, x + ww, y + hh))


def compute_signature(pixels: Image.Image) -> Signature:
    """The signature of an upright, reduced grey image, as `fingerprint` decodes it."""
    if pixels.mode != "L":
        pixels = pixels.convert("L")
    # ORB finds few, unstable features in small images (a 25% resize of a web photo): detect at a common
    # minimum scale instead; the feature coordinates are in that frame, which width/height record.
    scale = _ORB_MIN_SIDE / max(pixels.size)
    detect = pixels if scale <= 1 else pixels.resize(
        (round(pixels.width * scale), round(pixels.height * scale)), Image.Resampling.BILINEAR
    )
    grey = np.asarray(detect)
    # pHash looks at 32 x 32 pixels: hashing windows of a 128-255 px copy is within a bit or two of
    # hashing the full decode, for a fraction of the resampling cost (16 hashes an image).
    small = pixels.reduce(max(1, max(pixels.size) // _HASH_SIDE))
    mirrored = np.ascontiguousarray(grey[:, ::-1])
    return Signature(
        width=detect.width,
        height=detect.height,
        mirror=phash_int(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        windows=tuple(phash_int(_window(small, *w)) for w in WINDOWS),
        features=Features.detect(grey),
        mirror_features=Features.detect(mirrored),
        thumb=np.asarray(pixels.resize((THUMB, THUMB), Image.Resampling.BOX), np.uint8),
    )

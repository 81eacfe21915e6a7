"""Near-duplicate signatures: what the fingerprint worker keeps of an image's pixels beyond pHash/dHash.

Global hashes miss mirrored copies and crops, and cannot tell a re-encode from the next frame of a burst.
So each image also gets, from the same reduced, upright grey decode (`PERCEPTUAL_MODE`):

- the pHash of its mirror image, so horizontal flips are found through the index;
- pHashes of fifteen windows (the centre and the four corners, at 85%, 72% and 60% of the area: steps of
  0.85 down to the smallest crop we promise to find), so a crop of this image, hashed whole, lands within
  the index radius of one of them;
- ORB keypoints (sub-pixel positions) and descriptors of the image and of its mirror (at most
  `ORB_FEATURES` each), found in a copy scaled to `WORK_SIDE` on its long side, to verify candidate pairs
  geometrically (RANSAC), never to search;
- the pHash of what lies inside a quiet border (`_content_box`: a uniform fill, or a blurred enlargement of
  the photo as "no crop" apps frame it), so a framed copy finds its original through the index; found at
  the ORB copy's scale, where a blurred fill is far quieter than any photo, which a thumbnail is too coarse
  to tell (synthesised blurred frames: 48 of 60 insides within the index radius of their original, against
  25 from the thumbnail);
- the levelled hash: the pHash of the middle of the image turned so that its dominant edge direction is
  level (`_level_hash`), so a copy turned by any angle up to about 40 degrees finds its original through
  the index (the centre windows only survive a few degrees);
- a `THUMB` x `THUMB` grey thumbnail, squeezed from the ORB copy, to compare the aligned pixels of a
  verified pair: burst shots and stereo pairs align well on their static parts but differ where something
  moved. (Earlier versions squeezed it from the decode itself: four times the resampling for the same area
  averages to within rounding; `benchmarks/neardup_eval.py` gave the same figures at the configured
  `min_agreement` either way, so blobs made either way are compared as they are, not made again.)

Cost: most of an image's CPU is the two ORB passes, so the mirror's features are described at the image's
mirrored keypoints rather than detected again (`_features_and_mirror`), and the downscales go through
`area_resize`, which gives cv2's arrays for less work.
`to_blob`/`from_blob` pack it for the catalog: about 9.3 KB an image (18 x 8 B of hashes, 2 x 96 x 36 B of
features, 48 x 48 B of thumbnail), behind a `MAGIC` prefix that names the layout. Blobs of layouts 2 (no
inside hash) and 3 (no levelled hash) are still read; blobs of older layouts are recognised and recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from tierscan.scanner.fingerprint.area_resize import area_resize
from tierscan.scanner.fingerprint.layout import LAYOUTS, MAGIC, SIGNATURE_HEADER

__all__ = ["MAGIC", "ORB_FEATURES", "PHASH_DCT", "THUMB", "WINDOWS", "WORK_SIDE", "Features", "Signature",
           "compute_signature", "grey_of", "hash_copy", "phash_bits", "whole_hashes"]

ORB_FEATURES = 96
THUMB = 48
WORK_SIDE = 256  # long side, in pixels, of the copy ORB runs on: every image at one scale
_HASH_SIDE = 128  # window and mirror hashes are made from a copy of this long side
_POINT_UNIT = 64  # keypoint positions are stored in 1/64 pixel (u16: up to 1023 px)
# (area fraction, x anchor, y anchor): the anchor 0 / 0.5 / 1 puts the window at the left/centre/right.
WINDOWS: tuple[tuple[float, float, float], ...] = tuple(
    (area, fx, fy) for area in (0.85, 0.72, 0.6) for fx, fy in ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1))
)
# Windows that also serve as queries: the centred ones, which survive rotation (black corners) and crops.
QUERY_WINDOWS = tuple(i for i, (_, fx, fy) in enumerate(WINDOWS) if (fx, fy) == (0.5, 0.5))
_HEADER = SIGNATURE_HEADER  # magic; work width, height; ORB count of the image, of its mirror
_INSIDE_AT = _HEADER.size + 8 * (1 + len(WINDOWS))  # offset of the inside hash (layout 3), after the windows
_EXTRAS = dict(zip(LAYOUTS, (0, 1, 2), strict=True))  # hashes after the windows: none, inside, inside + level
_LEVEL_MIDDLE = 0.5  # of the short side: a middle square that stays inside the picture turned by up to 45 deg
_FLAT_MIDDLE = 4.0  # grey levels: a middle whose pixels span no more is blank (no levelled hash)
_LEVEL_KERNEL = np.array([1, 2, 3, 4, 3, 2, 1], np.float64)  # smooths the direction histogram to one peak
_QUIET = 0.3  # a border row or column: mean Laplacian magnitude under this share of the middle half's median
_BORDER_MIN = 0.02  # of the long side: a quiet edge thinner than this is no border
# All images are scaled to WORK_SIDE, so copies differ in scale only by a crop (at most 1/0.6 in area,
# 1.3 in side) or an aspect change: five levels 1.3 apart cover that at about half the cost of eight.
_ORB = cv2.ORB.create(nfeatures=ORB_FEATURES, scaleFactor=1.3, nlevels=5, edgeThreshold=15, patchSize=15,
                      fastThreshold=10)
_LEVEL_SCALES = tuple(_ORB.getScaleFactor() ** level for level in range(_ORB.getNLevels()))
# The first eight rows of the unnormalised DCT-II on 32 samples (scipy's `dct`, as imagehash uses): the
# 8 x 8 low frequencies of a 32 x 32 block X are PHASH_DCT @ X @ PHASH_DCT.T.
PHASH_DCT = 2 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64)


def phash_bits(blocks: np.ndarray, dct: np.ndarray = PHASH_DCT) -> list[int]:
    """pHashes (64-bit integers, imagehash's bit order) of a stack of 32 x 32 grey blocks (N x 32 x 32);
    or of larger blocks, with `dct` the DCT rows composed with the linear squeeze of a side to 32."""
    low = (dct @ blocks.astype(np.float64) @ dct.T).reshape(len(blocks), 64)
    ranked = np.sort(low, axis=1)  # the median as np.median gives it, at a sixth of its overhead
    bits = low > (ranked[:, 31:32] + ranked[:, 32:33]) / 2
    return [int.from_bytes(row.tobytes(), "big") for row in np.packbits(bits, axis=1)]


@dataclass(frozen=True, slots=True)
class Features:
    """ORB keypoints (x, y in work-image pixels, float32 N x 2) and their descriptors (uint8 N x 32)."""

    points: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def of(cls, keypoints: Sequence[cv2.KeyPoint], descriptors: np.ndarray | None) -> Features:
        if descriptors is None:
            return cls(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        return cls(np.asarray(cv2.KeyPoint.convert(keypoints)), descriptors)


def _mirrored(keypoints: Sequence[cv2.KeyPoint], width: int) -> list[cv2.KeyPoint]:
    """Where ORB would find `keypoints` of an image `width` px wide in its mirror image. Each is mirrored in
    its own pyramid level, whose pixel grid ORB samples (level widths are rounded, so mirroring at full
    scale would put a point up to 2 px off at the top level); the intensity-centroid angle turns to
    180 - angle. (One comprehension over plain values: this runs for every keypoint of every image.)"""
    edges = [(round(width / scale) - 1) * scale for scale in _LEVEL_SCALES]  # level x' = edge - x
    return [cv2.KeyPoint(edges[k.octave] - x, y, k.size, (180 - k.angle) % 360, k.response, k.octave)
            for k in keypoints for x, y in (k.pt,)]


def _features_and_mirror(work: np.ndarray) -> tuple[Features, Features]:
    """ORB features of the work image and of its mirror image. The mirror's keypoints are the image's,
    mirrored, and only described in the mirror: FAST, the Harris score, the centroid angle, the Gaussian
    blur and ORB's pyramid (bilinear, scaled by each level's exact size ratio) are all symmetric under a
    horizontal flip, so detecting again would find the same corners. On 200 dev-set images, of the
    mirror's 19,200 keypoints 99.2% are where a detection in the mirror puts one, with the same descriptor
    but for 20, and the rest within half a pixel of one; both sets cost 1.46 ms of CPU an image against
    two detections' 2.16."""
    keypoints, descriptors = _ORB.detectAndCompute(work, None)
    mirror = np.ascontiguousarray(work[:, ::-1])
    mirror_keypoints, mirror_descriptors = _ORB.compute(mirror, _mirrored(keypoints, work.shape[1]))
    return Features.of(keypoints, descriptors), Features.of(mirror_keypoints, mirror_descriptors)


@dataclass(frozen=True, slots=True)
class Signature:
    """Everything near-duplicate search and verification need of one image."""

    width: int  # of the work image the features were found in
    height: int
    mirror: int  # pHash of the mirror image
    windows: tuple[int, ...]  # pHashes of `WINDOWS`
    inside: int  # pHash of what lies inside a quiet border; 0: no border (or a layout 2 blob)
    level: int  # the levelled hash (`_level_hash`); 0: a blank middle (or a blob of layout 2 or 3)
    features: Features
    mirror_features: Features
    thumb: np.ndarray  # uint8 THUMB x THUMB, the whole image squeezed

    def to_blob(self) -> bytes:
        """Little-endian: header, mirror + window hashes (u64), then per feature set x/y (u16, in
        1/`_POINT_UNIT` px) and descriptors, then the thumbnail."""
        parts = [
            _HEADER.pack(MAGIC, self.width, self.height, len(self.features.points),
                         len(self.mirror_features.points)),
            np.array((self.mirror, *self.windows, self.inside, self.level), "<u8").tobytes(),
        ]
        for f in (self.features, self.mirror_features):
            parts += [np.round(f.points * _POINT_UNIT).astype("<u2").tobytes(), f.descriptors.tobytes()]
        parts.append(self.thumb.tobytes())
        return b"".join(parts)

    @staticmethod
    def is_current(blob: bytes) -> bool:
        """Whether a blob has a layout this version reads (else it was made by an older tierscan)."""
        return blob[:len(MAGIC)] in LAYOUTS

    @staticmethod
    def hash_table(blobs: Sequence[bytes]) -> np.ndarray:
        """The mirror and window pHashes of blobs of this layout, without decoding the rest: one row each,
        the mirror's first, then `WINDOWS` in order (uint64, len(blobs) x (1 + len(WINDOWS)))."""
        width = 8 * (1 + len(WINDOWS))
        rows = b"".join(blob[_HEADER.size:_HEADER.size + width] for blob in blobs)
        return np.frombuffer(rows, "<u8").reshape(len(blobs), 1 + len(WINDOWS)).astype(np.uint64)

    @staticmethod
    def feature_count(blob: bytes) -> int:
        """How many ORB features the blob holds, of the image or of its mirror, whichever is more."""
        _, _, _, n, m = _HEADER.unpack_from(blob)
        return int(max(n, m))

    @staticmethod
    def has_inside(blob: bytes) -> bool:
        """Whether the worker looked for an inside (layout 3 on), whether or not it found one."""
        return _EXTRAS.get(blob[:len(MAGIC)], 0) >= 1

    @staticmethod
    def inside_hashes(blobs: Sequence[bytes]) -> np.ndarray:
        """The inside hash of each blob (0 where none was found or the layout has none), uint64."""
        return _extra_hashes(blobs, 1)

    @staticmethod
    def level_hashes(blobs: Sequence[bytes]) -> np.ndarray:
        """The levelled hash of each blob (0 where the layout has none), uint64."""
        return _extra_hashes(blobs, 2)

    @staticmethod
    def thumbs(blobs: Sequence[bytes]) -> np.ndarray:
        """The thumbnails of blobs of this layout (their last bytes), without decoding the rest (uint8,
        len(blobs) x THUMB x THUMB)."""
        rows = b"".join(blob[-THUMB * THUMB:] for blob in blobs)
        return np.frombuffer(rows, np.uint8).reshape(len(blobs), THUMB, THUMB)

    @classmethod
    def from_blob(cls, blob: bytes) -> Signature:
        """Raises ValueError for a blob of another layout (made by an older tierscan)."""
        if not cls.is_current(blob):
            raise ValueError("near-duplicate signature of another layout")
        magic, width, height, n, m = _HEADER.unpack_from(blob)
        pos = _HEADER.size
        extras = _EXTRAS[magic]
        hashes = np.frombuffer(blob, "<u8", 1 + len(WINDOWS) + extras, pos)
        pos += hashes.nbytes
        sets = []
        for count in (n, m):
            points = np.frombuffer(blob, "<u2", 2 * count, pos).reshape(count, 2) / np.float32(_POINT_UNIT)
            pos += 4 * count
            descriptors = np.frombuffer(blob, np.uint8, 32 * count, pos).reshape(count, 32)
            pos += 32 * count
            sets.append(Features(points, descriptors))
        thumb = np.frombuffer(blob, np.uint8, THUMB * THUMB, pos).reshape(THUMB, THUMB)
        inside, level = [int(h) for h in hashes[1 + len(WINDOWS):]] + [0] * (2 - extras)  # 0: not in this layout
        return cls(width, height, int(hashes[0]), tuple(int(h) for h in hashes[1:1 + len(WINDOWS)]), inside,
                   level, sets[0], sets[1], thumb)


def _extra_hashes(blobs: Sequence[bytes], k: int) -> np.ndarray:
    """The `k`th hash after the windows (1: inside, 2: levelled) of each blob, 0 where its layout has
    fewer (uint64), read without decoding the rest."""
    at = _INSIDE_AT + 8 * (k - 1)
    return np.array([int.from_bytes(b[at:at + 8], "little") if _EXTRAS.get(b[:len(MAGIC)], 0) >= k else 0
                     for b in blobs], np.uint64)


def _scaled(grey: np.ndarray, side: int, *, as_float: bool = False) -> np.ndarray:
    """`grey` with its long side `side` (area averaging down, bilinear up); `as_float`: in float32."""
    h, w = grey.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 1:
        return area_resize(grey, size, as_float=as_float)
    return cv2.resize(grey.astype(np.float32) if as_float else grey, size, interpolation=cv2.INTER_LINEAR)


def _window_blocks(small: np.ndarray) -> np.ndarray:
    """The mirror image and each of `WINDOWS`, squeezed to 32 x 32 (area averaging), as pHash sees them."""
    h, w = small.shape
    blocks = [area_resize(small[:, ::-1], (32, 32))]
    for area, fx, fy in WINDOWS:
        side = area ** 0.5
        ww, hh = round(w * side), round(h * side)
        x, y = round((w - ww) * fx), round((h - hh) * fy)
        blocks.append(area_resize(small[y:y + hh, x:x + ww], (32, 32)))
    return np.stack(blocks)


def grey_of(pixels: Image.Image) -> np.ndarray:
    """The 8-bit grey pixels every hash and signature is made from."""
    return np.asarray(pixels if pixels.mode == "L" else pixels.convert("L"))


def hash_copy(grey: np.ndarray) -> np.ndarray:
    """The copy pHashes and dHashes are made from: `_HASH_SIDE` px on its long side, area-averaged, float.
    pHash looks at 32 x 32 pixels, so a 128 px copy keeps what it needs for a fraction of the resampling
    cost (windows: dev-set crop-to-window distance mean 3.7 bits; whole images against a full decode:
    `benchmarks/draft_distance.py`)."""
    return _scaled(grey, _HASH_SIDE, as_float=True)


def whole_hashes(small: np.ndarray) -> tuple[int, int]:
    """pHash and dHash (64-bit integers, imagehash's algorithms and bit order) of a whole image, from its
    `hash_copy` squeezed by area averaging: the same way the window hashes are made, so a crop's hash and
    its original's window hashes compare like with like. (imagehash's own Lanczos resizes from the decode
    cost 1.5 ms an image; these cost 0.6 ms, the 128 px copy included: 100 dev-set photos.)"""
    block = area_resize(small, (32, 32))
    columns = area_resize(small, (9, 8))
    gradient = np.packbits(columns[:, 1:] > columns[:, :-1])
    return phash_bits(block[None])[0], int.from_bytes(gradient.tobytes(), "big")


def _quiet_run(quiet: np.ndarray) -> int:
    """How many of the first entries are quiet, at most 40% of them."""
    run = len(quiet) if quiet.all() else int(np.argmin(quiet))
    return min(run, int(0.4 * len(quiet)))


def _content_box(work: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom and right exclusive, of what lies inside a quiet border of the
    work image: outer rows and columns whose mean Laplacian magnitude is under `_QUIET` of the middle
    half's median (a uniform fill, a blurred enlargement, a soft gradient), and a pixel in from them, off
    the edge the resampling blended. None when no side's border is `_BORDER_MIN` of the long side deep, or
    the inside is under a third of either side (a photo's own sky or studio backdrop is often quiet too:
    its inside is then one more query, and verification judges what it finds)."""
    h, w = work.shape
    if min(h, w) < 8:  # a sliver: no middle to compare its edges with
        return None
    lap = np.abs(cv2.Laplacian(work, cv2.CV_32F, ksize=1))
    rows, cols = lap.mean(axis=1), lap.mean(axis=0)
    quiet_rows = rows < _QUIET * float(np.median(rows[h // 4:3 * h // 4]))
    quiet_cols = cols < _QUIET * float(np.median(cols[w // 4:3 * w // 4]))
    top, bottom = _quiet_run(quiet_rows), h - _quiet_run(quiet_rows[::-1])
    left, right = _quiet_run(quiet_cols), w - _quiet_run(quiet_cols[::-1])
    if max(top, h - bottom, left, w - right) < _BORDER_MIN * max(h, w):
        return None
    top, left, bottom, right = top + (top > 0), left + (left > 0), bottom - (bottom < h), right - (right < w)
    if bottom - top < h / 3 or right - left < w / 3:
        return None
    return top, bottom, left, right


def _inside_hash(work: np.ndarray, small: np.ndarray) -> int:
    """pHash of what lies inside the work image's quiet border, from the hash copy; 0 without one."""
    box = _content_box(work)
    if box is None:
        return 0
    (h, w), (sh, sw) = work.shape, small.shape
    top, bottom, left, right = box
    inside = small[round(top * sh / h):round(bottom * sh / h), round(left * sw / w):round(right * sw / w)]
    return phash_bits(area_resize(inside, (32, 32))[None])[0]


def _level_angle(work: np.ndarray) -> float:
    """The image's dominant edge direction, in degrees within [-45, 45): the peak of its gradient directions
    (weighted by magnitude, folded onto a quarter turn, so horizontal and vertical edges agree), smoothed
    over a few degrees and placed between whole degrees by the parabola through it and its neighbours.
    5 x 5 Sobel kernels: the 3 x 3 ones pull oblique edges towards the axes by up to two degrees."""
    gx = cv2.Sobel(work, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(work, cv2.CV_32F, 0, 1, ksize=5)
    magnitude, direction = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    counts = np.bincount(np.rint(direction.ravel()).astype(np.int64) % 90, magnitude.ravel(), 90)  # bin k: k +- 0.5
    smooth = np.convolve(np.concatenate([counts[-3:], counts, counts[:3]]), _LEVEL_KERNEL, "valid")
    peak = int(np.argmax(smooth))
    before, at, after = smooth[peak - 1], smooth[peak], smooth[(peak + 1) % 90]
    bend = before - 2 * at + after
    angle = peak + (0.5 * (before - after) / bend if bend < 0 else 0.0)
    return (angle + 45) % 90 - 45


def _level_hash(work: np.ndarray) -> int:
    """pHash of the middle of the work image once turned by its `_level_angle`: a copy turned by some
    angle has its edges turned as much, so both are levelled alike and their middles agree (a square of
    `_LEVEL_MIDDLE` of the short side, inside the picture whatever the turn, black corners left out)."""
    h, w = work.shape
    side = max(1, round(_LEVEL_MIDDLE * min(h, w)))
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), _level_angle(work), 1.0)
    turn[:, 2] -= ((w - side) / 2, (h - side) / 2)  # and move the middle square to the origin
    middle = area_resize(cv2.warpAffine(work, turn, (side, side), flags=cv2.INTER_LINEAR), (32, 32), as_float=True)
    if float(middle.max() - middle.min()) <= _FLAT_MIDDLE:
        return 0  # a blank middle: its hash would be every blank middle's, a candidate of each
    return phash_bits(middle[None])[0]


def compute_signature(grey: np.ndarray, small: np.ndarray | None = None) -> Signature:
    """The signature of an upright, reduced grey image (`grey_of`), as `fingerprint` decodes it; `small`
    is its `hash_copy` when the caller has made it already."""
    # ORB at one scale for every image: a 25% resize of a web photo has too few, unstable features at its
    # own size, and a 12 MP decode has needlessly many pixels. Coordinates are in this frame.
    work = _scaled(grey, WORK_SIDE)
    small = hash_copy(grey) if small is None else small
    hashes = phash_bits(_window_blocks(small))
    features, mirror_features = _features_and_mirror(work)
    return Signature(
        width=work.shape[1],
        height=work.shape[0],
        mirror=hashes[0],
        windows=tuple(hashes[1:]),
        inside=_inside_hash(work, small),
        level=_level_hash(work),
        features=features,
        mirror_features=mirror_features,
        thumb=area_resize(work, (THUMB, THUMB)),
    )

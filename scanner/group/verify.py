"""Geometric and photometric verification of one candidate near-duplicate pair.

The index proposes pairs whose hashes are close; most are right, but burst shots, video frames and stereo
pairs are close too. A pair is confirmed when (1) ORB features (found at one work scale) match under one
similarity transform (rotation, scale, translation; RANSAC), or under a resize to another aspect ratio,
directly or with one image mirrored, and (2) with that transform, the thumbnails agree block by block:
the share of the overlap's textured 4x4 blocks (of 12 x 12) whose zero-mean correlation is at least 0.5,
compared in the frame of the thumbnail that samples the shared part more coarsely, both lightly smoothed,
inside any uniform border either has (the border's edge lines up in two frames padded alike); and (3) the
map does not move the frame across the scene, each picture reaching well past the other's frame on
opposite sides (the two views of a stereo camera agree block by block at thumbnail scale).
A re-encode, resize, recolour or crop keeps almost every block; a moved subject or parallax breaks some.
Only candidate pairs are verified, never all pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np

from tierscan.scanner.fingerprint.signatures import THUMB, Features, Signature
from tierscan.scanner.group.readings import thumb_content_box

__all__ = ["MIN_POINTS", "Evidence", "evidence"]

_RATIO = 0.8  # Lowe's ratio test on descriptor distances
_RANSAC_PX = 4.0  # reprojection tolerance, in pixels of a's feature frame
_BLOCK = 4  # thumbnail pixels per block side
_MIN_STD = 3.0  # blocks flatter than this (grey levels) carry no evidence
MIN_POINTS = 6  # features each side needs, and matches a pair needs, for a fit
_MAX_SCALE = 4.0
_MAX_STRETCH = 2.0  # a resize to another aspect ratio: 4:3 squeezed to 1:1 is 1.33, 21:9 to 1:1 2.3
_MAX_SKEW = 0.05  # off-axis terms of a resize, relative to its scale (about 3 degrees)
_SAME_SCALE = 1.05  # thumbnail scales closer than this are compared in b's frame, without anti-aliasing
_SHIFT = 0.1  # of a side: frames shifted further against each other are two framings of a scene
_SMOOTH = 0.5  # Gaussian sigma, in thumbnail pixels, applied to both thumbnails before comparing
_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)
# Pixel centres: a shift by half a pixel, and back.
_HALF = np.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
_HALF_BACK = np.linalg.inv(_HALF)
# Where a thumbnail counts as seen: all but its outermost pixels (see `_agreement`).
_INNER = np.zeros((THUMB, THUMB), np.float32)
_INNER[1:-1, 1:-1] = 1.0
_INNER.flags.writeable = False


_Box = tuple[int, int, int, int] | None  # a thumbnail's picture inside a uniform border (`thumb_content_box`)


def _picture(box: _Box) -> np.ndarray:
    """Where blocks of a thumbnail may lie (1.0): all but its outermost pixels (see `_agreement`), and
    inside a uniform border a copy added around its picture (`box`). The border's edge is texture that two
    framed images share whatever they show (two frames of a video, padded alike), so it is no evidence."""
    if box is None:
        return _INNER
    top, bottom, left, right = box
    mask = np.zeros((THUMB, THUMB), np.float32)
    mask[max(1, top):min(THUMB - 1, bottom), max(1, left):min(THUMB - 1, right)] = 1.0
    return mask


@dataclass(frozen=True, slots=True)
class Evidence:
    """How well candidate `b` maps onto `a`: RANSAC inliers, the share of overlap blocks that correlate,
    whether `b` was mirrored, and whether the map moves the frame across the scene (`_shifted`: then
    `agree` is 0, whatever the blocks say)."""

    inliers: int
    agree: float
    mirrored: bool
    shifted: bool = False


class _Ransac(TypedDict):
    """The RANSAC settings both fits take."""

    method: int
    ransacReprojThreshold: float
    maxIters: int
    confidence: float


def _transforms(a: Features, b: Features) -> Iterator[tuple[np.ndarray, int]]:
    """Maps from b's feature frame to a's with their RANSAC inlier counts: a similarity transform, then
    an axis-aligned stretch (a resize to another aspect ratio) when one fits more matches than it. Lazy:
    the stretch is fitted only if the caller asks for it."""
    if len(a.points) < MIN_POINTS or len(b.points) < MIN_POINTS:
        return
    pairs = _MATCHER.knnMatch(b.descriptors, a.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
    if len(good) < MIN_POINTS:
        return
    src = b.points[[m.queryIdx for m in good]]
    dst = a.points[[m.trainIdx for m in good]]
    similar = 0
    ransac: _Ransac = {"method": cv2.RANSAC, "ransacReprojThreshold": _RANSAC_PX, "maxIters": 500, "confidence": 0.99}
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, **ransac)
    # Every image's features are found at one work scale, so copies differ in scale by a crop, a
    # screenshot's margins or an aspect change: far less than _MAX_SCALE. More (or a degenerate fit) is
    # no match.
    if matrix is not None and 1 / _MAX_SCALE <= np.hypot(*matrix[:, 0]) <= _MAX_SCALE:
        similar = int(inliers.sum())
        yield matrix, similar
    stretch, stretch_inliers = cv2.estimateAffine2D(src, dst, **ransac)
    if stretch is not None and _resized(stretch) and int(stretch_inliers.sum()) > similar:
        yield stretch, int(stretch_inliers.sum())


def _resized(matrix: np.ndarray) -> bool:
    """Whether an affine map is a plain resize: axes kept (no rotation or shear beyond a few degrees, so
    a parallax or perspective fit never passes as one), each scaled within _MAX_SCALE, and the aspect
    ratio changed at most _MAX_STRETCH times."""
    (sx, kx), (ky, sy) = matrix[0, 0:2], matrix[1, 0:2]
    if sx <= 0 or sy <= 0 or abs(kx) > _MAX_SKEW * sx or abs(ky) > _MAX_SKEW * sy:
        return False
    scales_fit = all(1 / _MAX_SCALE <= v <= _MAX_SCALE for v in (sx, sy))
    return scales_fit and 1 / _MAX_STRETCH <= sx / sy <= _MAX_STRETCH


def _agreement(a: Signature, b: Signature, boxes: tuple[_Box, _Box], matrix: np.ndarray, mirrored: bool) -> float:
    """Share of the textured thumbnail blocks of the overlap that correlate (>= 0.5) once aligned; 0 when
    too little overlaps. Compared in the frame of the thumbnail that samples the shared part more
    coarsely (the whole image, for a crop), the other one smoothed to that sampling: enlarging the
    coarse one instead would blur it and cost a crop's true blocks their correlation."""
    # b-thumb pixels -> b decode -> (mirror) -> a decode -> a-thumb pixels, as one affine map.
    to_b = np.diag([b.width / THUMB, b.height / THUMB, 1.0])
    if mirrored:
        to_b = np.array([[-1.0, 0, b.width], [0, 1, 0], [0, 0, 1]]) @ to_b
    to_a_thumb = np.diag([THUMB / a.width, THUMB / a.height, 1.0])
    full = to_a_thumb @ np.vstack([matrix, [0, 0, 1]]) @ to_b
    # Sample at pixel centres: shift by half a pixel on both sides of the map.
    full = _HALF_BACK @ full @ _HALF
    fixed, moving = b.thumb, a.thumb  # fixed pixel p shows what moving shows at full @ p
    inside_fixed, inside_moving = _picture(boxes[1]), _picture(boxes[0])
    step = float(np.sqrt(abs(np.linalg.det(full[:2, :2]))))  # moving pixels per fixed pixel
    # Near one scale (resizes, rotations, flips) b's frame stays the reference, as it always was.
    if step < 1 / _SAME_SCALE:
        fixed, moving, full, step = a.thumb, b.thumb, np.linalg.inv(full), 1 / step
        inside_fixed, inside_moving = inside_moving, inside_fixed
    # Both lightly smoothed: a crop's edge falls between thumbnail pixels, and the interpolation that
    # shifts one thumbnail by a fraction of a pixel smooths it; smoothing both keeps that from counting
    # as a difference (dev set: fewer true pairs lost, no more hard negatives passed than without).
    # The finer one also gets the anti-aliasing for sampling it as coarsely as the other.
    sigma = float(np.sqrt(_SMOOTH ** 2 + 0.25 * max(0.0, step * step - 1))) if step > _SAME_SCALE else _SMOOTH
    moving = cv2.GaussianBlur(moving.astype(np.float32), (0, 0), sigma)
    fixed = cv2.GaussianBlur(fixed.astype(np.float32), (0, 0), _SMOOTH)
    warped = cv2.warpAffine(moving, full[:2], (THUMB, THUMB),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=-1.0)
    # Blocks must lie inside both pictures, with a pixel to spare at either thumbnail's edge: there,
    # smoothing and interpolation see past the picture (a crop's edge block would otherwise count as a
    # difference).
    seen = inside_fixed * cv2.warpAffine(inside_moving, full[:2], (THUMB, THUMB),
                                         flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0.0)
    k = THUMB // _BLOCK
    shape = (k, _BLOCK, k, _BLOCK)
    wa = warped.reshape(shape).transpose(0, 2, 1, 3).reshape(k * k, -1)
    wb = fixed.reshape(shape).transpose(0, 2, 1, 3).reshape(k * k, -1)
    covered = seen.reshape(shape).transpose(0, 2, 1, 3).reshape(k * k, -1).min(axis=1) > 0
    # Means as sums over the block's pixels divided by their count, as `mean` computes them, without its
    # Python overhead (six means a pair, 14,000 pairs in the read-plan benchmark's grouping).
    n = _BLOCK * _BLOCK
    wa, wb = wa - wa.sum(axis=1, keepdims=True) / n, wb - wb.sum(axis=1, keepdims=True) / n
    sa, sb = np.sqrt((wa * wa).sum(axis=1) / n), np.sqrt((wb * wb).sum(axis=1) / n)
    usable = covered & (sb > _MIN_STD) & (sa > _MIN_STD)
    if usable.sum() < 8:
        return 0.0
    corr = ((wa * wb).sum(axis=1) / n)[usable] / (sa * sb)[usable]
    return float((corr >= 0.5).mean())


def _rect(s: Signature, box: _Box, mirrored: bool = False) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the picture in a signature's work image, or in its mirror's: inside a
    uniform border, if it has one (`box`)."""
    top, bottom, left, right = box or (0, THUMB, 0, THUMB)
    if mirrored:
        left, right = THUMB - right, THUMB - left
    sx, sy = s.width / THUMB, s.height / THUMB
    return left * sx, top * sy, right * sx, bottom * sy


def _shifted(a: Signature, b: Signature, boxes: tuple[_Box, _Box], matrix: np.ndarray, mirrored: bool) -> bool:
    """Whether, under the map, each picture reaches more than `_SHIFT` of a's side past the other's frame,
    on opposite sides of one axis: the frame moved across the scene (the two views of a stereo camera, a
    pan, a handheld burst). A copy's picture lies within its original's frame or holds it (a crop, a
    border or canvas added); a rotation, or a slight crop next to a crop, reaches past it a little."""
    left, top, right, bottom = _rect(b, boxes[1], mirrored)
    corners = np.array([[0, 0], [b.width, 0], [0, b.height], [b.width, b.height],  # b's frame, then picture
                        [left, top], [right, top], [left, bottom], [right, bottom]], np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    (fx0, fy0), (fx1, fy1) = mapped[:4].min(axis=0), mapped[:4].max(axis=0)  # b's frame, in a's
    (px0, py0), (px1, py1) = mapped[4:].min(axis=0), mapped[4:].max(axis=0)  # b's picture, in a's
    ax0, ay0, ax1, ay1 = _rect(a, boxes[0])
    for side, b_before, b_after, a_before, a_after in (
        (a.width, -px0, px1 - a.width, fx0 - ax0, ax1 - fx1),  # past the other's frame, left and right
        (a.height, -py0, py1 - a.height, fy0 - ay0, ay1 - fy1),  # above and below
    ):
        if min(b_before, a_after) > _SHIFT * side or min(b_after, a_before) > _SHIFT * side:
            return True
    return False


def evidence(a: Signature, b: Signature) -> Evidence | None:
    """The best evidence that b shows the same picture as a (b as it is, or mirrored); None when the
    features do not match under any similarity transform or resize. A shifted map that fits more inliers
    than any other is the answer: the pair is two framings of a scene. Stops at the first map under which
    every block agrees: no other can agree more (most true pairs, which then cost one match and one fit)."""
    boxes = thumb_content_box(a.thumb), thumb_content_box(b.thumb)
    best: Evidence | None = None
    moved: Evidence | None = None  # the shifted map with the most inliers
    for mirrored, fb in ((False, b.features), (True, b.mirror_features)):
        for matrix, inliers in _transforms(a.features, fb):
            if _shifted(a, b, boxes, matrix, mirrored):
                if moved is None or inliers > moved.inliers:
                    moved = Evidence(inliers, 0.0, mirrored, shifted=True)
                continue
            found = Evidence(inliers, _agreement(a, b, boxes, matrix, mirrored), mirrored)
            if best is None or (found.agree, found.inliers) > (best.agree, best.inliers):
                best = found
            if best.agree == 1.0 and (moved is None or best.inliers >= moved.inliers):
                return best
    return moved if moved is not None and (best is None or moved.inliers > best.inliers) else best

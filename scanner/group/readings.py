"""Other readings of an image for the candidate search: hashes of the picture as a copy may show it, made at
grouping time from the signature's thumbnail (no layout change, nothing read again).

- Inside a uniform border, for signatures of layout 2: a copy with a border added (white, black, even or
  not) has a whole-image pHash and windows far from its original's, though the original is all of its
  inside. The border is trimmed from the thumbnail (outer rows and columns whose grey range is within
  `_FLAT` levels) and the inside's pHash queries the index, so the original, whole, is found; verification
  then maps one onto the other like a crop. Signatures of layout 3 and later carry the inside's pHash,
  found at the work scale by the worker (blurred borders too: `signatures._content_box`), so theirs is not
  made again.
- As the pixels are stored: an EXIF orientation tag that contradicts the pixels (an editor turned the
  pixels and kept the tag) makes the upright reading a turned copy of the picture. For an image whose tag
  turns or flips it, the thumbnail turned back queries the index too, so the copy is found whichever
  reading is right; ORB features and the similarity fit verify a quarter turn as they do any rotation.

Both are queries only: the indexed hashes stay the whole image's and its windows'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from tierscan.scanner.fingerprint.signatures import PHASH_DCT, THUMB, Signature, phash_bits

__all__ = ["BORDER_MIN", "content_box", "reading_queries", "thumb_content_box"]

_FLAT = 10  # grey levels: a thumbnail row or column whose range is within this is border
BORDER_MIN = 2  # thumbnail pixels trimmed in all, at least, for the inside to be a reading of its own
_INSIDE_MIN = THUMB // 3  # the inside's least side, in thumbnail pixels: less is a flat graphic, not a photo
_CHUNK = 8192  # thumbnails examined at once (bounds the arrays held)
# EXIF orientation -> the turn that takes the upright thumbnail back to the pixels as stored (over axes 0 and
# 1, so that it turns a stack of thumbnails held as THUMB x THUMB x N).
_AS_STORED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda t: t[:, ::-1],
    3: lambda t: t[::-1, ::-1],
    4: lambda t: t[::-1],
    5: lambda t: t.swapaxes(0, 1),
    6: lambda t: np.rot90(t, 1),
    7: lambda t: t[::-1, ::-1].swapaxes(0, 1),
    8: lambda t: np.rot90(t, -1),
}


def content_box(flat_rows: np.ndarray, flat_cols: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom and right exclusive, of what lies inside the outer flat rows and
    columns of one thumbnail (`flat_rows`, `flat_cols`: whether each is flat), and a pixel in from them;
    None when less than `BORDER_MIN` is trimmed or the inside is too small."""
    top = int(np.argmin(flat_rows)) if not flat_rows.all() else THUMB
    bottom = THUMB - int(np.argmin(flat_rows[::-1]))
    left = int(np.argmin(flat_cols)) if not flat_cols.all() else THUMB
    right = THUMB - int(np.argmin(flat_cols[::-1]))
    if bottom - top < _INSIDE_MIN or right - left < _INSIDE_MIN:
        return None
    if top + (THUMB - bottom) + left + (THUMB - right) < BORDER_MIN:
        return None
    # The picture's edge falls inside a thumbnail pixel, which blends it with the border: one more pixel
    # off each bordered side keeps the inside all picture (dev set: the inside's pHash within the search
    # radius of its original's for 90% of padded copies, against 72% with the blended pixels kept).
    return top + (top > 0), bottom - (bottom < THUMB), left + (left > 0), right - (right < THUMB)


def thumb_content_box(thumb: np.ndarray) -> tuple[int, int, int, int] | None:
    """`content_box` of a thumbnail: what lies inside its outer rows and columns of one grey level (within
    `_FLAT`), a uniform border. Most thumbnails have no flat edge: their four edges alone tell."""
    edges = np.concatenate([thumb[[0, -1], :], thumb[:, [0, -1]].T])
    if ((edges.max(axis=1).astype(np.int16) - edges.min(axis=1)) > _FLAT).all():
        return None
    return content_box((thumb.max(axis=1).astype(np.int16) - thumb.min(axis=1)) <= _FLAT,
                       (thumb.max(axis=0).astype(np.int16) - thumb.min(axis=0)) <= _FLAT)


def _hash_of(thumb: np.ndarray) -> int:
    """pHash of part of a thumbnail, squeezed to 32 x 32 as whole-image hashes are."""
    block = cv2.resize(np.ascontiguousarray(thumb, np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    return phash_bits(block[None])[0]


# The pHash's DCT rows composed with area averaging of THUMB samples down to 32: a stack of whole
# thumbnails is hashed as `_hash_of` hashes each, without squeezing them one by one.
_SQUEEZED_DCT = PHASH_DCT @ cv2.resize(np.eye(THUMB, dtype=np.float32), (THUMB, 32), interpolation=cv2.INTER_AREA)


def reading_queries(blobs: Sequence[bytes | None], orientations: Sequence[int | None]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(owner index, pHash) of the other readings of each image that has any: inside its border, as its
    pixels are stored. `blobs[k]`: image k's `Signature` blob of the current layout, or None;
    `orientations[k]`: its EXIF orientation. Vectorised over chunks of thumbnails: only the few with a
    flat outer row or column are looked at one by one."""
    owners: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    signed = [(k, b) for k, b in enumerate(blobs) if b is not None]
    for start in range(0, len(signed), _CHUNK):
        chunk = np.array([k for k, _ in signed[start:start + _CHUNK]], np.int64)
        thumbs = Signature.thumbs([b for _, b in signed[start:start + _CHUNK]])
        edges = np.concatenate([thumbs[:, [0, -1], :], thumbs[:, :, [0, -1]].transpose(0, 2, 1)], axis=1)
        edged = np.flatnonzero(((edges.max(axis=2).astype(np.int16) - edges.min(axis=2)) <= _FLAT).any(axis=1))
        inside: list[int] = []
        for n in edged.tolist():
            if Signature.has_inside(signed[start + n][1]):
                continue  # the worker found its inside, if any (`Signature.inside`)
            t = thumbs[n]
            if (box := thumb_content_box(t)) is not None:
                top, bottom, left, right = box
                inside.append(n)
                codes.append(np.array([_hash_of(t[top:bottom, left:right])], np.uint64))
        owners.append(chunk[inside])
        # Any other value (a hostile tag may hold any number) is no turn: the image was hashed as it is.
        turns = np.array([o if (o := orientations[k]) in _AS_STORED else 1 for k in chunk.tolist()], np.int64)
        for orientation, turn in _AS_STORED.items():
            which = np.flatnonzero(turns == orientation)
            if len(which):
                turned = turn(thumbs[which].transpose(1, 2, 0)).transpose(2, 0, 1)
                owners.append(chunk[which])
                codes.append(np.array(phash_bits(turned, _SQUEEZED_DCT), np.uint64))
    if not owners:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(owners), np.concatenate(codes) if codes else np.zeros(0, np.uint64)

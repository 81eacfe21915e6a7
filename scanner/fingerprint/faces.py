"""Faces in the pixels: how many faces an image shows, found by YuNet (the ONNX model shipped in
`scanner/data/yunet/`, with its LICENSE beside it) through OpenCV's `FaceDetectorYN`.

The detector runs on the decode the perceptual pass already made (`tierscan.scanner.fingerprint.image`),
shrunk to `FACE_SIDE` pixels on its long side and turned upright by the EXIF orientation first: YuNet
finds upright faces, and a photo stored sideways with an orientation tag shows them sideways. Its input is
bounded whatever the image, so the work an image costs is too. One detector a process, made on first use
(a fingerprint worker makes it as it starts: `image.init_worker`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tierscan.scanner.core.models import FACES_NOT_ANALYSED

__all__ = ["FACE_SIDE", "MODEL", "SCORE_THRESHOLD", "count_faces", "face_scores", "load_detector",
           "not_analysed", "upright_colour"]

MODEL = "yunet_s_dynamic.onnx"  # YuNet-s: on the labelled set as precise as YuNet-n, and faster
# Long side of the detector's input. On the labelled set, faces a thirtieth of the picture's width are
# found there and those a sixtieth are not; a larger input (320, 416 px) found no more and costs more
# (benchmarks/faces_eval.py, docs/benchmarks.md). The perceptual decode (JPEG drafted to 256 px or more on
# its short side) has at least this many pixels, so no detail is made up.
FACE_SIDE = 256
# A face counts from this score: on the labelled set every look-alike (cat, dogs, a cartoon, a painted
# portrait) scores below it; the faces it misses are tiny (a fortieth of the width) or in profile.
SCORE_THRESHOLD = 0.7
_NMS_THRESHOLD = 0.3  # boxes that overlap more than this are one face
_TOP_K = 200  # candidates kept before non-maximum suppression: a crowd counts up to this many

_detectors: dict[tuple[str, float], cv2.FaceDetectorYN] = {}


def load_detector(model: str = MODEL, threshold: float = SCORE_THRESHOLD) -> cv2.FaceDetectorYN:
    """The process's detector of `model` (a file name of `scanner/data/yunet/`, or a path) at `threshold`,
    made on first use from the model's bytes (a wheel need not be unpacked to a folder)."""
    key = (model, threshold)
    detector = _detectors.get(key)
    if detector is None:
        shipped = resources.files("tierscan.scanner.data").joinpath("yunet").joinpath(model)
        data = Path(model).read_bytes() if "/" in model else shipped.read_bytes()
        # OpenCV warns on stderr as it loads the model that its graph engine ignores the target: noise.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            detector = cv2.FaceDetectorYN.create(
                framework="onnx", bufferModel=np.frombuffer(data, np.uint8), bufferConfig=np.zeros(0, np.uint8),
                input_size=(FACE_SIDE, FACE_SIDE), score_threshold=threshold, nms_threshold=_NMS_THRESHOLD,
                top_k=_TOP_K)
        finally:
            cv2.utils.logging.setLogLevel(level)
        _detectors[key] = detector
    return detector


def upright_colour(img: Image.Image, transpose: Image.Transpose | None, side: int = FACE_SIDE) -> Image.Image:
    """`img` (any mode Pillow decodes) at most `side` pixels on its long side, upright (after `transpose`),
    RGB or L: what the detector sees, and what the report's thumbnail is squeezed from (one pass over the
    decode serves both). Shrunk before any conversion, so a large palette, CMYK or 16-bit image is never
    copied whole."""
    width, height = img.size
    scale = min(1.0, side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) if size != img.size else img
    if small.mode not in ("RGB", "L"):
        small = small.convert("RGB")
    return small.transpose(transpose) if transpose is not None else small


def face_scores(colour: Image.Image, *, model: str = MODEL, threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """The score of every face found at `threshold` or above in `colour`, an `upright_colour` copy
    (float32, one per face)."""
    pixels = np.asarray(colour)
    bgr = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if pixels.ndim == 2 else np.ascontiguousarray(pixels[:, :, ::-1])
    detector = load_detector(model, threshold)
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, found = detector.detect(bgr)
    return np.zeros(0, np.float32) if found is None else found[:, -1].copy()


def count_faces(colour: Image.Image) -> tuple[int | None, str | None]:
    """How many faces `colour` (an `upright_colour` copy) shows, or None and why when it cannot be told
    (pixels the detector cannot take): never an exception, so the object keeps its fingerprint."""
    try:
        return len(face_scores(colour)), None
    except Exception as exc:  # cv2.error, a library bug on hostile pixels
        return None, not_analysed(exc)


def not_analysed(exc: Exception) -> str:
    """Why an image's faces are not counted, for the inventory."""
    return f"{FACES_NOT_ANALYSED}: {type(exc).__name__}: {str(exc)[:200]}"

"""`area_resize` gives cv2's INTER_AREA arrays exactly: every hash and signature depends on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tierscan.scanner.fingerprint.area_resize import _ours, area_resize


def _image(rng: np.random.Generator, shape: tuple[int, int], dtype: type) -> np.ndarray:
    if dtype is np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return (rng.random(shape, dtype=np.float32) * 255).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_random_sizes_views_and_mirrors_give_cv2s_arrays(dtype):
    rng = np.random.default_rng(20261202)
    ours = 0
    for case in range(400):
        sh, sw = int(rng.integers(2, 600)), int(rng.integers(2, 600))
        size = (int(rng.integers(1, sw + 8)), int(rng.integers(1, sh + 8)))  # downscales, some enlargements
        image = _image(rng, (sh, sw), dtype)
        if case % 3 == 0 and sw > 4:
            image = image[:, int(rng.integers(1, sw // 2)):]  # a crop: a view with the parent's strides
        if case % 4 == 0:
            image = image[:, ::-1]  # a mirror: negative strides
        ours += _ours(image.shape, size, image.dtype)
        expected = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        got = area_resize(image, size)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), (image.shape, size)
    assert ours > 250  # most of these went through the table kernels, not cv2


def test_as_float_is_cv2_on_the_float_image():
    rng = np.random.default_rng(7)
    for shape, size in (((384, 522), (128, 94)), ((600, 451), (96, 128)), ((64, 64), (32, 32)), ((40, 50), (60, 70))):
        grey = _image(rng, shape, np.uint8)
        expected = cv2.resize(grey.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        got = area_resize(grey, size, as_float=True)
        assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_whole_factors_and_enlargements_stay_with_cv2():
    assert _ours((392, 522), (256, 192), np.dtype(np.uint8))
    assert not _ours((384, 512), (256, 192), np.dtype(np.uint8))  # 2x: OpenCV's block-average path
    assert not _ours((100, 100), (150, 80), np.dtype(np.uint8))  # wider: interpolated
    assert not _ours((100, 100), (50, 30), np.dtype(np.int16))

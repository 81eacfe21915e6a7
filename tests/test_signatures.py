import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from scanner.fingerprint import _init_worker, fingerprint_bytes
from scanner.signatures import WINDOWS, Signature
from scanner.verify import evidence

DATA = Path(__file__).parent / "data" / "exif"
PHOTO = DATA / "exifpy__DSCN0010.jpg"  # a real 640x480 camera photo
OTHER = DATA / "imagededup__ukbench00120.jpg"


@pytest.fixture(autouse=True, scope="module")
def worker_setup():
    _init_worker()


def photo(path=PHOTO) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def signature(img: Image.Image) -> Signature:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    result = fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True)
    assert result.near_sig is not None
    return Signature.from_blob(result.near_sig)


def confirmed(a: Signature, b: Signature) -> bool:
    found = evidence(a, b)
    return found is not None and found.inliers >= 6 and found.agree >= 0.92


def test_blob_round_trip_is_compact():
    sig = signature(photo())
    blob = sig.to_blob()
    back = Signature.from_blob(blob)
    assert back.to_blob() == blob
    assert len(back.windows) == len(WINDOWS) and back.thumb.shape == sig.thumb.shape
    assert len(blob) < 10_000  # what every image costs the catalog


def test_flip_crop_and_recolour_are_confirmed_and_flip_is_reported():
    original = photo()
    base = signature(original)
    w, h = original.size
    flipped = evidence(base, signature(original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert flipped is not None and flipped.mirrored and flipped.agree >= 0.92
    assert confirmed(base, signature(original.crop((0, 0, int(w * 0.78), int(h * 0.78)))))  # 60% of the area
    assert confirmed(base, signature(ImageEnhance.Color(original).enhance(1.8).resize((w // 2, h // 2))))
    assert confirmed(base, signature(original.convert("L")))


def test_different_photo_is_not_confirmed():
    assert not confirmed(signature(photo()), signature(photo(OTHER).resize((640, 480))))


def test_moved_subject_is_not_confirmed():
    """A burst shot: same scene, a subject of a ninth of the frame moved. The aligned thumbnails
    disagree where it was and where it went (a logo of a twentieth of the frame may still pass)."""
    original = photo()
    moved = original.copy()
    w, h = original.size
    patch = original.crop((0, 0, w // 3, h // 3))
    moved.paste(patch, (w // 2, h // 3))
    assert not confirmed(signature(original), signature(moved))

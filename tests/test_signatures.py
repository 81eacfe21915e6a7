import io
import struct
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from tierscan.scanner.core.config import NearSettings
from tierscan.scanner.fingerprint.image import fingerprint_bytes, init_worker
from tierscan.scanner.fingerprint.signatures import (
    _ORB,
    MAGIC,
    ORB_FEATURES,
    WINDOWS,
    WORK_SIDE,
    Signature,
    _content_box,
    _level_angle,
    _scaled,
    compute_signature,
    grey_of,
    hash_copy,
    phash_bits,
    whole_hashes,
)
from tierscan.scanner.group.verify import evidence

DATA = Path(__file__).parent / "data" / "exif"
PHOTO = DATA / "exifpy__DSCN0010.jpg"  # a real 640x480 camera photo
OTHER = DATA / "imagededup__ukbench00120.jpg"


@pytest.fixture(autouse=True, scope="module")
def worker_setup():
    init_worker()


def photo(path=PHOTO) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def fingerprint(img: Image.Image):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True)


def signature(img: Image.Image) -> Signature:
    result = fingerprint(img)
    assert result.near_sig is not None
    return Signature.from_blob(result.near_sig)


def confirmed(a: Signature, b: Signature) -> bool:
    near = NearSettings()
    found = evidence(a, b)
    return found is not None and found.inliers >= near.min_inliers and found.agree >= near.min_agreement


def test_blob_round_trip_is_compact():
    sig = signature(photo())
    blob = sig.to_blob()
    back = Signature.from_blob(blob)
    assert back.to_blob() == blob
    assert len(back.windows) == len(WINDOWS) and back.thumb.shape == sig.thumb.shape
    assert len(blob) < 10_000  # what every image costs the catalog
    assert blob.startswith(MAGIC)


def test_blob_of_an_older_layout_is_refused():
    """Layout 1 began with the decode width (u16) and had no prefix: read as layout 2 it would be garbage."""
    old = struct.pack("<HHBB", 320, 240, 0, 0) + bytes(16 * 8 + 48 * 48)
    assert not Signature.is_current(old)
    with pytest.raises(ValueError, match="layout"):
        Signature.from_blob(old)


def test_hashes_read_from_a_blob_are_the_decoded_ones():
    """The index takes the mirror and window hashes straight from the blob, without decoding features."""
    sig = signature(photo())
    blob = sig.to_blob()
    assert Signature.is_current(blob)
    table = Signature.hash_table([blob, blob[:3] + bytes(len(blob) - 3)])
    assert table.dtype == np.uint64 and table.shape == (2, 1 + len(sig.windows))
    assert table[0].tolist() == [sig.mirror, *sig.windows] and not table[1].any()


def _older(blob: bytes, layout: int) -> bytes:
    """A blob as layout 2 (no inside or levelled hash after the windows) or 3 (no levelled hash) wrote it."""
    at = struct.calcsize("<3sHHBB") + 8 * (1 + len(WINDOWS))
    kept = 8 * (layout - 2)
    return b"TS" + bytes([layout]) + blob[3:at + kept] + blob[at + 16:]


@pytest.mark.parametrize("layout", [2, 3])
def test_a_blob_of_an_older_layout_is_read_without_the_hashes_it_lacks(layout: int):
    """Layout 3 adds the inside hash after the windows, layout 4 the levelled hash; catalogs of older blobs
    keep them (no image is read again for them) and their images simply lack those queries."""
    sig = signature(Image.open(io.BytesIO(_framed_jpeg())))
    assert sig.inside != 0 and sig.level != 0
    blob = sig.to_blob()
    old = _older(blob, layout)
    assert Signature.is_current(old)
    back = Signature.from_blob(old)
    assert back.inside == (sig.inside if layout == 3 else 0) and back.level == 0
    assert back.windows == sig.windows and back.mirror == sig.mirror
    assert np.array_equal(back.thumb, sig.thumb) and np.array_equal(back.features.points, sig.features.points)
    assert Signature.hash_table([old]).tolist() == Signature.hash_table([blob]).tolist()
    assert Signature.inside_hashes([blob, old]).tolist() == [sig.inside, back.inside]
    assert Signature.level_hashes([blob, old]).tolist() == [sig.level, 0]
    assert Signature.has_inside(old) == (layout == 3) and Signature.has_inside(blob)


def _framed_jpeg() -> bytes:
    """The photo centred on a square canvas of a blurred enlargement of itself."""
    img = photo()
    back = img.resize((880, 660)).crop((88, 0, 792, 660)).resize((704, 704)).filter(ImageFilter.GaussianBlur(16))
    back.paste(img, (32, 112))
    buf = io.BytesIO()
    back.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@pytest.mark.parametrize(("border", "expected"), [
    ("blurred", (112, 592, 32, 672)), ("white", (100, 580, 50, 690)), ("none", None), ("blank", None),
    ("noise", None), ("sliver", None)])
def test_content_box_finds_quiet_borders_only(border, expected):
    """The inside of a blurred or uniform frame, to within a few pixels of the decode; nothing for a photo
    edge to edge, a blank image, pure noise or a sliver too thin to have a middle."""
    rng = np.random.default_rng(3)
    grey = {
        "blurred": lambda: grey_of(Image.open(io.BytesIO(_framed_jpeg()))),
        "white": lambda: np.pad(grey_of(photo()), ((100, 100), (50, 50)), constant_values=255),
        "none": lambda: grey_of(photo()),
        "blank": lambda: np.full((300, 400), 128, np.uint8),
        "noise": lambda: rng.integers(0, 256, (300, 400)).astype(np.uint8),
        "sliver": lambda: rng.integers(0, 256, (2000, 3)).astype(np.uint8),
    }[border]()
    work = _scaled(grey, WORK_SIDE)
    box = _content_box(work)
    if expected is None:
        assert box is None
        assert border == "sliver" or compute_signature(grey).inside == 0
        return
    assert box is not None
    scale = grey.shape[0] / work.shape[0]
    assert all(abs(found * scale - want) <= 3 * scale for found, want in zip(box, expected, strict=True))


def test_keypoints_keep_sub_pixel_positions_through_the_blob():
    sig = compute_signature(grey_of(photo()))
    back = Signature.from_blob(sig.to_blob())
    assert np.abs(back.features.points - sig.features.points).max() <= 1 / 128 + 1e-6
    assert np.any(back.features.points % 1 != 0)  # not rounded to whole pixels
    assert np.array_equal(back.mirror_features.descriptors, sig.mirror_features.descriptors)


def test_features_are_found_at_one_scale_whatever_the_decode_size():
    big, small = photo().convert("L"), photo().convert("L").resize((160, 120))
    for img in (big, small):
        sig = compute_signature(grey_of(img))
        assert (sig.width, sig.height) == (WORK_SIDE, WORK_SIDE * 3 // 4)
        assert len(sig.features.points) >= 40 and len(sig.mirror_features.points) >= 40


def test_mirror_features_are_those_a_detection_in_the_mirror_image_finds():
    """The mirror's features are the image's keypoints mirrored and described in the mirror image: the
    corners and descriptors a detection there gives, within half a pixel, for a fraction of its cost."""
    for path in (PHOTO, OTHER):
        grey = grey_of(photo(path))
        sig = compute_signature(grey)
        mirror_work = np.ascontiguousarray(_scaled(grey, WORK_SIDE)[:, ::-1])
        keypoints, descriptors = _ORB.detectAndCompute(mirror_work, None)  # the module's own detector
        detected = np.array([k.pt for k in keypoints], np.float32)
        mirror = sig.mirror_features
        assert len(mirror.points) == len(detected) == ORB_FEATURES
        gap = np.abs(mirror.points[:, None, :] - detected[None, :, :]).max(axis=2)
        nearest = gap.argmin(axis=1)
        assert gap.min(axis=1).max() < 0.5  # every corner is one the detection found
        same = (mirror.descriptors == descriptors[nearest]).all(axis=1)
        assert same.mean() >= 0.9
        # Not the unmirrored image's: its descriptors differ (ORB is not mirror-invariant).
        unmirrored = np.sort(sig.features.descriptors, axis=0)
        assert not np.array_equal(np.sort(mirror.descriptors, axis=0), unmirrored)


def test_phash_bits_is_imagehash_phash():
    """Window and mirror hashes are compared with other images' whole-image pHash (imagehash): same bits."""
    for img in (photo(), photo(OTHER)):
        grey = img.convert("L")
        block = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS))
        assert phash_bits(block[None])[0] == int(str(imagehash.phash(grey)), 16)


def test_whole_image_hashes_stay_near_imagehash_on_the_full_picture():
    """The whole-image pHash from the area-averaged 128 px copy keeps imagehash's bits on the full picture
    within a few bits (`benchmarks/draft_distance.py` measures the spread), and tells photos apart."""
    hashes = {}
    for path in (PHOTO, OTHER):
        img = photo(path)
        phash, dhash = whole_hashes(hash_copy(grey_of(img)))
        assert bin(phash ^ int(str(imagehash.phash(img)), 16)).count("1") <= 4
        assert bin(dhash ^ int(str(imagehash.dhash(img)), 16)).count("1") <= 16
        hashes[path] = phash
    assert bin(hashes[PHOTO] ^ hashes[OTHER]).count("1") > 16


def test_whole_image_dhash_compares_neighbouring_columns():
    """dHash bit (row, column) is set where the column to its right is brighter: a left-to-right ramp
    sets them all, a right-to-left one none."""
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.float32), (200, 1)).astype(np.uint8)
    assert whole_hashes(hash_copy(ramp))[1] == 2**64 - 1
    assert whole_hashes(hash_copy(ramp[:, ::-1]))[1] == 0


@pytest.mark.parametrize("fx, fy", [(0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1)])
def test_a_crop_to_60_percent_is_within_the_candidate_radius_of_a_window(fx, fy):
    original = photo()
    w, h = original.size
    cw, ch = round(w * 0.6 ** 0.5), round(h * 0.6 ** 0.5)
    x, y = round((w - cw) * fx), round((h - ch) * fy)
    crop = fingerprint(original.crop((x, y, x + cw, y + ch)))
    windows = signature(original).windows
    assert min(int.bit_count(int(crop.phash, 16) ^ h) for h in windows) <= NearSettings().candidate_radius


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


def _framed(img: Image.Image, border: int, fill: tuple[int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", (img.width + 2 * border, img.height + 2 * border), fill)
    canvas.paste(img, (border, border))
    return canvas


@pytest.mark.parametrize("fill", [(0, 0, 0), (255, 255, 255)])
@pytest.mark.parametrize("border", [70, 150])
def test_burst_shots_framed_alike_are_not_confirmed_by_their_frames_edge(border, fill):
    """Two shots of a moving subject, each framed in the same uniform border: the edge between border and
    picture lines up in both, but it is no evidence that they show one picture. A framed copy still is."""
    original = photo()
    moved = original.copy()
    w, h = original.size
    moved.paste(original.crop((0, 0, w // 3, h // 3)), (w // 2, h // 3))
    assert not confirmed(signature(original), signature(moved))
    assert not confirmed(signature(_framed(original, border, fill)), signature(_framed(moved, border, fill)))
    assert confirmed(signature(original), signature(_framed(original, border, fill)))


def test_two_framings_shifted_across_a_scene_are_not_confirmed():
    """The two views of a stereo camera, or a pan: each frame shows a fifth of the scene the other lacks,
    on opposite sides. Every block of the overlap agrees, as for a crop, but neither holds the other."""
    scene = photo()
    w, h = scene.size
    left, right = scene.crop((0, 0, w * 4 // 5, h)), scene.crop((w // 5, 0, w, h))
    found = evidence(signature(left), signature(right))
    assert found is not None and found.shifted and not confirmed(signature(left), signature(right))
    assert confirmed(signature(scene), signature(left)) and confirmed(signature(scene), signature(right))


def test_copies_bordered_on_opposite_sides_are_not_shifted():
    """The borders reach past the other's frame, but the pictures do not."""
    scene = photo()
    w, h = scene.size
    on_left, on_right = (Image.new("RGB", (w + 160, h), (255, 255, 255)) for _ in range(2))
    on_left.paste(scene, (160, 0))
    on_right.paste(scene, (0, 0))
    assert confirmed(signature(on_left), signature(on_right))


@pytest.mark.parametrize("size", [(480, 480), (640, 360), (400, 480)])
def test_a_resize_to_another_aspect_ratio_is_confirmed(size):
    """A similarity transform cannot map a squeezed copy onto its original; an axis-aligned stretch can."""
    assert confirmed(signature(photo()), signature(photo().resize(size)))


def test_a_sheared_or_skewed_copy_is_no_resize():
    from tierscan.scanner.group.verify import _resized

    assert _resized(np.array([[1.0, 0.0, 3.0], [0.0, 0.75, -2.0]]))
    assert not _resized(np.array([[1.0, 0.3, 0.0], [0.0, 0.75, 0.0]]))  # sheared
    assert not _resized(np.array([[0.9, 0.4, 0.0], [-0.4, 0.9, 0.0]]))  # rotated: the similarity's job
    assert not _resized(np.array([[1.0, 0.0, 0.0], [0.0, 0.4, 0.0]]))  # stretched 2.5 times
    assert not _resized(np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # mirrored: the mirror features' job


@pytest.mark.parametrize("turn", [-30, -12, 7, 25, 40])
def test_the_level_angle_turns_with_the_picture(turn: int):
    """The dominant edge direction of a copy turned by `turn` degrees is the original's turned as much (on
    a quarter turn: horizontal and vertical edges count alike), here for a picture of upright blocks, as
    buildings, shelves and documents are."""
    rng = np.random.default_rng(5)
    blocks = Image.new("L", (640, 480), 128)
    for _ in range(60):
        x, y, w, h = (int(v) for v in rng.integers((0, 0, 20, 20), (600, 440, 160, 120)))
        blocks.paste(int(rng.integers(0, 256)), (x, y, x + w, y + h))
    level, turned = (_level_angle(_scaled(np.asarray(i), WORK_SIDE))
                     for i in (blocks, blocks.rotate(turn, Image.Resampling.BICUBIC)))
    assert abs(level) <= 1
    assert abs((turned - level + turn + 45) % 90 - 45) <= 1.5


def test_a_blank_middle_has_no_levelled_hash():
    """Every blank middle would hash alike and be a candidate of every other: none is kept."""
    img = Image.new("RGB", (640, 480), (240, 240, 240))
    img.paste(photo().resize((120, 90)), (0, 0))  # a picture in a corner, the middle left blank
    assert signature(img).level == 0
    assert signature(photo()).level != 0

"""Near groups of variants that show the picture framed differently: borders added, stretched to another
aspect ratio, turned by an orientation tag that contradicts the pixels (CMYK, as print workflows write it)."""

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageFilter

from tierscan.scanner.core.config import NearSettings
from tierscan.scanner.core.models import ExifRecord, InventoryRecord, Tier
from tierscan.scanner.fingerprint.image import fingerprint_bytes, init_worker
from tierscan.scanner.fingerprint.layout import SIGNATURE_HEADER
from tierscan.scanner.fingerprint.signatures import THUMB, WINDOWS, Signature
from tierscan.scanner.group import cluster
from tierscan.scanner.group.cluster import near_groups
from tierscan.scanner.group.hamming_index import pairs_within
from tierscan.scanner.group.members import NearImage
from tierscan.scanner.group.readings import _hash_of, content_box, reading_queries

DATA = Path(__file__).parent / "data" / "exif"


def _photo() -> Image.Image:
    with Image.open(DATA / "exifpy__DSCN0010.jpg") as img:
        return img.convert("RGB").resize((640, 480))


def _other() -> Image.Image:
    with Image.open(DATA / "imagededup__ukbench00120.jpg") as img:
        return img.convert("RGB").resize((640, 480))


def _encoded(img: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, **options)
    return buf.getvalue()


def _records(files: dict[str, bytes]) -> tuple[list[InventoryRecord], dict[str, bytes]]:
    """Inventory records (EXIF included) and signature blobs of encoded images, by URI."""
    init_worker()
    records, blobs = [], {}
    for uri, data in files.items():
        fp = fingerprint_bytes(data, want_sha256=False, want_perceptual=True)
        assert fp.error is None and fp.near_sig is not None
        records.append(InventoryRecord(
            uri=uri, provider="s3", bucket="a", key=uri.rsplit("/", 1)[1], size=len(data), tier=Tier.hot,
            storage_class="X", region="ap-east-1", jurisdiction="HK", modified=datetime(2020, 1, 1, tzinfo=UTC),
            phash=fp.phash, dhash=fp.dhash, width=fp.width, height=fp.height, status="fingerprinted",
            exif=ExifRecord.model_validate_json(fp.exif) if fp.exif else None,
        ))
        blobs[uri] = fp.near_sig
    return records, blobs


def _bordered(img: Image.Image, left: int, top: int, right: int, bottom: int,
              fill: tuple[int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", (img.width + left + right, img.height + top + bottom), fill)
    canvas.paste(img, (left, top))
    return canvas


@pytest.mark.parametrize("bigger", ["white-border", "black-uneven-border", "stretched-wide", "stretched-tall"])
def test_a_bigger_bordered_or_stretched_copy_does_not_split_the_photos_variants(bigger):
    """The bigger copy wins the centre (highest resolution); the original, a resize and crops of it still
    end in its group, and another photo stays out."""
    photo = _photo()
    variant = {
        "white-border": _bordered(photo, 150, 150, 150, 150, (255, 255, 255)),
        "black-uneven-border": _bordered(photo, 80, 0, 230, 190, (0, 0, 0)),
        "stretched-wide": photo.resize((960, 480), Image.Resampling.LANCZOS),
        "stretched-tall": photo.resize((640, 760), Image.Resampling.LANCZOS),
    }[bigger]
    files = {
        "s3://a/bigger": _encoded(variant),
        "s3://a/original": _encoded(photo),
        "s3://a/resize": _encoded(photo.resize((400, 300))),
        "s3://a/crop": _encoded(photo.crop((0, 0, 496, 372))),  # 60% of the area, in a corner
        "s3://a/other": _encoded(_other()),
    }
    records, blobs = _records(files)
    groups = near_groups(records, [], NearSettings(), signatures=blobs)
    assert [sorted(m.uri for m in g.members) for g in groups] == [
        ["s3://a/bigger", "s3://a/crop", "s3://a/original", "s3://a/resize"]]
    assert groups[0].master == "s3://a/bigger"


def test_two_bordered_copies_and_the_original_make_one_group():
    """Neither bordered copy's hashes are near the other's: each finds the original inside its border."""
    photo = _photo()
    records, blobs = _records({
        "s3://a/white": _encoded(_bordered(photo, 120, 120, 120, 120, (255, 255, 255))),
        "s3://a/black": _encoded(_bordered(photo, 200, 40, 60, 180, (0, 0, 0))),
        "s3://a/original": _encoded(photo),
    })
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert {m.uri for m in g.members} == {"s3://a/white", "s3://a/black", "s3://a/original"}


def test_the_other_view_of_a_stereo_pair_never_joins_through_a_crop_both_views_show():
    """Two views of a scene shifted a fifth of its width (a stereo camera's): a crop of the left view that
    lies within the right view's frame is a crop of both, but the right view, which the centre (a bigger
    repost of the left view) finds shifted, does not join through it; it makes its own group."""
    scene = _photo()
    w, h = scene.size
    left, right = scene.crop((0, 0, w * 4 // 5, h)), scene.crop((w // 5, 0, w, h))
    records, blobs = _records({
        "s3://a/left-repost": _encoded(left.resize((left.width * 3 // 2, h * 3 // 2))),
        "s3://a/left": _encoded(left),
        "s3://a/left-crop": _encoded(left.crop((left.width // 4, 0, left.width, h * 3 // 4))),
        "s3://a/right": _encoded(right),
        "s3://a/right-resize": _encoded(right.resize((right.width // 2, h // 2))),
    })
    groups = near_groups(records, [], NearSettings(), signatures=blobs)
    assert sorted(sorted(m.uri for m in g.members) for g in groups) == [
        ["s3://a/left", "s3://a/left-crop", "s3://a/left-repost"], ["s3://a/right", "s3://a/right-resize"]]


def _blur_framed(img: Image.Image, width: int, height: int) -> Image.Image:
    """`img` centred on a `width` x `height` canvas filled with a blurred enlargement of itself, as "no crop"
    apps frame a photo for a square or portrait post."""
    scale = max(width / img.width, height / img.height)
    back = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    x, y = (back.width - width) // 2, (back.height - height) // 2
    back = back.crop((x, y, x + width, y + height)).filter(ImageFilter.GaussianBlur(16))
    back.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return back


@pytest.mark.parametrize("canvas", [(704, 704), (704, 880), (640, 800)])
def test_a_copy_framed_in_a_blurred_enlargement_of_itself_joins_its_original(canvas):
    """The frame is no uniform border and the copy's whole and window hashes are far from the original's;
    the worker finds the quiet frame at its work scale and the inside's hash finds the original. The
    framed copy, the bigger, is the centre; another photo framed the same way stays out."""
    photo = _photo()
    records, blobs = _records({
        "s3://a/framed": _encoded(_blur_framed(photo, *canvas)),
        "s3://a/original": _encoded(photo),
        "s3://a/other-framed": _encoded(_blur_framed(_other(), *canvas)),
    })
    framed = Signature.from_blob(blobs["s3://a/framed"])
    original = next(r for r in records if r.uri == "s3://a/original")
    assert framed.inside != 0 and (framed.inside ^ int(original.phash, 16)).bit_count() <= 8
    assert Signature.from_blob(blobs["s3://a/original"]).inside == 0  # a photo edge to edge: no frame
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert {m.uri for m in g.members} == {"s3://a/framed", "s3://a/original"} and g.master == "s3://a/framed"


@pytest.mark.parametrize("angle", [-20, 12, 30])
def test_a_copy_turned_in_its_frame_joins_its_original_through_the_levelled_hash(angle):
    """A photo turned by `angle` degrees within its own frame (black corners), as a straightening tool or a
    careless scan leaves it: no whole, window or centre hash comes near the original's; the levelled
    hashes do, and verification (ORB, RANSAC) confirms the turn. Without them (a layout 3 blob, as an older
    tierscan wrote it) the pair is never a candidate. Another photo turned the same way stays out."""
    photo = _photo()
    records, blobs = _records({
        "s3://a/original": _encoded(photo),
        "s3://a/turned": _encoded(photo.rotate(angle, Image.Resampling.BICUBIC)),
        "s3://a/other-turned": _encoded(_other().rotate(angle, Image.Resampling.BICUBIC)),
    })
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert {m.uri for m in g.members} == {"s3://a/original", "s3://a/turned"}
    at = SIGNATURE_HEADER.size + 8 * (2 + len(WINDOWS))
    layout_3 = {uri: b"TS\x03" + blob[3:at] + blob[at + 8:] for uri, blob in blobs.items()}
    assert near_groups(records, [], NearSettings(), signatures=layout_3) == []


def test_blank_images_are_left_out_of_the_search(monkeypatch):
    """Placeholders in a hundred flat colours hash alike (each a candidate of every other, quadratic work
    to refuse them all) and have no features to verify: they never reach verification, and the photo's
    copy still joins it."""
    photo = _photo()
    files = {f"s3://a/blank-{i}": _encoded(Image.new("RGB", (320, 240), (i, 2 * i, 255 - i))) for i in range(100)}
    files |= {"s3://a/photo": _encoded(photo), "s3://a/copy": _encoded(photo.resize((480, 360)))}
    records, blobs = _records(files)
    assert Signature.feature_count(blobs["s3://a/blank-0"]) == 0
    blank = np.array([int(r.phash, 16) for r in records if "blank" in r.uri], np.uint64)
    assert len(pairs_within(blank, NearSettings().candidate_radius)[0]) > 500  # work the search would make
    calls = []
    real = cluster.evidence
    monkeypatch.setattr(cluster, "evidence", lambda a, b: calls.append(1) or real(a, b))
    [g] = near_groups(records, [], NearSettings(), signatures=blobs, workers=1)
    assert {m.uri for m in g.members} == {"s3://a/photo", "s3://a/copy"} and len(calls) <= 2


def test_a_picture_with_more_copies_than_an_image_keeps_candidates_makes_one_group():
    """Each image keeps only its nearest candidates (`cluster._MAX_MATES`); a picture with more near copies
    than that still makes one group, the copies the centre does not keep reached through its members."""
    photo = _photo()
    sides = range(300, 300 + 4 * (cluster._MAX_MATES + 16), 4)
    records, blobs = _records({f"s3://a/{w}": _encoded(photo.resize((w, w * 3 // 4))) for w in sides})
    cands = [cluster._Candidate(r, int(r.phash, 16), int(r.dhash, 16), blobs[r.uri]) for r in records]
    pairs = cluster._hash_pairs(cands, NearSettings().candidate_radius)
    assert len(pairs) < len(sides) * (len(sides) - 1) // 2  # some copies are no candidate of some others
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert len(g.members) == len(sides)


def test_cmyk_jpeg_whose_orientation_tag_contradicts_its_pixels_joins_its_original():
    """Upright CMYK pixels tagged Orientation 6: the upright reading is a quarter turn of the picture; the
    pixels as stored are the picture, and the pair is found and verified."""
    photo = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6
    cmyk = _encoded(photo.convert("CMYK"), exif=exif.tobytes())
    with Image.open(io.BytesIO(cmyk)) as opened:
        assert opened.mode == "CMYK"
    records, blobs = _records({"s3://a/original": _encoded(photo), "s3://a/cmyk": cmyk,
                               "s3://a/other": _encoded(_other())})
    assert {r.uri: r.exif.orientation if r.exif else None for r in records}["s3://a/cmyk"] == 6
    [g] = near_groups(records, [], NearSettings(), signatures=blobs)
    assert {m.uri for m in g.members} == {"s3://a/original", "s3://a/cmyk"}
    # Without the tag on record (hashes made upright by no turn), no other reading is looked for.
    untagged = [r.model_copy(update={"exif": None}) for r in records]
    assert near_groups(untagged, [], NearSettings(), signatures=blobs) == []


def test_cmyk_decode_matches_the_rgb_picture():
    """Pillow writes CMYK JPEGs with an Adobe marker (inverted samples); the grey decode the hashes are
    made from is the RGB picture's, so a CMYK copy hashes as its RGB original."""
    photo = _photo()
    records, _ = _records({"s3://a/rgb": _encoded(photo), "s3://a/cmyk": _encoded(photo.convert("CMYK"))})
    rgb, cmyk = (int(r.phash, 16) for r in records)
    assert (rgb ^ cmyk).bit_count() <= 4


def _flat(thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ((thumb.max(axis=1).astype(int) - thumb.min(axis=1)) <= 10,
            (thumb.max(axis=0).astype(int) - thumb.min(axis=0)) <= 10)


def test_content_box_trims_uniform_borders_even_or_not():
    rng = np.random.default_rng(1)
    thumb = np.full((THUMB, THUMB), 255, np.uint8)
    thumb[5:40, 3:45] = rng.integers(0, 255, (35, 42))
    assert content_box(*_flat(thumb)) == (6, 39, 4, 44)  # and a pixel in, off the blended edge
    thumb = np.zeros((THUMB, THUMB), np.uint8)
    thumb[:, 8:] = rng.integers(0, 255, (THUMB, THUMB - 8))  # a border on one side only
    assert content_box(*_flat(thumb)) == (0, THUMB, 9, THUMB)


def test_content_box_is_none_without_a_border_or_for_a_flat_graphic():
    rng = np.random.default_rng(2)
    assert content_box(*_flat(rng.integers(0, 255, (THUMB, THUMB)).astype(np.uint8))) is None
    one_row = rng.integers(0, 255, (THUMB, THUMB)).astype(np.uint8)
    one_row[0] = 0  # less than BORDER_MIN trimmed: the same picture as the whole
    assert content_box(*_flat(one_row)) is None
    assert content_box(*_flat(np.full((THUMB, THUMB), 7, np.uint8))) is None  # a blank image: all border
    logo = np.full((THUMB, THUMB), 255, np.uint8)
    logo[20:28, 20:28] = 0  # a small mark on a flat field: too little inside to stand for a photo
    assert content_box(*_flat(logo)) is None


def _layout_2(blob: bytes) -> bytes:
    """The blob as layout 2 wrote it: its prefix, and no inside or levelled hash after the windows."""
    at = SIGNATURE_HEADER.size + 8 * (1 + len(WINDOWS))
    return b"TS\x02" + blob[3:at] + blob[at + 16:]


def test_reading_queries_only_for_bordered_or_turned_images():
    init_worker()
    photo = _photo()
    plain, bordered = (_layout_2(fingerprint_bytes(_encoded(img), want_sha256=False, want_perceptual=True).near_sig)
                       for img in (photo, _bordered(photo, 100, 100, 100, 100, (255, 255, 255))))
    owners, codes = reading_queries([plain, bordered, plain, None], [None, 1, 6, 6])
    assert owners.tolist() == [1, 2]
    # A turned reading is the pHash of the thumbnail turned back to the pixels as stored, whatever else
    # is in the chunk: a quarter turn back for 6, the other way for 8, the transposes for 5 and 7.
    thumb = Signature.thumbs([plain])[0]
    assert codes[1] == _hash_of(np.rot90(thumb, 1)) == reading_queries([plain], [6])[1][0]
    expected = {2: thumb[:, ::-1], 3: thumb[::-1, ::-1], 4: thumb[::-1], 5: thumb.T, 7: thumb[::-1, ::-1].T,
                8: np.rot90(thumb, -1)}
    owners, codes = reading_queries([plain] * 6, list(expected))
    assert owners.tolist() == list(range(6))
    assert codes.tolist() == [_hash_of(t) for t in expected.values()]
    assert len(set(codes.tolist())) == 6


def test_near_image_rows_carry_the_orientation():
    row = ("s3://a/x", "s3", 10, "hot", "ap-east-1", "HK", "2020-01-01T00:00:00+00:00", 100, 80, "ab" * 8,
           "cd" * 8, None, None, 0, 6)
    assert NearImage.of_row(row).orientation == 6


_BLOB: list[bytes] = []  # one real blob, made once: the tests below swap its thumbnail


def _with_thumb(thumb: np.ndarray) -> bytes:
    """A blob of layout 2 (whose border `reading_queries` finds in the thumbnail) whose thumbnail is `thumb`
    (all `reading_queries` reads of a blob)."""
    if not _BLOB:
        init_worker()
        fp = fingerprint_bytes(_encoded(_photo().resize((160, 120))), want_sha256=False, want_perceptual=True)
        assert fp.near_sig is not None
        _BLOB.append(_layout_2(fp.near_sig))
    return _BLOB[0][:-THUMB * THUMB] + thumb.astype(np.uint8).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    fill=st.integers(0, 255),
    sides=st.tuples(*[st.integers(0, THUMB) for _ in range(4)]),
    seed=st.integers(0, 2**32 - 1),
    orientation=st.one_of(st.none(), st.integers(-(2**70), 2**70), st.sampled_from(range(0, 10))),
)
def test_reading_queries_on_any_thumbnail_and_orientation(fill, sides, seed, orientation):
    """Any thumbnail (borders of any width, blank, noise) and any orientation value a tag may hold: no
    error, at most one inside and one turned reading, owners among the images given."""
    thumb = np.full((THUMB, THUMB), fill, np.uint8)
    top, bottom, left, right = sides
    noise = np.random.default_rng(seed).integers(0, 256, (THUMB, THUMB)).astype(np.uint8)
    thumb[top:THUMB - bottom, left:THUMB - right] = noise[top:THUMB - bottom, left:THUMB - right]
    blob = _with_thumb(thumb)
    owners, codes = reading_queries([blob, None, blob], [orientation, 6, None])
    assert len(owners) == len(codes) and codes.dtype == np.uint64
    assert set(owners.tolist()) <= {0, 2}
    assert owners.tolist().count(0) <= 2 and owners.tolist().count(2) <= 1
    turned = orientation in (2, 3, 4, 5, 6, 7, 8)
    assert owners.tolist().count(0) - owners.tolist().count(2) == int(turned)

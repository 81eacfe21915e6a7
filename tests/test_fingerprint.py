import asyncio
import hashlib
import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from tierscan.scanner.fingerprint.image import fingerprint_bytes, init_worker
from tierscan.scanner.fingerprint.pool import FingerprintPool


@pytest.fixture(autouse=True, scope="module")
def worker_setup():
    init_worker()  # what each pool process does: HEIF opener, bomb limit


def jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


PHOTO = Path(__file__).parent / "data" / "exif" / "exifpy__DSCN0010.jpg"  # a real 640x480 camera photo


def gradient(w=320, h=240) -> Image.Image:
    """The photo scaled to w x h, without its metadata."""
    with Image.open(PHOTO) as img:
        return img.convert("RGB").resize((w, h))


def test_sha256_only_when_asked():
    data = jpeg(gradient())
    assert fingerprint_bytes(data, want_sha256=False, want_perceptual=True).sha256 is None
    assert fingerprint_bytes(data, want_sha256=True, want_perceptual=True).sha256 == hashlib.sha256(data).hexdigest()


def test_perceptual_hashes_are_64_bit_hex_and_stable_across_reencoding():
    img = gradient()
    a = fingerprint_bytes(jpeg(img), want_sha256=False, want_perceptual=True)
    b = fingerprint_bytes(jpeg(img.resize((160, 120))), want_sha256=False, want_perceptual=True)
    assert len(a.phash) == 16 and len(a.dhash) == 16
    assert imagehash.hex_to_hash(a.phash) - imagehash.hex_to_hash(b.phash) <= 4
    assert (a.format, a.width, a.height) == ("JPEG", 320, 240)


def test_exif_orientation_is_applied_before_hashing():
    img = gradient()
    upright = fingerprint_bytes(jpeg(img), want_sha256=False, want_perceptual=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    stored = img.transpose(Image.Transpose.ROTATE_90)
    rotated = fingerprint_bytes(jpeg(stored, exif=exif.tobytes()), want_sha256=False, want_perceptual=True)
    assert rotated.exif is not None and json.loads(rotated.exif)["orientation"] == 6
    assert (rotated.width, rotated.height) == (320, 240)
    assert imagehash.hex_to_hash(upright.phash) - imagehash.hex_to_hash(rotated.phash) <= 4


def test_different_pictures_are_far_apart():
    a = fingerprint_bytes(jpeg(gradient()), want_sha256=False, want_perceptual=True)
    with Image.open(Path(__file__).parent / "data" / "exif" / "imagededup__ukbench00120.jpg") as other:
        b = fingerprint_bytes(jpeg(other.convert("RGB").resize((320, 240))), want_sha256=False, want_perceptual=True)
    assert imagehash.hex_to_hash(a.phash) - imagehash.hex_to_hash(b.phash) > 16


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
@pytest.mark.parametrize("width", [320, 800])  # under and over the 512 px at which the decode is reduced
def test_16_bit_greys_hash_like_their_8_bit_export(fmt, width):
    """Pillow clips 16-bit greys at 255 when it converts them to L, and cannot reduce them: they are
    stretched to 8 bits over their own range instead, so a 16-bit master and its 8-bit export match."""
    grey = gradient(width, width * 3 // 4).convert("L")
    deep = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)  # the same picture, 16 bits a sample
    hashed = []
    for img in (grey, deep):
        buf = io.BytesIO()
        img.save(buf, fmt)
        hashed.append(fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True))
    eight, sixteen = hashed
    assert sixteen.error is None
    assert imagehash.hex_to_hash(eight.phash) - imagehash.hex_to_hash(sixteen.phash) <= 2
    assert imagehash.hex_to_hash(eight.dhash) - imagehash.hex_to_hash(sixteen.dhash) <= 2


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF", "BMP", "AVIF", "HEIF"])
def test_other_formats_decode(fmt):
    buf = io.BytesIO()
    gradient().save(buf, fmt)
    result = fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True)
    assert result.error is None
    assert result.phash and (result.width, result.height) == (320, 240)


def test_not_an_image_and_corrupt_images_give_a_reason():
    assert fingerprint_bytes(b"hello world\n" * 10, want_sha256=True, want_perceptual=True).error == "not an image"
    truncated = jpeg(gradient())[:600]
    result = fingerprint_bytes(truncated, want_sha256=True, want_perceptual=True)
    assert result.error and result.error.startswith("corrupt image (JPEG)")
    assert result.sha256 == hashlib.sha256(truncated).hexdigest()


@pytest.mark.slow
def test_decompression_bomb_is_a_reason_not_a_crash():
    buf = io.BytesIO()
    Image.new("L", (12000, 11000)).save(buf, "PNG")  # 132 MP of zeros: a tiny file
    result = fingerprint_bytes(buf.getvalue(), want_sha256=False, want_perceptual=True)
    assert result.error and result.error.startswith("decompression bomb")


def test_without_perceptual_only_metadata_is_read():
    result = fingerprint_bytes(jpeg(gradient()), want_sha256=False, want_perceptual=False)
    assert result.phash is None and result.format == "JPEG" and result.error is None


def _all(pool: FingerprintPool, images: list[bytes], **wants: bool) -> list:
    """Every image's fingerprint from `pool`, submitted at once in one event loop."""
    async def run() -> list:
        return list(await asyncio.gather(*[pool.submit(d, **wants) for d in images]))
    return asyncio.run(run())


def test_pool_runs_in_worker_processes():
    data = jpeg(gradient())
    with FingerprintPool(workers=2) as pool:
        results = _all(pool, [data] * 4, want_sha256=True, want_perceptual=True)
    assert len({r.phash for r in results}) == 1
    assert results[0].sha256 == hashlib.sha256(data).hexdigest()


def test_a_worker_that_dies_answers_what_it_had_with_an_error_and_the_others_go_on():
    import os
    import signal

    images = [jpeg(gradient(800 + 20 * i, 600)) for i in range(8)]  # each some ms: none done at the kill
    with FingerprintPool(workers=2) as pool:
        victim = pool._workers[0].process

        async def run() -> tuple[list, list]:
            first = [pool.submit(d, want_sha256=True, want_perceptual=True) for d in images]
            os.kill(victim.pid, signal.SIGKILL)
            answered = list(await asyncio.gather(*first))
            return answered, list(await asyncio.gather(*[
                pool.submit(d, want_sha256=True, want_perceptual=True) for d in images]))

        answered, after = asyncio.run(run())
        if pool._arena is not None:
            assert pool._arena.free_bytes() == pool._arena.size  # nothing left placed
    died = [r for r in answered if r.error]
    assert died and all("fingerprint worker died (killed by signal 9)" in r.error for r in died)
    assert all(r.error is None and r.sha256 == hashlib.sha256(d).hexdigest()
               for r, d in zip(answered, images, strict=True) if r not in died)
    assert [r.error for r in after] == [None] * len(images)  # the other worker took everything after


def test_workers_fork_when_the_pool_is_made_not_at_its_first_object():
    """So that threads the scan starts afterwards (loading the index kernels) are never forked mid-lock."""
    import multiprocessing

    before = set(multiprocessing.active_children())
    with FingerprintPool(workers=2):
        assert len(set(multiprocessing.active_children()) - before) == 2


def test_through_the_arena_through_the_pipe_and_in_process_a_fingerprint_is_the_same():
    images = [jpeg(gradient(300 + 40 * i, 200 + 10 * i)) for i in range(6)]
    images.append(images[0] + b"\x00" * 200_000)  # too big for the arena below: goes by pipe
    wants = {"want_sha256": True, "want_perceptual": True}
    expected = [fingerprint_bytes(d, **wants) for d in images]
    arena_bytes = 32 * 4096
    assert all(len(d) < arena_bytes for d in images[:-1]) and len(images[-1]) > arena_bytes
    for size in (arena_bytes, 0):  # 0: no arena, everything pickled through the pipe
        with FingerprintPool(workers=2, arena_bytes=size) as pool:
            placed: list[int | None] = []
            if size:
                assert pool._arena is not None
                place = pool._arena.place

                def recording(data: bytes) -> int | None:
                    placed.append(place(data))  # noqa: B023 (called within this iteration only)
                    return placed[-1]  # noqa: B023

                pool._arena.place = recording  # type: ignore[method-assign]
            results = _all(pool, images * 3, **wants)
            if size:
                assert pool._arena.free_bytes() == size  # every run given back
                assert placed[0] == 0 and placed[6] is None  # the first went in the arena, the big one not
        assert results == expected * 3


def test_tiny_images_get_no_perceptual_hash():
    result = fingerprint_bytes(jpeg(gradient(16, 12)), want_sha256=False, want_perceptual=True)
    assert (result.phash, result.dhash, result.error) == (None, None, None)
    assert (result.width, result.height) == (16, 12)


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_near_signature_is_made_upright_so_exif_rotations_verify_unmirrored(orientation):
    from tierscan.scanner.core.config import NearSettings
    from tierscan.scanner.fingerprint.signatures import MAGIC, Signature
    from tierscan.scanner.group.verify import evidence

    img = gradient(640, 480)
    upright = fingerprint_bytes(jpeg(img), want_sha256=False, want_perceptual=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    undo = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}[orientation]  # what the tag's viewer transform turns back
    stored = fingerprint_bytes(jpeg(img.transpose(undo), exif=exif.tobytes()), want_sha256=False,
                               want_perceptual=True)
    assert upright.near_sig.startswith(MAGIC) and stored.near_sig.startswith(MAGIC)
    a, b = Signature.from_blob(upright.near_sig), Signature.from_blob(stored.near_sig)
    assert (b.width, b.height) == (a.width, a.height)
    found = evidence(a, b)
    assert found is not None and not found.mirrored and found.agree >= NearSettings().min_agreement

"""Face detection on a labelled set: image-level precision and recall per score threshold, and what the
detector costs an image. Not a test.

    python benchmarks/faces_eval.py benchmarks/faces_labels.csv ROOT [--model PATH ...] [--passes N]

LABELS.csv has `file` (relative to ROOT), `has_face` (1: a person's face is visible; 0: none, look-alikes
such as animal faces, cartoons and paintings included) and `note`. A file named `sideways/O/PATH` is
made here from ROOT/PATH: its pixels turned and stored as JPEG with EXIF orientation O, which shows them
upright again (a photo whose face only the tag puts upright).

Images are decoded as the fingerprint worker decodes them (JPEG drafted to 256 px, turned upright by
their orientation) and the detector is `tierscan.scanner.fingerprint.faces` with each model given
(default: the shipped one). An image counts as showing a face at threshold t when some face scores t
or more. CPU per image (process time, this process alone, one OpenCV thread): the detector alone, and
the whole fingerprint (`fingerprint_bytes`, as a scan asks for it) with and without faces, with the
report's thumbnails on (the default) and off, the variants alternated pass by pass.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tierscan.scanner.fingerprint import image  # noqa: E402
from tierscan.scanner.fingerprint.exif import read_metadata  # noqa: E402
from tierscan.scanner.fingerprint.faces import FACE_SIDE, MODEL, SCORE_THRESHOLD, face_scores, upright_colour  # noqa: E402

THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]
_LOW = 0.3  # every face scoring this or more is kept, and the thresholds applied here
# The transpose that stores an upright picture so that orientation O shows it upright again.
_STORE = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def load(root: Path, name: str) -> bytes:
    """The file's bytes; a `sideways/O/PATH` file made from ROOT/PATH."""
    if not name.startswith("sideways/"):
        return (root / name).read_bytes()
    _, orientation, rest = name.split("/", 2)
    with Image.open(root / rest) as img:
        upright = img.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = int(orientation)
    out = io.BytesIO()
    upright.transpose(_STORE[int(orientation)]).save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def decoded(data: bytes) -> tuple[Image.Image, Image.Transpose | None]:
    """The picture the fingerprint worker counts faces on, and the transpose that turns it upright."""
    orientation = read_metadata(data).exif.orientation
    img = Image.open(io.BytesIO(data))
    if img.format in ("JPEG", "MPO"):
        img.draft("YCbCr", (256, 256))
    img.load()
    if img.mode in image._DEEP_GREY:
        img = image._deep_grey_to_l(img)
    return img, image._ORIENTATION.get(orientation or 1)


def cpu_ms(fn: object, items: list[bytes | tuple[Image.Image, Image.Transpose | None]]) -> float:
    start = time.process_time()
    for item in items:
        fn(item)  # type: ignore[operator]
    return (time.process_time() - start) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("--model", action="append", help="ONNX file (default: the shipped model)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the set for each CPU figure")
    parser.add_argument("--side", type=int, default=FACE_SIDE, help="long side of the detector's input")
    parser.add_argument("--no-cost", action="store_true", help="precision and recall only")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    image.init_worker()
    with args.labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    blobs = [load(args.root, row["file"]) for row in rows]
    truth = np.array([row["has_face"] == "1" for row in rows])
    pictures = [decoded(data) for data in blobs]
    print(f"{len(rows)} images: {truth.sum()} with faces, {(~truth).sum()} without\n")
    for model in args.model or [MODEL]:
        best = np.array([max(face_scores(upright_colour(img, t, args.side), model=model, threshold=_LOW), default=0.0)
                         for img, t in pictures])
        print(f"model {Path(model).name}, input {args.side} px on the long side\n")
        print("| threshold | TP | FP | FN | precision | recall |\n|---|---|---|---|---|---|")
        for threshold in THRESHOLDS:
            said = best >= threshold
            tp, fp, fn = int((said & truth).sum()), int((said & ~truth).sum()), int((~said & truth).sum())
            print(f"| {threshold:.2f} | {tp} | {fp} | {fn} | {tp / max(1, tp + fp):.3f} | {tp / max(1, tp + fn):.3f} |")
        print(f"\nat {SCORE_THRESHOLD}: missed " + ", ".join(
            f"{rows[i]['file']} ({best[i]:.2f})" for i in np.flatnonzero(truth & (best < SCORE_THRESHOLD))))
        print(f"at {SCORE_THRESHOLD}: false " + ", ".join(
            f"{rows[i]['file']} ({best[i]:.2f})" for i in np.flatnonzero(~truth & (best >= SCORE_THRESHOLD))))
        if args.no_cost:
            continue
        detector = [cpu_ms(lambda p, m=model: face_scores(upright_colour(p[0], p[1], args.side), model=m), pictures)
                    for _ in range(args.passes)]
        print(f"\ndetector alone: {min(detector):.2f} ms CPU an image (best of {args.passes} passes)\n")
    if args.no_cost:
        return
    variants = {(thumbs, faces): [] for thumbs in (True, False) for faces in (False, True)}
    for _ in range(args.passes):
        for (thumbs, faces), figures in variants.items():
            figures.append(cpu_ms(lambda d, t=thumbs, f=faces: image.fingerprint_bytes(
                d, want_sha256=True, want_perceptual=True, want_thumbnail=t, want_faces=f), blobs))
    print("| thumbnails | faces | whole fingerprint, ms CPU an image (best of passes) |\n|---|---|---|")
    for (thumbs, faces), figures in variants.items():
        print(f"| {'on' if thumbs else 'off'} | {'on' if faces else 'off'} | {min(figures):.2f} |")


if __name__ == "__main__":
    main()

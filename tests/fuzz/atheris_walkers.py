"""Coverage-guided fuzzing (atheris / libFuzzer) of the format walkers, the EXIF parser and the whole
fingerprint path. Any exception escaping `read_metadata` or `fingerprint_bytes` is a crash.

    python tests/fuzz/atheris_walkers.py CORPUS_DIR -max_total_time=60     # libFuzzer flags pass through

`tests/test_fuzz.py` runs it for a bounded time when atheris is installed (`pip install atheris`).
"""

from __future__ import annotations

import sys
import warnings

import atheris

with atheris.instrument_imports():
    from tierscan.scanner.fingerprint.exif import detect_format, read_metadata
    from tierscan.scanner.fingerprint.image import fingerprint_bytes

warnings.simplefilter("ignore")  # Pillow's warnings about corrupt tags are expected here


def one(data: bytes) -> None:
    detect_format(data[:64])
    read_metadata(data)
    if len(data) < 200_000:
        fingerprint_bytes(data, want_sha256=True, want_perceptual=True, want_thumbnail=True, want_faces=True)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()

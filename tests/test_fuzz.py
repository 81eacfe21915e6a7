"""Bounded coverage-guided fuzzing with atheris (when it is installed): the format walkers, the EXIF parser
and the fingerprint path, seeded with real camera files, for `TIERSCAN_FUZZ_SECONDS` (default 10) seconds.
The hypothesis fuzzers in tests/test_exif.py and tests/test_hostile.py run everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 12):  # the test extra installs atheris wherever it has wheels
    pytest.skip("atheris has no wheels for this Python", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SEEDS = ["exif/exifpy__Canon_40D.jpg", "exif/exiftool__GoPro.jpg", "exif/pillow__exif.png",
         "exif/pillow__flower.webp", "exif/exifpy__Arbitro.tiff", "exif/exifpy__iphone_13_pro_max.heic",
         "exif-makers/exiftool__CanonRaw.crw", "exif-makers/exiftool__SigmaDP2.x3f",
         "exif-makers/exiftool__Minolta.mrw", "exif-makers/exiftool__Panasonic.rw2",
         "exif-makers/exiftool__PhaseOne.iiq", "exif-makers/exiftool__ExifTool.jpg",
         "exif-makers/exiftool__InfiRay.jpg", "exif-makers/exiftool__Ricoh2.jpg",
         # IPTC and XMP naming people: IIM datasets, UTF-16 XMP, MWG reconciliation, extended XMP
         "exif-makers/exiftool__IPTC.jpg", "exif-makers/exiftool__XMP.jpg", "exif-makers/exiftool__MWG.jpg",
         "exif-makers/exiftool__ExtendedXMP.jpg"]


@pytest.mark.slow
def test_atheris_bounded(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in SEEDS:
        data = (REPO / "tests" / "data" / name).read_bytes()
        (corpus / Path(name).name).write_bytes(data[:65536])
    seconds = int(os.environ.get("TIERSCAN_FUZZ_SECONDS", "10"))
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "fuzz" / "atheris_walkers.py"), str(corpus),
         f"-max_total_time={seconds}", "-max_len=65536", "-rss_limit_mb=2048", "-timeout=10",
         f"-artifact_prefix={tmp_path}/"],
        cwd=REPO, capture_output=True, text=True, timeout=seconds + 120,
    )
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    assert run.returncode == 0 and not crashes, (crashes, run.stderr[-4000:])

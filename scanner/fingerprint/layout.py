"""Tags of how stored fingerprints were made, apart from the modules that make them: the catalog and the
scan compare stored values with them without loading the image libraries."""

import struct

# Grey, JPEG DCT-scaled to >= 256 px, EXIF orientation applied; hashes from a 128 px area-averaged copy.
PERCEPTUAL_MODE = "L-draft256-orient-area128"
# Signature blobs: layout 3 adds the pHash inside a quiet border to layout 2, and layout 4 the levelled hash;
# older layouts stay readable (their images are not read again; they lack those queries). Layout 1 had no
# prefix (it began with a width below 1024).
MAGIC = b"TS\x04"
LAYOUTS = (b"TS\x02", b"TS\x03", MAGIC)  # the layouts read; the last is the one written
# A blob's header: magic; work width, height; ORB count of the image, of its mirror. The pHash of the mirror
# image (u64) follows it.
SIGNATURE_HEADER = struct.Struct("<3sHHBB")
_MIRROR = struct.Struct("<Q")


def mirror_phash(blob: bytes) -> int | None:
    """The pHash of the mirror image that a signature blob of this layout holds (None for another layout)."""
    if blob[:len(MAGIC)] not in LAYOUTS or len(blob) < SIGNATURE_HEADER.size + _MIRROR.size:
        return None
    return int(_MIRROR.unpack_from(blob, SIGNATURE_HEADER.size)[0])

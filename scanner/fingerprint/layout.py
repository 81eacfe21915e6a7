"""Tags of how stored fingerprints were made, apart from the modules that make them: the catalog and the
scan compare stored values with them without loading the image libraries."""

# Grey, JPEG DCT-scaled to >= 256 px, EXIF orientation applied; hashes from a 128 px area-averaged copy.
PERCEPTUAL_MODE = "L-draft256-orient-area128"
MAGIC = b"TS\x02"  # signature blobs: layout 2; layout 1 had no prefix (it began with a width below 1024: never b"TS")

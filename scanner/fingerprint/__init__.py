"""What one object's bytes give: hashes, perceptual hashes and signatures, metadata (exif/), and the worker processes
that compute them."""

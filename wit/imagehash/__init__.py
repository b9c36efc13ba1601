"""Image hashes: the descriptors (pixel hash, pHash and variants) and their Hamming-distance search (multi-index hashing)."""

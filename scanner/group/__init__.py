"""Exact and near-duplicate groups: clustering, the Hamming index and geometric verification."""

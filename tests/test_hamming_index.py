import numpy as np
import pytest

from scanner.hamming_index import HammingIndex, pairs_within


def codes_with_planted_pairs(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    for k in range(60):  # copies with k % 11 bits flipped, some beyond every radius tested
        flips = sum(1 << int(b) for b in rng.choice(64, k % 11, replace=False))
        codes[n - 1 - k] = codes[k] ^ np.uint64(flips)
    codes[100:110] = codes[200]  # a crowded bucket: exact duplicates
    return codes


def brute(codes, queries, radius):
    d = np.bitwise_count(queries[:, None] ^ codes[None, :])
    return d


@pytest.mark.parametrize("radius", [0, 3, 8, 10])
@pytest.mark.parametrize("workers", [1, 2])
def test_all_pairs_match_brute_force(radius, workers):
    codes = codes_with_planted_pairs()
    i, j, d = pairs_within(codes, radius, workers=workers)
    full = brute(codes, codes, radius)
    want = {(a, b) for a, b in zip(*np.nonzero(np.triu(full <= radius, 1)))}
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(want)  # each pair once, i < j
    assert (d == full[i, j]).all()


def test_search_of_other_queries_matches_brute_force():
    codes = codes_with_planted_pairs()
    queries = codes[:300] ^ np.uint64(0b101)
    qi, ci, d = HammingIndex(codes).search(queries, 6, workers=1)
    full = brute(codes, queries, 6)
    assert set(zip(qi.tolist(), ci.tolist())) == set(zip(*np.nonzero(full <= 6)))
    assert len(qi) == len(set(zip(qi.tolist(), ci.tolist())))


def test_empty_and_single():
    i, j, d = pairs_within(np.zeros(0, np.uint64), 8)
    assert len(i) == len(j) == len(d) == 0
    assert all(len(a) == 0 for a in pairs_within(np.array([7], np.uint64), 8))

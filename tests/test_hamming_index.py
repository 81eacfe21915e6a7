import numpy as np
import pytest

from tierscan.scanner.group import hamming_index
from tierscan.scanner.group.hamming_index import HammingIndex, pairs_within


def codes_with_planted_pairs(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    for k in range(60):  # copies with k % 11 bits flipped, some beyond every radius tested
        flips = sum(1 << int(b) for b in rng.choice(64, k % 11, replace=False))
        codes[n - 1 - k] = codes[k] ^ np.uint64(flips)
    codes[100:110] = codes[200]  # a crowded bucket: exact duplicates
    return codes


def clustered_codes(n=2000, seed=5):
    """Few seeds with light bit noise: crowded buckets and thousands of pairs (the output must grow)."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**64 - 1, 4, dtype=np.uint64, endpoint=True)
    codes = seeds[rng.integers(0, 4, n)]
    for bit in range(64):
        codes ^= (rng.random(n) < 0.04).astype(np.uint64) << np.uint64(bit)
    return codes


def brute_pairs(codes, radius):
    """{(i, j): distance} for i < j within radius."""
    full = np.bitwise_count(codes[:, None] ^ codes[None, :])
    i, j = np.nonzero(np.triu(full <= radius, 1))
    return dict(zip(zip(i.tolist(), j.tolist(), strict=True), full[i, j].tolist(), strict=True))


def brute_search(codes, queries, radius):
    full = np.bitwise_count(queries[:, None] ^ codes[None, :])
    q, c = np.nonzero(full <= radius)
    return dict(zip(zip(q.tolist(), c.tolist(), strict=True), full[q, c].tolist(), strict=True))


def as_dict(q, c, d):
    found = dict(zip(zip(q.tolist(), c.tolist(), strict=True), d.tolist(), strict=True))
    assert len(found) == len(q), "a pair reported twice"
    return found


@pytest.fixture(autouse=True)
def indexed(monkeypatch):
    """Small inputs are compared pairwise; these tests are about the index, so every search uses it."""
    monkeypatch.setattr(hamming_index, "_PAIRWISE_MAX", 0)


@pytest.fixture(params=[False, True], ids=["one block", "many blocks"])
def blocks(request, monkeypatch):
    """Small sets fit in one block of bucket values; shrinking the block runs the blocked path too."""
    if request.param:
        monkeypatch.setattr(hamming_index, "_BLOCK_CODES", 16)


@pytest.mark.parametrize("radius", [0, 8])
def test_small_inputs_compared_pairwise_give_what_the_index_gives(radius, monkeypatch):
    codes = codes_with_planted_pairs()
    queries = codes[::7] ^ np.uint64(5)
    by_index = (as_dict(*pairs_within(codes, radius)), as_dict(*HammingIndex(codes).search(queries, radius)))
    monkeypatch.setattr(hamming_index, "_PAIRWISE_MAX", 1 << 26)
    index = HammingIndex(codes)
    pairwise = (as_dict(*pairs_within(codes, radius)), as_dict(*index.search(queries, radius)))
    assert index._bands is None  # no bucket tables were built
    assert pairwise == by_index and by_index[0]


@pytest.mark.parametrize("radius", [0, 3, 8, 10])
@pytest.mark.parametrize("workers", [1, 2])
def test_all_pairs_match_brute_force(radius, workers, blocks):
    codes = codes_with_planted_pairs()
    found = as_dict(*pairs_within(codes, radius, workers=workers))
    assert all(i < j for i, j in found)
    assert found == brute_pairs(codes, radius)


@pytest.mark.parametrize("radius", [0, 8])
def test_clustered_codes_match_brute_force(radius, blocks):
    codes = clustered_codes()
    want = brute_pairs(codes, radius)
    assert len(want) > 2000  # more than the kernel's first output buffer (1024)
    assert as_dict(*pairs_within(codes, radius, workers=2)) == want


@pytest.mark.parametrize("bands", [3, 4, 5])
def test_band_counts_match_brute_force(bands):
    codes = codes_with_planted_pairs(n=1500)
    assert as_dict(*pairs_within(codes, 9, bands=bands)) == brute_pairs(codes, 9)


def test_duplicate_codes_pair_with_each_other():
    codes = np.array([5, 5, 5, 7, 5], np.uint64)
    found = as_dict(*pairs_within(codes, 0))
    assert found == {(0, 1): 0, (0, 2): 0, (0, 4): 0, (1, 2): 0, (1, 4): 0, (2, 4): 0}
    assert as_dict(*pairs_within(codes, 1))[(3, 4)] == 1


@pytest.mark.parametrize("radius", [0, 6, 10])
def test_search_of_other_queries_matches_brute_force(radius, blocks):
    codes = codes_with_planted_pairs()
    queries = np.concatenate([codes[:300] ^ np.uint64(0b101), codes[500:520], codes[100:103]])
    found = as_dict(*HammingIndex(codes).search(queries, radius, workers=2))
    assert found == brute_search(codes, queries, radius)


def test_search_includes_a_query_equal_to_an_indexed_code():
    codes = np.array([1, 2, 3], np.uint64)
    assert as_dict(*HammingIndex(codes).search(codes, 0)) == {(0, 0): 0, (1, 1): 0, (2, 2): 0}


def test_empty_and_single():
    for result in (pairs_within(np.zeros(0, np.uint64), 8), pairs_within(np.array([7], np.uint64), 8),
                   HammingIndex(np.zeros(0, np.uint64)).search(np.array([7], np.uint64), 8),
                   HammingIndex(np.array([7], np.uint64)).search(np.zeros(0, np.uint64), 8)):
        assert [len(a) for a in result] == [0, 0, 0]
        assert [a.dtype for a in result] == [np.int64, np.int64, np.uint8]


def test_too_few_bands_is_refused():
    with pytest.raises(ValueError, match="bands"):
        HammingIndex(np.zeros(3, np.uint64), bands=2)


def test_kernels_get_a_cache_folder_when_neither_the_package_nor_the_user_can_be_written(tmp_path):
    # A folder beneath a file cannot be made, even by root: what an unprivileged user without a home meets.
    (tmp_path / "file").write_text("")
    blocked, open_ = str(tmp_path / "file" / "cache"), str(tmp_path / "cache")
    assert not hamming_index._writable(blocked)
    assert hamming_index._writable(open_)
    assert hamming_index._needs_cache_dir(blocked, blocked)
    assert not hamming_index._needs_cache_dir(blocked, open_)
    assert not hamming_index._needs_cache_dir(open_, blocked)


@pytest.mark.slow
def test_ensure_loaded_leaves_the_compiled_kernels_ready():
    """A scan loads them in the background while it lists; a fresh process has none until then."""
    import subprocess
    import sys

    code = ("from tierscan.scanner.group import hamming_index as h; before = len(h._join.signatures); "
            "h.ensure_loaded(); print(before, len(h._join.signatures) > 0, len(h._counting_sort.signatures) > 0)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["0", "True", "True"]


_IMPORT_THEN_LOAD = """
import atexit, shutil
import numba
calls = []
atexit.register = lambda *args, **kwargs: calls.append(args)
from numba.core.caching import NullCache
from tierscan.scanner.group import hamming_index as h
h._needs_cache_dir = lambda package_cache, user_cache: True
print(numba.config.CACHE_DIR == "", len(calls), isinstance(h._join._cache, NullCache))
h.ensure_loaded()
h.ensure_loaded()
folder = numba.config.CACHE_DIR
print("tierscan-numba-" in folder, [c[:2] for c in calls] == [(shutil.rmtree, folder)],
      isinstance(h._join._cache, NullCache))
shutil.rmtree(folder)
"""


@pytest.mark.slow
def test_importing_the_index_changes_no_numba_setting_until_the_kernels_are_loaded():
    """No cache folder, exit hook or kernel cache at import; `ensure_loaded` makes them, once."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", _IMPORT_THEN_LOAD], check=True, capture_output=True, text=True,
                         env=env).stdout
    assert out.split() == ["True", "0", "True", "True", "True", "False"]

"""The generated permutation sets: permutations, no duplicates, far apart, deterministic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from common.transforms import hamming_permutations, min_pairwise_hamming, pairwise_hamming


def test_the_default_set_has_1000_distinct_permutations_at_least_4_apart() -> None:
    perms = hamming_permutations(1000, 8, seed=0)
    assert perms.shape == (1000, 8)
    assert all(sorted(row) == list(range(8)) for row in perms.tolist())  # every row is a permutation of the 8 cubes
    assert len({tuple(row) for row in perms.tolist()}) == 1000  # no duplicates
    assert np.array_equal(perms[0], np.arange(8))  # class 0 is "not shuffled"
    # the official file has pairs at distance 2; the greedy max-min set keeps every pair at least 4 apart
    assert min_pairwise_hamming(perms) == 4
    mean = pairwise_hamming(perms).sum() / (1000 * 999)
    assert 6.9 < mean < 7.1  # as the official set (mean about 7.0)


def test_small_sets_are_maximally_far_apart() -> None:
    # two permutations of 8: the second is a derangement of the identity (distance 8, the maximum)
    assert min_pairwise_hamming(hamming_permutations(2, 8)) == 8
    # 24 permutations of 8 pieces can all be at least 6 apart (the demo's classes)
    assert min_pairwise_hamming(hamming_permutations(24, 8)) >= 6
    # all 24 permutations of 4 tiles: the whole group, distance 2 is unavoidable
    perms = hamming_permutations(24, 4)
    assert {tuple(r) for r in perms.tolist()} == set(itertools.permutations(range(4)))
    assert min_pairwise_hamming(perms) == 2


def test_a_seed_gives_the_same_set_and_another_seed_another() -> None:
    a = hamming_permutations(100, 8, seed=3)
    from common.transforms.permutations import _hamming_permutations

    _hamming_permutations.cache_clear()  # regenerate, not just return the cached array
    assert np.array_equal(a, hamming_permutations(100, 8, seed=3))
    assert not np.array_equal(a, hamming_permutations(100, 8, seed=4))
    assert not a.flags.writeable  # the cached set cannot be changed by a caller


def test_impossible_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="8! = 40320"):
        hamming_permutations(math.factorial(8) + 1, 8)
    with pytest.raises(ValueError):
        hamming_permutations(0)
    with pytest.raises(ValueError):
        hamming_permutations(2, 1)


def test_min_pairwise_hamming_sees_a_duplicate() -> None:
    assert min_pairwise_hamming(np.array([[0, 1, 2], [1, 2, 0], [0, 1, 2]])) == 0

"""Maximal-Hamming permutation sets for the Jigsaw and Rubik's Cube pretext tasks, generated, not downloaded.

Noroozi and Favaro (ECCV 2016) choose the jigsaw permutations so that any two differ in as many positions as
possible: the classes of the pretext task are then far apart and none is ambiguous. The United code
(``StepwisePretraining``) loads a fixed ``permutations_hamming_max_1000.npy`` of 1000 permutations of the 8
sub-cubes; here the set is generated from a seed, so it needs no file and any size can be had.

Greedy construction over all ``n!`` permutations (40 320 for the 2x2x2 grid): start from the identity ("not
shuffled", class 0), then repeatedly add the permutation whose *smallest* Hamming distance to the set chosen so far
is largest; ties go to the largest total distance to the set, remaining ties are broken by a seeded generator. One
pass costs ``N * n! * n`` comparisons (one to a few seconds for N = 1000, n = 8 on a CPU core); the result is
cached per process. For N = 1000, n = 8 (seed 0) the smallest pairwise distance is 4 and the mean about 7.0; the
official file has the same mean but pairs at distance 2.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

__all__ = ["hamming_permutations", "min_pairwise_hamming", "pairwise_hamming"]


@lru_cache(maxsize=8)
def _all_permutations(num_elements: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(num_elements))), dtype=np.int8)


@lru_cache(maxsize=32)
def _hamming_permutations(num_permutations: int, num_elements: int, seed: int) -> np.ndarray:
    candidates = _all_permutations(num_elements)  # itertools order: the identity comes first
    rng = np.random.default_rng(seed)
    chosen = [0]
    distances = (candidates != candidates[0]).sum(axis=1).astype(np.int64)
    min_distance = distances.copy()
    total_distance = distances
    min_distance[0] = -1  # never chosen twice
    for _ in range(num_permutations - 1):
        best = np.flatnonzero(min_distance == min_distance.max())
        best = best[total_distance[best] == total_distance[best].max()]
        pick = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        chosen.append(pick)
        distances = (candidates != candidates[pick]).sum(axis=1)
        np.minimum(min_distance, distances, out=min_distance)
        total_distance += distances
        min_distance[chosen] = -1
    result = candidates[chosen].astype(np.int64)
    result.setflags(write=False)
    return result


def hamming_permutations(num_permutations: int = 1000, num_elements: int = 8, seed: int = 0) -> np.ndarray:
    """A deterministic set of permutations with maximal pairwise Hamming distances (greedy, max-min).

    Args:
        num_permutations: size ``N`` of the set (the United Jigsaw and Rubik's Cube: 1000), at most ``n!``.
        num_elements: ``n``, the number of pieces (8 for a 2x2x2 grid of sub-cubes, 4 for a 2x2 grid).
        seed: seed of the tie-breaking generator: the same seed gives the same set, in the same order.

    Returns:
        A read-only ``(N, n)`` int64 array; row ``k`` is permutation ``k`` (row 0 is the identity): piece
        ``row[i]`` goes to slot ``i``.

    Raises:
        ValueError: ``N < 1``, ``n < 2`` or ``N > n!``.
    """
    if int(num_elements) != num_elements or num_elements < 2:
        raise ValueError(f"num_elements must be an integer >= 2, got {num_elements!r}.")
    if int(num_permutations) != num_permutations or not 1 <= num_permutations <= math.factorial(num_elements):
        raise ValueError(
            f"num_permutations must be an integer in [1, {num_elements}! = {math.factorial(num_elements)}], "
            f"got {num_permutations!r}."
        )
    return _hamming_permutations(int(num_permutations), int(num_elements), int(seed))


def pairwise_hamming(permutations: np.ndarray) -> np.ndarray:
    """``(N, N)`` matrix of the number of positions in which two permutations differ."""
    perms = np.asarray(permutations)
    return (perms[:, None, :] != perms[None, :, :]).sum(axis=-1)


def min_pairwise_hamming(permutations: np.ndarray) -> int:
    """The smallest Hamming distance between two different rows (0 when a row is repeated)."""
    distances = pairwise_hamming(permutations)
    np.fill_diagonal(distances, np.iinfo(distances.dtype).max)
    return int(distances.min())

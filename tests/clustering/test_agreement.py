"""NMI and ARI against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from common.clustering import adjusted_rand_index, contingency, normalized_mutual_information


def test_identical_partitions_up_to_renaming() -> None:
    a = torch.tensor([0, 0, 1, 1, 2, 2])
    b = torch.tensor([5, 5, 3, 3, 9, 9])
    assert normalized_mutual_information(a, b) == pytest.approx(1.0)
    assert adjusted_rand_index(a, b) == pytest.approx(1.0)


def test_hand_computed_values() -> None:
    a, b = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1])
    assert contingency(a, b).tolist() == [[2.0, 1.0], [0.0, 1.0]]
    h_a = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_b = math.log(2)
    mutual = 0.5 * math.log(0.5 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.25 * 0.5))
    assert normalized_mutual_information(a, b) == pytest.approx(mutual / math.sqrt(h_a * h_b))
    # pairs: together in both = C(2,2) = 1; rows C(3,2) + 0 = 3; columns 1 + 1 = 2; all pairs C(4,2) = 6
    expected = 3 * 2 / 6
    assert adjusted_rand_index(a, b) == pytest.approx((1 - expected) / ((3 + 2) / 2 - expected))


def test_crossed_partitions_score_below_chance() -> None:
    a, b = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    assert normalized_mutual_information(a, b) == pytest.approx(0.0)
    assert adjusted_rand_index(a, b) == pytest.approx(-0.5)  # (0 - 4/6) / (2 - 4/6)


def test_unrelated_random_partitions_average_zero_ari() -> None:
    g = torch.Generator().manual_seed(0)
    scores = [adjusted_rand_index(torch.randint(4, (64,), generator=g), torch.randint(4, (64,), generator=g)) for _ in range(200)]
    assert abs(sum(scores) / len(scores)) < 0.01

"""Top-1 retrieval of the matching view: 1 for matching embeddings, 0 when every match is elsewhere."""

from __future__ import annotations

import pytest
import torch

from common.tasks import top1_retrieval


def test_perfect_and_failed_retrieval() -> None:
    z = torch.eye(4) + 0.01 * torch.randn(4, 4)
    assert top1_retrieval(z, z) == 1.0
    assert top1_retrieval(z, 3 * z) == 1.0  # cosine: the scale does not matter
    assert top1_retrieval(z, z.roll(1, dims=0)) == 0.0  # every query's best key belongs to another sample


def test_partial_retrieval_by_hand() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    keys = torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # query 0 -> key 1 (cos 1) miss; query 1 -> key 3 miss; query 2 -> key 2 hit; query 3 -> key 3 (cos 0 beats negatives) hit
    assert top1_retrieval(queries, keys) == 0.5


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        top1_retrieval(torch.zeros(3, 2), torch.zeros(4, 2))

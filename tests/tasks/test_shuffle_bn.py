"""Grouped shuffle-BN: batch statistics from random sub-batches, outputs back in the input order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.tasks import grouped_shuffle_forward


def _batch_centred(x: torch.Tensor) -> torch.Tensor:
    """A stand-in for BatchNorm: subtract the batch mean (which samples share a batch shows in the output)."""
    return x - x.mean(dim=0, keepdim=True)


def test_each_output_uses_the_statistics_of_its_own_random_sub_batch() -> None:
    x = torch.randn(8, 3)
    out = grouped_shuffle_forward(_batch_centred, x, groups=2, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    for group in torch.tensor_split(order, 2):
        torch.testing.assert_close(out[group], x[group] - x[group].mean(dim=0, keepdim=True))
    # not the whole-batch statistics the query gets
    assert not torch.allclose(out, _batch_centred(x))


def test_per_sample_networks_are_unchanged_and_lists_come_back_in_order() -> None:
    x = torch.randn(6, 4)

    def features(v: torch.Tensor) -> list[torch.Tensor]:
        return [v * 2, v.sum(dim=1, keepdim=True)]

    out = grouped_shuffle_forward(features, x, groups=3)
    assert isinstance(out, list) and len(out) == 2
    torch.testing.assert_close(out[0], x * 2)
    torch.testing.assert_close(out[1], x.sum(dim=1, keepdim=True))


def test_batch_norm_in_train_mode_sees_groups_of_at_least_two() -> None:
    head = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    x = torch.randn(3, 4)
    out = grouped_shuffle_forward(head, x, groups=4)  # clamped to 3 // 2 = 1 group: BatchNorm1d needs two samples
    torch.testing.assert_close(out, head(x))
    with pytest.raises(ValueError):
        grouped_shuffle_forward(head, x, groups=0)

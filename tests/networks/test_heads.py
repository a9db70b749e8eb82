"""ClassificationHead: the United 'conv' head, the TransVW GAP head, invalid arguments."""

from __future__ import annotations

import pytest
import torch

from common.networks import ClassificationHead


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("conv_channels,hidden", [(None, None), (8, None), (None, 16), (8, 16)])
@pytest.mark.parametrize("num_classes", [2, 8, 24])
def test_logits_shape(spatial_dims: int, conv_channels: int | None, hidden: int | None, num_classes: int) -> None:
    head = ClassificationHead(spatial_dims, 12, num_classes, conv_channels, hidden, dropout=0.1)
    out = head(torch.rand(3, 12, *(4,) * spatial_dims))
    assert out.shape == (3, num_classes)


def test_united_conv_head_parameter_count() -> None:
    # methods-spec section 2.3: 7.61 M parameters for C = 8
    head = ClassificationHead(3, 512, 8, conv_channels=512, hidden_features=1024)
    assert round(sum(p.numel() for p in head.parameters()) / 1e6, 2) == 7.61


@pytest.mark.parametrize(
    "kwargs", [{"spatial_dims": 1}, {"num_classes": 1}, {"in_channels": 0}, {"dropout": 1.0}, {"dropout": -0.1}]
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ClassificationHead(**{"spatial_dims": 3, "in_channels": 8, "num_classes": 4, **kwargs})

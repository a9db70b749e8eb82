"""Input-channel adaptation: the expanded weights reproduce the pretrained response on replicated channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.networks import GenesisDecoder, GenesisEncoder, Restorer
from common.transfer import adapt_input_channels, expand_input_weight, input_convolutions


def test_expanded_weight_by_hand() -> None:
    weight = torch.tensor([[[1.0, 2.0]], [[4.0, -8.0]]])  # (C_out 2, C_in 1, k 2)
    out = expand_input_weight(weight, 4)
    assert out.shape == (2, 4, 2)
    assert torch.equal(out[:, 0], torch.tensor([[0.25, 0.5], [1.0, -2.0]]))
    assert torch.equal(out[:, 3], out[:, 0])
    two = torch.tensor([[[1.0], [3.0]]])  # 2 -> 1 channel: the sum
    assert torch.equal(expand_input_weight(two, 1), torch.tensor([[[4.0]]]))


def test_adapted_network_gives_the_pretrained_output_on_replicated_channels() -> None:
    torch.manual_seed(0)
    net = Restorer(GenesisEncoder(3, 1, 2, 3), GenesisDecoder(3, 1, 2, 3)).eval()
    image = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        before = net(image)
    assert adapt_input_channels(net, 4, [16, 16, 16]) == ["encoder.levels.0.0.conv"]
    assert net.encoder.in_channels == 4  # the encoder checks its input channels
    with torch.no_grad():
        after = net(image.expand(-1, 4, -1, -1, -1))
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        net(image)  # one channel no longer fits


def test_every_convolution_that_reads_the_input_is_found_in_swin_unetr() -> None:
    from monai.networks.nets import SwinUNETR

    net = SwinUNETR(1, 2, feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4, spatial_dims=2)
    names = input_convolutions(net, [64, 64])
    assert names == ["swinViT.patch_embed.proj", "encoder1.layer.conv1.conv", "encoder1.layer.conv3.conv"]
    net.eval()
    image = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = net(image)
        adapt_input_channels(net, 3, [64, 64])
        after = net(image.expand(-1, 3, -1, -1))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_same_channel_count_changes_nothing_and_grouped_input_is_refused() -> None:
    net = GenesisEncoder(3, 1, 2, 2)
    weight = net.levels[0][0].conv.weight.clone()
    assert adapt_input_channels(net, 1, [8, 8, 8]) == []
    assert torch.equal(net.levels[0][0].conv.weight, weight)
    grouped = nn.Sequential(nn.Conv3d(2, 4, 3, groups=2))
    with pytest.raises(ValueError, match="grouped"):
        adapt_input_channels(grouped, 4, [8, 8, 8])


def test_a_network_that_transforms_its_input_first_is_reported() -> None:
    class Normalising(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv3d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x * 2)

    with pytest.raises(ValueError, match="reads the input tensor directly"):
        input_convolutions(Normalising(), [8, 8, 8])

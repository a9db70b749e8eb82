"""GenesisEncoder / GenesisDecoder / Restorer: shapes over a grid, the paper plan, invalid arguments."""

from __future__ import annotations

import pytest
import torch

from common.networks import GenesisDecoder, GenesisEncoder, Restorer


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("base_channels", [2, 4])
@pytest.mark.parametrize("num_levels", [2, 3, 4])
@pytest.mark.parametrize("upsample", ["deconv", "nearest"])
def test_shapes(spatial_dims: int, base_channels: int, num_levels: int, upsample: str) -> None:
    size = (16, 24, 8)[:spatial_dims]
    x = torch.rand(2, 1, *size)
    encoder = GenesisEncoder(spatial_dims, 1, base_channels, num_levels)
    features = encoder(x)
    assert len(features) == num_levels
    for i, f in enumerate(features):
        assert f.shape == (2, base_channels * 2 ** (i + 1), *[s // 2**i for s in size])
    decoder = GenesisDecoder(spatial_dims, 3, base_channels, num_levels, upsample=upsample)
    out = decoder(features)
    assert out.shape == (2, 3, *size)
    assert 0.0 <= out.min() and out.max() <= 1.0  # sigmoid output


def test_paper_channel_plan_and_parameter_counts() -> None:
    encoder = GenesisEncoder()
    assert encoder.out_channels == [64, 128, 256, 512]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512),
    ]
    # methods-spec section 2.2: encoder 7.03 M, Keras (nearest) decoder 9.29 M, PyTorch (deconv) total 19.07 M
    assert _count(encoder) == 7_027_776
    assert round(_count(GenesisDecoder(upsample="nearest")) / 1e6, 2) == 9.29
    assert round((_count(encoder) + _count(GenesisDecoder(upsample="deconv"))) / 1e6, 2) == 19.07


def test_decoder_without_activation_is_unbounded() -> None:
    encoder, decoder = GenesisEncoder(3, 1, 2, 2), GenesisDecoder(3, 1, 2, 2, out_activation=None)
    restorer = Restorer(encoder, decoder)
    out = restorer(torch.randn(1, 1, 8, 8, 8) * 50)
    assert out.shape == (1, 1, 8, 8, 8)
    assert set(restorer.state_dict()) == {f"encoder.{k}" for k in encoder.state_dict()} | {
        f"decoder.{k}" for k in decoder.state_dict()
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"spatial_dims": 4},
        {"in_channels": 0},
        {"base_channels": 0},
        {"num_levels": 0},
    ],
)
def test_encoder_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GenesisEncoder(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"spatial_dims": 1}, {"num_levels": 1}, {"upsample": "bilinear"}, {"out_channels": 0}, {"base_channels": -1}],
)
def test_decoder_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GenesisDecoder(**kwargs)


def test_encoder_rejects_bad_inputs() -> None:
    encoder = GenesisEncoder(3, 1, 2, 4)
    with pytest.raises(ValueError, match="divisible by 8"):
        encoder(torch.rand(1, 1, 16, 16, 12))
    with pytest.raises(ValueError, match="expects"):
        encoder(torch.rand(1, 2, 16, 16, 16))
    with pytest.raises(ValueError, match="expects"):
        encoder(torch.rand(1, 1, 16, 16))


def test_decoder_rejects_wrong_feature_count() -> None:
    features = GenesisEncoder(3, 1, 2, 3)(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="expects 4 feature maps"):
        GenesisDecoder(3, 1, 2, 4)(features)

"""The Genesis U-Net scripts (``torch.jit.script``): ``ckpt_export`` of every Genesis bundle relies on it."""

from __future__ import annotations

import pytest
import torch

from common.networks import GenesisDecoder, GenesisEncoder, Restorer


@pytest.mark.parametrize("upsample", ["nearest", "deconv"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_genesis_restorer_scripts_and_matches_eager(upsample: str, spatial_dims: int) -> None:
    torch.manual_seed(0)
    restorer = Restorer(
        GenesisEncoder(spatial_dims, base_channels=4),
        GenesisDecoder(spatial_dims, base_channels=4, upsample=upsample),
    ).eval()
    scripted = torch.jit.script(restorer)
    x = torch.rand(2, 1, *([16] * spatial_dims))
    with torch.no_grad():
        assert torch.equal(scripted(x), restorer(x))


def test_scripted_encoder_keeps_its_shape_checks() -> None:
    encoder = torch.jit.script(GenesisEncoder(3, base_channels=4, num_levels=4).eval())
    with pytest.raises(Exception, match=r"spatial shape \[12, 16, 16\] must be divisible by 8"):
        encoder(torch.rand(1, 1, 12, 16, 16))
    with pytest.raises(Exception, match="expects"):
        encoder(torch.rand(1, 2, 16, 16, 16))

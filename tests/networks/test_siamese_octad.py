"""The siamese octad: shared branches, per-branch restorations, a plain exported encoder and restorer."""

from __future__ import annotations

import torch

from common.networks import GenesisDecoder, GenesisEncoder, OctadHead, Restorer, SiameseOctadModel


def _model(mask_flags: bool = False) -> SiameseOctadModel:
    torch.manual_seed(0)
    encoder = GenesisEncoder(base_channels=2, num_levels=3)
    head = OctadHead(encoder.out_channels[-1], num_permutations=5, hidden_features=6, mask_flags=mask_flags)
    return SiameseOctadModel(encoder, head, GenesisDecoder(base_channels=2, num_levels=3))


def test_outputs_per_octad_and_per_branch() -> None:
    model = _model(mask_flags=True).eval()
    out = model(torch.rand(3, 8, 8, 8, 8))
    assert out["head"]["order"].shape == (3, 5)
    assert out["head"]["rotation"].shape == out["head"]["mask"].shape == (3, 8)
    assert out["reconstruction"].shape == (3, 8, 8, 8, 8)
    assert out["features"][-1].shape[0] == 24  # the branches are folded into the batch


def test_branches_share_weights_and_restore_their_own_sub_cube() -> None:
    model = _model().eval()
    octads = torch.rand(2, 8, 8, 8, 8)
    out = model(octads)["reconstruction"]
    restorer = model.restorer()
    assert isinstance(restorer, Restorer)
    singles = restorer(octads[1].reshape(8, 1, 8, 8, 8))  # branch i's output = the single-branch restorer on sub-cube i
    torch.testing.assert_close(out[1], singles[:, 0])
    # permuting the sub-cubes permutes the restorations alike (equivariance of shared branches)
    perm = torch.tensor([3, 1, 7, 0, 2, 6, 4, 5])
    torch.testing.assert_close(model(octads[:, perm])["reconstruction"], out[:, perm])
    # ... while the order head sees the branches in order: a different permutation gives different logits
    assert not torch.allclose(model(octads[:, perm])["head"]["order"], model(octads)["head"]["order"])


def test_exported_encoder_loads_strictly_into_a_plain_encoder() -> None:
    model = _model()
    plain = GenesisEncoder(base_channels=2, num_levels=3)
    plain.load_state_dict(model.encoder.state_dict(), strict=True)
    assert set(model.components()) == {"encoder", "head", "decoder"}
    x = torch.rand(1, 1, 8, 8, 8)
    assert torch.equal(plain.eval()(x)[-1], model.encoder.eval()(x)[-1])


def test_head_pools_each_branch_then_concatenates() -> None:
    head = OctadHead(in_channels=2, num_permutations=3, num_cubes=8, rotation_flags=False)
    assert set(head(torch.rand(1, 16, 2, 2, 2))) == {"order"}
    with torch.no_grad():
        bottlenecks = torch.rand(1, 16, 2, 2, 2)
        pooled = bottlenecks.mean(dim=(2, 3, 4))
        torch.testing.assert_close(head(bottlenecks)["order"], head.order(pooled))

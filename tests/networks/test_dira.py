"""DiRA's 2D network: MONAI-compatible ResNet encoder and FlexibleUNet decoder, projectors, model and PatchGAN critic."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import FlexibleUNet
from monai.networks.nets.resnet import ResNetEncoder
from torch import nn

from common.networks import MLP
from common.networks.dira import (
    DiRAModel,
    DiRAUNet,
    PatchGANCritic,
    ProjectionMLP,
    ResNetFeatureEncoder,
    UNetRestorationDecoder,
    dira_head,
    dira_predictor,
    dira_unet,
    flexible_unet_state_dict,
    resnet_feature_channels,
)

SMALL_DECODER = (16, 8, 8, 4, 4)


def _encoder_decoder(backbone: str = "resnet10", width: float = 1.0, out_activation: str | None = "sigmoid"):
    torch.manual_seed(0)
    encoder = ResNetFeatureEncoder(backbone, spatial_dims=2, width=width)
    return encoder, UNetRestorationDecoder(encoder.out_channels, decoder_channels=SMALL_DECODER, out_activation=out_activation)


@pytest.mark.parametrize("backbone", ["resnet10", "resnet50"])
def test_encoder_is_monai_resnet_encoder_at_width_one(backbone: str) -> None:
    encoder = ResNetFeatureEncoder(backbone, spatial_dims=2).eval()
    reference = ResNetEncoder(backbone, pretrained=False, spatial_dims=2, in_channels=1).eval()
    reference.load_state_dict(encoder.state_dict(), strict=True)  # same keys and shapes: encoder.pt loads into MONAI's
    x = torch.rand(1, 1, 64, 64)
    ours, theirs = encoder(x), reference(x)
    assert len(ours) == 5 and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert [f.shape[1] for f in ours] == encoder.out_channels == resnet_feature_channels(backbone)
    assert [f.shape[-1] for f in ours] == [32, 16, 8, 4, 2]


def test_resnet50_latent_is_dira_2048_channels_and_width_narrows_every_stage() -> None:
    assert resnet_feature_channels("resnet50") == [64, 256, 512, 1024, 2048]
    assert resnet_feature_channels("resnet50", 0.25) == [16, 64, 128, 256, 512]
    narrow = ResNetFeatureEncoder("resnet18", width=0.5)
    assert [f.shape[1] for f in narrow(torch.rand(2, 1, 32, 32))] == narrow.out_channels == [32, 32, 64, 128, 256]
    with pytest.raises(ValueError, match="backbone must be one of"):
        ResNetFeatureEncoder("resnet11")


def test_encoder_and_decoder_files_load_strictly_into_a_flexible_unet() -> None:
    encoder, decoder = _encoder_decoder(out_activation=None)
    unet = FlexibleUNet(1, 1, "resnet10", pretrained=False, decoder_channels=SMALL_DECODER)
    unet.load_state_dict(flexible_unet_state_dict(encoder.state_dict(), decoder.state_dict()), strict=True)
    for module in (unet, encoder, decoder):
        module.eval()
    x = torch.rand(2, 1, 64, 96)
    torch.testing.assert_close(decoder(encoder(x)), unet(x))


def test_restorer_is_a_flexible_unet_state_dict_with_the_output_activation() -> None:
    encoder, decoder = _encoder_decoder()
    model = DiRAModel(encoder, dira_head("moco", in_channels=encoder.out_channels[-1], hidden_features=8, out_features=4), decoder)
    restorer = model.restorer()
    assert isinstance(restorer, DiRAUNet) and restorer.encoder is encoder and restorer.decoder is decoder.decoder
    unet = FlexibleUNet(1, 1, "resnet10", pretrained=False, decoder_channels=SMALL_DECODER)
    unet.load_state_dict(restorer.state_dict(), strict=True)  # model.pt: a plain FlexibleUNet
    built = dira_unet("resnet10", decoder_channels=SMALL_DECODER)
    built.load_state_dict(restorer.state_dict(), strict=True)  # the inference network
    for module in (unet, restorer, built, model):
        module.eval()
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(restorer(x), torch.sigmoid(unet(x)))
    torch.testing.assert_close(built(x), restorer(x))
    torch.testing.assert_close(model(x)["reconstruction"], restorer(x))


def test_model_pt_loads_into_the_training_model_as_monai_label_starts_from_it() -> None:
    encoder, decoder = _encoder_decoder()
    head = dira_head("moco", in_channels=encoder.out_channels[-1], hidden_features=8, out_features=4)
    model_pt = DiRAModel(encoder, head, decoder).restorer().state_dict()  # FlexibleUNet keys
    fresh_encoder, fresh_decoder = ResNetFeatureEncoder("resnet10", spatial_dims=2), UNetRestorationDecoder(
        encoder.out_channels, decoder_channels=SMALL_DECODER
    )
    fresh = DiRAModel(fresh_encoder, dira_head("moco", in_channels=encoder.out_channels[-1], hidden_features=8, out_features=4), fresh_decoder)
    result = fresh.load_state_dict(dict(model_pt), strict=False)  # MONAI Label's CheckpointLoader(strict=False)
    assert result.unexpected_keys == [] and all(k.startswith("head.") for k in result.missing_keys)
    loaded = fresh.restorer().state_dict()
    assert loaded.keys() == model_pt.keys() and all(torch.equal(loaded[k], model_pt[k]) for k in model_pt)
    own = DiRAModel(encoder, head, decoder).state_dict()  # the model's own layout still loads strictly
    fresh.load_state_dict(own, strict=True)
    stage1 = DiRAModel(ResNetFeatureEncoder("resnet10", spatial_dims=2), dira_head("moco", in_channels=encoder.out_channels[-1], hidden_features=8, out_features=4))
    assert sorted(stage1.load_state_dict(dict(model_pt), strict=False).unexpected_keys)[0].startswith("decoder.")  # no decoder: not renamed


def test_inputs_not_divisible_by_32_are_refused_with_the_shape() -> None:
    encoder, decoder = _encoder_decoder()
    with pytest.raises(ValueError, match=r"\[64, 48\] must be divisible by 32"):
        decoder(encoder(torch.rand(1, 1, 64, 48)))
    with pytest.raises(ValueError, match="divisible by 32"):
        DiRAUNet(encoder, decoder)(torch.rand(1, 1, 40, 64))


def test_model_decodes_only_when_asked_and_lists_the_predictor() -> None:
    encoder, decoder = _encoder_decoder()
    head = dira_head("simsiam", in_channels=encoder.out_channels[-1], hidden_features=8, out_features=6)
    predictor = dira_predictor("simsiam", features=6, hidden_features=3)
    model = DiRAModel(encoder, head, decoder, predictor)
    x = torch.rand(2, 1, 32, 32)
    out = model(x)
    assert out["head"].shape == out["prediction"].shape == (2, 6) and out["reconstruction"].shape == x.shape
    assert "reconstruction" not in model(x, decode=False)
    assert sorted(model.components()) == ["decoder", "encoder", "head", "predictor"]
    stage1 = DiRAModel(encoder, head)
    assert stage1.restorer() is None and sorted(stage1.components()) == ["encoder", "head"]
    with pytest.raises(ValueError, match="needs a head"):
        DiRAModel(encoder, None)


def _linear_sizes(head: ProjectionMLP) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in head.mlp if isinstance(m, nn.Linear)]


def test_projectors_of_the_three_methods_at_paper_scale() -> None:
    with torch.device("meta"):  # paper sizes (Barlow Twins: 2 x 8192^2 weights) without allocating them
        moco, barlow, simsiam = (dira_head(name) for name in ("moco", "barlow_twins", "simsiam"))
        predictor = dira_predictor("simsiam")
    assert _linear_sizes(moco) == [(2048, 2048), (2048, 128)]  # DiRA's --mlp head
    assert not any(isinstance(m, nn.BatchNorm1d) for m in moco.mlp)
    assert _linear_sizes(barlow) == [(2048, 8192), (8192, 8192), (8192, 8192)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in barlow.mlp) == 2  # between the layers, not after the last
    assert _linear_sizes(simsiam) == [(2048, 2048), (2048, 2048), (2048, 2048)]
    norms = [m for m in simsiam.mlp if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 3 and not norms[-1].affine and isinstance(simsiam.mlp[-1], nn.BatchNorm1d)
    assert isinstance(predictor, MLP) and (predictor[0].in_features, predictor[0].out_features, predictor[-1].out_features) == (2048, 512, 2048)
    assert dira_predictor("moco") is None and dira_predictor("barlow_twins") is None
    assert dira_head("moco", hidden_features=32, out_features=16).out_features == 16
    with pytest.raises(ValueError, match="discriminative must be one of"):
        dira_head("simclr")


def test_patchgan_critic_is_diras_discriminator() -> None:
    critic = PatchGANCritic()
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (1, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 1), (512, 1, 1),
    ]  # fmt: skip
    assert all(c.kernel_size == (3, 3) for c in convs)
    norms = [m for m in critic.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3  # no norm after the first conv (DiRA)
    assert critic(torch.rand(2, 1, 224, 224)).shape == (2, 1, 28, 28)  # DiRA's D_output_shape
    with pytest.raises(ValueError, match="unconditional"):
        critic(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))

"""Parameter groups: one rate, layer-wise decay by pretrained block (hand-computed rates), frozen encoder."""

from __future__ import annotations

import pytest
import torch
from pretrained_stages import ROTATION

from common.transfer import (
    backbone_settings,
    block_of,
    build_classification_network,
    build_segmentation_network,
    initialise,
    param_groups,
)


def _rate_of(groups: list[dict], network: torch.nn.Module) -> dict[str, float]:
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    return {name: by_id[id(p)] for name, p in network.named_parameters() if id(p) in by_id}


def test_blocks() -> None:
    assert block_of("encoder.levels.2.1.conv.weight") == "encoder.levels.2"
    assert block_of("decoder.blocks.0.0.adn.N.bias") == "decoder.blocks.0"
    assert block_of("decoder.out.conv.weight") == "decoder.out"
    assert block_of("swinViT.layers1.0.blocks.0.attn.qkv.weight") == "swinViT.layers1.0"
    assert block_of("swinViT.patch_embed.proj.weight") == "swinViT.patch_embed"


def test_layerwise_rates_decay_from_the_output_to_the_input(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 3, backbone_settings(stage2_dir))
    report = initialise(net, "encoder+decoder", ROTATION, stage2_dir, [16, 16, 16])
    groups = param_groups(net, 1e-2, "layerwise", 0.5, report.pretrained_parameters(net))
    rates = _rate_of(groups, net)
    assert len(rates) == sum(1 for _ in net.parameters())
    # forward order of the pretrained blocks: encoder levels 0, 1, 2, then decoder blocks 0 (deepest), 1;
    # the re-initialised output layer is new: base rate
    assert rates["decoder.out.conv.weight"] == pytest.approx(1e-2)
    assert rates["decoder.blocks.1.1.conv.weight"] == pytest.approx(1e-2 * 0.5)
    assert rates["decoder.blocks.0.0.conv.weight"] == pytest.approx(1e-2 * 0.5**2)
    assert rates["encoder.levels.2.0.conv.weight"] == pytest.approx(1e-2 * 0.5**3)
    assert rates["encoder.levels.0.0.conv.weight"] == pytest.approx(1e-2 * 0.5**5)
    assert [g["name"] for g in groups] == ["depth0", "depth1", "depth2", "depth3", "depth4", "depth5"]


def test_encoder_only_init_keeps_the_decoder_at_the_base_rate(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 3, backbone_settings(stage2_dir))
    report = initialise(net, "encoder", ROTATION, stage2_dir, [16, 16, 16])
    rates = _rate_of(param_groups(net, 1.0, "layerwise", 0.8, report.pretrained_parameters(net)), net)
    assert rates["decoder.blocks.0.0.conv.weight"] == 1.0
    assert rates["encoder.levels.2.1.conv.weight"] == pytest.approx(0.8)
    assert rates["encoder.levels.0.0.conv.weight"] == pytest.approx(0.8**3)


def test_full_and_random_give_one_group(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 3, backbone_settings(stage2_dir))
    (group,) = param_groups(net, 3e-4, "full")
    assert group["lr"] == 3e-4 and len(group["params"]) == sum(1 for _ in net.parameters())
    assert len(param_groups(net, 3e-4, "layerwise", 0.5, pretrained=())) == 1


def test_linear_probe_optimises_the_head_only(stage2_dir) -> None:
    net = build_classification_network(ROTATION, 4, [16, 16, 16], backbone_settings(stage2_dir), freeze_encoder=True)
    (group,) = param_groups(net, 1e-3, "linear_probe")
    assert {id(p) for p in group["params"]} == {id(p) for p in net.head.parameters()}


def test_bad_arguments() -> None:
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="finetune mode"):
        param_groups(net, 1.0, "partial")
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(net, 1.0, "layerwise", 0.0)
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(net, 1.0)

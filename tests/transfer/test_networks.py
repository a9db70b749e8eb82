"""Target networks built from a bundle's metadata and a run's settings, for the Genesis U-Net and a SwinUNETR."""

from __future__ import annotations

import pytest
import torch
from pretrained_stages import ROTATION
from torch import nn

from common.networks import ClassificationHead, GenesisEncoder, Restorer
from common.transfer import (
    EncoderClassifier,
    backbone_settings,
    build_backbone,
    build_classification_network,
    build_segmentation_network,
)


def test_rotation_backbone_takes_the_run_settings_and_the_task_classes(stage2_dir) -> None:
    settings = backbone_settings(stage2_dir)
    net = build_segmentation_network(ROTATION, out_channels=3, settings=settings)
    assert isinstance(net, Restorer)
    assert net.encoder.base_channels == 2 and net.encoder.num_levels == 3  # from run.json, not the config's 32 / 4
    assert net.decoder.out.conv.out_channels == 3
    assert isinstance(net.decoder.out_activation, nn.Identity)  # the task's loss applies softmax
    assert net(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 3, 16, 16, 16)


def test_settings_that_are_not_config_ids_are_ignored() -> None:
    net = build_backbone(ROTATION, {"base_channels": 3, "w_res": 100.0, "rotation_group": "d4"})
    assert net.encoder.base_channels == 3


def test_segmentation_network_with_four_input_channels(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 2, backbone_settings(stage2_dir), in_channels=4, spatial_size=[16, 16, 16])
    assert net(torch.zeros(1, 4, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    with pytest.raises(ValueError, match="spatial_size"):
        build_segmentation_network(ROTATION, 2, backbone_settings(stage2_dir), in_channels=4)


def test_classifier_is_the_encoder_component_plus_a_head_on_the_deepest_map(stage2_dir) -> None:
    net = build_classification_network(ROTATION, 5, [16, 16, 16], backbone_settings(stage2_dir))
    assert isinstance(net, EncoderClassifier) and isinstance(net.encoder, GenesisEncoder)
    assert isinstance(net.head, ClassificationHead)
    assert net.head.layers[-1].in_features == 16  # width 2, 3 levels: deepest map has 2 * 2**3 channels
    assert net(torch.zeros(2, 1, 16, 16, 16)).shape == (2, 5)


def test_swin_unetr_bundle_gives_its_swinvit_as_the_encoder(swin_bundle) -> None:
    seg = build_segmentation_network(swin_bundle, out_channels=3)
    assert type(seg).__name__ == "SwinUNETR" and seg.out.conv.conv.out_channels == 3
    clf = build_classification_network(swin_bundle, 4, [64, 64], in_channels=2)
    assert clf.encoder is not None and type(clf.encoder).__name__ == "SwinTransformer"
    assert clf.head.layers[-1].in_features == 12 * 16  # swinViT's deepest hidden state: 16 x feature_size
    assert clf(torch.zeros(1, 2, 64, 64)).shape == (1, 4)


def test_a_component_path_the_network_lacks_is_named(swin_bundle) -> None:
    import json
    import os

    meta_file = os.path.join(swin_bundle, "configs", "metadata.json")
    meta = json.load(open(meta_file))
    meta["united_ssl"]["components"] = {"encoder": "backbone"}
    json.dump(meta, open(meta_file, "w"))
    with pytest.raises(AttributeError, match="'backbone'"):
        build_classification_network(swin_bundle, 4, [64, 64])


def test_dense_output_broadcasts_the_logits_over_the_input(stage2_dir) -> None:
    net = build_classification_network(ROTATION, 3, [16, 16, 16], backbone_settings(stage2_dir), dense_output=True)
    net.eval()
    out = net(torch.randn(2, 1, 16, 16, 16))
    assert out.shape == (2, 3, 16, 16, 16)
    net.dense_output = False
    with torch.no_grad():
        logits = net(torch.zeros(1, 1, 16, 16, 16))
        net.dense_output = True
        dense = net(torch.zeros(1, 1, 16, 16, 16))
    assert torch.equal(dense[0, :, 5, 7, 9], logits[0])

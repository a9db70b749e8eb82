"""Fixtures for transfer tests: stage folders exported from tiny Genesis networks, and a 2D SwinUNETR "method bundle"
whose encoder component is ``swinViT`` (the shape a Swin UNETR bundle's metadata will have)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROTATION = os.path.join(REPO_ROOT, "bundles", "rotation")
WIDTH = 2  # base channels of the tiny pretrained networks
LEVELS = 3

SWIN_CONFIG = """
imports: [$import monai]
bundle_root: .
spatial_dims: 2
feature_size: 12
in_channels: 1
out_channels: 1
network_def:
  _target_: monai.networks.nets.SwinUNETR
  in_channels: "@in_channels"
  out_channels: "@out_channels"
  feature_size: "@feature_size"
  depths: [1, 1, 1, 1]
  num_heads: [1, 1, 1, 1]
  window_size: 4
  spatial_dims: "@spatial_dims"
"""


def write_stage(folder: str, width: int = WIDTH, levels: int = LEVELS, decoder: bool = True, stage: int = 2, seed: int = 1) -> str:
    """Export a randomly initialised encoder (and decoder) and a run record, as a pretraining stage would."""
    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    encoder = GenesisEncoder(3, 1, width, levels)
    torch.save(encoder.state_dict(), os.path.join(folder, "encoder.pt"))
    torch.save(ClassificationHead(3, encoder.out_channels[-1], 8).state_dict(), os.path.join(folder, "head.pt"))
    if decoder:
        torch.save(GenesisDecoder(3, 1, width, levels, upsample="nearest").state_dict(), os.path.join(folder, "decoder.pt"))
    settings = {
        "spatial_dims": 3, "base_channels": width, "num_levels": levels, "upsample": "nearest", "num_classes": 8,
        "intensity_preset": "ct", "orientation": "RAS", "spacing": [3.0, 3.0, 3.0], "roi_size": [32, 32, 32], "seed": 0,
    }  # fmt: skip
    with open(os.path.join(folder, "run.json"), "w", encoding="utf-8") as f:
        json.dump({"bundle": "rotation", "stage": stage, "settings": settings, "versions": {}}, f)
    return folder


@pytest.fixture
def stage2_dir(tmp_path) -> str:
    """A stage-2-like folder: ``encoder.pt``, ``head.pt``, ``decoder.pt`` and ``run.json`` (width 2, 3 levels)."""
    return write_stage(str(tmp_path / "pretrained" / "stage2"))


@pytest.fixture
def stage1_dir(tmp_path) -> str:
    """A stage-1-like folder: no decoder."""
    return write_stage(str(tmp_path / "pretrained" / "stage1"), decoder=False, stage=1)


@pytest.fixture
def swin_bundle(tmp_path) -> str:
    """A 2D SwinUNETR method bundle: metadata with ``united_ssl`` (encoder -> swinViT) and its network config."""
    bundle = tmp_path / "bundles" / "swin2d"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "inference.yaml").write_text(SWIN_CONFIG, encoding="utf-8")
    meta = {
        "version": "0.1.0",
        "united_ssl": {
            "method": "swin-test",
            "network_config": "configs/inference.yaml",
            "network_id": "network_def",
            "out_channels_id": "out_channels",
            "components": {"encoder": "swinViT"},
        },
    }
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return str(bundle)

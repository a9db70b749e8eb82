"""Tiny pretrained stage folders for the transfer tests (kept out of ``conftest.py``: see tests/bundles/bundle_workflows.py)."""

from __future__ import annotations

import json
import os

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

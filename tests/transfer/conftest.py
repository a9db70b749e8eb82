"""Fixtures for transfer tests: stage folders exported from tiny Genesis networks, and a 2D SwinUNETR "method bundle"
whose encoder component is ``swinViT`` (the shape a Swin UNETR bundle's metadata will have)."""

from __future__ import annotations

import json

import pytest
from pretrained_stages import SWIN_CONFIG, write_stage


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

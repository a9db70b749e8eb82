"""Reading a method bundle's united_ssl metadata, discovering method bundles, and a stage's settings."""

from __future__ import annotations

import json
import os

import pytest
from pretrained_stages import ROTATION

from common.transfer import backbone_settings, discover_ssl_bundles, read_ssl_bundle, stage_folders


def test_rotation_bundle_metadata_is_read_with_resolved_paths() -> None:
    bundle = read_ssl_bundle(ROTATION)
    assert bundle.name == "rotation" and bundle.method == "rotation"
    assert bundle.network_config == os.path.join(os.path.abspath(ROTATION), "configs", "inference.yaml")
    assert bundle.components["encoder"] == "encoder" and bundle.components["decoder"] == "decoder"
    assert bundle.out_channels_id == "network_def#decoder#out_channels"


def test_discovery_takes_bundles_with_a_united_ssl_section_only(tmp_path, swin_bundle) -> None:
    root = os.path.dirname(swin_bundle)
    plain = os.path.join(root, "transfer_segmentation", "configs")  # a bundle without the section: not a method
    os.makedirs(plain)
    with open(os.path.join(plain, "metadata.json"), "w") as f:
        json.dump({"version": "0.1.0"}, f)
    os.makedirs(os.path.join(root, "notes"))  # not a bundle at all
    assert [b.name for b in discover_ssl_bundles(root)] == ["swin2d"]
    assert read_ssl_bundle(swin_bundle).components == {"encoder": "swinViT"}


def test_the_repository_bundles_are_discovered() -> None:
    names = [b.name for b in discover_ssl_bundles(os.path.dirname(ROTATION))]
    assert "rotation" in names and not any(n.startswith("transfer_") for n in names)


def test_missing_section_and_keys_are_named(tmp_path, swin_bundle) -> None:
    meta_file = os.path.join(swin_bundle, "configs", "metadata.json")
    meta = json.load(open(meta_file))
    del meta["united_ssl"]["components"]
    json.dump(meta, open(meta_file, "w"))
    with pytest.raises(KeyError, match="components"):
        read_ssl_bundle(swin_bundle)
    json.dump({"version": "1"}, open(meta_file, "w"))
    with pytest.raises(KeyError, match="no 'united_ssl' section"):
        read_ssl_bundle(swin_bundle)
    with pytest.raises(FileNotFoundError, match="metadata.json not found"):
        read_ssl_bundle(str(tmp_path / "nowhere"))


def test_settings_come_from_the_run_record_and_overrides_win(stage2_dir) -> None:
    settings = backbone_settings(stage2_dir, {"base_channels": 5})
    assert settings["num_levels"] == 3 and settings["base_channels"] == 5 and settings["spacing"] == [3.0, 3.0, 3.0]


def test_missing_run_record_is_an_error_only_when_weights_are_needed(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"stage9[/\\]run\.json not found"):
        backbone_settings(str(tmp_path / "stage9"))
    assert backbone_settings(str(tmp_path / "stage9"), {"base_channels": 8}, required=False) == {"base_channels": 8}
    assert backbone_settings(None, required=False) == {}


def test_stage_folders_lists_finished_stages(stage1_dir, stage2_dir, tmp_path) -> None:
    os.makedirs(tmp_path / "pretrained" / "stage3")  # started, nothing exported
    assert stage_folders(str(tmp_path / "pretrained")) == {"stage1": stage1_dir, "stage2": stage2_dir}

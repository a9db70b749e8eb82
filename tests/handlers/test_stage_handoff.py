"""Strict loading of exported components: counts, missing files, key and shape mismatches, resume skip."""

from __future__ import annotations

import os

import pytest
import torch

from common.handlers import latest_checkpoint, load_component, load_previous_stage
from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel


def _model(width: int = 2, decoder: bool = True) -> UnitedModel:
    return UnitedModel(
        GenesisEncoder(3, 1, width, 3),
        ClassificationHead(3, width * 8, 4, conv_channels=None, hidden_features=None),
        GenesisDecoder(3, 1, width, 3) if decoder else None,
    )


def _export(model: UnitedModel, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, module in model.components().items():
        torch.save(module.state_dict(), os.path.join(folder, f"{name}.pt"))


def test_loads_listed_components_exactly(tmp_path) -> None:
    source = _model(decoder=False)
    _export(source, str(tmp_path / "stage1"))
    target = _model()
    loaded = load_previous_stage(target, str(tmp_path / "stage1"), ["encoder", "head"])
    assert loaded == {"encoder": len(source.encoder.state_dict()), "head": 2}
    for name in ("encoder", "head"):
        for key, value in getattr(source, name).state_dict().items():
            assert torch.equal(getattr(target, name).state_dict()[key], value)


def test_missing_file_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"stage1[/\\]encoder\.pt not found"):
        load_previous_stage(_model(), str(tmp_path / "stage1"), ["encoder"])


def test_mismatch_names_the_file_and_keys(tmp_path) -> None:
    _export(_model(width=2), str(tmp_path / "stage1"))
    with pytest.raises(RuntimeError) as error:
        load_component(GenesisEncoder(3, 1, 4, 3), str(tmp_path / "stage1" / "encoder.pt"), "encoder")
    message = str(error.value)
    assert "encoder.pt" in message and "shape mismatches (" in message
    assert "levels.0.0.adn.N.running_mean: file (2,) vs network (4,)" in message
    with pytest.raises(RuntimeError, match=r"missing keys \(\d+\): \['levels.3"):
        load_component(GenesisEncoder(3, 1, 2, 4), str(tmp_path / "stage1" / "encoder.pt"), "encoder")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(RuntimeError, match="does not hold a state dict"):
        load_component(GenesisEncoder(3, 1, 2, 3), str(tmp_path / "list.pt"), "encoder")


def test_absent_component_and_missing_previous_dir(tmp_path) -> None:
    with pytest.raises(ValueError, match="no 'decoder' component"):
        load_previous_stage(_model(decoder=False), str(tmp_path), ["decoder"])
    with pytest.raises(ValueError, match="needs previous_stage_dir"):
        load_previous_stage(_model(), None, ["encoder"])
    assert load_previous_stage(_model(), None, []) == {}


def test_handoff_is_skipped_when_the_stage_can_resume(tmp_path) -> None:
    stage_dir = tmp_path / "stage2"
    stage_dir.mkdir()
    assert latest_checkpoint(str(stage_dir)) is None
    (stage_dir / "checkpoint_epoch=1.pt").write_bytes(b"x")
    (stage_dir / "checkpoint_final.pt").write_bytes(b"x")
    os.utime(stage_dir / "checkpoint_epoch=1.pt", (1, 1))
    assert latest_checkpoint(str(stage_dir)).endswith("checkpoint_final.pt")
    # no stage-1 files exist, yet nothing is raised: the trainer resumes from the stage's own checkpoint
    assert load_previous_stage(_model(), str(tmp_path / "stage1"), ["encoder"], stage_dir=str(stage_dir)) == {}

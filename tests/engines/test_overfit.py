"""Sanity: the trainer learns. On one cube shown in all 8 rotations, the rotation loss falls and the decoder
learns to undo the rotation (stage 2), within a few dozen steps."""

from __future__ import annotations

import torch
from overfit_steps import mean_of, overfit_history

from common.data import make_ct_phantom
from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel
from common.tasks import PretextClassificationTask
from common.transforms import apply_rotation, rotation_group


def _rotation_batch() -> dict[str, torch.Tensor]:
    hu = torch.as_tensor(make_ct_phantom((48, 48, 40), seed=1)).float()
    cube = ((hu.clamp(-1000, 1000) + 1000) / 2000)[None, 16:32, 16:32, 12:28]
    rotations = rotation_group("d4")
    return {
        "image": torch.stack([apply_rotation(cube, r) for r in rotations]),
        "target": cube[None].repeat(len(rotations), 1, 1, 1, 1),
        "label": torch.arange(len(rotations)),
    }


def test_losses_fall_when_overfitting_one_cube() -> None:
    batch = _rotation_batch()
    model = UnitedModel(
        GenesisEncoder(3, 1, 4, 3), ClassificationHead(3, 32, 8, 32, 64), GenesisDecoder(3, 1, 4, 3)
    )
    history = overfit_history(model, PretextClassificationTask(), batch)
    first, last = history[:5], history[-5:]
    assert mean_of(last, 0) < 0.6 * mean_of(first, 0), history  # rotation cross-entropy, from ln 8
    assert mean_of(last, 1) < 0.5 * mean_of(first, 1), history  # restoration MSE

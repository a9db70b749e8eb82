"""The Rubik's Cube task: hand-computed loss, and restorations folded so that each branch meets its own target."""

from __future__ import annotations

import math

import pytest
import torch
from overfit_steps import mean_of, overfit_history

from common.networks import GenesisDecoder, GenesisEncoder, OctadHead, SiameseOctadModel
from common.tasks import RubiksCubeTask
from common.transforms import RandRubiksCubed


def test_loss_is_order_ce_plus_weighted_flag_bce() -> None:
    head = {"order": torch.tensor([[0.0, math.log(3.0)]]), "rotation": torch.zeros(1, 8), "mask": torch.zeros(1, 8)}
    batch = {"label": torch.tensor([1]), "rotation": torch.ones(1, 8), "mask": torch.zeros(1, 8)}
    task = RubiksCubeTask(order_weight=1.0, rotation_weight=2.0, mask_weight=0.5)
    loss, logs = task({"head": head}, batch)
    # CE: -log(3/4); BCE at logit 0: log 2 for every flag
    expected = -math.log(3 / 4) + 2.0 * math.log(2) + 0.5 * math.log(2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logs == {"accuracy": 1.0, "rotation_accuracy": 0.0, "mask_accuracy": 1.0}  # logit 0 means "not flagged"


def test_each_branch_restores_against_its_own_sub_cube_and_input() -> None:
    torch.manual_seed(0)
    encoder = GenesisEncoder(base_channels=2, num_levels=3)
    model = SiameseOctadModel(encoder, OctadHead(encoder.out_channels[-1], 8), GenesisDecoder(base_channels=2, num_levels=3))
    t = RandRubiksCubed("image", num_permutations=8, gap=2).set_random_state(seed=0)
    samples = [t({"image": torch.rand(1, 18, 18, 18)}) for _ in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    outputs = RubiksCubeTask().run(model.eval(), batch)
    (restoration,) = outputs.restorations
    assert restoration.prediction.shape == restoration.target.shape == restoration.condition.shape == (16, 1, 8, 8, 8)
    for b in range(2):
        for i in range(8):
            row = b * 8 + i
            assert torch.equal(restoration.target[row, 0], batch["target"][b, i])
            assert torch.equal(restoration.condition[row, 0], batch["image"][b, i])
            assert torch.equal(restoration.prediction[row, 0], outputs.model["reconstruction"][b, i])
    loss, logs = RubiksCubeTask()(outputs.model, batch)
    assert torch.isfinite(loss) and set(logs) == {"accuracy", "rotation_accuracy"}


def test_missing_keys_are_named() -> None:
    head = {"order": torch.zeros(1, 2), "rotation": torch.zeros(1, 8)}
    with pytest.raises(KeyError, match="rotation"):
        RubiksCubeTask()({"head": head}, {"label": torch.tensor([0])})
    with pytest.raises(KeyError, match="octad head"):
        RubiksCubeTask()({"head": torch.zeros(1, 2)}, {"label": torch.tensor([0])})


def test_the_task_learns_one_cube() -> None:
    """Sanity: on octads of one cube (8 permutation classes, random turns) the order and flag losses fall and every
    branch learns to restore its sub-cube, within a few dozen steps of the unchanged trainer."""

    from common.data import make_ct_phantom

    hu = torch.as_tensor(make_ct_phantom((48, 48, 40), seed=1)).float()
    cube = ((hu.clamp(-1000, 1000) + 1000) / 2000)[None, 14:32, 14:32, 10:28]  # 2 x 8 + gap 2
    t = RandRubiksCubed("image", num_permutations=8, gap=2, rotate_prob=0.5).set_random_state(seed=0)
    samples = [t({"image": cube}) for _ in range(8)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("image", "target", "label", "rotation")}
    torch.manual_seed(0)
    encoder = GenesisEncoder(3, 1, 4, 3)
    model = SiameseOctadModel(encoder, OctadHead(32, 8, hidden_features=64), GenesisDecoder(3, 1, 4, 3))
    history = overfit_history(model, RubiksCubeTask(), batch)
    first, last = history[:5], history[-5:]
    assert mean_of(last, 0) < 0.6 * mean_of(first, 0), history  # from ln 8 + 8 x ln 2 / 8
    assert mean_of(last, 1) < 0.5 * mean_of(first, 1), history  # branch-wise restoration MSE

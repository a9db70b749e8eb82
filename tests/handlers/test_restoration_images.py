"""Restoration panels: input | target | restoration middle slices, in TensorBoard and restorations.npz."""

from __future__ import annotations

import glob
from types import SimpleNamespace

import numpy as np
import torch

from common.handlers import RESTORATIONS, RestorationImages
from common.handlers.restoration_images import middle_slice, panel
from common.tasks import Restoration


def test_panel_puts_the_three_middle_slices_side_by_side() -> None:
    target = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 4, 5, 6)
    grid = panel(target + 1000, target, torch.zeros_like(target))
    assert grid.shape == (4, 15)
    np.testing.assert_allclose(grid[:, 5:10], (middle_slice(target) - target[..., 3].min().item()) / (target[..., 3].max() - target[..., 3].min()).item())
    assert (grid[:, :5] == 1).all() and (grid[:, 10:] == 0).all()  # scaled by the target's range, clipped


def test_validation_panels_are_written_once_per_run_and_kept_as_npz(tmp_path) -> None:
    handler = RestorationImages(str(tmp_path), tag="validation", snapshot_dir=str(tmp_path))
    image = torch.rand(2, 1, 8, 8, 8)
    state = SimpleNamespace(epoch=4, iteration=1, restorations=[Restoration(image * 0.5, image, image)])
    engine = SimpleNamespace(state=state)
    handler(engine)
    state._panel_written = False
    handler(engine)
    saved = np.load(tmp_path / RESTORATIONS)
    assert saved["panel"].shape == (8, 24) and int(saved["epoch"]) == 4
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))


def test_nothing_is_written_without_restorations(tmp_path) -> None:
    RestorationImages(str(tmp_path), snapshot_dir=str(tmp_path))(SimpleNamespace(state=SimpleNamespace(epoch=1, iteration=1, restorations=[])))
    assert not list(tmp_path.iterdir())

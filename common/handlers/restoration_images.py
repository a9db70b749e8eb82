"""Image panels of what the decoder restores: input, target and restoration side by side.

For TensorBoard (every ``every`` iterations of training, or the first batch of every validation) and, for the
validation, as ``<stage_dir>/restorations.npz`` (the newest), from which ``tools/plot_run.py`` draws its PNG grid.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ignite.engine import Engine, Events

from common.data.atomic import atomic_output

__all__ = ["RESTORATIONS", "RestorationImages", "middle_slice", "panel"]

RESTORATIONS = "restorations.npz"


def middle_slice(volume: torch.Tensor) -> np.ndarray:
    """The middle slice of a ``(C, *S)`` image along its last spatial axis, first channel: ``(H, W)``."""
    image = volume[0].float().cpu()
    if image.ndim == 3:
        image = image[..., image.shape[-1] // 2]
    return image.numpy()


def panel(image: torch.Tensor, target: torch.Tensor, prediction: torch.Tensor) -> np.ndarray:
    """Input, target and restoration middle slices side by side, each scaled by the target's range: ``(H, 3W)``."""
    slices = [middle_slice(x) for x in (image, target, prediction)]
    low, high = float(slices[1].min()), float(slices[1].max())
    scale = high - low if high > low else 1.0
    return np.clip(np.concatenate([(s - low) / scale for s in slices], axis=1), 0.0, 1.0)


class RestorationImages:
    """Write restoration panels of the first sample of the newest restoration batch.

    Attach on rank 0. On a trainer it writes every ``every`` iterations; on an evaluator it writes the first batch
    of every run, tagged with the trainer's epoch, and keeps the newest panel as arrays in ``snapshot_dir``.

    Args:
        log_dir: the TensorBoard folder (the stage folder).
        tag: ``"train"`` or ``"validation"``.
        every: iterations between two training panels.
        snapshot_dir: where the validation panel is kept as ``restorations.npz`` (``None``: not kept).
    """

    def __init__(self, log_dir: str, tag: str = "train", every: int = 50, snapshot_dir: str | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        self.log_dir, self.tag, self.every, self.snapshot_dir = log_dir, tag, every, snapshot_dir
        self._writer = None

    def attach(self, engine: Engine) -> None:
        event = Events.ITERATION_COMPLETED(every=self.every) if self.tag == "train" else Events.ITERATION_COMPLETED(once=1)
        if self.tag != "train":  # once per run: re-arm at every evaluator run
            engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "_panel_written", False))
            event = Events.ITERATION_COMPLETED
        engine.add_event_handler(event, self)

    @property
    def writer(self):  # created on first use: a stage without a decoder writes no event file for it
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=self.log_dir)
        return self._writer

    def __call__(self, engine: Engine) -> None:
        if self.tag != "train":
            if getattr(engine.state, "_panel_written", False):
                return
            engine.state._panel_written = True
        restorations = getattr(engine.state, "restorations", None)
        if not restorations:
            return
        r = restorations[0]
        image = r.condition if r.condition is not None and r.condition.shape == r.target.shape else r.target
        grid = panel(image[0], r.target[0], r.prediction[0])
        step = engine.state.iteration if self.tag == "train" else engine.state.epoch
        self.writer.add_image(f"{self.tag}/input_target_restoration", grid[None], step, dataformats="CHW")
        self.writer.flush()
        if self.snapshot_dir is not None:
            with atomic_output(os.path.join(self.snapshot_dir, RESTORATIONS)) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, panel=grid, epoch=engine.state.epoch)

"""Resumable per-stage checkpoints: save everything the trainer lists, resume from the newest file."""

from __future__ import annotations

import glob
import logging
import os

from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["latest_checkpoint", "StageCheckpointSaver", "StageResume", "FINAL_CHECKPOINT"]

FINAL_CHECKPOINT = "checkpoint_final.pt"


def latest_checkpoint(stage_dir: str) -> str | None:
    """The newest resumable checkpoint in ``stage_dir`` (``checkpoint_final.pt`` or ``checkpoint_epoch=N.pt``), or ``None``."""
    candidates = glob.glob(os.path.join(stage_dir, "checkpoint_*.pt"))
    return max(candidates, key=os.path.getmtime) if candidates else None


def _objects(engine: Engine) -> dict:
    if not hasattr(engine, "checkpoint_objects"):
        raise TypeError(f"{type(engine).__name__} does not list its checkpoint objects; use UnitedTrainer.")
    return engine.checkpoint_objects()


class StageCheckpointSaver:
    """Save the trainer, every network, optimizer, scaler and task state of a stage, at intervals and at the end.

    Wraps MONAI's :class:`~monai.handlers.CheckpointSaver`; the objects come from
    ``UnitedTrainer.checkpoint_objects()`` at attach time, so a config need not list them (they differ by stage).
    ``checkpoint_final.pt`` is written only when training completes; after a crash, the newest interval
    checkpoint (an epoch boundary) is where a re-run resumes.

    Args:
        save_dir: the stage directory (``<output_dir>/stage<k>``).
        save_interval: save every this many epochs (0: only at the end).
        n_saved: interval checkpoints to keep.
    """

    def __init__(self, save_dir: str, save_interval: int = 1, n_saved: int = 1) -> None:
        self.save_dir = save_dir
        self.save_interval = save_interval
        self.n_saved = n_saved

    def attach(self, engine: Engine) -> None:
        saver = CheckpointSaver(
            save_dir=self.save_dir,
            save_dict=_objects(engine),
            save_final=True,
            final_filename=FINAL_CHECKPOINT,
            save_interval=self.save_interval,
            n_saved=self.n_saved,
        )
        saver.attach(engine)
        # MONAI also writes the "final" checkpoint when training raises. A mid-epoch state would make a re-run
        # look finished (the epoch counter already counts the broken epoch), so resume from intervals instead.
        engine.remove_event_handler(saver.exception_raised, Events.EXCEPTION_RAISED)


class StageResume:
    """Resume a stage from its own newest checkpoint when one exists (strictly, everything the trainer lists).

    Args:
        stage_dir: the stage directory searched with :func:`latest_checkpoint`.
        map_location: passed to ``torch.load``.
    """

    def __init__(self, stage_dir: str, map_location: str | None = "cpu") -> None:
        self.stage_dir = stage_dir
        self.map_location = map_location
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        path = latest_checkpoint(self.stage_dir)
        if path is None:
            return
        self.logger.info(f"resuming this stage from its checkpoint {path}")
        CheckpointLoader(load_path=path, load_dict=_objects(engine), strict=True, map_location=self.map_location).attach(
            engine
        )

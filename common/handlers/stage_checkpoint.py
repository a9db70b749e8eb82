"""Crash-safe, resumable per-stage checkpoints: save everything the trainer lists, resume from the newest good file.

MONAI's ``CheckpointSaver`` (through Ignite's ``Checkpoint``) deletes the previous interval checkpoint *before*
writing the new one, and writes it in place (``atomic=False``): a kill during the write leaves no usable
checkpoint. Here a checkpoint is written to a temporary file in the same folder and renamed only when complete,
older interval checkpoints are removed only after that, and resuming skips an unreadable newest file (naming it)
for the previous one.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from common.data.atomic import PARTIAL_PREFIX, atomic_output

__all__ = [
    "FINAL_CHECKPOINT",
    "StageCheckpointSaver",
    "StageResume",
    "checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

FINAL_CHECKPOINT = "checkpoint_final.pt"
_INTERVAL = re.compile(r"checkpoint_epoch=(\d+)\.pt$")

logger = logging.getLogger(__name__)


def checkpoints(stage_dir: str) -> list[str]:
    """The resumable checkpoints of a stage folder, newest first: ``checkpoint_final.pt``, then by epoch."""
    interval = [(int(m.group(1)), p) for p in glob.glob(os.path.join(stage_dir, "checkpoint_epoch=*.pt")) if (m := _INTERVAL.search(p))]
    final = os.path.join(stage_dir, FINAL_CHECKPOINT)
    return ([final] if os.path.isfile(final) else []) + [p for _, p in sorted(interval, reverse=True)]


def latest_checkpoint(stage_dir: str) -> str | None:
    """The newest resumable checkpoint in ``stage_dir``, or ``None``."""
    found = checkpoints(stage_dir)
    return found[0] if found else None


def _objects(engine: Engine) -> dict[str, Any]:
    if not hasattr(engine, "checkpoint_objects"):
        raise TypeError(f"{type(engine).__name__} does not list its checkpoint objects; use UnitedTrainer.")
    return engine.checkpoint_objects()


def save_checkpoint(objects: Mapping[str, Any], path: str) -> None:
    """Write ``{name: obj.state_dict()}`` to ``path`` atomically (a temporary file, flushed, then renamed)."""
    state = {name: obj.state_dict() for name, obj in objects.items()}
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())


def load_checkpoint(stage_dir: str, map_location: str | None = "cpu") -> tuple[str, dict] | None:
    """The newest checkpoint of ``stage_dir`` that reads completely, as ``(path, state)``; ``None`` when there is none.

    An unreadable file (a kill during a copy, a full disk) is reported by name and skipped for the previous one.

    Raises:
        RuntimeError: checkpoints exist but none of them can be read (the message lists them and the errors).
    """
    errors = []
    for path in checkpoints(stage_dir):
        try:
            return path, torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any read failure means "use the previous one"
            logger.warning(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); trying the previous one")
            errors.append(f"{path}: {type(e).__name__}: {e}")
    if errors:
        raise RuntimeError(
            f"no checkpoint in {stage_dir} can be read:\n  " + "\n  ".join(errors)
            + "\nRemove them (or pass --overwrite) to start this stage over."
        )
    return None


class StageCheckpointSaver:
    """Save the trainer, every network, optimizer, scheduler, scaler, task state and random state of a stage.

    ``checkpoint_epoch=N.pt`` every ``save_interval`` epochs (the ``n_saved`` newest are kept; older ones are removed
    only after the new one is complete), and ``checkpoint_final.pt`` when training completes. After a crash the
    newest interval checkpoint, an epoch boundary, is where a re-run resumes; no checkpoint is written on an
    exception, so a broken epoch never looks finished. The objects come from ``UnitedTrainer.checkpoint_objects()``
    at attach time, so a config need not list them (they differ by stage).

    Args:
        save_dir: the stage directory (``<output_dir>/stage<k>``).
        save_interval: save every this many epochs (0: only at the end).
        n_saved: interval checkpoints to keep (at least 1; 2 keeps a spare if the newest is damaged later).
    """

    def __init__(self, save_dir: str, save_interval: int = 1, n_saved: int = 2) -> None:
        if save_interval < 0 or n_saved < 1:
            raise ValueError(f"need save_interval >= 0 and n_saved >= 1, got {save_interval}, {n_saved}.")
        self.save_dir = save_dir
        self.save_interval = save_interval
        self.n_saved = n_saved
        self.objects: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        self.objects = _objects(engine)
        for stale in glob.glob(os.path.join(self.save_dir, f"{PARTIAL_PREFIX}*checkpoint_*.pt")):
            os.remove(stale)  # a write that a kill interrupted: never a checkpoint
            logger.info(f"removed {stale}, an unfinished checkpoint write of an earlier run")
        if self.save_interval:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save_interval_checkpoint)
        engine.add_event_handler(Events.COMPLETED, self.save_final_checkpoint)

    def save_interval_checkpoint(self, engine: Engine) -> None:
        path = os.path.join(self.save_dir, f"checkpoint_epoch={engine.state.epoch}.pt")
        save_checkpoint(self.objects, path)
        for old in [p for p in checkpoints(self.save_dir) if _INTERVAL.search(p)][self.n_saved :]:
            os.remove(old)
        logger.debug(f"saved {path}")

    def save_final_checkpoint(self, engine: Engine) -> None:
        path = os.path.join(self.save_dir, FINAL_CHECKPOINT)
        save_checkpoint(self.objects, path)
        logger.info(f"training completed: saved {path}")


class StageResume:
    """Resume a stage from its own newest readable checkpoint when one exists (strictly, everything the trainer lists).

    The checkpoint is loaded when the run starts. ``max_epochs`` stays the one this run asks for (the checkpoint's
    may differ): a stage trained for 20 epochs and re-run with ``max_epochs: 30`` trains 10 more; re-run with
    ``max_epochs: 20`` or fewer it has nothing left to do and says so.

    Args:
        stage_dir: the stage directory searched with :func:`checkpoints`.
        map_location: passed to ``torch.load``.
    """

    def __init__(self, stage_dir: str, map_location: str | None = "cpu") -> None:
        self.stage_dir = stage_dir
        self.map_location = map_location

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        found = load_checkpoint(self.stage_dir, self.map_location)
        if found is None:
            return
        path, state = found
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=_objects(engine), checkpoint=state, strict=True)
        engine.state.max_epochs = max_epochs
        if engine.state.epoch >= max_epochs:
            logger.info(
                f"{path} is at epoch {engine.state.epoch}, max_epochs is {max_epochs}: this stage has nothing left to "
                "train (raise max_epochs to continue, or pass --overwrite to start over)"
            )
        else:
            logger.info(f"resumed this stage from {path} (epoch {engine.state.epoch}, iteration {engine.state.iteration})")

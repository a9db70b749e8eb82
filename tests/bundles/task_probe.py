"""Test-only handler for the torchrun tests of two-view bundles: every rank saves its task state (queue, EMA copies).

Not part of any bundle. ``tests/bundles/test_two_view_multi_gpu.py`` puts this folder on ``PYTHONPATH`` and appends
the handler to ``train#handlers`` with a small overlay YAML written into the test's temporary folder.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

__all__ = ["TaskStateDump"]


class TaskStateDump:
    """Save ``{"rank", "world_size", "iteration", "task", "task_params", "batch_sum", "batch_size"}`` to ``<out_dir>/rank<r>.pt``.

    ``task`` is the task's state dict at the end of training, ``task_params`` the names of its parameters (EMA copies;
    the rest are buffers such as the queue), ``batch_sum`` and ``batch_size`` the sum and the length of the rank's
    last input batch.

    Args:
        out_dir: folder of the ``rank<r>.pt`` files.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self._save)

    def _save(self, engine: Engine) -> None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        task = engine.objective.task
        state = {
            "rank": rank,
            "world_size": world,
            "iteration": engine.state.iteration,
            "task": {k: v.detach().cpu().clone() for k, v in task.state_dict().items()},
            "task_params": [n for n, _ in task.named_parameters()],
            "batch_sum": float(torch.as_tensor(engine.state.batch["image"]).double().sum()),
            "batch_size": int(torch.as_tensor(engine.state.batch["image"]).shape[0]),
        }
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"rank{rank}.pt")
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)

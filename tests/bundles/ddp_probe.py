"""Test-only handler for the torchrun tests: every rank saves its own weights, so the test can compare the ranks.

Not part of the bundle. ``tests/bundles/test_rotation_multi_gpu.py`` puts this folder on ``PYTHONPATH`` and appends
the handler to ``train#handlers`` with a small overlay YAML written into the test's temporary folder.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from common.engines.distributed import unwrap

__all__ = ["RankStateDump"]


def _cpu(module: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    if module is None:
        return {}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class RankStateDump:
    """Save ``{"started": ..., "completed": ..., "batches": ...}`` to ``<out_dir>/rank<r>.pt`` on every rank.

    Each state holds the unwrapped ``network`` and the trainer's ``adversary`` (empty when there is none), with the
    parameter names of each under ``*_params`` so that parameters and buffers can be compared separately.
    ``batches`` lists, per iteration, the sum of the rank's input batch and its local loss: evidence of what data
    the rank trained on.

    Args:
        out_dir: folder of the ``rank<r>.pt`` files.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.states: dict[str, dict] = {}
        self.batches: list[tuple[float, float]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._snapshot, "started")
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record_batch)
        engine.add_event_handler(Events.COMPLETED, self._snapshot, "completed")
        engine.add_event_handler(Events.COMPLETED, self._save)

    def _snapshot(self, engine: Engine, when: str) -> None:
        network, adversary = unwrap(engine.network), getattr(engine, "adversary", None)
        self.states[when] = {
            "network": _cpu(network),
            "network_params": [n for n, _ in network.named_parameters()],
            "adversary": _cpu(adversary),
            "adversary_params": [] if adversary is None else [n for n, _ in adversary.named_parameters()],
            "iteration": engine.state.iteration,
        }

    def _record_batch(self, engine: Engine) -> None:
        image = torch.as_tensor(engine.state.batch["image"]).detach().double()
        self.batches.append((float(image.sum()), float(engine.state.output["loss"])))

    def _save(self, engine: Engine) -> None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"rank{rank}.pt")
        torch.save({"rank": rank, "world_size": world, "batches": self.batches, **self.states}, path + ".tmp")
        os.replace(path + ".tmp", path)

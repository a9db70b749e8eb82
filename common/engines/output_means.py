"""Per-epoch means of every number an engine outputs: loss terms, critic scores and the task's diagnostics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from common.engines.distributed import is_distributed

__all__ = ["OutputMeans"]


class OutputMeans(Metric):
    """Average every real number of the iteration outputs over an epoch, key by key.

    Ignite writes the result (a mapping) into ``engine.state.metrics`` key by key, so a task diagnostic such as
    ``dis_accuracy`` gets its epoch mean next to the loss terms without being declared anywhere; TensorBoard
    handlers then log all of them. Under ``torch.distributed`` the sums and counts are all-reduced, so every rank
    reports the mean over all ranks (every rank must output the same keys).

    Args:
        prefix: prepended to every key (``"val_"`` for the evaluator).
        exclude: output keys not to average.
    """

    def __init__(self, prefix: str = "", exclude: Sequence[str] = ()) -> None:
        self.prefix = prefix
        self.exclude = frozenset(exclude)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        super().__init__(output_transform=lambda output: output, device="cpu", metrics_result_mode="flatten")

    def iteration_completed(self, engine: Engine) -> None:
        """Average the whole output dict (Ignite's default expects a ``(y_pred, y)`` pair)."""
        self.update(engine.state.output)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sums, self._counts = {}, {}

    @reinit__is_reduced
    def update(self, output: Mapping[str, Any]) -> None:
        if not isinstance(output, Mapping):
            raise TypeError(f"OutputMeans expects the engine output to be a dict, got {type(output).__name__}.")
        for key, value in output.items():
            if key in self.exclude or isinstance(value, bool):
                continue
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, Real):
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._counts[key] = self._counts.get(key, 0) + 1

    def compute(self) -> dict[str, float]:
        keys = sorted(self._sums)
        sums = torch.tensor([self._sums[k] for k in keys], dtype=torch.float64)
        counts = torch.tensor([self._counts[k] for k in keys], dtype=torch.float64)
        if is_distributed() and keys:
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        return {f"{self.prefix}{k}": float(s / c) for k, s, c in zip(keys, sums, counts) if c > 0}

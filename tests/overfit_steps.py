"""Test helper: train a model on one batch for a few steps and record the loss terms (the overfitting tests)."""

from __future__ import annotations

import torch
from ignite.engine import Events

from common.engines import UnitedObjective, UnitedTrainer

__all__ = ["mean_of", "overfit_history"]


def overfit_history(model: torch.nn.Module, task, batch: dict, steps: int = 40) -> list[tuple[float, float]]:
    """``(loss_dis, loss_res)`` of every step of ``steps`` NAdam steps (lr 2e-3, the United betas) on ``batch``."""
    optimizer = torch.optim.NAdam(model.parameters(), lr=2e-3, betas=(0.5, 0.999))
    trainer = UnitedTrainer("cpu", steps, [batch], model, optimizer, UnitedObjective(task, 1.0, 10.0))
    history: list[tuple[float, float]] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: history.append((e.state.output["loss_dis"], e.state.output["loss_res"]))
    )
    trainer.run()
    return history


def mean_of(rows: list[tuple[float, float]], i: int) -> float:
    """Mean of column ``i`` of ``rows``."""
    return sum(r[i] for r in rows) / len(rows)

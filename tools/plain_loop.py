"""The reference for the benchmark: one United training step in a plain PyTorch loop.

No Ignite, no MONAI transforms, no handlers: batches are preloaded tensors, and a step is exactly the arithmetic the
trainer does (the task's forward pass, the critic steps, the generator step, the task's state update), on the same
networks, losses and optimizers. ``tools/benchmark.py`` times it alternately with the bundle's trainer, so that
``bundle / plain`` measures what the framework adds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.optim import Optimizer

__all__ = ["PlainLoop"]


class PlainLoop:
    """Train the objects of a built bundle workflow with a bare loop.

    Args:
        network: the (unwrapped) model.
        objective: the stage's :class:`~common.engines.UnitedObjective` (task, weights, adversary, losses).
        optimizer: the generator optimizer.
        critic_optimizer: the critic optimizer (``None`` without an adversary).
        critic_steps: critic updates per iteration.
        generator_interval: the generator steps every this many iterations (with an adversary).
        batches: preloaded batch dicts on the device (cycled).
    """

    def __init__(
        self,
        network: nn.Module,
        objective,
        optimizer: Optimizer,
        critic_optimizer: Optimizer | None,
        critic_steps: int,
        generator_interval: int,
        batches: Sequence[Mapping[str, torch.Tensor]],
    ) -> None:
        if not batches:
            raise ValueError("PlainLoop needs at least one preloaded batch.")
        self.network, self.objective, self.optimizer = network, objective, optimizer
        self.critic_optimizer, self.critic_steps, self.generator_interval = critic_optimizer, critic_steps, generator_interval
        self.batches = list(batches)
        self.iteration = 0

    def step(self) -> float:
        """One iteration; returns its wall time in seconds."""
        start = time.perf_counter()
        batch = self.batches[self.iteration % len(self.batches)]
        self.iteration += 1
        objective, adversary = self.objective, self.objective.adversary
        generator_step = adversary is None or (self.iteration - 1) % self.generator_interval == 0
        self.network.train()
        if objective.task is not None:
            objective.task.train()
        with torch.set_grad_enabled(generator_step):
            outputs = objective.run(self.network, batch)
        if adversary is not None:
            adversary.train()
            for _ in range(self.critic_steps):
                self.critic_optimizer.zero_grad(set_to_none=True)
                objective.critic_loss(outputs.restorations)[0].backward()
                self.critic_optimizer.step()
        if generator_step:
            self.optimizer.zero_grad(set_to_none=True)
            objective.generator_loss(outputs, batch)[0].backward()
            self.optimizer.step()
            if objective.task is not None:
                objective.task.after_step(self.network)
        return time.perf_counter() - start

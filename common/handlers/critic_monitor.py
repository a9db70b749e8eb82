"""Watch the adversary: a critic whose loss or real/fake gap runs away has collapsed, and the user should know."""

from __future__ import annotations

import logging
import math

from ignite.engine import Engine, Events

__all__ = ["CriticCollapseError", "CriticMonitor"]


class CriticCollapseError(RuntimeError):
    """The critic stayed beyond its bound for ``patience`` iterations and the monitor was told to stop."""


class CriticMonitor:
    """Report (and optionally stop on) a collapsing critic.

    A Wasserstein critic's gap ``critic_real - critic_fake`` estimates how far the restorations are from the clean
    targets. When the gap, or the critic's loss, stays beyond ``max_gap`` / ``max_loss`` in absolute value for
    ``patience`` consecutive iterations, the critic has run away (the generator cannot follow it, or the gradient
    penalty no longer holds it): the monitor logs a warning naming the values once, and with ``stop`` raises
    :class:`CriticCollapseError`, which ends the run before anything of that iteration is saved (the last good
    checkpoint stays the newest). Stages without an adversary output ``loss_critic = 0`` and are never flagged.

    Args:
        max_gap: bound on ``|critic_real - critic_fake|``.
        max_loss: bound on ``|loss_critic|``.
        patience: consecutive iterations beyond a bound before reporting.
        stop: raise instead of only warning.
    """

    def __init__(self, max_gap: float = 1e3, max_loss: float = 1e4, patience: int = 50, stop: bool = False) -> None:
        if max_gap <= 0 or max_loss <= 0 or patience < 1:
            raise ValueError(f"need positive bounds and patience >= 1, got {max_gap}, {max_loss}, {patience}.")
        self.max_gap, self.max_loss, self.patience, self.stop = max_gap, max_loss, patience, stop
        self.count = 0
        self.reported = False
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        gap = output.get("critic_real", 0.0) - output.get("critic_fake", 0.0)
        loss = output.get("loss_critic", 0.0)
        beyond = abs(gap) > self.max_gap or abs(loss) > self.max_loss or not (math.isfinite(gap) and math.isfinite(loss))
        self.count = self.count + 1 if beyond else 0
        if self.count < self.patience:
            return
        message = (
            f"the critic has collapsed: for {self.count} iterations up to epoch {engine.state.epoch}, iteration "
            f"{engine.state.iteration}, |critic_real - critic_fake| = {abs(gap):.4g} (bound {self.max_gap}) or "
            f"|loss_critic| = {abs(loss):.4g} (bound {self.max_loss}). Lower critic_learning_rate or w_adv, or raise gp_weight."
        )
        if self.stop:
            raise CriticCollapseError(message)
        if not self.reported:
            self.logger.warning(message)
            self.reported = True

"""Validate every N epochs and after the last one, so a short run still scores (and saves) its final weights."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler

__all__ = ["LastEpochValidationHandler"]


class LastEpochValidationHandler(ValidationHandler):
    """MONAI's :class:`~monai.handlers.ValidationHandler` that also runs the validator when training completes, if
    the last epoch was not already validated.

    Why it is needed: a bundle whose best-metric ``CheckpointSaver`` writes ``models/model.pt`` validates every
    ``val_interval`` epochs. MONAI Label overrides ``train#trainer#max_epochs`` with the user's epoch count (often
    fewer than ``val_interval``), and MONAI's handler then never validates: the run writes nothing and inference
    keeps serving the previous ``model.pt``. With this handler every run that completes is validated at least once,
    on its final weights, and epochs that were validated on schedule are not validated twice.

    Args:
        validator: the evaluator to run (as for MONAI's handler).
        interval: validate every ``interval`` epochs (or iterations with ``epoch_level=False``).
        epoch_level: count epochs (``True``) or iterations.
        exec_at_start: also validate the initial weights before training.
    """

    def attach(self, engine: Engine) -> None:
        """Attach the scheduled validation (MONAI's) and the one at completion."""
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self._validate_unless_done)

    def _validate_unless_done(self, engine: Engine) -> None:
        done = engine.state.epoch if self.epoch_level else engine.state.iteration
        if done % self.interval != 0:
            self(engine)

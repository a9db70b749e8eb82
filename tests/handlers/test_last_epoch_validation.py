"""LastEpochValidationHandler: a run shorter than the interval is validated once at the end; on-schedule epochs once."""

from __future__ import annotations

import pytest
from ignite.engine import Engine
from monai.engines import Evaluator

from common.handlers import LastEpochValidationHandler


class RecordingEvaluator(Evaluator):
    """An evaluator that records the trainer epoch it was run for (no data, no network)."""

    def __init__(self) -> None:
        super().__init__(device="cpu", val_data_loader=[0], epoch_length=1)
        self.validated_at: list[int] = []

    def run(self, global_epoch: int = 1, *args, **kwargs) -> None:  # noqa: D102 - records instead of evaluating
        self.validated_at.append(global_epoch)


def _train(max_epochs: int, interval: int, epoch_level: bool = True) -> list[int]:
    evaluator = RecordingEvaluator()
    trainer = Engine(lambda engine, batch: None)
    LastEpochValidationHandler(validator=evaluator, interval=interval, epoch_level=epoch_level).attach(trainer)
    trainer.run(range(3), max_epochs=max_epochs)
    return evaluator.validated_at


@pytest.mark.parametrize(
    "max_epochs, interval, expected",
    [
        (1, 5, [1]),  # MONAI Label's one-epoch run with the bundle's val_interval 5: MONAI's handler never validates
        (7, 5, [5, 7]),  # the scheduled epoch and the last one
        (10, 5, [5, 10]),  # the last epoch was on schedule: not validated twice
        (3, 1, [1, 2, 3]),
    ],
)
def test_validates_on_schedule_and_once_after_an_unvalidated_last_epoch(max_epochs, interval, expected) -> None:
    assert _train(max_epochs, interval) == expected


def test_iteration_level_counts_iterations() -> None:
    # 2 epochs x 3 iterations, every 4 iterations: iteration 4 on schedule, then iteration 6 (the end)
    assert _train(max_epochs=2, interval=4, epoch_level=False) == [2, 2]


def test_monai_handler_alone_misses_the_short_run() -> None:
    """The case this handler exists for, shown on MONAI's own handler (if MONAI changes this, the handler can go)."""
    from monai.handlers import ValidationHandler

    evaluator = RecordingEvaluator()
    trainer = Engine(lambda engine, batch: None)
    ValidationHandler(validator=evaluator, interval=5).attach(trainer)
    trainer.run(range(3), max_epochs=1)
    assert evaluator.validated_at == []

"""UnitedEvaluator: the validation loss is the stage objective; lower is better, even below zero; re-seeded crops."""

from __future__ import annotations

import pytest
from ignite.engine import Events
import torch

from common.engines import UnitedEvaluator, UnitedObjective
from common.networks import ClassificationHead, GenesisEncoder, UnitedModel
from common.tasks import DiscriminativeTask


class ConstantTask(DiscriminativeTask):
    """A loss that follows a script, to drive the evaluator's best-metric bookkeeping."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = list(values)

    def forward(self, outputs, batch):
        return torch.tensor(self.values.pop(0)), {}


def _evaluator(values: list[float]) -> UnitedEvaluator:
    model = UnitedModel(GenesisEncoder(3, 1, 2, 2), ClassificationHead(3, 8, 2, None, None))
    batch = {"image": torch.rand(1, 1, 8, 8, 8), "label": torch.tensor([0])}
    return UnitedEvaluator("cpu", [batch], model, UnitedObjective(ConstantTask(values)), seed=None)


def test_best_metric_is_the_lowest_loss_even_when_negative() -> None:
    evaluator = _evaluator([-0.5, -2.0, -1.0])
    bests = []
    for epoch in (1, 2, 3):
        evaluator.run(epoch)
        bests.append((evaluator.state.metrics["val_loss"], evaluator.state.best_metric, evaluator.state.best_metric_epoch))
    assert bests == [(-0.5, -0.5, 1), (-2.0, -2.0, 2), (-1.0, -2.0, 2)]


def test_reports_each_term() -> None:
    evaluator = _evaluator([1.25])
    evaluator.run()
    assert evaluator.state.metrics == pytest.approx(
        {"val_loss": 1.25, "val_loss_dis": 1.25, "val_loss_res": 0.0, "val_loss_adv": 0.0}
    )


def test_every_run_scores_the_same_random_crops() -> None:
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    from common.tasks import PretextClassificationTask
    from common.transforms import RandRotationPretextd

    data = [{"image": torch.rand(1, 8, 8, 8)} for _ in range(4)]
    loader = DataLoader(Dataset(data, Compose([RandRotationPretextd("image")])), batch_size=4, num_workers=0)
    model = UnitedModel(GenesisEncoder(3, 1, 2, 2), ClassificationHead(3, 8, 8, None, None))
    evaluator = UnitedEvaluator("cpu", loader, model, UnitedObjective(PretextClassificationTask()), seed=3)
    labels = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: labels.append(e.state.batch["label"].tolist()))
    evaluator.run(1)
    evaluator.run(2)
    assert labels[0] == labels[1]
    unseeded = UnitedEvaluator("cpu", loader, model, UnitedObjective(PretextClassificationTask()), seed=None)
    unseeded.add_event_handler(Events.ITERATION_COMPLETED, lambda e: labels.append(e.state.batch["label"].tolist()))
    unseeded.run(1)
    unseeded.run(2)
    assert labels[2] != labels[3]  # without re-seeding the rotations differ between runs

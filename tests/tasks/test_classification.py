"""PretextClassificationTask against hand-computed cross-entropy and accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from common.tasks import DiscriminativeTask, PretextClassificationTask


def test_cross_entropy_and_accuracy_hand_computed() -> None:
    # logits [0, 0] -> CE ln 2; logits [ln 3, 0] with label 0 -> CE -ln(3/4)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    loss, logs = PretextClassificationTask()({"head": logits}, {"label": torch.tensor([1, 0])})
    assert loss.item() == pytest.approx((math.log(2.0) - math.log(0.75)) / 2)
    assert logs == {"accuracy": 0.5}  # the tie counts as class 0, the second sample is right


def test_labels_of_shape_b1_and_custom_key() -> None:
    task = PretextClassificationTask(label_key="order")
    loss, logs = task({"head": torch.tensor([[5.0, 0.0, 0.0]])}, {"order": torch.tensor([[0]])})
    assert logs["accuracy"] == 1.0 and loss.item() < 0.02


def test_missing_inputs_raise() -> None:
    task = PretextClassificationTask()
    with pytest.raises(KeyError, match="head"):
        task({}, {"label": torch.tensor([0])})
    with pytest.raises(KeyError, match="'label'"):
        task({"head": torch.zeros(1, 2)}, {"image": torch.zeros(1)})
    with pytest.raises(ValueError, match="2 labels for 1 logits"):
        task({"head": torch.zeros(1, 2)}, {"label": torch.tensor([0, 1])})


def test_the_base_class_is_abstract() -> None:
    with pytest.raises(TypeError):
        DiscriminativeTask()

"""ProgressBarHandler shows the listed keys and hides the stage's inactive (zero) loss terms."""

from __future__ import annotations

from common.handlers import ProgressBarHandler


def test_shown_keys() -> None:
    bar = ProgressBarHandler(output_keys=("loss", "loss_dis", "loss_res", "loss_adv", "dis_accuracy", "absent"))
    output = {"loss": 2.0, "loss_dis": 2.0, "loss_res": 0.0, "loss_adv": 0.0, "dis_accuracy": 0.0, "loss_critic": 1.0}
    assert bar._shown(output) == {"loss": 2.0, "loss_dis": 2.0, "dis_accuracy": 0.0}

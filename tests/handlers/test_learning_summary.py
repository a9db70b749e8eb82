"""The learning summary reads a stage folder: pretext metric start/end against chance, restoration start/end."""

from __future__ import annotations

import json

import pytest

from common.handlers import MetricsLog, format_summaries, read_metrics_log, stage_summary


def _stage(tmp_path, metric_values, res_values=None, chance=0.125, validation=True):
    stage = tmp_path / "stage2"
    stage.mkdir()
    settings = {"learning_metric": "val_dis_accuracy", "learning_chance": chance}
    (stage / "run.json").write_text(json.dumps({"stage": 2, "settings": settings}))
    with open(stage / "metrics.jsonl", "w") as f:
        for epoch, value in enumerate(metric_values, start=1):
            train = {"epoch": epoch, "split": "train", "dis_accuracy": value / 2}
            f.write(json.dumps(train) + "\n")
            if validation:
                record = {"epoch": epoch, "split": "validation", "val_dis_accuracy": value}
                if res_values:
                    record["val_loss_res"] = res_values[epoch - 1]
                f.write(json.dumps(record) + "\n")
    return str(stage)


def test_a_metric_above_chance_and_a_falling_restoration(tmp_path) -> None:
    summary = stage_summary(_stage(tmp_path, [0.1, 0.2, 0.3, 0.5, 0.6, 0.7], [0.2, 0.1, 0.05, 0.04, 0.03, 0.02]))
    assert (summary.first, summary.last, summary.best) == pytest.approx((0.2, 0.6, 0.7))
    assert summary.verdict == "above chance" and summary.restoration_first == pytest.approx(0.35 / 3)
    table = format_summaries([summary])
    assert "val_dis_accuracy (validation)" in table and "above chance" in table and "0.117 -> 0.030" in table


def test_a_metric_at_chance_says_so(tmp_path) -> None:
    assert stage_summary(_stage(tmp_path, [0.1, 0.15, 0.12, 0.13])).verdict == "at chance"


def test_without_validation_the_training_curve_is_reported(tmp_path) -> None:
    summary = stage_summary(_stage(tmp_path, [0.2, 0.4], validation=False))
    assert (summary.metric, summary.split, summary.last) == ("dis_accuracy", "train", pytest.approx(0.15))


def test_metrics_log_keeps_the_last_line_per_epoch(tmp_path) -> None:
    from types import SimpleNamespace

    log = MetricsLog(str(tmp_path), "train")
    for loss in (3.0, 2.0):  # epoch 1 logged twice (a resumed crash): the later line counts
        log(SimpleNamespace(state=SimpleNamespace(epoch=1, iteration=2, metrics={"loss": loss, "name": "x"})))
    assert read_metrics_log(str(tmp_path)) == [{"epoch": 1, "split": "train", "iteration": 2, "loss": 2.0}]
    with pytest.raises(ValueError, match="split"):
        MetricsLog(str(tmp_path), "test")


def test_the_restoration_column_is_the_validation_loss_even_for_a_training_metric(tmp_path) -> None:
    stage = tmp_path / "stage2"
    stage.mkdir()
    (stage / "run.json").write_text(json.dumps({"stage": 2, "settings": {"learning_metric": "cluster_ari", "learning_chance": 0.0}}))
    lines = [{"epoch": 1, "split": "train", "cluster_ari": 0.4, "loss_res": 0.5},
             {"epoch": 1, "split": "validation", "val_loss_res": 0.2}]  # fmt: skip
    (stage / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    summary = stage_summary(str(stage))
    assert (summary.split, summary.last, summary.restoration_first) == ("train", pytest.approx(0.4), pytest.approx(0.2))

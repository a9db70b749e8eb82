"""MONAI's `--tracking mlflow` on a United bundle: epoch means of every loss term and diagnostic reach MLflow."""

from __future__ import annotations

import os

import pytest
from bundle_workflows import BUNDLE, config

mlflow = pytest.importorskip("mlflow")


def test_tracking_mlflow_records_every_epoch_metric(phantom_datalist: str, tmp_path) -> None:
    from monai.bundle import run

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    run(
        config_file=[config("train"), config("smoke")], meta_file=config("metadata.json"), logging_file=config("logging.conf"),
        bundle_root=BUNDLE, datalist=phantom_datalist, dataset_dir=os.path.dirname(phantom_datalist),
        output_dir=str(tmp_path / "models"), tracking="mlflow", tracking_uri=uri, experiment_name="united",
    )  # fmt: skip
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["united"])
    metrics = {c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")}
    assert {"loss", "loss_dis", "dis_accuracy", "lr", "val_loss", "val_dis_accuracy"} <= metrics
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"
    assert [f for f in os.listdir(tmp_path / "models") if f.startswith("config_")]  # MONAI saved the merged config

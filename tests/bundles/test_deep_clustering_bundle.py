"""Deep Clustering end to end (the generic checks run in test_method_bundles.py): the clustering is checkpointed task
state, and re-clustering after a resume reproduces the labels of the uninterrupted run."""

from __future__ import annotations

import os

import torch
from bundle_workflows import run
from ignite.engine import Events

from common.handlers import read_metrics_log

BUNDLE = "deep_clustering"


def _recorded(workflow) -> dict:
    """Run ``workflow`` and record the task's state after loading (STARTED) and after every re-clustering."""
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    record: dict = {}

    def snapshot(engine, when) -> None:
        record[when] = {k: v.clone() for k, v in engine.task.state_dict().items()}

    trainer.add_event_handler(Events.STARTED, snapshot, "started")  # after StageResume's checkpoint loading
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: snapshot(e, e.state.epoch))  # after Reclustering
    workflow.run()
    workflow.finalize()
    return record


def test_resumed_run_reclusters_to_the_same_labels(make_workflow, tmp_path) -> None:
    straight = _recorded(make_workflow("stage1", "smoke", bundle=BUNDLE, max_epochs=2, output_dir=str(tmp_path / "a")))
    assert set(straight) == {"started", 1, 2}

    first = make_workflow("stage1", "smoke", bundle=BUNDLE, max_epochs=1, output_dir=str(tmp_path / "b"))
    run(first)
    stage_dir = first.parser.get_parsed_content("stage_dir")
    saved = torch.load(os.path.join(stage_dir, "checkpoint_final.pt"), weights_only=True)["task"]
    assert int(saved["clusterings"]) == 1 and int(saved["assignments"].min()) >= 0  # the clustering is in the checkpoint
    resumed = _recorded(make_workflow("stage1", "smoke", bundle=BUNDLE, max_epochs=2, output_dir=str(tmp_path / "b")))
    assert set(resumed) == {"started", 2}
    for name, value in saved.items():  # the resumed run starts with the saved assignments ...
        assert torch.equal(resumed["started"][name], value), name
    for name, value in straight[2].items():  # ... and re-clusters exactly as the run that never stopped
        assert torch.equal(resumed[2][name], value), name
    assert torch.equal(straight[1]["assignments"], saved["assignments"])


def test_every_epoch_logs_cluster_stability_and_pseudo_label_accuracy(make_workflow) -> None:
    workflow = run(make_workflow("stage1", "smoke", bundle=BUNDLE, max_epochs=2))
    lines = read_metrics_log(workflow.parser.get_parsed_content("stage_dir"))
    train = [r for r in lines if r["split"] == "train"]
    validation = [r for r in lines if r["split"] == "validation"]
    assert "cluster_ari" not in train[0] and {"cluster_nmi", "cluster_ari"} <= set(train[1])  # from the 2nd clustering
    assert all("dis_accuracy" in r for r in train) and all("val_dis_accuracy" in r for r in validation)
    task = workflow.parser.get_parsed_content("task")
    assert task.num_cubes == 2 * 4 and int(task.clusterings) == 2  # 2 training volumes x 4 fixed cubes, 2 epochs

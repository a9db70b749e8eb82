"""The plug-in point: two methods defined only in the tests run through the unchanged trainer, all stages and a resume.

The methods (``plugin_methods.py``) are the hard cases of the plug-in claim: a two-view method whose online network
runs on both views with gradients and whose EMA target is task state handed on from stage to stage, and a
conditioned-decoder method (a model subclass) that restores two candidates against two targets. Both run through
the rotation bundle's configs with only method ids overridden; nothing in ``common`` knows them.
"""

from __future__ import annotations

import os

import pytest
import torch
from bundle_workflows import run
from ignite.engine import Events

from common.handlers import load_component

PLUGIN = "plugin_methods"
CROP = {"_target_": "RandSpatialCropSamplesd", "keys": "image", "roi_size": "@roi_size", "num_samples": 1, "random_size": False}
TWO_VIEW = {
    "num_classes": 16,  # the head is the projector: 16-d embeddings
    "task": {"_target_": f"{PLUGIN}.TwoViewEMATask", "momentum": 0.9},
    "proxy_transforms": [CROP, {"_target_": f"{PLUGIN}.RandTwoFlipsd", "keys": "image"}],
}
CONDITIONED = {
    "num_classes": 3,  # three flip bits
    "task": {"_target_": f"{PLUGIN}.FlipCodeTask"},
    "network_def": {
        "_target_": f"{PLUGIN}.ConditionedModel", "encoder": "@encoder_def", "head": "@head_def",
        "decoder": "@decoder_def", "condition_dim": 3,
    },
    "proxy_transforms": [CROP, {"_target_": f"{PLUGIN}.RandTwoFlipsd", "keys": "image"}],
}  # fmt: skip
HANDOFF = {"stage2": ["encoder", "head", "task"], "stage3": ["encoder", "head", "decoder", "task"]}


def _trainer(workflow):
    return workflow.parser.get_parsed_content("train#trainer")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_view_ema_method_runs_all_stages_and_hands_on_its_state(make_workflow) -> None:
    previous_target = None
    for k, stage in enumerate(("stage1", "stage2", "stage3"), start=1):
        workflow = run(make_workflow(stage, "smoke", **TWO_VIEW, handoff_components=HANDOFF.get(stage, [])))
        trainer = _trainer(workflow)
        task = trainer.objective.task
        assert type(task).__name__ == "TwoViewEMATask"
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        # the EMA target moved every generator step (2 per stage) and was handed on: the count goes on across stages
        assert trainer.state.iteration == 2 and int(task.updates) == 2 * k
        assert os.path.isfile(os.path.join(stage_dir, "task.pt")) and "task" in trainer.checkpoint_objects()
        if previous_target is not None:
            assert int(torch.load(previous_target, weights_only=True)["updates"]) == 2 * (k - 1)
        previous_target = os.path.join(stage_dir, "task.pt")
        assert trainer.state.metrics["loss_dis"] > 0 and "dis_cosine" in trainer.state.metrics
        assert (trainer.state.metrics["loss_res"] > 0) == (stage != "stage1")
        # encoder.pt stays a plain encoder state dict
        encoder = workflow.parser.get_parsed_content("encoder_def")
        load_component(encoder, os.path.join(stage_dir, "encoder.pt"), "encoder")


def test_conditioned_decoder_restores_two_candidates_through_all_stages(make_workflow) -> None:
    for stage in ("stage1", "stage2", "stage3"):
        workflow = run(make_workflow(stage, "smoke", **CONDITIONED))
        trainer = _trainer(workflow)
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        exported = {f for f in os.listdir(stage_dir) if f.endswith(".pt") and not f.startswith("checkpoint")}
        if stage == "stage1":
            assert exported == {"encoder.pt", "head.pt"}
            continue
        # two candidates, each against its own target: the batch's restorations say so
        batch = trainer.state.batch
        outputs = trainer.objective.run(trainer.network, trainer.prepare_batch(batch, "cpu"))
        assert len(outputs.restorations) == 2
        assert torch.equal(outputs.restorations[1].target, batch["image"])
        assert not torch.equal(outputs.restorations[0].target, outputs.restorations[1].target)
        assert {"encoder.pt", "head.pt", "decoder.pt", "film.pt", "model.pt"} <= exported
        assert ("adversary.pt" in exported) == (stage == "stage3")
        assert "dis_bit_accuracy" in trainer.state.metrics
        # model.pt is the method's own image-to-image module
        model = workflow.parser.get_parsed_content("network_def")
        restorer = model.restorer()
        state = torch.load(os.path.join(stage_dir, "model.pt"), weights_only=True)
        restorer.load_state_dict(state)
        x = torch.rand(1, 1, 32, 32, 32)
        assert restorer(x).shape == x.shape


def test_resume_restores_the_ema_state_exactly(make_workflow) -> None:
    first = run(make_workflow("stage1", "smoke", **TWO_VIEW))
    saved = _state(_trainer(first).objective.task)
    resumed = make_workflow("stage1", "smoke", **TWO_VIEW, max_epochs=2)
    resumed.initialize()
    trainer = _trainer(resumed)
    at_start = {}
    trainer.add_event_handler(Events.ITERATION_STARTED(once=3), lambda e: at_start.update(_state(e.objective.task)))
    resumed.run()
    assert _equal(at_start, saved)  # the EMA copies and the counter are those the first run saved
    assert trainer.state.iteration == 4 and int(trainer.objective.task.updates) == 4


def test_evaluator_leaves_task_state_and_batchnorm_statistics_unchanged(make_workflow) -> None:
    workflow = run(make_workflow("stage2", "smoke", **TWO_VIEW, handoff_components=[]))
    trainer = _trainer(workflow)
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    task_before, network_before = _state(trainer.objective.task), _state(trainer.network)
    evaluator.run()
    assert evaluator.state.iteration > 0 and "val_dis_cosine" in evaluator.state.metrics
    assert _equal(_state(trainer.objective.task), task_before)
    assert _equal(_state(trainer.network), network_before)


@pytest.mark.parametrize("method", [TWO_VIEW, CONDITIONED], ids=["two_view", "conditioned"])
def test_rotation_bundle_ids_are_the_whole_plug_in_surface(make_workflow, method: dict) -> None:
    """Nothing but top-level method ids differ: the shared handlers, checkpointing and hand-off work unchanged."""
    workflow = run(make_workflow("joint", "smoke", **method))
    trainer = _trainer(workflow)
    assert trainer.state.metrics["loss_critic"] != 0 and trainer.state.metrics["loss_adv"] != 0

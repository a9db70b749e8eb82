"""MoCo, BYOL and PCRL bundles end to end, on what is particular to them (the generic suite in
``test_method_bundles.py`` covers stages, hand-off, resume, inference and export for every bundle):

* a resumed run's queue and EMA copies equal an uninterrupted run's after the same number of steps;
* MoCo and PCRL hand their key network / teacher and queue on; BYOL restarts its target from the handed-off encoder
  and projector, with the momentum schedule at its start;
* the task state is never in the optimizer, and the two-view batch reaches the task with its keys.
"""

from __future__ import annotations

import os

import pytest
import torch
from bundle_workflows import run

TWO_VIEW = ["moco", "byol", "pcrl"]


def _task_state(workflow) -> dict[str, torch.Tensor]:
    task = workflow.parser.get_parsed_content("train#trainer").objective.task
    return {k: v.detach().clone() for k, v in task.state_dict().items()}


@pytest.mark.parametrize("bundle", TWO_VIEW)
def test_resumed_run_has_the_queue_and_ema_weights_of_an_uninterrupted_run(make_workflow, tmp_path, bundle: str) -> None:
    plan = {"task#max_steps": 4} if bundle == "byol" else {}  # one schedule for both runs (it follows max_epochs)
    straight = run(make_workflow("stage1", "smoke", bundle=bundle, max_epochs=2, output_dir=str(tmp_path / "straight"), **plan))
    run(make_workflow("stage1", "smoke", bundle=bundle, max_epochs=1, output_dir=str(tmp_path / "resumed"), **plan))
    resumed = run(make_workflow("stage1", "smoke", bundle=bundle, max_epochs=2, output_dir=str(tmp_path / "resumed"), **plan))
    assert resumed.parser.get_parsed_content("train#trainer").state.iteration == 4  # continued from iteration 2
    expected, actual = _task_state(straight), _task_state(resumed)
    assert expected.keys() == actual.keys()
    differing = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not differing, f"{bundle}: resumed task state differs in {differing[:5]}"
    moving = [k for k in expected if k.endswith(("queue.features", "step")) or ".levels.0.0.conv.weight" in k]
    initial = make_workflow("stage1", "smoke", bundle=bundle, output_dir=str(tmp_path / "fresh"))
    initial.initialize()
    fresh = initial.parser.get_parsed_content("task")
    fresh.setup(initial.parser.get_parsed_content("network_def"))
    assert moving and any(not torch.equal(fresh.state_dict()[k], expected[k]) for k in moving)  # the state did move


@pytest.mark.parametrize("bundle,kept", [("moco", "key_network"), ("pcrl", "teacher")])
def test_key_network_and_queue_are_handed_on(make_workflow, bundle: str, kept: str) -> None:
    first = run(make_workflow("stage1", "smoke", bundle=bundle))
    exported = torch.load(os.path.join(first.parser.get_parsed_content("stage_dir"), "task.pt"), weights_only=True)
    second = make_workflow("stage2", "smoke", bundle=bundle)
    second.initialize()
    task = second.parser.get_parsed_content("task")
    state = task.state_dict()
    assert state.keys() == exported.keys() and all(torch.equal(state[k], exported[k]) for k in state)
    encoder = second.parser.get_parsed_content("network_def").encoder.state_dict()
    ema = {k.split("encoder.", 1)[1]: v for k, v in state.items() if k.startswith(f"{kept}.encoder.")}
    assert any(not torch.equal(encoder[k], ema[k]) for k in encoder)  # the EMA copy, not a copy of the encoder
    assert int(state["queue.seen"]) > 0


def test_byol_target_restarts_from_the_handed_off_encoder_and_projector(make_workflow) -> None:
    first = run(make_workflow("stage1", "smoke", bundle="byol"))
    stage1 = first.parser.get_parsed_content("stage_dir")
    assert int(torch.load(os.path.join(stage1, "task.pt"), weights_only=True)["step"]) == 2
    second = make_workflow("stage2", "smoke", bundle="byol")
    second.initialize()
    assert "task" not in second.parser.get_parsed_content("handoff_components")
    trainer = second.parser.get_parsed_content("train#trainer")  # sets the task up from the handed-off model
    task = trainer.objective.task
    assert int(task.step) == 0 and task.momentum == task.base_momentum
    for name in ("encoder", "head"):
        exported = torch.load(os.path.join(stage1, f"{name}.pt"), weights_only=True)
        target = task.target_network[name].state_dict()
        assert all(torch.equal(target[k], exported[k]) for k in exported), name
    predictor = torch.load(os.path.join(stage1, "predictor.pt"), weights_only=True)
    assert all(torch.equal(trainer.network.predictor.state_dict()[k], v) for k, v in predictor.items())


@pytest.mark.parametrize("bundle", TWO_VIEW)
def test_task_state_is_outside_the_optimizer_and_the_batch_has_two_views(make_workflow, bundle: str) -> None:
    workflow = run(make_workflow("stage2", "smoke", bundle=bundle, handoff_components=[]))
    trainer = workflow.parser.get_parsed_content("train#trainer")
    task = trainer.objective.task
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(t) for t in task.state_dict(keep_vars=True).values()}
    assert not any(p.requires_grad for p in task.parameters())
    batch = trainer.state.batch
    assert batch["image"].shape == batch["view2"].shape == batch["target"].shape
    assert not torch.equal(batch["image"], batch["view2"])
    outputs = trainer.objective.run(trainer.network, trainer.prepare_batch(batch, "cpu"))
    assert len(outputs.restorations) == {"moco": 1, "byol": 2, "pcrl": 4}[bundle]
    metrics = trainer.state.metrics
    assert "dis_retrieval" in metrics and metrics["loss_res"] > 0

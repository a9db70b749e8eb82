"""Rotation-specific end-to-end checks (the generic ones run for every bundle in test_method_bundles.py).

The shared mechanisms are proved here once, on the reference bundle: a mismatched hand-off names the keys, a crash
resumes from the last epoch, and the losses for a fixed seed are those of the release before the plug-in v2
refactoring (the same trainer maths, whatever the code path).
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from bundle_workflows import run
from ignite.engine import Events

#: Smoke-overlay losses of the phantom datalist, seed 0, recorded before the task took over the forward pass.
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rotation_smoke_losses.json")


def test_mismatched_previous_stage_names_file_and_keys(make_workflow) -> None:
    run(make_workflow("stage1", "smoke"))
    workflow = make_workflow("stage2", "smoke", base_channels=8)
    with pytest.raises(RuntimeError) as error:
        workflow.initialize()
    message = str(error.value.__cause__ or error.value)
    assert "encoder.pt" in message and "shape mismatches" in message and "levels.0.0.conv.weight" in message


def test_a_crashed_stage_resumes_from_its_last_epoch_not_as_finished(make_workflow) -> None:
    run(make_workflow("stage1", "smoke"))  # epoch 1 completes: checkpoint_final.pt (epoch 1)
    crashing = make_workflow("stage1", "smoke", max_epochs=3, **{"train#trainer#epoch_length": 2})
    crashing.initialize()
    trainer = crashing.parser.get_parsed_content("train#trainer")

    def crash(engine) -> None:
        if engine.state.epoch == 3:
            raise RuntimeError("simulated crash")

    trainer.add_event_handler(Events.ITERATION_COMPLETED, crash)
    with pytest.raises(RuntimeError) as error:
        crashing.run()
    assert "simulated crash" in str(error.value.__cause__)
    stage_dir = crashing.parser.get_parsed_content("stage_dir")
    final = torch.load(os.path.join(stage_dir, "checkpoint_final.pt"), weights_only=True)
    assert final["trainer"]["iteration"] == 2  # the crash (at iteration 5) did not overwrite the final checkpoint
    rerun = run(make_workflow("stage1", "smoke", max_epochs=3))
    state = rerun.parser.get_parsed_content("train#trainer").state
    assert (state.epoch, state.iteration) == (3, 6)  # resumed at the end of epoch 2 and finished epoch 3


def test_losses_for_a_fixed_seed_are_unchanged(make_workflow) -> None:
    golden = json.load(open(GOLDEN))
    for stage in ("stage1", "stage2", "stage3"):
        workflow = make_workflow(stage, "smoke")
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        losses = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(dict(e.state.output)))
        workflow.run()
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        for got, want in zip(losses, golden[stage]["iterations"], strict=True):
            assert {k: got[k] for k in want} == pytest.approx(want, rel=1e-4, abs=1e-6), stage
        assert {k: evaluator.state.metrics[k] for k in golden[stage]["val"]} == pytest.approx(golden[stage]["val"], rel=1e-4)


def test_worker_processes_persist_across_epochs(make_workflow) -> None:
    """With ``num_workers > 0`` the template's loader keeps its worker processes from one epoch to the next (a demo
    epoch is 2 batches: restarting workers every epoch cost more than they saved, docs/performance.md)."""
    workflow = make_workflow("stage1", "smoke", num_workers=1, max_epochs=2)
    workflow.initialize()
    loader = workflow.parser.get_parsed_content("train#dataloader")
    trainer = workflow.parser.get_parsed_content("train#trainer")
    workers_seen = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: workers_seen.append(loader._iterator))
    workflow.run()
    workflow.finalize()
    assert loader.persistent_workers and loader.num_workers == 1
    # the same live worker iterator in both epochs (without persistence the loader keeps none: None)
    assert len(workers_seen) == 2 and workers_seen[0] is not None and workers_seen[0] is workers_seen[1]
    assert trainer.state.epoch == 2 and torch.isfinite(torch.as_tensor(trainer.state.output["loss"]))

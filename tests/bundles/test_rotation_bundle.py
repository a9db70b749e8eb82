"""The rotation bundle end to end through ConfigWorkflow with the smoke overlay: stages, hand-off, resume."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import run

STAGE_FILES = {
    "stage1": {"encoder.pt", "head.pt"},
    "stage2": {"encoder.pt", "head.pt", "decoder.pt", "model.pt"},
    "stage3": {"encoder.pt", "head.pt", "decoder.pt", "adversary.pt", "model.pt"},
}


def _exported(stage_dir: str) -> set[str]:
    return {f for f in os.listdir(stage_dir) if f.endswith(".pt") and not f.startswith("checkpoint")}


def _same(state_a: dict, state_b: dict) -> bool:
    return state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_three_stages_chain_with_strict_handoff(make_workflow) -> None:
    previous = None
    for stage in ("stage1", "stage2", "stage3"):
        workflow = make_workflow(stage, "smoke")
        workflow.initialize()
        assert workflow.check_properties() == []
        model = workflow.parser.get_parsed_content("network_def")
        # components exist only where the stage needs them
        assert (model.decoder is not None) == (stage != "stage1")
        assert (workflow.parser.get_parsed_content("adversary_def") is not None) == (stage == "stage3")
        if previous is not None:  # the stage starts from the previous stage's exported weights
            for name in workflow.parser.get_parsed_content("handoff_components"):
                exported = torch.load(os.path.join(previous, f"{name}.pt"), weights_only=True)
                assert _same(getattr(model, name).state_dict(), exported), f"{stage}: {name} not handed off"
        workflow.run()
        workflow.finalize()
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        assert _exported(stage_dir) == STAGE_FILES[stage]
        assert os.path.isfile(os.path.join(stage_dir, "checkpoint_final.pt"))
        manifest = json.load(open(os.path.join(stage_dir, "components.json")))
        expected = {f[:-3] for f in STAGE_FILES[stage]}
        assert set(manifest["components"]) == expected - {"model"}
        assert ("model" in manifest) == ("model" in expected)
        if previous is not None:  # no stage overwrites another's files, and training changed the encoder
            before = torch.load(os.path.join(previous, "encoder.pt"), weights_only=True)
            after = torch.load(os.path.join(stage_dir, "encoder.pt"), weights_only=True)
            assert not _same(before, after)
        previous = stage_dir
    assert sorted(os.listdir(os.path.dirname(previous))) == ["stage1", "stage2", "stage3"]


def test_train_yaml_alone_runs_stage1(make_workflow) -> None:
    workflow = run(make_workflow("smoke"))
    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    assert stage_dir.endswith("stage1") and _exported(stage_dir) == STAGE_FILES["stage1"]


def test_joint_baseline_trains_everything_from_scratch(make_workflow) -> None:
    workflow = run(make_workflow("joint", "smoke"))
    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    assert os.path.basename(stage_dir) == "joint" and _exported(stage_dir) == STAGE_FILES["stage3"]
    assert workflow.parser.get_parsed_content("train#trainer").state.metrics["loss_critic"] != 0


def test_missing_previous_stage_names_the_file(make_workflow) -> None:
    workflow = make_workflow("stage2", "smoke")
    with pytest.raises(RuntimeError) as error:
        workflow.initialize()
    message = str(error.value.__cause__ or error.value)
    assert "stage1" in message and "encoder.pt" in message and "not found" in message


def test_mismatched_previous_stage_names_file_and_keys(make_workflow) -> None:
    run(make_workflow("stage1", "smoke"))
    workflow = make_workflow("stage2", "smoke", base_channels=8)
    with pytest.raises(RuntimeError) as error:
        workflow.initialize()
    message = str(error.value.__cause__ or error.value)
    assert "encoder.pt" in message and "shape mismatches" in message and "levels.0.0.conv.weight" in message


def test_rerun_resumes_from_the_stage_checkpoint(make_workflow) -> None:
    first = run(make_workflow("stage1", "smoke"))
    assert first.parser.get_parsed_content("train#trainer").state.iteration == 2
    second = run(make_workflow("stage1", "smoke", max_epochs=2))
    state = second.parser.get_parsed_content("train#trainer").state
    assert (state.epoch, state.iteration) == (2, 4)  # continued, not restarted


def test_monai_label_style_overrides(make_workflow, phantom_datalist: str) -> None:
    """MONAI Label trains a bundle with labelled data, a validation split and a loader at handler index 0."""
    stage2 = run(make_workflow("stage2", "smoke", handoff_components=[]))
    model_pt = os.path.join(stage2.parser.get_parsed_content("stage_dir"), "model.pt")
    labeled = json.load(open(phantom_datalist))["labeled"]
    base = os.path.dirname(phantom_datalist)
    data = [{"image": os.path.join(base, d["image"]), "label": os.path.join(base, d["label"])} for d in labeled]
    probe = make_workflow("stage2", "smoke")
    handlers = probe.parser.get("train#handlers")
    loader = {"_target_": "CheckpointLoader", "load_path": model_pt, "load_dict": {"model": "@network"}, "strict": False}
    workflow = make_workflow(
        "stage2",
        "smoke",
        **{
            "train#trainer#max_epochs": 1,
            "train#dataset#data": data[:2],
            "validate#dataset#data": data[2:],
            "train#handlers": [loader] + handlers,
            "device": "cpu",
            "handoff_components": [],
            "output_dir": os.path.join(os.path.dirname(model_pt), "..", "monailabel"),
        },
    )
    run(workflow)
    assert workflow.parser.get_parsed_content("train#trainer").state.iteration == 2


def test_a_crashed_stage_resumes_from_its_last_epoch_not_as_finished(make_workflow) -> None:
    run(make_workflow("stage1", "smoke"))  # epoch 1 completes: checkpoint_final.pt (epoch 1)
    crashing = make_workflow("stage1", "smoke", max_epochs=3, **{"train#trainer#epoch_length": 2})
    crashing.initialize()
    trainer = crashing.parser.get_parsed_content("train#trainer")

    def crash(engine) -> None:
        if engine.state.epoch == 3:
            raise RuntimeError("simulated crash")

    from ignite.engine import Events

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

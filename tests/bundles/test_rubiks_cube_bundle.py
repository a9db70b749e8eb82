"""Rubik's Cube end to end (the generic checks run in test_method_bundles.py): the ++ and + options, a branch-wise
critic, and exported components that load into plain single-branch networks."""

from __future__ import annotations

import os

import torch
from bundle_workflows import run

from common.networks import GenesisDecoder, GenesisEncoder, Restorer

BUNDLE = "rubiks_cube"


def test_plus_plus_and_masking_through_stage_3(make_workflow) -> None:
    options = {"genesis_corruption": True, "mask_prob": 0.5}
    for stage in ("stage1", "stage2", "stage3"):
        workflow = run(make_workflow(stage, "smoke", bundle=BUNDLE, **options))
    trainer = workflow.parser.get_parsed_content("train#trainer")
    model = workflow.parser.get_parsed_content("network_def")
    assert model.head.mask is not None  # Rubik's Cube+ adds the mask flags
    assert {"dis_accuracy", "dis_rotation_accuracy", "dis_mask_accuracy"} <= set(trainer.state.metrics)
    # the critic judges one branch at a time: [candidate || that branch's input], 2 channels, not 16
    assert trainer.adversary.encoder.in_channels == 2
    assert trainer.state.metrics["loss_critic"] != 0

    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    encoder = GenesisEncoder(base_channels=4)  # the smoke width
    encoder.load_state_dict(torch.load(os.path.join(stage_dir, "encoder.pt"), weights_only=True), strict=True)
    restorer = Restorer(GenesisEncoder(base_channels=4), GenesisDecoder(base_channels=4, upsample="nearest"))
    restorer.load_state_dict(torch.load(os.path.join(stage_dir, "model.pt"), weights_only=True), strict=True)
    assert restorer(torch.rand(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)


def test_batches_are_octads_with_aligned_targets(make_workflow) -> None:
    workflow = make_workflow("stage2", "smoke", bundle=BUNDLE, handoff_components=[])
    workflow.initialize()
    batch = next(iter(workflow.parser.get_parsed_content("train#dataloader")))
    roi = workflow.parser.get_parsed_content("roi_size")
    assert workflow.parser.get_parsed_content("cube_size") == [2 * s + 2 for s in roi]  # smoke: 16^3 sub-cubes, gap 2
    assert batch["image"].shape[1:] == batch["target"].shape[1:] == (8, *roi)
    assert batch["rotation"].shape[1:] == (8,) and batch["label"].max() < 8
    turned = batch["rotation"] > 0.5
    same = torch.tensor([[torch.equal(i, t) for i, t in zip(img, tgt)] for img, tgt in zip(batch["image"], batch["target"])])
    assert torch.equal(same, ~turned)  # a branch's input equals its target exactly when its sub-cube was not turned

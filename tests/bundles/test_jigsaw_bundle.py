"""Jigsaw end to end (the generic checks run in test_method_bundles.py): the bundle's batches carry the gap sized
from the configured cube, its labels index the configured permutation set, and the target is the original cube."""

from __future__ import annotations

import torch

from common.transforms import RandJigsawd, gap_width, jigsaw

BUNDLE = "jigsaw"


def test_bundle_batches(make_workflow) -> None:
    workflow = make_workflow("stage2", "smoke", bundle=BUNDLE, handoff_components=[])
    workflow.initialize()
    roi = workflow.parser.get_parsed_content("roi_size")
    transform = next(t for t in workflow.parser.get_parsed_content("proxy_transforms") if isinstance(t, RandJigsawd))
    assert transform.num_classes == workflow.parser.get_parsed_content("num_classes") == 8  # smoke: 8 permutations
    assert workflow.parser.get_parsed_content("network_def").head.num_classes == 8
    batch = next(iter(workflow.parser.get_parsed_content("train#dataloader")))
    width = gap_width(roi[0], 5 / 64)
    assert width == 3  # 32^3 smoke cubes: a 3-voxel band (the official code only works at 64^3)
    for image, target, label in zip(batch["image"], batch["target"], batch["label"]):
        assert torch.equal(image, jigsaw(target, transform.permutations[int(label)], 5 / 64))

"""Jigsaw end to end (the generic checks run in test_method_bundles.py): the bundle's batches carry the gap sized
from the configured cube, its labels index the configured permutation set, and the target is the original cube."""

from __future__ import annotations

import torch
from overfit_steps import mean_of, overfit_history

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


def test_the_pretext_task_is_learnable_on_one_cube() -> None:
    """Sanity: one cube in 8 arrangements (with the gap); the permutation cross-entropy falls from ln 8 and the
    decoder learns to re-assemble the cube, within a few dozen steps of the unchanged trainer (the demo's real
    cubes need far longer, see the README)."""

    from common.data import make_ct_phantom
    from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel
    from common.tasks import PretextClassificationTask
    from common.transforms import hamming_permutations

    hu = torch.as_tensor(make_ct_phantom((48, 48, 40), seed=1)).float()
    cube = ((hu.clamp(-1000, 1000) + 1000) / 2000)[None, 16:32, 16:32, 12:28]
    perms = hamming_permutations(8)
    batch = {
        "image": torch.stack([jigsaw(cube, p) for p in perms]),
        "target": cube[None].repeat(8, 1, 1, 1, 1),
        "label": torch.arange(8),
    }
    torch.manual_seed(0)
    model = UnitedModel(GenesisEncoder(3, 1, 4, 3), ClassificationHead(3, 32, 8, 32, 64), GenesisDecoder(3, 1, 4, 3))
    history = overfit_history(model, PretextClassificationTask(), batch)
    first, last = history[:5], history[-5:]
    assert mean_of(last, 0) < 0.6 * mean_of(first, 0), history
    assert mean_of(last, 1) < 0.5 * mean_of(first, 1), history

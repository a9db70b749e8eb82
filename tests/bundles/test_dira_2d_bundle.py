"""DiRA 2D bundle: flips reach the input and its target alike, distortions only the input, DiRA's adversarial set-up,
and the Barlow Twins and SimSiam variants chained through the stages with their own hand-offs.

The generic suite (``test_method_bundles.py``, ``test_method_bundles_multi_gpu.py``) runs the default MoCo v2 variant.
"""

from __future__ import annotations

import os

import pytest
import torch
from bundle_workflows import run, workflow_factory
from monai.transforms import Compose

from common.data.errors import DataError
from common.losses import LeastSquaresGANLoss
from common.networks.dira import PatchGANCritic

BUNDLE = "dira_2d"


def _proxy(make_workflow, **overrides) -> Compose:
    workflow = make_workflow("smoke", bundle=BUNDLE, **overrides)
    transform = Compose(workflow.parser.get_parsed_content("proxy_transforms"))
    transform.set_random_state(seed=0)
    return transform


def _image() -> torch.Tensor:
    """A 32x32 image that differs from its left-right mirror everywhere but on the middle line."""
    ramp = torch.linspace(0.05, 0.95, 32)
    return (ramp[:, None] * torch.ones(32)[None, :]).unsqueeze(0) * torch.linspace(0.5, 1.0, 32)[None, None, :]


def test_flips_reach_the_input_and_its_target_alike(make_workflow) -> None:
    """DiRA restores the crop before the flip while the input is flipped (a bug): here both flip together."""
    image = _image()
    transform = _proxy(make_workflow, jitter_prob=0.0, blur_prob=0.0, distortion_weights=[0, 0, 0, 1], crop_scale=[1.0, 1.0])
    flipped = seen = 0
    for _ in range(16):
        (sample,) = transform({"image": image.clone()})
        torch.testing.assert_close(sample["image"], sample["target"])  # undistorted input = its target, flipped or not
        if torch.allclose(sample["target"], image.flip(1)):
            flipped += 1
        else:
            torch.testing.assert_close(sample["target"], image)
        seen += 1
    assert 0 < flipped < seen  # both cases occurred


def _blacked_out(image: torch.Tensor, target: torch.Tensor) -> bool:
    """Cut-outs and out-painting: pixels set to black in the input that are not black in the target."""
    return bool(((image == 0) & (target > 0)).any())


def _permuted(image: torch.Tensor, target: torch.Tensor) -> bool:
    """Patch swaps: the same pixel values in another order."""
    return torch.equal(image.flatten().sort()[0], target.flatten().sort()[0]) and not torch.equal(image, target)


@pytest.mark.parametrize("weights,check", [([1, 0, 0, 0], _blacked_out), ([0, 1, 0, 0], _blacked_out), ([0, 0, 1, 0], _permuted)])
def test_distortions_change_only_the_input(make_workflow, weights: list[int], check) -> None:
    image = _image()
    transform = _proxy(make_workflow, jitter_prob=0.0, blur_prob=0.0, distortion_weights=weights, crop_scale=[1.0, 1.0])
    (sample,) = transform({"image": image.clone()})
    target = sample["target"]
    assert torch.allclose(target, image) or torch.allclose(target, image.flip(1))  # the target stays clean
    assert check(sample["image"], target), f"distortion {weights} did not act as expected"


def test_diras_adversarial_set_up_and_weights(make_workflow) -> None:
    for stage, weights in (("stage1", (1.0, 0.0, 0.0)), ("stage2", (1.0, 10.0, 0.0)), ("stage3", (1.0, 10.0, 0.001)), ("joint", (1.0, 10.0, 0.001))):
        parser = make_workflow(stage, "smoke", bundle=BUNDLE).parser
        assert tuple(float(parser.get_parsed_content(w)) for w in ("w_dis", "w_res", "w_adv")) == weights
    parser = make_workflow("stage3", "smoke", bundle=BUNDLE).parser
    assert parser.get_parsed_content("update_order") == "generator_first"
    assert isinstance(parser.get_parsed_content("adversary_def"), PatchGANCritic)
    assert isinstance(parser.get_parsed_content("adversarial_loss"), LeastSquaresGANLoss)
    assert parser.get_parsed_content("critic_lr_scheduler") is None
    assert isinstance(parser.get_parsed_content("optimizer"), torch.optim.SGD)


@pytest.mark.parametrize(
    "discriminative,handed",
    [("barlow_twins", {"encoder", "head"}), ("simsiam", {"encoder", "head", "predictor"})],
)
def test_barlow_twins_and_simsiam_chain_through_the_stages(bundle_datalist, tmp_path, discriminative: str, handed: set) -> None:
    make = workflow_factory(bundle_datalist, str(tmp_path / "models"))
    previous = None
    for stage in ("stage1", "stage2", "stage3"):
        workflow = make(stage, "smoke", bundle=BUNDLE, discriminative=discriminative)
        run(workflow)
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        handoff = set(workflow.parser.get_parsed_content("handoff_components"))
        if previous is not None:
            assert handoff == handed | ({"decoder"} if stage == "stage3" else set())
            network = workflow.parser.get_parsed_content("network_def")
            for name in handed:  # started from the previous stage's file, then trained
                before = torch.load(os.path.join(previous, f"{name}.pt"), weights_only=True)
                assert before.keys() == getattr(network, name).state_dict().keys()
        exported = set(os.listdir(stage_dir))
        assert "task.pt" not in exported  # stateless tasks: nothing to hand on
        assert ("predictor.pt" in exported) == (discriminative == "simsiam")
        metrics = workflow.parser.get_parsed_content("train#trainer").state.metrics
        assert "dis_retrieval" in metrics and torch.isfinite(torch.tensor(metrics["loss"]))
        previous = stage_dir


def test_default_data_folder_names_the_slicing_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("UNITED_SSL_DATA", str(tmp_path / "empty_cache"))
    make = workflow_factory(lambda bundle: "unused", str(tmp_path / "models"))
    workflow = make("smoke", bundle=BUNDLE)
    workflow.parser["dataset_dir"] = "$os.path.join(os.environ['UNITED_SSL_DATA'], 'slices_2d')"
    workflow.parser["datalist"] = "$common.data.slices.slice_datalist(@dataset_dir)"
    with pytest.raises(DataError, match="tools/sample_data.py --slices_2d"):
        workflow.parser.get_parsed_content("datalist")

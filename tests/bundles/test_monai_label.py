"""The MONAI Label complaints of issue 11, reproduced on the repository bundles and shown fixed.

MONAI Label itself cannot be installed beside this project's torch (``tools/monailabel_check.sh`` runs a real server
in its own environment); these tests emulate what its ``BundleInferTask``/``BundleTrainTask`` (0.8.5) do. The packaged
bundles go through both contracts end to end in ``tests/tools/test_package_bundle.py``.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from bundle_workflows import BUNDLES, METHOD_BUNDLES, config, run
from monai.bundle import ConfigParser
from monai.transforms import Compose, LoadImaged, Orientationd, Spacingd


def _image(phantom_datalist: str) -> str:
    entry = json.load(open(phantom_datalist))["labeled"][0]
    return os.path.join(os.path.dirname(phantom_datalist), entry["image"])


def _monailabel_data(image: str) -> dict:
    """The data dict MONAI Label's BasicInferTask hands the pre-transforms: the request plus ``image_path``."""
    return {"image": image, "image_path": image, "device": "cpu", "model": "rotation", "result_extension": ".nii.gz"}


def test_spacingd_fails_on_monailabel_data_and_the_template_preprocessing_does_not(phantom_datalist: str) -> None:
    image = _image(phantom_datalist)
    old = Compose([LoadImaged("image", ensure_channel_first=True), Orientationd("image", "RAS"), Spacingd("image", [2.0, 2.0, 2.0])])
    with pytest.raises(RuntimeError) as error:  # the reported crash: Spacingd updates `image_path` as if it were a meta dict
        old(_monailabel_data(image))
    assert "'str' object has no attribute 'update'" in str(error.value.__cause__ or error.value) + repr(error.value)
    parser = ConfigParser()
    parser.read_config(config("inference"))
    parser.update({"bundle_root": os.path.join(BUNDLES, "rotation"), "spacing": [2.0, 2.0, 2.0], "intensity_preset": "ct"})
    data = _monailabel_data(image)
    for transform in parser.get_parsed_content("preprocessing").transforms:  # unrolled, as MONAI Label does
        data = transform(data)
    assert data["image_path"] == image  # left for MONAI Label's writer
    assert torch.allclose(data["image"].pixdim.float(), torch.tensor([2.0, 2.0, 2.0]))


@pytest.mark.parametrize("bundle", METHOD_BUNDLES)
def test_the_restored_image_is_not_offered_as_a_label(bundle: str) -> None:
    """MONAI Label's labels are the output's ``channel_def`` names (background aside): an SSL bundle offers none."""
    metadata = json.load(open(config("metadata.json", bundle)))
    key, output = next(iter(metadata["network_data_format"]["outputs"].items()))
    labels = {v.lower(): int(k) for k, v in output.get("channel_def", {}).items() if v.lower() != "background"}
    assert labels == {}, f"{bundle}: MONAI Label would present {labels} as segmentation labels"
    assert (output["type"], output["format"]) == ("image", "magnitude")


def test_a_longer_earlier_run_does_not_crash_a_run_with_fewer_trainer_epochs(make_workflow) -> None:
    """MONAI Label sets ``train#trainer#max_epochs``: the stage guard now compares the epochs the trainer runs."""
    run(make_workflow("stage1", "smoke", max_epochs=2))
    again = make_workflow("stage1", "smoke", **{"train#trainer#max_epochs": 1})
    run(again)  # before: "Epoch count (2) in checkpoint is larger than the engine.state.max_epochs (1)"
    assert again.parser.get_parsed_content("stage_guard").status == "done"


def test_publish_model_writes_the_restorer_inference_serves(make_workflow, tmp_path) -> None:
    target = str(tmp_path / "models" / "model.pt")
    workflow = run(make_workflow("stage2", "smoke", handoff_components=[], publish_model=target))
    stage_model = os.path.join(workflow.parser.get_parsed_content("stage_dir"), "model.pt")
    published, exported = torch.load(target, weights_only=True), torch.load(stage_model, weights_only=True)
    assert published.keys() == exported.keys() and all(torch.equal(published[k], exported[k]) for k in published)
    stage1 = run(make_workflow("stage1", "smoke", publish_model=str(tmp_path / "none.pt")))  # stage 1 has no restorer
    assert stage1 and not os.path.exists(tmp_path / "none.pt")

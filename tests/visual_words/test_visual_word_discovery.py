"""Self-discovery on generated phantoms: a class is one anatomical place in every instance, however it is stored."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from common.data import write_phantom_dataset
from common.data.errors import DataError
from common.transforms import crop_word
from common.visual_words import (
    HELDOUT_KEY,
    INFO_KEY,
    TRAIN_KEY,
    build_autoencoder,
    bundle_parser,
    discover_for_bundle,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO, "bundles", "transvw")
#: smoke-scale discovery on 3 mm grids: 4 classes, every training volume an instance of every class
SETTINGS = {
    "spacing": [3.0, 3.0, 3.0], "discovery_num_neighbours": 4, "discovery_num_heldout": 1,
}  # fmt: skip


def _save(data: np.ndarray, affine: np.ndarray, path: str) -> str:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return path


@pytest.fixture(scope="module")
def same_anatomy(tmp_path_factory) -> str:
    """One phantom stored four ways (as is, padded with air, x reversed on disk, at 1.5 mm) plus a held-out phantom.

    Returns the datalist: ``unlabeled`` = the four copies, ``validation`` = another phantom.
    """
    root = tmp_path_factory.mktemp("same_anatomy")
    write_phantom_dataset(str(root), num_volumes=2, shape=(48, 48, 40), seed=0)
    image = nib.load(str(root / "images" / "phantom_000.nii.gz"))
    data, affine = np.asarray(image.dataobj, dtype=np.float32), image.affine
    padded_affine = affine.copy()
    padded_affine[:3, 3] -= affine[:3, :3] @ np.array([6, 0, 5])  # the same world position for the same anatomy
    flipped_affine = affine.copy()
    flipped_affine[:3, 0] = -affine[:3, 0]
    flipped_affine[:3, 3] = affine[:3, 3] + affine[:3, 0] * (data.shape[0] - 1)
    fine_affine = affine.copy()
    fine_affine[:3, :3] = affine[:3, :3] / 2
    fine_affine[:3, 3] = affine[:3, 3] - affine[:3, :3] @ np.full(3, 0.25)  # voxel centres of a 2x finer grid
    copies = [
        "images/phantom_000.nii.gz",
        _save(np.pad(data, ((6, 0), (0, 4), (5, 0)), constant_values=-1000.0), padded_affine, str(root / "padded.nii")),
        _save(data[::-1].copy(), flipped_affine, str(root / "flipped.nii")),
        _save(ndimage.zoom(data, 2, order=1, mode="nearest", grid_mode=True), fine_affine, str(root / "fine.nii")),
    ]
    datalist = {
        "name": "same-anatomy",
        "unlabeled": [{"image": os.path.relpath(os.path.join(root, p), root)} for p in copies],
        "validation": [{"image": "images/phantom_001.nii.gz"}],
    }
    path = root / "datalist.json"
    path.write_text(json.dumps(datalist), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def discovered(same_anatomy: str) -> dict[str, str]:
    return discover_for_bundle(BUNDLE, ["smoke"], same_anatomy, montage_classes=2, progress=False, **SETTINGS)


def _loader(**overrides):
    from monai.transforms import Compose

    parser = bundle_parser(BUNDLE, ["smoke"], datalist="", **overrides)
    transforms = Compose(parser.get_parsed_content("load_transforms"))
    return lambda path: torch.as_tensor(transforms({"image": path})["image"])


def test_a_class_is_one_anatomical_place_in_every_instance(discovered: dict[str, str]) -> None:
    data = json.load(open(discovered["datalist"]))
    folder = os.path.dirname(discovered["datalist"])
    load = _loader(**SETTINGS)
    volumes = {e["image"]: (load(os.path.join(folder, e["image"])), e["visual_words"]) for e in data[TRAIN_KEY]}
    assert len(volumes) == 4
    roi = data[INFO_KEY]["space"]["roi_size"]
    for label in range(data[INFO_KEY]["num_classes"]):
        crops = {}
        for image, (volume, words) in volumes.items():
            base = [w for w in words if w["label"] == label and w["crop"] == 0]
            assert len(base) == 1, f"class {label} has {len(base)} base crops in {image}"
            crops[os.path.basename(image)] = crop_word(volume, base[0], roi)
        reference = crops["phantom_000.nii.gz"]
        # padded with air and reversed on disk: the very same voxels
        assert torch.equal(crops["padded.nii"], reference), f"class {label}: the padded copy is cropped elsewhere"
        assert torch.equal(crops["flipped.nii"], reference), f"class {label}: the reversed copy is cropped elsewhere"
        # resampled from 1.5 mm: the same place up to interpolation, much closer than a 3-voxel misplacement
        shifted = {"center": [c + 3 for c in _centre(volumes, label)], "size": roi}
        misplaced = crop_word(volumes["images/phantom_000.nii.gz"][0], shifted, roi)
        error = (crops["fine.nii"] - reference).abs().mean()
        assert error < 0.5 * (misplaced - reference).abs().mean(), f"class {label}: the 1.5 mm copy is elsewhere"


def _centre(volumes, label) -> list[int]:
    words = volumes["images/phantom_000.nii.gz"][1]
    return next(w["center"] for w in words if w["label"] == label and w["crop"] == 0)


def test_the_dataset_summary_and_montage(discovered: dict[str, str], same_anatomy: str) -> None:
    data = json.load(open(discovered["datalist"]))
    info = data[INFO_KEY]
    assert info["num_classes"] == 4 and len(info["classes"]) == 4
    assert info["space"] == {"orientation": "RAS", "spacing": [3.0, 3.0, 3.0], "intensity_preset": "ct",
                             "foreground_threshold": 0.25, "roi_size": [32, 32, 32]}  # fmt: skip
    assert data["unlabeled"] == json.load(open(same_anatomy))["unlabeled"]  # the source lists are kept
    scales = info["settings"]["num_scales"]
    for entry in data[TRAIN_KEY]:  # every training volume holds every class, num_scales crops each
        labels = sorted(w["label"] for w in entry["visual_words"])
        assert labels == sorted(list(range(4)) * scales) and entry["source_image"] == entry["image"]
    (heldout,) = data[HELDOUT_KEY]
    assert heldout["image"].endswith("phantom_001.nii.gz")
    assert sorted(w["label"] for w in heldout["visual_words"]) == [0, 1, 2, 3]
    assert all(w["crop"] == 0 and w["size"] == [32, 32, 32] for w in heldout["visual_words"])  # base crops only
    summary = json.load(open(discovered["summary"]))
    assert summary["num_classes"] == 4 and summary["training_crops"] == 4 * 4 * scales and summary["heldout_crops"] == 4
    assert all(c["training_instances"] == 4 for c in summary["classes"])
    assert open(discovered["montage"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    state = torch.load(discovered["autoencoder"], weights_only=True)
    build_autoencoder(info["settings"]["autoencoder_channels"]).load_state_dict(state)  # strict


def test_discovery_is_deterministic_and_can_take_the_trained_autoencoder(discovered, same_anatomy, tmp_path) -> None:
    again = discover_for_bundle(
        BUNDLE, ["smoke"], same_anatomy, output=str(os.path.join(os.path.dirname(same_anatomy), "again.json")),
        autoencoder=discovered["autoencoder"], montage_classes=0, progress=False, **SETTINGS,
    )  # fmt: skip
    assert "autoencoder" not in again and "montage" not in again  # taken, not trained; no montage asked for
    first, second = json.load(open(discovered["datalist"])), json.load(open(again["datalist"]))
    for key in (TRAIN_KEY, HELDOUT_KEY):
        assert first[key] == second[key]
    assert first[INFO_KEY]["classes"] == second[INFO_KEY]["classes"]
    other = discover_for_bundle(
        BUNDLE, ["smoke"], same_anatomy, output=str(tmp_path / "seed1.json"), autoencoder=discovered["autoencoder"],
        montage_classes=0, progress=False, seed=1, **SETTINGS,
    )  # fmt: skip
    assert json.load(open(other["datalist"]))[INFO_KEY]["classes"] != first[INFO_KEY]["classes"]


def test_too_few_volumes_for_the_neighbours_are_refused_with_the_numbers(same_anatomy: str, tmp_path) -> None:
    kw = {**SETTINGS, "discovery_num_neighbours": 5}
    with pytest.raises(DataError, match=r"needs 5 training volumes .* has 4 under 'unlabeled'.*at most 4"):
        discover_for_bundle(BUNDLE, ["smoke"], same_anatomy, output=str(tmp_path / "x.json"), progress=False, **kw)
    kw = {**SETTINGS, "discovery_num_heldout": 2}
    with pytest.raises(DataError, match=r"needs 2 held-out volumes .* has 1 under 'validation'"):
        discover_for_bundle(BUNDLE, ["smoke"], same_anatomy, output=str(tmp_path / "x.json"), progress=False, **kw)
    assert not os.listdir(tmp_path)  # refused before writing anything

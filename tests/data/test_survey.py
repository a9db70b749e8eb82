"""Folder survey and datalist building: images, label pairs, duplicates, unreadable files, modality, split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.data.datalist import DATALIST_KEYS, load_datalist, write_datalist
from common.data.nifti_io import save_nifti
from common.data.phantom import make_ct_phantom
from common.data.survey import build_datalist, summary_lines, survey_folder

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def make_nested_folder(root: Path) -> Path:
    """A nested folder: CT as NIfTI, NRRD and a DICOM series, an MR, a copy, label maps and a truncated file."""
    import itk
    from dicom_series_writer import write_dicom_series

    ct1 = make_ct_phantom((24, 24, 16), seed=1)
    save_nifti(ct1, AFFINE, root / "patient1" / "ct.nii.gz")
    seg = (ct1 > 300).astype(np.uint8)
    save_nifti(seg, AFFINE, root / "patient1" / "ct_seg.nii.gz")
    (root / "patient2").mkdir(parents=True)
    itk.imwrite(itk.image_from_array(np.ascontiguousarray(make_ct_phantom((20, 20, 12), seed=2).T)),
                str(root / "patient2" / "scan.nrrd"))  # fmt: skip
    write_dicom_series(root / "patient3" / "dicom", make_ct_phantom((20, 18, 8), seed=3).T, (0.8, 0.8, 2.0), (0, 0, 0))
    rng = np.random.default_rng(4)
    mr = np.zeros((20, 20, 12), np.float32)
    mr[3:17, 3:17, 2:10] = rng.uniform(80.0, 900.0, (14, 14, 8))
    save_nifti(mr, AFFINE, root / "mr" / "brain.nii.gz")
    save_nifti(ct1, AFFINE, root / "patient1_copy" / "ct.nii")  # same voxels as patient1/ct
    save_nifti(np.zeros((10, 10, 10), np.uint8), AFFINE, root / "labelsTr" / "scan.nii.gz")  # another grid
    save_nifti(seg, AFFINE, root / "orphan_mask.nii.gz")
    whole = (root / "patient1" / "ct.nii.gz").read_bytes()
    (root / "broken.nii.gz").write_bytes(whole[: len(whole) // 2])
    return root


@pytest.fixture
def nested(tmp_path) -> Path:
    return make_nested_folder(tmp_path / "data")


def _rel(root: Path, files) -> list[str]:
    return sorted(Path(f.path).relative_to(root.resolve()).as_posix() for f in files)


def test_survey_sorts_every_volume_by_role(nested):
    survey = survey_folder(nested)
    assert _rel(nested, survey.images) == ["mr/brain.nii.gz", "patient1/ct.nii.gz", "patient2/scan.nrrd", "patient3/dicom"]
    assert _rel(nested, survey.labels) == ["labelsTr/scan.nii.gz", "orphan_mask.nii.gz", "patient1/ct_seg.nii.gz"]
    assert _rel(nested, survey.duplicates) == ["patient1_copy/ct.nii"]
    assert survey.duplicates[0].duplicate_of == str((nested / "patient1" / "ct.nii.gz").resolve())
    assert _rel(nested, survey.unreadable) == ["broken.nii.gz"] and "EOFError" in survey.unreadable[0].error
    assert [f.ct_like for f in sorted(survey.images, key=lambda f: f.path)] == [False, True, True, True]
    dicom = next(f for f in survey.images if f.path.endswith("dicom"))
    assert dicom.stats.spatial_shape == (20, 18, 8) and dicom.stats.spacing == pytest.approx((0.8, 0.8, 2.0))


def test_datalist_pairs_labels_splits_and_lists_what_is_left_out(nested, tmp_path):
    survey = survey_folder(nested)
    output = nested / "datalist.json"
    data = build_datalist(survey, output, validation_fraction=0.34, seed=0)
    assert data["intensity_preset"] == "ct" and all(isinstance(data[k], list) for k in DATALIST_KEYS)
    ct_images = {"patient1/ct.nii.gz", "patient2/scan.nrrd", "patient3/dicom"}
    assert {e["image"] for e in data["unlabeled"] + data["validation"]} == ct_images
    assert len(data["validation"]) == 1
    assert data["unlabeled_mr"] == [{"image": "mr/brain.nii.gz"}] and data["labeled_mr"] == []
    split = "validation" if data["validation"] == [{"image": "patient1/ct.nii.gz"}] else "unlabeled"
    assert data["labeled"] == [{"image": "patient1/ct.nii.gz", "label": "patient1/ct_seg.nii.gz", "ssl_split": split}]
    assert data["left_out"] == [
        {"path": "orphan_mask.nii.gz", "reason": "label map that pairs with no image by name"},
        {"path": "labelsTr/scan.nii.gz",
         "reason": "label map whose name matches patient2/scan.nrrd but whose grid differs (shape 10x10x10 vs 20x20x12)"},
        {"path": "patient1_copy/ct.nii", "reason": "same voxels as patient1/ct.nii.gz"},
        {"path": "broken.nii.gz", "reason": f"unreadable: {survey.unreadable[0].error}"},
    ]  # fmt: skip
    assert "1 image(s) do not look like CT in HU; they are in 'unlabeled_mr'" in survey.notes[0]

    write_datalist(data, output)  # relative paths resolve from the datalist's folder
    assert {Path(e["image"]) for e in load_datalist(output, "unlabeled")} <= {nested / p for p in ct_images}
    elsewhere = build_datalist(survey, tmp_path / "lists" / "d.json", validation_fraction=0.0)
    assert elsewhere["validation"] == [] and elsewhere["unlabeled"][0]["image"].startswith("../data/")


def test_split_is_deterministic_per_seed_and_keeps_one_volume_for_training(nested):
    survey = survey_folder(nested)
    out = nested / "d.json"
    picks = [tuple(e["image"] for e in build_datalist(survey, out, 0.34, seed=s)["validation"]) for s in range(8)]
    assert picks[0] == tuple(e["image"] for e in build_datalist(survey, out, 0.34, seed=0)["validation"])
    assert len(set(picks)) > 1
    most = build_datalist(survey, out, validation_fraction=0.99)
    assert len(most["unlabeled"]) == 1 and len(most["validation"]) == 2
    with pytest.raises(ValueError, match="validation_fraction"):
        build_datalist(survey, out, validation_fraction=1.0)


def test_preset_guess_and_override(nested):
    survey = survey_folder(nested)
    as_mri = build_datalist(survey, nested / "d.json", validation_fraction=0.0, preset="mri")
    assert as_mri["intensity_preset"] == "mri" and as_mri["unlabeled"] == [{"image": "mr/brain.nii.gz"}]
    assert {e["image"] for e in as_mri["unlabeled_ct"]} == {"patient1/ct.nii.gz", "patient2/scan.nrrd", "patient3/dicom"}
    assert as_mri["labeled_ct"][0]["label"] == "patient1/ct_seg.nii.gz"
    with pytest.raises(ValueError, match="pet"):
        build_datalist(survey, nested / "d.json", preset="pet")


def test_mostly_mr_folder_guesses_mri(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        save_nifti(rng.uniform(0.0, 600.0, (12, 12, 10)).astype(np.float32), AFFINE, tmp_path / f"mr{i}.nii.gz")
    save_nifti(make_ct_phantom((12, 12, 10)), AFFINE, tmp_path / "ct.nii.gz")
    data = build_datalist(survey_folder(tmp_path), tmp_path / "datalist.json", validation_fraction=0.0)
    assert data["intensity_preset"] == "mri" and data["unlabeled_ct"] == [{"image": "ct.nii.gz"}]
    assert json.loads(json.dumps(data)) == data


def test_summary_table_has_a_row_per_volume_and_the_counts(nested):
    survey = survey_folder(nested)
    data = build_datalist(survey, nested / "datalist.json", validation_fraction=0.0)
    lines = summary_lines(survey, data)
    header = lines[0].split()
    assert header[:5] == ["path", "role", "shape", "spacing", "mm"]
    row = next(ln for ln in lines if ln.startswith("patient1/ct.nii.gz "))
    assert row.split() == ["patient1/ct.nii.gz", "image", "24x24x16", "2x2x2", "RAS",
                           row.split()[5], row.split()[6], "CT", "(HU)", "unlabeled+labeled"]  # fmt: skip
    assert next(ln for ln in lines if ln.startswith("broken.nii.gz ")).split()[:2] == ["broken.nii.gz", "UNREADABLE"]
    assert next(ln for ln in lines if ln.startswith("patient1_copy/ct.nii ")).split()[-1] == "out"  # "left out"
    assert next(ln for ln in lines if ln.startswith("mr/brain.nii.gz ")).split()[-3:] == ["not", "CT", "unlabeled_mr"]
    assert "9 volume(s): 4 image(s) (3 CT-like, 1 not), 3 label map(s), 1 duplicate(s), 1 unreadable." in lines
    assert "label map: orphan_mask.nii.gz: name contains 'mask'" in lines
    assert any(ln.startswith("Datalist lists: unlabeled 3, validation 0, unlabeled_mr 1, labeled 1") for ln in lines)

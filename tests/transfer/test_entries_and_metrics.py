"""Choosing a task's pairs from a datalist, label-value maps, and HD95 in millimetres."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from common.transfer import HausdorffDistanceMM, flat_labels, select_entries

ENTRIES = [
    {"image": "a.nii", "label": "a_l.nii", "subject": "A", "label_set": "total", "num_classes": 118},
    {"image": "b.nii", "label": "b_l.nii", "subject": "B", "label_set": "aorta"},
    {"image": "c.nii", "label": "c_l.nii", "subject": "C", "label_set": "total"},
    {"image": "own.nii", "label": "own_l.nii"},  # a user's entry: no label set, no subject
]


def test_select_by_label_set_and_subject() -> None:
    assert [e["image"] for e in select_entries(ENTRIES, "total", exclude_subjects=["C"])] == ["a.nii", "own.nii"]
    assert select_entries(ENTRIES, "total", subjects=["C"]) == [{"image": "c.nii", "label": "c_l.nii"}, {"image": "own.nii", "label": "own_l.nii"}]
    assert len(select_entries(ENTRIES)) == 4
    with pytest.raises(ValueError, match="has no \\['label'\\]"):
        select_entries([{"image": "x.nii"}])


def test_flat_labels() -> None:
    assert flat_labels([[5], [1, 2], 7]) == ([5, 1, 2, 7], [1, 2, 2, 3])
    with pytest.raises(ValueError, match="two classes"):
        flat_labels([[5], [5]])


def test_hd95_in_millimetres_on_an_anisotropic_grid() -> None:
    pred, gt = torch.zeros(2, 8, 8, 8), torch.zeros(2, 8, 8, 8)
    pred[1, 2, 2, 2] = 1
    gt[1, 2, 2, 5] = 1  # 3 voxels apart along the 4 mm axis
    pred[0], gt[0] = 1 - pred[1], 1 - gt[1]
    results = {}
    for name, spacing in (("mm", [6.0, 6.0, 4.0]), ("voxels", None)):
        engine = Engine(lambda e, batch: batch)
        HausdorffDistanceMM(spacing=spacing).attach(engine, "hd95")
        engine.run([([pred], [gt])])
        results[name] = engine.state.metrics["hd95"]
    assert results == {"mm": 12.0, "voxels": 3.0}


def test_a_missed_structure_scores_the_image_diagonal_not_zero() -> None:
    """MONAI scores an empty prediction NaN and its mean turns that into 0 mm (perfect); here it is the worst case."""
    gt = torch.zeros(2, 8, 8, 8)
    gt[1, 2:4, 2:4, 2:4] = 1
    gt[0] = 1 - gt[1]
    empty = torch.zeros_like(gt)
    empty[0] = 1  # background everywhere: the structure is missed
    engine = Engine(lambda e, batch: batch)
    HausdorffDistanceMM(spacing=[6.0, 6.0, 4.0]).attach(engine, "hd95")
    engine.run([([empty], [gt])])
    diagonal = ((7 * 6.0) ** 2 + (7 * 6.0) ** 2 + (7 * 4.0) ** 2) ** 0.5  # corner-to-corner voxel centres, mm
    assert engine.state.metrics["hd95"] == pytest.approx(diagonal)


def test_a_structure_absent_from_the_label_is_not_scored() -> None:
    """Empty label: nothing to measure (NaN, left out of the mean), whatever the prediction says."""
    from common.transfer.metrics import MissedStructureHausdorffMetric

    metric = MissedStructureHausdorffMetric(include_background=False, percentile=95)
    gt, pred = torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 2, 8, 8, 8)
    gt[:, 0], pred[:, 0] = 1, 1
    pred[0, 1, 1, 1, 1], pred[0, 0, 1, 1, 1] = 1, 0
    assert torch.isnan(metric(pred, gt, spacing=[1.0, 1.0, 1.0])).all()
    assert torch.isnan(metric(gt.clone(), gt)).all()  # both empty: also not scored


def test_image_diagonal_rejects_a_spacing_of_the_wrong_length() -> None:
    from common.transfer.metrics import image_diagonal

    assert image_diagonal([2, 3], None) == pytest.approx(5**0.5)
    assert image_diagonal([2, 2, 2], 2.0) == pytest.approx(12**0.5)
    with pytest.raises(ValueError, match="spacing"):
        image_diagonal([8, 8, 8], [1.0, 1.0])

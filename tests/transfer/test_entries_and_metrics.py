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

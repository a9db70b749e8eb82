"""Intensity presets: the CT window and the MRI z-score, and the matching decoder activation."""

from __future__ import annotations

import pytest
import torch

from common.data import intensity_preset, restoration_activation


def test_ct_window_maps_hu_to_unit_range() -> None:
    hu = torch.tensor([[-2000.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0]])
    out = intensity_preset("ct")({"image": hu})["image"]
    assert torch.allclose(torch.as_tensor(out), torch.tensor([[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]]))
    narrow = intensity_preset("ct", hu_window=(-160.0, 240.0))({"image": torch.tensor([[40.0]])})["image"]
    assert float(narrow) == pytest.approx(0.5)


def test_mri_zscore_over_nonzero_voxels() -> None:
    image = torch.tensor([[[0.0, 2.0, 4.0, 6.0]]])
    out = torch.as_tensor(intensity_preset("mri")({"image": image})["image"])
    assert out[0, 0, 0] == 0.0  # background stays
    assert torch.allclose(out[0, 0, 1:], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4)


def test_activation_matches_the_range_and_bad_names_raise() -> None:
    assert restoration_activation("ct") == "sigmoid" and restoration_activation("mri") is None
    with pytest.raises(ValueError, match="pet"):
        intensity_preset("pet")
    with pytest.raises(ValueError, match="pet"):
        restoration_activation("pet")
    with pytest.raises(ValueError, match="low < high"):
        intensity_preset("ct", hu_window=(100.0, -100.0))

"""Intensity presets: both map to [0, 1] with the background at 0; thresholds separate background from body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.data import foreground_threshold, intensity_preset, restoration_activation
from common.data.presets import RobustRangeScaled
from common.data.sample_data import DATALIST_NAME, default_cache_dir


def test_ct_window_maps_hu_to_unit_range() -> None:
    hu = torch.tensor([[-2000.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0]])
    out = intensity_preset("ct")({"image": hu})["image"]
    assert torch.allclose(torch.as_tensor(out), torch.tensor([[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]]))
    narrow = intensity_preset("ct", hu_window=(-160.0, 240.0))({"image": torch.tensor([[40.0]])})["image"]
    assert float(narrow) == pytest.approx(0.5)


def test_mri_maps_the_robust_range_with_hand_computed_anchors() -> None:
    # 100 background zeros and tissue 1..100: low = 0.5th percentile of all = 0; high = 99.5th percentile of the
    # voxels above 0 = 99 + 0.505 * (100 - 99) = 99.505 (linear interpolation at index 0.995 * 99 = 98.505)
    values = torch.cat([torch.zeros(100), torch.arange(1.0, 101.0)]).reshape(1, 1, 1, 200)
    out = intensity_preset("mri")({"image": values})["image"]
    expected = (values / 99.505).clamp(0.0, 1.0)
    assert torch.allclose(out, expected, atol=1e-6)
    assert float(out[..., :100].max()) == 0.0 and float(out[..., 100]) == pytest.approx(1 / 99.505)
    assert float(out[..., -1]) == 1.0  # above the 99.5th percentile: clipped


def test_mri_background_stays_below_every_tissue_where_a_zscore_puts_it_at_average_tissue() -> None:
    rng = np.random.default_rng(0)
    brain = np.zeros((1, 32, 32, 24), np.float32)  # skull-stripped: exact zeros outside
    brain[0, 6:26, 6:26, 4:20] = rng.choice([150.0, 400.0, 600.0], size=(20, 20, 16)) + rng.normal(0, 10, (20, 20, 16))
    tissue = brain > 0
    out = intensity_preset("mri")({"image": torch.from_numpy(brain)})["image"].numpy()
    threshold = foreground_threshold("mri")
    assert out[~tissue].max() == 0.0 and out[tissue].min() > threshold  # darkest tissue (150) ~ 0.24
    # the z-score over non-zero voxels used before: background 0 lies inside the tissue range
    z = np.zeros_like(brain)
    z[tissue] = (brain[tissue] - brain[tissue].mean()) / brain[tissue].std()
    assert z[tissue].min() < 0.0 < z[tissue].max()


def test_mri_upper_anchor_does_not_move_with_the_share_of_background() -> None:
    rng = np.random.default_rng(1)
    tissue = rng.uniform(50.0, 700.0, 4000).astype(np.float32)
    small_fov = np.concatenate([np.zeros(500, np.float32), tissue]).reshape(1, -1)
    large_fov = np.concatenate([np.zeros(40000, np.float32), tissue]).reshape(1, -1)
    scale = RobustRangeScaled("image")
    a = scale({"image": torch.from_numpy(small_fov)})["image"][0, -4000:]
    b = scale({"image": torch.from_numpy(large_fov)})["image"][0, -4000:]
    assert torch.allclose(a, b)
    from monai.transforms import ScaleIntensityRangePercentiles  # MONAI's: both percentiles over all voxels

    monai_a = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)(torch.from_numpy(small_fov))[0, -4000:]
    monai_b = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)(torch.from_numpy(large_fov))[0, -4000:]
    assert not torch.allclose(monai_a, monai_b, atol=1e-2)


def test_mri_offset_background_channels_constants_and_nan() -> None:
    rng = np.random.default_rng(2)
    offset = np.full((2, 10, 10, 10), 500.0, np.float32)  # channel 0: background at 500, tissue above
    offset[0, 3:7, 3:7, 3:7] = rng.uniform(800.0, 1500.0, (4, 4, 4))
    offset[1] = 7.0  # a constant channel
    offset[0, 0, 0, 0] = np.nan
    out = RobustRangeScaled("image")({"image": offset})["image"]
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out[0, 1:, :3].max() == 0.0 and out[0, 3:7, 3:7, 3:7].min() > 0.3 and out[0, 3:7, 3:7, 3:7].max() == 1.0
    assert not np.any(out[1])
    with pytest.raises(ValueError, match="lower < upper"):
        RobustRangeScaled("image", lower=60.0, upper=40.0)


def test_activation_threshold_and_bad_names() -> None:
    assert restoration_activation("ct") == "sigmoid" and restoration_activation("mri") == "sigmoid"
    assert foreground_threshold("ct") == 0.25 and foreground_threshold("mri") == 0.1
    assert float(intensity_preset("ct")({"image": torch.tensor([[-500.0]])})["image"]) == foreground_threshold("ct")
    for call in (intensity_preset, restoration_activation, foreground_threshold):
        with pytest.raises(ValueError, match="pet"):
            call("pet")
    with pytest.raises(ValueError, match="low < high"):
        intensity_preset("ct", hu_window=(100.0, -100.0))


def _real_pairs() -> list[tuple[str, str, str]]:
    from common.data.datalist import load_datalist

    datalist = Path(default_cache_dir()) / DATALIST_NAME
    if not datalist.is_file():
        pytest.skip(f"real sample data not prepared: {datalist} missing (run `python tools/sample_data.py`)")
    return [(e["image"], e["label"], "ct") for e in load_datalist(datalist, "labeled")] + [
        (e["image"], e["label"], "mri") for e in load_datalist(datalist, "labeled_mr")
    ]


@pytest.mark.real_data
def test_both_presets_on_the_real_volumes_keep_the_body_and_drop_the_background() -> None:
    """On every real CT and the real MR: [0, 1]; background corners below the threshold; the body crop keeps
    every labelled organ; the MR background lies below its darkest organs (5th percentile)."""
    from monai.transforms import LoadImaged

    pairs = _real_pairs()
    assert {p for _, _, p in pairs} == {"ct", "mri"}
    load = LoadImaged(["image", "label"], ensure_channel_first=True)
    for image_path, label_path, preset in pairs:
        d = load({"image": image_path, "label": label_path})
        x = intensity_preset(preset)(d)["image"][0].numpy()
        organs = d["label"][0].numpy() > 0
        assert x.min() >= 0.0 and x.max() <= 1.0, image_path
        k = 8
        corners = np.concatenate([x[:k, :k].ravel(), x[-k:, :k].ravel(), x[:k, -k:].ravel(), x[-k:, -k:].ravel()])
        threshold = foreground_threshold(preset)
        assert np.median(corners) < threshold / 2, image_path
        body = np.argwhere(x > threshold)
        inside = np.argwhere(organs)
        assert (body.min(0) <= inside.min(0)).all() and (body.max(0) >= inside.max(0)).all(), image_path
        if preset == "mri":
            assert np.median(corners) < np.percentile(x[organs], 5) and x[organs].mean() > threshold, image_path

"""Intensity presets as MONAI transforms: both map a volume to [0, 1] with the background at 0.

* ``ct``: Hounsfield units clipped to a window (default [-1000, 1000], Models Genesis, Zhou et al., MICCAI
  2019) and rescaled: air 0, water 0.5, dense bone 1.
* ``mri``: MRI has no absolute unit, so each volume is mapped by its own robust range: its 0.5th
  percentile (the background, or the darkest tissue of a skull-stripped volume) to 0 and the 99.5th
  percentile of the voxels above that (the bright tissue, whatever share of the field of view the
  background takes) to 1, clipped. The background stays at 0, below every tissue; a z-score over the
  non-zero voxels would instead put the background at 0 = the average tissue.

Both ranges are [0, 1], so the decoder ends with a sigmoid for both (:func:`restoration_activation`). The body
crop threshold (:func:`foreground_threshold`) separates the background from the body in both presets: for CT
it is -500 HU (0.25, half-way from air to water); for MRI it is 10 % of the robust range, the
background/object threshold of FSL BET (t2 + 0.1 (t98 - t2); Smith, "Fast robust automated brain
extraction", Human Brain Mapping 2002), whose percentile anchors this preset follows.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRanged

__all__ = [
    "PRESETS",
    "PresetInfo",
    "RobustRangeScaled",
    "foreground_threshold",
    "intensity_preset",
    "preset_info",
    "restoration_activation",
]


@dataclass(frozen=True)
class PresetInfo:
    """What a preset does and the values that go with its output range.

    Attributes:
        description: one line for help texts and messages.
        activation: decoder output activation matching the value range.
        foreground_threshold: body/background threshold in the preset's output units.
    """

    description: str
    activation: str | None
    foreground_threshold: float


#: Preset name -> what it does and the values matching its range.
PRESETS: dict[str, PresetInfo] = {
    "ct": PresetInfo("CT: HU window [-1000, 1000] -> [0, 1] (air 0, water 0.5)", "sigmoid", 0.25),
    "mri": PresetInfo("MRI: per-volume 0.5th-99.5th percentile range -> [0, 1] (background 0)", "sigmoid", 0.1),
}


class RobustRangeScaled(MapTransform):
    """Maps each channel's robust intensity range to [0, 1]: a low percentile to 0, a high one to 1, clipped.

    The low anchor is the ``lower`` percentile of all voxels (the background of an MRI volume); the high
    anchor is the ``upper`` percentile of the voxels above the low anchor, so it does not move with the share
    of background in the field of view. MONAI's ``ScaleIntensityRangePercentilesd`` takes both percentiles
    over all voxels, which lets a large background pull the upper anchor down. A constant channel becomes 0.
    Non-finite voxels are ignored when the anchors are computed (the data check reports them).

    Args:
        keys: keys to transform; arrays are channel first ``(C, *spatial)``.
        lower: percentile (0-100) mapped to 0.
        upper: percentile (0-100) mapped to 1.
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self, keys: KeysCollection, lower: float = 0.5, upper: float = 99.5, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        self.lower = lower
        self.upper = upper

    def anchors(self, channel: np.ndarray) -> tuple[float, float]:
        """``(low, high)`` of one channel."""
        values = channel[np.isfinite(channel)]
        if values.size == 0:
            return 0.0, 0.0
        low = float(np.percentile(values, self.lower))
        above = values[values > low]
        high = float(np.percentile(above, self.upper)) if above.size else low
        return low, high

    def __call__(self, data: Mapping[Hashable, torch.Tensor | np.ndarray]) -> dict[Hashable, torch.Tensor | np.ndarray]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if isinstance(img, torch.Tensor):
                out = img.clone() if img.is_floating_point() else img.float()  # a MetaTensor keeps its meta
                array = img.detach().cpu().numpy()
            else:
                array = np.asarray(img)
                out = array.astype(np.float32)
            for c in range(out.shape[0]):
                low, high = self.anchors(array[c])
                scaled = (out[c] - low) / (high - low) if high > low else out[c] * 0
                out[c] = scaled.clip(0.0, 1.0)
            d[key] = out
        return d


def intensity_preset(
    preset: str,
    keys: KeysCollection = "image",
    hu_window: tuple[float, float] = (-1000.0, 1000.0),
    mri_percentiles: tuple[float, float] = (0.5, 99.5),
) -> MapTransform:
    """The intensity transform of a named preset (see the module docstring).

    Args:
        preset: ``"ct"`` or ``"mri"``.
        keys: keys to transform.
        hu_window: CT window in HU, mapped to [0, 1].
        mri_percentiles: MRI percentiles mapped to 0 and 1.

    Raises:
        ValueError: for an unknown preset or an empty window.
    """
    preset_info(preset)
    if preset == "ct":
        low, high = hu_window
        if not low < high:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {hu_window}.")
        return ScaleIntensityRanged(keys, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
    return RobustRangeScaled(keys, lower=mri_percentiles[0], upper=mri_percentiles[1])


def preset_info(preset: str) -> PresetInfo:
    """The :class:`PresetInfo` of a preset name.

    Raises:
        ValueError: naming the preset and the known ones.
    """
    if preset not in PRESETS:
        raise ValueError(f"intensity preset must be one of {sorted(PRESETS)}, got {preset!r}.")
    return PRESETS[preset]


def restoration_activation(preset: str) -> str | None:
    """Decoder output activation matching a preset's value range: a sigmoid for the [0, 1] of both presets."""
    return preset_info(preset).activation


def foreground_threshold(preset: str) -> float:
    """The body/background threshold after a preset: 0.25 (-500 HU) for CT, 0.1 (BET's 10 %) for MRI."""
    return preset_info(preset).foreground_threshold

"""Intensity presets as MONAI transforms: CT (HU window to [0, 1]) and MRI (per-volume normalisation)."""

from __future__ import annotations

from monai.config import KeysCollection
from monai.transforms import MapTransform, NormalizeIntensityd, ScaleIntensityRanged

__all__ = ["PRESETS", "intensity_preset", "restoration_activation"]

#: Preset name -> activation of the decoder output that matches the preset's value range.
PRESETS = {"ct": "sigmoid", "mri": None}


def intensity_preset(preset: str, keys: KeysCollection = "image", hu_window: tuple[float, float] = (-1000.0, 1000.0)) -> MapTransform:
    """The intensity transform of a named preset.

    * ``"ct"``: clip Hounsfield units to ``hu_window`` (default [-1000, 1000], as in Models Genesis) and
      rescale to [0, 1] with :class:`~monai.transforms.ScaleIntensityRanged`.
    * ``"mri"``: z-score each volume over its non-zero voxels, channel-wise, with
      :class:`~monai.transforms.NormalizeIntensityd`.

    Args:
        preset: ``"ct"`` or ``"mri"``.
        keys: keys to transform.
        hu_window: CT window in HU.
    """
    if preset == "ct":
        low, high = hu_window
        if not low < high:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {hu_window}.")
        return ScaleIntensityRanged(keys, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
    if preset == "mri":
        return NormalizeIntensityd(keys, nonzero=True, channel_wise=True)
    raise ValueError(f"intensity preset must be one of {sorted(PRESETS)}, got {preset!r}.")


def restoration_activation(preset: str) -> str | None:
    """Decoder output activation matching a preset's value range: sigmoid for CT's [0, 1], none for MRI z-scores."""
    if preset not in PRESETS:
        raise ValueError(f"intensity preset must be one of {sorted(PRESETS)}, got {preset!r}.")
    return PRESETS[preset]

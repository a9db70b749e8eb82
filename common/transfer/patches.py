"""Organ patch classification from label maps: the class of a patch is the label at its centre voxel.

Training crops patches with MONAI's :class:`~monai.transforms.RandCropByLabelClassesd` (background ratio 0, the
volume padded by half a patch first so every labelled voxel can be a patch centre) and then reads the class with
:class:`PatchCentreClassd`. Validation and evaluation need the *same* patches every time, which no MONAI
transform enumerates, hence :class:`LabelClassPatchesd`: up to ``max_per_class`` centres per class, evenly spread
over that class's voxels in index order, deterministic. Both read ordinary ``{"image", "label"}`` pairs (a
label map per volume), so the classification bundle trains on what MONAI Label's datastore provides; a label map
with only a few labelled voxels (point annotations) works the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, SpatialCrop
from monai.utils import convert_to_tensor, ensure_tuple_rep

__all__ = ["PatchCentreClassd", "LabelClassPatchesd", "centre_index"]


def centre_index(spatial_shape: Sequence[int]) -> tuple[int, ...]:
    """The centre voxel of a patch as MONAI's croppers centre it: ``size // 2`` per dimension."""
    return tuple(int(s) // 2 for s in spatial_shape)


class PatchCentreClassd(MapTransform):
    """Replace a label-map patch by the class of its centre voxel: ``label[centre] - 1`` (label 0 is background).

    Args:
        keys: the label key(s), each a channel-first patch ``(1, *S)``.
        num_classes: number of classes (label values ``1..num_classes``).
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: the centre voxel is background or above ``num_classes`` (e.g. the volume was not padded by half
            a patch before cropping, so a crop near the border was shifted off its sampled centre).
    """

    def __init__(self, keys: KeysCollection, num_classes: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.num_classes = num_classes

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            patch = convert_to_tensor(d[key], track_meta=False)
            value = int(round(float(patch[(0, *centre_index(patch.shape[1:]))])))
            if not 1 <= value <= self.num_classes:
                raise ValueError(
                    f"{key!r}: the patch centre holds label {value}, not a class in 1..{self.num_classes}. Pad the volume "
                    "by half a patch before RandCropByLabelClassesd (ratio 0 for background) so crops stay centred."
                )
            d[key] = torch.tensor(value - 1, dtype=torch.long)
        return d


class LabelClassPatchesd(MapTransform):
    """Deterministic patches centred on labelled voxels: up to ``max_per_class`` per class, evenly spread.

    For class ``c`` (label value ``c + 1``) the voxels are taken in index order and ``max_per_class`` of them are
    chosen at evenly spaced positions (all of them when there are fewer). Each output is a copy of the input dict
    with ``keys`` cropped to ``spatial_size`` around the centre, ``label_key`` replaced by the class index
    (``torch.long``) and ``patch_centre`` holding the centre's voxel index. The volume must be padded by half a
    patch first (e.g. ``BorderPadd``) so that every centre has a full patch.

    Args:
        keys: image keys to crop.
        label_key: the label map ``(1, *S)`` with classes ``1..num_classes`` and background 0.
        spatial_size: patch size.
        num_classes: number of classes.
        max_per_class: patches per class at most.

    Returns:
        A list of dicts (MONAI's data loaders flatten it into the batch).
    """

    def __init__(
        self, keys: KeysCollection, label_key: str, spatial_size: Sequence[int] | int, num_classes: int, max_per_class: int = 16
    ) -> None:
        super().__init__(keys)
        if max_per_class < 1 or num_classes < 2:
            raise ValueError(f"need max_per_class >= 1 and num_classes >= 2, got {max_per_class}, {num_classes}.")
        self.label_key = label_key
        self.spatial_size = spatial_size
        self.num_classes = num_classes
        self.max_per_class = max_per_class

    def centres(self, label: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
        """``(class index, centre voxel)`` pairs for a label map ``(1, *S)``."""
        out = []
        for c in range(self.num_classes):
            voxels = np.argwhere(label[0] == c + 1)
            if len(voxels) == 0:
                continue
            picks = np.unique(np.linspace(0, len(voxels) - 1, min(self.max_per_class, len(voxels))).round().astype(int))
            out.extend((c, tuple(int(v) for v in voxels[i])) for i in picks)
        return out

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, torch.Tensor]]:
        d = dict(data)
        label = np.asarray(convert_to_tensor(d[self.label_key], track_meta=False).cpu())
        size = ensure_tuple_rep(self.spatial_size, label.ndim - 1)
        half = centre_index(size)
        results = []
        for cls, centre in self.centres(label):
            start = [c - h for c, h in zip(centre, half)]
            end = [s + n for s, n in zip(start, size)]
            if min(start) < 0 or any(e > n for e, n in zip(end, label.shape[1:])):
                raise ValueError(
                    f"a patch of {tuple(size)} around {centre} leaves the volume {tuple(label.shape[1:])}: pad the volume "
                    "by half a patch (BorderPadd) before LabelClassPatchesd."
                )
            crop = SpatialCrop(roi_start=start, roi_end=end)
            item = dict(d)
            for key in self.key_iterator(d):
                item[key] = crop(d[key])
            item[self.label_key] = torch.tensor(cls, dtype=torch.long)
            item["patch_centre"] = torch.tensor(centre, dtype=torch.long)
            results.append(item)
        if not results:
            raise ValueError(f"{self.label_key!r} has no voxel of classes 1..{self.num_classes}: no patch to classify.")
        return results

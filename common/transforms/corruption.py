"""Base class of the image-only corruptions: corrupt ``image``, keep the restoration ``target`` clean.

The Models Genesis family of restorative proxy tasks (Zhou et al., "Models Genesis", MedIA 2021; reused by
TransVW, Rubik's Cube++, PCRL and DiRA) corrupts the network input and asks the decoder to restore the image
as it was *before* the corruption. Every corruption in this package therefore

* reads channel-first images ``(C, H, W)`` or ``(C, H, W, D)`` (numpy arrays or tensors) under ``keys``,
* draws all of its random numbers from ``self.R`` (so ``set_random_state(seed)`` reproduces it and it runs
  in DataLoader workers),
* draws its parameters once per call (every key gets the same boxes, curve or field),
* never writes into its input (cached datasets stay clean; MONAI's ``RandCoarseDropout`` and
  ``RandCoarseShuffle`` do write into a CPU tensor or array they are given),
* never touches ``target_key``, and copies the clean first key there when it is not already present,
* returns ``torch.Tensor`` values (no ``MetaTensor``), like the other proxy transforms.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor

__all__ = ["RandCorruptiond", "as_pair", "check_probability", "fraction_edge"]


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float after checking that it lies in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")
    return value


def as_pair(name: str, value: Sequence[float] | None, integer: bool = False, positive: bool = False) -> tuple | None:
    """Check a ``(low, high)`` pair with ``low <= high`` (lists from YAML are accepted); ``None`` passes through."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}.")
    low, high = value
    if integer:
        if any(isinstance(v, bool) or int(v) != v for v in (low, high)):
            raise ValueError(f"{name} must be a pair of integers, got {value!r}.")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if low > high:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}.")
    if positive and low <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return low, high


def fraction_edge(size: int, fraction: float) -> int:
    """``floor(size * fraction)``, robust to the float error of fractions such as 1/3 (63 * (1/3) -> 21)."""
    return int(math.floor(size * fraction + 1e-9))


class RandCorruptiond(RandomizableTransform, MapTransform):
    """Abstract dictionary transform that corrupts ``keys`` and keeps ``target_key`` clean.

    Subclasses implement :meth:`randomize_corruption` (draw the parameters for one call from ``self.R``, given
    the spatial shape) and :meth:`corrupt` (apply them to one image without modifying it in place).

    Args:
        keys: image keys to corrupt (usually ``"image"``); they must share one spatial shape.
        prob: probability of corrupting at all on a call.
        target_key: where the clean image goes when that key is absent (a clone of the first key before
            corruption); ``None`` to write no target. A present target is never modified.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: if ``target_key`` is one of ``keys`` (the target must stay clean), if an image is not
            channel-first 2D/3D, or if the keys' spatial shapes differ.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_probability("prob", prob))
        if target_key is not None and target_key in self.keys:
            raise ValueError(
                f"target_key {target_key!r} is also in keys {self.keys}: the target must stay uncorrupted."
            )
        self.target_key = target_key

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Decide whether to corrupt (``prob``) and, if so, draw the corruption for ``spatial_shape``."""
        super().randomize(None)
        if self._do_transform:
            self.randomize_corruption(tuple(int(s) for s in spatial_shape))

    @abstractmethod
    def randomize_corruption(self, spatial_shape: tuple[int, ...]) -> None:
        """Draw this call's parameters from ``self.R``."""

    @abstractmethod
    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        """Return a corrupted copy of ``img`` (``(C, *S)``); ``img`` itself must not change."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        images = {key: convert_to_tensor(d[key], track_meta=False) for key in self.key_iterator(d)}
        if not images:
            return d
        spatial_shape = None
        for key, img in images.items():
            if img.ndim not in (3, 4):
                raise ValueError(
                    f"{type(self).__name__}: {key!r} must be channel-first (C, H, W) or (C, H, W, D), "
                    f"got shape {tuple(img.shape)}."
                )
            if spatial_shape is None:
                spatial_shape = tuple(img.shape[1:])
            elif tuple(img.shape[1:]) != spatial_shape:
                raise ValueError(
                    f"{type(self).__name__}: all keys need one spatial shape, {key!r} has {tuple(img.shape[1:])} "
                    f"and the first key {spatial_shape}."
                )
        if self.target_key is not None and self.target_key not in d:
            d[self.target_key] = next(iter(images.values())).clone()
        self.randomize(spatial_shape)
        for key, img in images.items():
            d[key] = self.corrupt(img) if self._do_transform else img
        return d

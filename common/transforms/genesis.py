"""The Models Genesis corruption chain: flips (input and target), local shuffle, non-linear, in/out-painting.

Models Genesis (Zhou et al., "Models Genesis", MedIA 2021) builds each training pair as follows; the rates
are the paper's and the defaults here:

1. the target is the clean cube;
2. flip input and target alike: with probability ``flip_rate`` (0.4) flip a random axis, and again with
   ``flip_rate``, at most ``max_flips`` (3) times;
3. local pixel shuffling with probability ``local_rate`` (0.5), 10 000 blocks;
4. non-linear intensity (Bezier curve) with probability ``nonlinear_rate`` (0.9);
5. with probability ``paint_rate`` (0.9): in-painting with probability ``inpaint_rate`` (0.2), otherwise
   out-painting.

The restorative task maps the corrupted input back to the (flipped) clean cube. PCRL uses the same chain
without the non-linear step (``nonlinear_rate=0``).

The flips: the reference draws the axis among the first three axes of a ``(1, H, W, D)`` array, so a third
of its flips hit the channel axis (doing nothing) and depth is never flipped; here the axis is drawn among
the spatial axes. MONAI's ``RandFlipd(keys=[image, target])`` flips a fixed set of axes with one probability,
which cannot express this chain; to use it instead, set ``flip_rate=0`` and put ``RandFlipd`` with both keys
before this transform.

Other mixtures are compositions of the same transforms with MONAI ``Compose``/``OneOf``, e.g. the stepwise
TransVW input (elastic always, then one of four corruptions with probability 1/4 each)::

    Compose([RandElasticDeformd("image"),
             OneOf([RandLocalPixelShuffled("image", num_blocks=100), RandBezierIntensityd("image"),
                    RandInPaintd("image", max_boxes=1, size_range=(10, 20), fill="constant"),
                    RandOutPaintd("image", max_boxes=1, shrink_range=(10, 20), fill="constant")])])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from common.transforms.bezier_intensity import RandBezierIntensityd
from common.transforms.corruption import RandCorruptiond, as_pair, check_probability
from common.transforms.local_shuffle import RandLocalPixelShuffled
from common.transforms.painting import RandInPaintd, RandOutPaintd

__all__ = ["RandGenesisCorruptiond"]

_RESERVED = ("keys", "prob", "target_key", "allow_missing_keys")


def _options(name: str, options: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options or {})
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        raise ValueError(f"{name} must not set {reserved}: the composite sets keys, rates and the target.")
    return {**defaults, **options}


class RandGenesisCorruptiond(Randomizable, MapTransform):
    """Models Genesis corruption of ``keys``, with the clean (flipped) image as ``target_key``.

    Every rate and size is configurable with plain values, so the transform can be built from a bundle
    config (``_target_: common.transforms.RandGenesisCorruptiond``). ``set_random_state(seed)`` seeds the
    whole chain. After a call, :attr:`flips` lists the flipped spatial axes and :attr:`applied` the steps
    taken, e.g. ``["flip", "local_shuffle", "nonlinear", "outpaint"]``.

    Args:
        keys: image keys to corrupt, ``(C, H, W[, D])``; they share one spatial shape.
        target_key: restoration target: the clean first key (copied when absent), flipped with the input and
            never corrupted; ``None`` for no target.
        flip_rate: probability of each flip of the chain (Genesis: 0.4).
        max_flips: longest flip chain (Genesis: 3).
        local_rate: probability of local pixel shuffling (Genesis: 0.5).
        nonlinear_rate: probability of the Bezier intensity map (Genesis: 0.9).
        paint_rate: probability of painting (Genesis: 0.9).
        inpaint_rate: probability that painting is in-painting rather than out-painting (Genesis: 0.2).
        value_range: intensity range (both presets, CT and MRI: (0, 1)), used as the Bezier curve's range and as
            the painting fill range; ``None`` for each image's own min and max (data without a fixed range).
        local_shuffle: extra arguments of :class:`RandLocalPixelShuffled` (e.g. ``{"num_blocks": 100}``).
        nonlinear: extra arguments of :class:`RandBezierIntensityd`.
        inpaint: extra arguments of :class:`RandInPaintd` (e.g. ``{"max_boxes": 1, "fill": "constant"}``).
        outpaint: extra arguments of :class:`RandOutPaintd`.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: for a rate outside [0, 1], a negative ``max_flips``, ``target_key`` in ``keys``, extra
            arguments that set ``keys``/``prob``/``target_key``, or a target whose shape differs from the image.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        target_key: str | None = "target",
        flip_rate: float = 0.4,
        max_flips: int = 3,
        local_rate: float = 0.5,
        nonlinear_rate: float = 0.9,
        paint_rate: float = 0.9,
        inpaint_rate: float = 0.2,
        value_range: Sequence[float] | None = (0.0, 1.0),
        local_shuffle: Mapping[str, Any] | None = None,
        nonlinear: Mapping[str, Any] | None = None,
        inpaint: Mapping[str, Any] | None = None,
        outpaint: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if target_key is not None and target_key in self.keys:
            raise ValueError(
                f"target_key {target_key!r} is also in keys {self.keys}: the target must stay uncorrupted."
            )
        if int(max_flips) != max_flips or max_flips < 0:
            raise ValueError(f"max_flips must be a non-negative integer, got {max_flips!r}.")
        self.target_key = target_key
        self.flip_rate = check_probability("flip_rate", flip_rate)
        self.max_flips = int(max_flips)
        self.paint_rate = check_probability("paint_rate", paint_rate)
        self.inpaint_rate = check_probability("inpaint_rate", inpaint_rate)
        value_range = as_pair("value_range", value_range)
        common = {"keys": self.keys, "target_key": None, "allow_missing_keys": allow_missing_keys}
        self.local_shuffle = RandLocalPixelShuffled(
            prob=check_probability("local_rate", local_rate), **common, **_options("local_shuffle", local_shuffle, {})
        )
        self.nonlinear = RandBezierIntensityd(
            prob=check_probability("nonlinear_rate", nonlinear_rate),
            **common,
            **_options("nonlinear", nonlinear, {"value_range": value_range}),
        )
        self.inpaint = RandInPaintd(prob=1.0, **common, **_options("inpaint", inpaint, {"fill_range": value_range}))
        self.outpaint = RandOutPaintd(prob=1.0, **common, **_options("outpaint", outpaint, {"fill_range": value_range}))
        self.flips: list[int] = []
        self.applied: list[str] = []
        self._paint: RandCorruptiond | None = None
        self.set_random_state(state=self.R)

    @property
    def corruptions(self) -> tuple[RandCorruptiond, ...]:
        """The four image-only corruptions, in the order they are applied."""
        return (self.local_shuffle, self.nonlinear, self.inpaint, self.outpaint)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Randomizable:
        super().set_random_state(seed, state)
        for transform in self.corruptions:
            transform.set_random_state(state=self.R)  # one stream for the whole chain
        return self

    def randomize(self, data: int) -> None:
        """Draw the flip chain (``data`` is the number of spatial axes) and the painting choice."""
        self.flips = []
        while len(self.flips) < self.max_flips and self.R.random_sample() < self.flip_rate:
            self.flips.append(int(self.R.randint(data)))
        self._paint = None
        if self.R.random_sample() < self.paint_rate:
            self._paint = self.inpaint if self.R.random_sample() < self.inpaint_rate else self.outpaint

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        for key in keys:
            d[key] = convert_to_tensor(d[key], track_meta=False)
        first = d[keys[0]]
        if first.ndim not in (3, 4):
            raise ValueError(
                f"{keys[0]!r} must be channel-first (C, H, W) or (C, H, W, D), got shape {tuple(first.shape)}."
            )
        flip_keys = list(keys)
        if self.target_key is not None:
            if self.target_key not in d:
                d[self.target_key] = first.clone()
            target = convert_to_tensor(d[self.target_key], track_meta=False)
            if tuple(target.shape[1:]) != tuple(first.shape[1:]):
                raise ValueError(
                    f"target {self.target_key!r} has spatial shape {tuple(target.shape[1:])}, the image "
                    f"{keys[0]!r} {tuple(first.shape[1:])}: flips must act on both alike."
                )
            d[self.target_key] = target
            flip_keys.append(self.target_key)
        self.randomize(first.ndim - 1)
        self.applied = ["flip"] if self.flips else []
        if self.flips:
            for key in flip_keys:
                for axis in self.flips:
                    d[key] = torch.flip(d[key], dims=[axis + 1])
        for name, transform in (("local_shuffle", self.local_shuffle), ("nonlinear", self.nonlinear)):
            d = transform(d)
            if transform._do_transform:
                self.applied.append(name)
        if self._paint is not None:
            d = self._paint(d)
            self.applied.append("inpaint" if self._paint is self.inpaint else "outpaint")
        return d

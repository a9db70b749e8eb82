"""TransVW's augmentation in the United code: light in the discriminative stage, always restorative after it.

The stepwise TransVW scripts (Guo et al., MedIA 2024; United code ``TransVW/train_proxy_image_label_mr.py`` and
``train_proxy_ynet_adv_*.py``) corrupt a visual-word crop in two ways:

* **stage 1 (D)**, classification only: every third crop of a batch is augmented with one of {elastic deformation,
  non-linear intensity, in-painting, out-painting}, each with probability 1/4; the others are left as they are.
  Here each crop is augmented with probability ``light_rate`` (1/3), which gives the same rate without tying it to
  the crop's position in the batch.
* **stages 2 and 3 (D)+R, ((D)+R)+A**: the crop is always elastically deformed (alpha 991, sigma 8, in-plane),
  then one of {local pixel shuffling (100 blocks), non-linear intensity, in-painting, out-painting} is applied,
  each with probability 1/4. The decoder restores the crop as it was before the deformation and the corruption.

In-painting fills one box with edges in [10, 20] voxels with a random constant; out-painting keeps one box of edge
``dim - [10, 20]`` and fills the rest with a random constant (the stepwise variants of the Models Genesis painting).

Why custom: the two recipes could each be written as a MONAI ``Compose``/``OneOf`` of the corruption library, but a
bundle's proxy transforms are one list for all stages; this transform picks the recipe from one flag
(``restorative``, set from the loss weights like the decoder itself), records what it applied (:attr:`applied`), and
seeds the whole chain from one random stream.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from common.transforms.bezier_intensity import RandBezierIntensityd
from common.transforms.corruption import RandCorruptiond, as_pair, check_probability
from common.transforms.elastic import RandElasticDeformd
from common.transforms.local_shuffle import RandLocalPixelShuffled
from common.transforms.painting import RandInPaintd, RandOutPaintd

__all__ = ["RandTransVWCorruptiond"]


class RandTransVWCorruptiond(Randomizable, MapTransform):
    """Corrupt ``keys`` with the stepwise TransVW recipe of the stage; ``target_key`` gets the clean crop.

    After a call, :attr:`applied` lists the corruptions applied in order, e.g. ``["elastic", "inpaint"]`` (empty
    when a stage-1 crop is left as it is).

    Args:
        keys: image keys to corrupt, ``(C, H, W, D)`` (or 2D); they share one spatial shape.
        target_key: restoration target: a clean copy of the first key, written on every call (also in stage 1,
            where no decoder reads it) unless the key is already present, in which case it is left untouched.
        restorative: ``True`` for stages with a decoder (elastic always, then one of four corruptions), ``False``
            for the discriminative stage (one of four augmentations with probability ``light_rate``).
        light_rate: probability that a stage-1 crop is augmented (United code: every third crop).
        alpha: elastic deformation scale in voxels (TransVW: 991).
        sigma: elastic smoothing in voxels (TransVW: 8).
        elastic_axes: spatial axes the elastic field moves along (TransVW: ``(0, 1)``, in-plane).
        shuffle_blocks: blocks of the local pixel shuffling (stepwise TransVW: 100).
        box_range: in-painting box edges and out-painting border widths in voxels (stepwise TransVW: (10, 20)).
        value_range: intensity range of the Bezier curve and of the painting constants (CT preset: (0, 1));
            ``None`` for each image's own range.
        nonlinear_samples: points on the Bezier curve (Models Genesis: 100 000).
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        target_key: str = "target",
        restorative: bool = True,
        light_rate: float = 1.0 / 3.0,
        alpha: float = 991.0,
        sigma: float = 8.0,
        elastic_axes: Sequence[int] | None = (0, 1),
        shuffle_blocks: int = 100,
        box_range: Sequence[int] = (10, 20),
        value_range: Sequence[float] | None = (0.0, 1.0),
        nonlinear_samples: int = 100_000,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not target_key or target_key in self.keys:
            raise ValueError(f"target_key {target_key!r} must be set and not one of keys {self.keys}: it stays clean.")
        self.target_key = target_key
        self.restorative = bool(restorative)
        self.light_rate = check_probability("light_rate", light_rate)
        box_range = as_pair("box_range", box_range, integer=True, positive=True)
        value_range = as_pair("value_range", value_range)
        common: dict[str, Any] = {"keys": self.keys, "target_key": None, "allow_missing_keys": allow_missing_keys}
        self.elastic = RandElasticDeformd(alpha=alpha, sigma=sigma, spatial_axes=elastic_axes, **common)
        self.local_shuffle = RandLocalPixelShuffled(num_blocks=shuffle_blocks, **common)
        self.nonlinear = RandBezierIntensityd(value_range=value_range, num_samples=nonlinear_samples, **common)
        paint = {"max_boxes": 1, "fill": "constant", "fill_range": value_range, **common}
        self.inpaint = RandInPaintd(size_range=box_range, **paint)
        self.outpaint = RandOutPaintd(shrink_range=box_range, **paint)
        self.applied: list[str] = []
        self.set_random_state(state=self.R)

    @property
    def corruptions(self) -> dict[str, RandCorruptiond]:
        """Every corruption this transform may apply, by name."""
        return {
            "elastic": self.elastic, "local_shuffle": self.local_shuffle, "nonlinear": self.nonlinear,
            "inpaint": self.inpaint, "outpaint": self.outpaint,
        }  # fmt: skip

    @property
    def choices(self) -> tuple[str, ...]:
        """The four corruptions of which one is drawn: the stage-1 or the restorative set."""
        if self.restorative:
            return ("local_shuffle", "nonlinear", "inpaint", "outpaint")
        return ("elastic", "nonlinear", "inpaint", "outpaint")

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Randomizable:
        super().set_random_state(seed, state)
        for transform in self.corruptions.values():
            transform.set_random_state(state=self.R)  # one stream for the whole chain
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw this call's corruptions into :attr:`applied`."""
        if self.restorative:
            self.applied = ["elastic", self.choices[int(self.R.randint(4))]]
        elif self.R.random_sample() < self.light_rate:
            self.applied = [self.choices[int(self.R.randint(4))]]
        else:
            self.applied = []

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        if self.target_key not in d:
            d[self.target_key] = convert_to_tensor(d[keys[0]], track_meta=False).clone()
        self.randomize()
        for name in self.applied:
            d = self.corruptions[name](d)
        return d

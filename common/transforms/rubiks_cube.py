"""Rubik's Cube pretext task (and Rubik's Cube+ / ++): 8 sub-cubes, each maybe turned, re-ordered by a permutation.

Rubik's Cube (Zhuang et al., MICCAI 2019) and its United version (Guo et al., MedIA 2024; ``StepwisePretraining/
Rubik's Cube``): a cube is cut into a 2x2x2 grid of sub-cubes; each sub-cube is turned by 180 degrees about one of
the three axes with probability 3/4 (United code); the sub-cubes are re-ordered by one of ``N`` permutations of a
maximal-Hamming set (N = 1000); a siamese network (one shared encoder per sub-cube,
:class:`~common.networks.SiameseOctadModel`) predicts the permutation and, per branch, whether its sub-cube was turned.
Options:

* **Rubik's Cube++** (``corruption``, the United code's ``--genesis``): every turned sub-cube also gets one Models
  Genesis corruption chosen uniformly among local pixel shuffling (100 blocks), non-linear intensity, in-painting
  and out-painting (the corruption library in this package);
* **Rubik's Cube+** cube masking (Zhu et al., MedIA 2020) (``mask_prob``): each sub-cube is masked with this
  probability, i.e. one box of 1/4 to 1/2 of each edge is blanked; a third set of flags says which (the paper's
  exact masking could not be checked; this is our reading, documented in the bundle README).

Differences from the official code, all deliberate:

* **The restoration target of branch i is the sub-cube branch i sees** (clean, not turned, not corrupted, not
  masked), in the same slot order as the input. The official code targets the 8 sub-cubes in their canonical order
  while branch i sees sub-cube ``p[i]``: shared-weight branches cannot know ``p``, so that loss cannot be minimised.
* **The turn flags are in slot (branch) order** too; the official code indexes them by canonical position.
* **The gap is left out, not blanked**: sub-cubes are cut from the cube with ``gap`` voxels between neighbours
  (the original Rubik's Cube design), so every sub-cube is a clean crop. The official code blanks voxels 27-36 of a
  64^3 cube and then cuts it in 32^3 halves, so each sub-cube carries blank slabs on the faces that pointed at the
  centre: their position gives away where the sub-cube came from (and, with the turn, which turn it got).

Output keys (``s`` = sub-cube size, ``C`` = channels, ``n = 8``): ``image`` ``(n C, s, s, s)`` (slot ``i`` holds
channels ``i C .. (i + 1) C``), ``target`` likewise, ``label`` (permutation index, long scalar), ``rotation``
``(n,)`` float flags, and ``mask`` ``(n,)`` float flags when masking is on.
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
from common.transforms.permutations import hamming_permutations
from common.transforms.subcubes import grid_cells

__all__ = ["HALF_TURN_PLANES", "RandRubiksCubed", "half_turn"]

#: The planes of the three half-turns (spatial axes flipped together), as in the United code's ``rot90(k=2, axes)``.
HALF_TURN_PLANES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))
_RESERVED = ("keys", "prob", "target_key", "allow_missing_keys")


def half_turn(cube: torch.Tensor, plane: Sequence[int]) -> torch.Tensor:
    """Turn a ``(C, *S)`` cube by 180 degrees in the plane of two spatial axes (a proper rotation, no reflection)."""
    return cube.flip([plane[0] + 1, plane[1] + 1])


def _options(name: str, options: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options or {})
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        raise ValueError(f"{name} must not set {reserved}: RandRubiksCubed sets keys, rates and the target.")
    return {**defaults, **options}


class RandRubiksCubed(Randomizable, MapTransform):
    """Cut a cube into 8 sub-cubes, turn, (corrupt, mask,) permute; emit the labels and the aligned clean targets.

    After a call, :attr:`permutation` is the permutation used (slot ``i`` holds sub-cube ``permutation[i]``),
    :attr:`planes` the half-turn plane index per *canonical* sub-cube (-1: not turned), :attr:`corrupted` the
    corruption applied per canonical sub-cube (``None`` or a name) and :attr:`masked` the masking per canonical
    sub-cube.

    Args:
        keys: the image key (exactly one), channel-first ``(C, S, S, S)`` with ``S - gap`` even; each sub-cube is
            ``(S - gap) / 2`` per axis.
        label_key: where the permutation index goes.
        rotation_key: where the per-slot turn flags go.
        mask_key: where the per-slot mask flags go (only when ``mask_prob > 0``).
        target_key: where the aligned clean sub-cubes go, or ``None``.
        num_permutations: size of the permutation set (United: 1000).
        permutation_seed: seed of the permutation set.
        gap: voxels left out between neighbouring sub-cubes (United: 10).
        rotate_prob: probability that a sub-cube is turned (United: 3/4).
        corruption: Rubik's Cube++: corrupt every turned sub-cube with one Models Genesis corruption.
        corruption_prob: probability of that corruption for a turned sub-cube (United: 1).
        value_range: intensity range of the corruptions' fills and curve (CT preset: (0, 1)).
        local_shuffle, nonlinear, inpaint, outpaint: extra arguments of the library corruptions (defaults: 100
            shuffled blocks, one kept out-painting box, as in the United code).
        mask_prob: Rubik's Cube+: probability that a sub-cube is masked (0: no masking, no ``mask_key``).
        mask_fraction: edge of the masked box as a fraction of the sub-cube's edge ``(low, high)``.
        mask_value: value of the masked voxels.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_key: str = "label",
        rotation_key: str = "rotation",
        mask_key: str = "mask",
        target_key: str | None = "target",
        num_permutations: int = 1000,
        permutation_seed: int = 0,
        gap: int = 10,
        rotate_prob: float = 0.75,
        corruption: bool = False,
        corruption_prob: float = 1.0,
        value_range: Sequence[float] | None = (0.0, 1.0),
        local_shuffle: Mapping[str, Any] | None = None,
        nonlinear: Mapping[str, Any] | None = None,
        inpaint: Mapping[str, Any] | None = None,
        outpaint: Mapping[str, Any] | None = None,
        mask_prob: float = 0.0,
        mask_fraction: Sequence[float] = (0.25, 0.5),
        mask_value: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"RandRubiksCubed builds one octad from one image key, got keys {self.keys}.")
        if target_key is not None and target_key in self.keys:
            raise ValueError(f"target_key {target_key!r} is also the image key: the target must stay clean.")
        if int(gap) != gap or gap < 0:
            raise ValueError(f"gap must be a non-negative integer, got {gap!r}.")
        self.label_key, self.rotation_key, self.mask_key, self.target_key = label_key, rotation_key, mask_key, target_key
        self.permutations = hamming_permutations(num_permutations, 8, permutation_seed)
        self.gap = int(gap)
        self.rotate_prob = check_probability("rotate_prob", rotate_prob)
        self.corruption = bool(corruption)
        self.corruption_prob = check_probability("corruption_prob", corruption_prob)
        self.mask_prob = check_probability("mask_prob", mask_prob)
        value_range = as_pair("value_range", value_range)
        common = {"keys": "image", "prob": 1.0, "target_key": None}
        self.corruptions: dict[str, RandCorruptiond] = {
            "local_shuffle": RandLocalPixelShuffled(**common, **_options("local_shuffle", local_shuffle, {"num_blocks": 100})),
            "nonlinear": RandBezierIntensityd(**common, **_options("nonlinear", nonlinear, {"value_range": value_range})),
            "inpaint": RandInPaintd(**common, **_options("inpaint", inpaint, {"fill_range": value_range})),
            "outpaint": RandOutPaintd(**common, **_options("outpaint", outpaint, {"max_boxes": 1, "fill_range": value_range})),
        }
        mask_fraction = as_pair("mask_fraction", mask_fraction, positive=True)
        self.masking = RandInPaintd(
            **common, max_boxes=1, min_boxes=1, size_fraction=mask_fraction, margin=0, fill="constant",
            fill_range=(float(mask_value), float(mask_value)),
        )  # fmt: skip
        self.permutation = self.permutations[0]
        self.planes = np.full(8, -1)
        self.corrupted: list[str | None] = [None] * 8
        self.masked = np.zeros(8, dtype=bool)
        self._index = 0
        self.set_random_state(state=self.R)

    @property
    def num_classes(self) -> int:
        """Number of permutations, i.e. of order classes."""
        return len(self.permutations)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Randomizable:
        super().set_random_state(seed, state)
        for transform in (*self.corruptions.values(), self.masking):
            transform.set_random_state(state=self.R)  # one stream for the whole transform
        return self

    def randomize(self, data: object = None) -> None:
        """Draw the turns, the corruptions, the masks and the permutation (in that order)."""
        self.planes = np.full(8, -1)
        self.corrupted = [None] * 8
        names = list(self.corruptions)
        for j in range(8):
            if self.R.random_sample() < self.rotate_prob:
                self.planes[j] = int(self.R.randint(len(HALF_TURN_PLANES)))
                if self.corruption and self.R.random_sample() < self.corruption_prob:
                    self.corrupted[j] = names[int(self.R.randint(len(names)))]
        self.masked = self.R.random_sample(8) < self.mask_prob if self.mask_prob > 0 else np.zeros(8, dtype=bool)
        self._index = int(self.R.randint(self.num_classes))
        self.permutation = self.permutations[self._index]

    def _corrupt(self, cube: torch.Tensor, transform: RandCorruptiond) -> torch.Tensor:
        return transform({"image": cube})["image"]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        key = self.keys[0]
        if key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"RandRubiksCubed: no {key!r} in the data (keys: {sorted(map(str, d))}).")
        img = convert_to_tensor(d[key], track_meta=False)
        if img.ndim != 4:
            raise ValueError(f"RandRubiksCubed: {key!r} must be channel-first (C, H, W, D), got shape {tuple(img.shape)}.")
        cells = grid_cells(img.shape[1:], self.gap)
        self.randomize()
        clean = [img[(slice(None), *cell)].clone() for cell in cells]
        cubes = []
        for j, cube in enumerate(clean):
            if self.planes[j] >= 0:
                cube = half_turn(cube, HALF_TURN_PLANES[self.planes[j]])
            if self.corrupted[j] is not None:
                cube = self._corrupt(cube, self.corruptions[self.corrupted[j]])
            if self.masked[j]:
                cube = self._corrupt(cube, self.masking)
            cubes.append(cube)
        order = [int(p) for p in self.permutation]
        d[key] = torch.cat([cubes[p] for p in order]).contiguous()
        if self.target_key is not None:
            d[self.target_key] = torch.cat([clean[p] for p in order]).contiguous()
        d[self.label_key] = torch.tensor(self._index, dtype=torch.long)
        d[self.rotation_key] = torch.tensor([float(self.planes[p] >= 0) for p in order], dtype=torch.float32)
        if self.mask_prob > 0:
            d[self.mask_key] = torch.tensor([float(self.masked[p]) for p in order], dtype=torch.float32)
        return d

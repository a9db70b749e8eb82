"""PCRL's augmentation code: three flip bits and a quarter-turn, as a 7-vector that conditions the decoder.

PCRL (Zhou et al., "Preservational learning improves self-supervised medical image models by reconstructing
diverse contexts", ICCV 2021) asks its decoder to output the crop *after* a random spatial transform that it is
told about: flips along each of the three spatial axes (probability 1/2 each), then ``k`` quarter-turns in the plane
of the first two spatial axes (``k`` uniform in 0..3). The transform is encoded as ``[f0, f1, f2, r0, r1, r2, r3]``:
the flip bits and the one-hot of ``k``. The identity (no flip, ``k = 0``) is ``[0, 0, 0, 1, 0, 0, 0]``.

:class:`RandSpatialCoded` draws codes in the data pipeline; :func:`apply_spatial_code` applies them to a batch on
the device (the task transforms the clean crops into the decoder's targets there).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Randomizable, Transform

__all__ = ["CODE_SIZE", "RandSpatialCoded", "apply_spatial_code", "identity_code", "spatial_code"]

#: Length of the code: 3 flip bits + one-hot of 4 quarter-turns.
CODE_SIZE = 7


def spatial_code(flips: Sequence[bool], quarter_turns: int) -> torch.Tensor:
    """The 7-vector of flips along spatial axes 0, 1, 2 and ``quarter_turns`` (0..3) in the plane of axes 0 and 1."""
    if len(flips) != 3 or not 0 <= int(quarter_turns) <= 3:
        raise ValueError(f"need 3 flip bits and quarter_turns in 0..3, got {list(flips)}, {quarter_turns}.")
    code = torch.zeros(CODE_SIZE)
    code[:3] = torch.tensor([float(bool(f)) for f in flips])
    code[3 + int(quarter_turns)] = 1.0
    return code


def identity_code(batch: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(batch, 7)`` codes of the identity transform (no flip, no turn)."""
    code = torch.zeros(batch, CODE_SIZE, device=device, dtype=dtype)
    code[:, 3] = 1.0
    return code


def _decode(code: torch.Tensor) -> tuple[list[int], int]:
    bits = code[:3] > 0.5
    turns = code[3:]
    if code.shape != (CODE_SIZE,) or int((turns > 0.5).sum()) != 1:
        raise ValueError(f"a spatial code is 3 flip bits and a one-hot of 4 quarter-turns, got {code.tolist()}.")
    return [i for i in range(3) if bool(bits[i])], int(turns.argmax())


def apply_spatial_code(images: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Flip and turn each image of a batch as its code says.

    Args:
        images: ``(B, C, S0, S1, S2)``; ``S0 == S1`` when a code turns by an odd number of quarters.
        codes: ``(B, 7)``.

    Returns:
        ``(B, C, S0, S1, S2)``, a new tensor.

    Raises:
        ValueError: wrong shapes, an invalid code, or an odd quarter-turn of a non-square plane.
    """
    if images.ndim != 5 or codes.shape != (images.shape[0], CODE_SIZE):
        raise ValueError(f"need images (B, C, S0, S1, S2) and codes (B, 7), got {tuple(images.shape)}, {tuple(codes.shape)}.")
    out = []
    for image, code in zip(images, codes):
        axes, turns = _decode(code)
        if turns % 2 and image.shape[1] != image.shape[2]:
            raise ValueError(f"a quarter-turn in the plane of spatial axes 0 and 1 needs them equal, got {tuple(image.shape[1:])}.")
        image = image.flip([a + 1 for a in axes]) if axes else image
        out.append(torch.rot90(image, turns, dims=(1, 2)) if turns else image)
    return torch.stack(out)


class RandSpatialCoded(Randomizable, Transform):
    """Draw one PCRL spatial code per key (e.g. ``aug`` for the first view, ``aug2`` for the second).

    The codes only describe transforms; the images stay as they are (the task applies the codes to the clean
    crops to make the decoder's targets). Random numbers come from ``self.R``, so ``set_random_state`` reproduces
    them.

    Args:
        keys: the keys to write, one code each, ``(7,)`` float tensors.
        flip_prob: probability of each flip (PCRL: 0.5).
        quarter_turns: whether to draw quarter-turns (PCRL: yes; needs crops with equal first two sizes).
    """

    def __init__(self, keys: str | Sequence[str] = ("aug", "aug2"), flip_prob: float = 0.5, quarter_turns: bool = True) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError("RandSpatialCoded needs at least one key.")
        if not 0.0 <= float(flip_prob) <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}.")
        self.flip_prob = float(flip_prob)
        self.quarter_turns = bool(quarter_turns)
        self.codes: list[torch.Tensor] = []

    def randomize(self, data: Any = None) -> None:
        self.codes = []
        for _ in self.keys:
            flips = [self.R.random_sample() < self.flip_prob for _ in range(3)]
            turns = int(self.R.randint(4)) if self.quarter_turns else 0
            self.codes.append(spatial_code(flips, turns))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        for key, code in zip(self.keys, self.codes):
            d[key] = code
        return d

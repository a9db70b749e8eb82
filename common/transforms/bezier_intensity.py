"""Non-linear intensity transformation: a random monotone Bezier curve, inverted half the time.

Models Genesis (Zhou et al., MedIA 2021, "non-linear transformation") maps every intensity through a cubic
Bezier curve with control points (0, 0), two random points in the unit square and (1, 1). Half the time the
curve is *inverted*: the reference sorts the sampled x values but not the y values, which pairs x(u) with
y(1 - u), so 0 maps to 1 and 1 maps to 0. The restorative task must learn the original intensities, i.e.
tissue appearance.

Why custom: MONAI's ``RandHistogramShift`` moves the control points of a *piecewise linear* map and never
inverts it; the Genesis map is a smooth cubic curve sampled densely (100 000 points) and applied with
``np.interp``. Here the curve is applied by a torch equivalent of ``np.interp`` (:func:`interp`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection

from common.transforms.corruption import RandCorruptiond, as_pair, check_probability

__all__ = ["RandBezierIntensityd", "bezier_curve", "bezier_lookup", "interp"]


def bezier_curve(control_points: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample a Bezier curve at ``num_samples`` parameters evenly spaced in [0, 1].

    Args:
        control_points: ``(n + 1, 2)`` array of (x, y) control points, first point at parameter 0.
        num_samples: number of samples.

    Returns:
        ``(x, y)``, two ``(num_samples,)`` float64 arrays. With the end points (0, 0) and (1, 1) and inner
        points in the unit square, both are non-decreasing in the parameter.
    """
    points = np.asarray(control_points, dtype=np.float64)
    n = len(points) - 1
    t = np.linspace(0.0, 1.0, num_samples)
    basis = np.stack([math.comb(n, i) * t**i * (1.0 - t) ** (n - i) for i in range(n + 1)])  # (n + 1, num_samples)
    return points[:, 0] @ basis, points[:, 1] @ basis


def bezier_lookup(
    inner_points: Sequence[float], inverted: bool, num_samples: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(xp, fp)`` table of the Genesis intensity map.

    Args:
        inner_points: ``(x1, y1, x2, y2)``, the two random control points.
        inverted: pair ascending x with *descending* y (the Genesis "flip").
        num_samples: samples of the curve (the reference uses 100 000).

    Returns:
        ``xp`` ascending from 0 to 1, and ``fp`` in [0, 1]: non-decreasing from 0 to 1, or non-increasing
        from 1 to 0 when ``inverted``.
    """
    x1, y1, x2, y2 = (float(v) for v in inner_points)
    xs, ys = bezier_curve(np.array([[0.0, 0.0], [x1, y1], [x2, y2], [1.0, 1.0]]), num_samples)
    xp, fp = np.sort(xs), np.sort(ys)
    return (xp, fp[::-1].copy()) if inverted else (xp, fp)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise linear interpolation with the semantics of ``np.interp``, in torch.

    Args:
        x: values of any shape.
        xp: ``(n,)`` non-decreasing sample positions (repeated positions are allowed), ``n >= 2``.
        fp: ``(n,)`` values at ``xp``.

    Returns:
        Tensor shaped like ``x``; values left of ``xp[0]`` get ``fp[0]``, right of ``xp[-1]`` get ``fp[-1]``.
    """
    flat = x.reshape(-1).clamp(xp[0], xp[-1]).contiguous()
    idx = torch.searchsorted(xp, flat, right=True).clamp(1, xp.numel() - 1)
    x0, x1, y0, y1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    span = x1 - x0
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    weight = torch.where(span > 0, (flat - x0) / safe_span, torch.zeros_like(span))
    return (y0 + weight * (y1 - y0)).reshape(x.shape)


class RandBezierIntensityd(RandCorruptiond):
    """Map the image's intensities through a random Bezier curve (Models Genesis non-linear transformation).

    Per call: two control points uniform in the unit square, and with probability ``invert_prob`` an
    inverted curve (Genesis: 0.5). Every channel of every key goes through the same curve.

    Value range: the curve is defined on [0, 1]. ``value_range=(low, high)`` maps ``[low, high]`` to [0, 1],
    applies the curve and maps back; values outside the range are clamped to it (as ``np.interp`` clamps
    outside [0, 1] in the reference). The default ``(0, 1)`` is the range of both presets (CT and MRI). For
    data without a fixed range (normalised outside the presets), ``value_range=None`` uses each channel's own
    min and max, so nothing is clamped and the output keeps the channel's range; a constant channel is left
    unchanged.

    Args:
        keys: image keys to corrupt, ``(C, H, W[, D])``.
        invert_prob: probability of the inverted curve.
        value_range: ``(low, high)`` of the intensities, or ``None`` for per-channel min/max.
        num_samples: samples of the curve (Genesis: 100 000).
        prob: probability of applying the transform (the Genesis composite uses 0.9).
        target_key: where the clean image goes when absent; ``None`` for no target.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        invert_prob: float = 0.5,
        value_range: Sequence[float] | None = (0.0, 1.0),
        num_samples: int = 100_000,
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob=prob, target_key=target_key, allow_missing_keys=allow_missing_keys)
        self.invert_prob = check_probability("invert_prob", invert_prob)
        self.value_range = as_pair("value_range", value_range)
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}.")
        if int(num_samples) < 2:
            raise ValueError(f"num_samples must be at least 2, got {num_samples}.")
        self.num_samples = int(num_samples)
        self.inner_points: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
        self.inverted = False
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None

    def randomize_corruption(self, spatial_shape: tuple[int, ...]) -> None:
        self.inner_points = tuple(float(v) for v in self.R.random_sample(4))  # x1, y1, x2, y2
        self.inverted = bool(self.R.random_sample() < self.invert_prob)
        xp, fp = bezier_lookup(self.inner_points, self.inverted, self.num_samples)
        self._table = torch.from_numpy(xp), torch.from_numpy(fp)

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        if self._table is None:
            raise RuntimeError("RandBezierIntensityd.corrupt called before randomize.")
        dtype = img.dtype if img.is_floating_point() else torch.float32
        xp, fp = (t.to(img.device) for t in self._table)
        x = img.to(torch.float64)
        if self.value_range is not None:
            low = torch.full((x.shape[0],) + (1,) * (x.ndim - 1), self.value_range[0], dtype=x.dtype, device=x.device)
            high = torch.full_like(low, self.value_range[1])
        else:
            flat = x.reshape(x.shape[0], -1)
            low = flat.amin(dim=1).reshape((-1,) + (1,) * (x.ndim - 1))
            high = flat.amax(dim=1).reshape(low.shape)
        span = high - low
        constant = span <= 0
        unit = (x - low) / torch.where(constant, torch.ones_like(span), span)
        mapped = low + interp(unit, xp, fp) * span
        return torch.where(constant, x, mapped).to(dtype)

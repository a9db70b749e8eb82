"""The 95th-percentile Hausdorff distance in millimetres.

MONAI's :class:`~monai.handlers.HausdorffDistance` handler calls its metric without a voxel spacing, so it measures
in voxels; on an anisotropic grid (e.g. 6 x 6 x 4 mm) a voxel count is no distance at all. MONAI's
:class:`~monai.metrics.HausdorffDistanceMetric` does accept ``spacing`` per call; this handler passes the task grid's.

MONAI also scores a structure the model missed entirely (empty prediction, non-empty label) as NaN, and its mean
reduction then counts that NaN as 0 mm, the best possible distance: a network that predicts only background would
report a perfect HD95. Here a missed structure scores the image's diagonal in millimetres, the largest distance two
voxels of the image can have (the usual worst-case convention); a structure absent from the label stays NaN
(not scored), as in MONAI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.metrics.metric import reinit__is_reduced
from monai.handlers import HausdorffDistance
from monai.metrics import HausdorffDistanceMetric

__all__ = ["HausdorffDistanceMM", "MissedStructureHausdorffMetric"]


class MissedStructureHausdorffMetric(HausdorffDistanceMetric):
    """:class:`~monai.metrics.HausdorffDistanceMetric` that scores a missed structure at the image diagonal.

    A (batch item, class) whose prediction is empty while its label is not gets the diagonal of the image in the
    units of ``spacing`` (voxels without it) instead of MONAI's NaN, which MONAI's mean reduction turns into 0.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Per-item, per-class distances ``(B, C)`` (``C`` without background unless included)."""
        distances = super()._compute_tensor(y_pred, y, **kwargs)
        first = 0 if self.include_background else 1
        spatial = tuple(range(2, y_pred.ndim))
        missed = (y_pred[:, first:].sum(dim=spatial) == 0) & (y[:, first:].sum(dim=spatial) > 0)
        if missed.any():
            distances = distances.clone()
            distances[missed.to(distances.device)] = image_diagonal(y_pred.shape[2:], kwargs.get("spacing"))
        return distances


def image_diagonal(shape: Sequence[int], spacing: Sequence[float] | float | None) -> float:
    """Length of the diagonal of an image of ``shape`` voxels on a grid of ``spacing`` (voxels when ``None``)."""
    step = [1.0] * len(shape) if spacing is None else [float(spacing)] * len(shape) if isinstance(spacing, (int, float)) else [float(s) for s in spacing]
    if len(step) != len(shape):
        raise ValueError(f"spacing {spacing} does not match an image of {len(shape)} spatial dimensions.")
    return float(sum(((n - 1) * s) ** 2 for n, s in zip(shape, step)) ** 0.5)


class HausdorffDistanceMM(HausdorffDistance):
    """:class:`~monai.handlers.HausdorffDistance` measured in millimetres on a grid of ``spacing``; a missed
    structure scores the image diagonal (:class:`MissedStructureHausdorffMetric`).

    Args:
        spacing: voxel spacing of the predictions and labels (``None``: voxels, as MONAI's handler).
        percentile: e.g. 95 for HD95.
        include_background: whether channel 0 is scored.
        output_transform: gives ``(y_pred, y)``, one-hot ``(C, *S)`` per item.
        kwargs: further :class:`~monai.handlers.HausdorffDistance` arguments.
    """

    def __init__(
        self,
        spacing: Sequence[float] | float | None = None,
        percentile: float | None = 95,
        include_background: bool = False,
        output_transform: Callable = lambda x: x,
        **kwargs,
    ) -> None:
        super().__init__(include_background=include_background, percentile=percentile, output_transform=output_transform, **kwargs)
        self.metric_fn = MissedStructureHausdorffMetric(
            include_background=include_background, percentile=percentile,
            **{k: kwargs[k] for k in ("distance_metric", "directed", "reduction") if k in kwargs},
        )  # fmt: skip
        self.spacing = None if spacing is None else (list(spacing) if isinstance(spacing, Sequence) else float(spacing))

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        if len(output) != 2:
            raise ValueError(f"output must have length 2, got {len(output)}.")
        y_pred, y = output
        self.metric_fn(y_pred, y, spacing=self.spacing)

"""The 95th-percentile Hausdorff distance in millimetres.

MONAI's :class:`~monai.handlers.HausdorffDistance` handler calls its metric without a voxel spacing, so it measures
in voxels; on an anisotropic grid (e.g. 6 x 6 x 4 mm) a voxel count is no distance at all. MONAI's
:class:`~monai.metrics.HausdorffDistanceMetric` does accept ``spacing`` per call; this handler passes the task grid's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from ignite.metrics.metric import reinit__is_reduced
from monai.handlers import HausdorffDistance

__all__ = ["HausdorffDistanceMM"]


class HausdorffDistanceMM(HausdorffDistance):
    """:class:`~monai.handlers.HausdorffDistance` measured in millimetres on a grid of ``spacing``.

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
        self.spacing = None if spacing is None else (list(spacing) if isinstance(spacing, Sequence) else float(spacing))

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        if len(output) != 2:
            raise ValueError(f"output must have length 2, got {len(output)}.")
        y_pred, y = output
        self.metric_fn(y_pred, y, spacing=self.spacing)

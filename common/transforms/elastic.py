"""Elastic deformation of the image only, optionally restricted to some axes (TransVW: in-plane).

TransVW (Haghighi et al., IEEE TMI 2021) as run in the United code deforms every input patch before the other
corruptions, with ``alpha = 991`` and ``sigma = 8`` in scipy's (Simard et al., ICDAR 2003) convention, and only
in the x/y plane; the restoration target is the patch *before* deformation.

The convention, in voxels, for every deformed spatial axis ``a``::

    u_a ~ Uniform(-1, 1) per voxel
    d_a = alpha * gaussian_filter(u_a, sigma, mode="constant", cval=0)   # smoothed over all spatial axes
    out(x) = img(x + d)                                                  # linear interpolation, "reflect"

``sigma`` is the standard deviation of the smoothing Gaussian in voxels (kernel truncated at 4 sigma, as in
``scipy.ndimage.gaussian_filter``) and ``alpha`` multiplies the smoothed field, so the typical displacement is
``alpha`` times the standard deviation of the smoothed noise: at sigma = 8 in 3D that is about
``991 * 0.577 / (2 sqrt(pi) * 8) ** 1.5 = 3.8`` voxels. Non-deformed axes get ``d_a = 0``.

Here the smoothing uses MONAI's sampled, normalised Gaussian kernel (``gaussian_1d``) of the same radius
(``int(4 sigma + 0.5)``) with zero padding, applied axis by axis as a banded matrix product, and the
resampling is ``torch.nn.functional.grid_sample`` with ``align_corners=False`` and
``padding_mode="reflection"`` (the same half-voxel reflection as scipy's ``"reflect"``), so the result matches
``scipy.ndimage.map_coordinates(order=1, mode="reflect")`` on the same field.

Why custom: MONAI's ``Rand3DElastic(sigma_range=(s, s), magnitude_range=(a, a))`` uses the same (alpha, sigma)
convention but deforms all three axes (no in-plane option) and truncates the kernel at 3 sigma with an
``erf`` approximation; ``Rand2DElastic`` uses a control-point grid (``spacing``) instead, and applied slice by
slice it would not smooth the field across slices as the reference does. For a deformation of every axis
``spatial_axes=None`` here equals ``Rand3DElasticd(sigma_range=(sigma, sigma), magnitude_range=(alpha, alpha))``
up to the kernel truncation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.networks.layers.convutils import gaussian_1d

from common.transforms.corruption import RandCorruptiond

__all__ = ["GRID_MODES", "PADDING_MODES", "RandElasticDeformd", "elastic_displacement", "warp"]

GRID_MODES = ("bilinear", "nearest")
PADDING_MODES = ("reflection", "border", "zeros")


def elastic_displacement(noise: torch.Tensor, sigma: float, alpha: float) -> torch.Tensor:
    """Smooth per-axis noise into a displacement field: ``alpha * gaussian_filter(noise, sigma, mode="constant")``.

    Args:
        noise: ``(k, *S)`` noise, one channel per deformed axis (uniform in [-1, 1] for the elastic transform).
        sigma: Gaussian standard deviation in voxels, the same along every spatial axis.
        alpha: scale of the smoothed field, in voxels.

    Returns:
        ``(k, *S)`` displacement in voxels.
    """
    kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=4.0, approx="sampled", normalize=True).to(noise)
    radius = (kernel.numel() - 1) // 2
    smoothed = noise
    for axis in range(1, noise.ndim):
        # zero-padded correlation along one axis as a product with a banded (Toeplitz) matrix: on CPU this is
        # ~50x faster than a 65-tap convolution (MONAI's separable_filtering) at 64^3, with the same result
        index = torch.arange(noise.shape[axis], device=noise.device)
        offset = index[None, :] - index[:, None]  # [output i, input j] -> j - i
        weights = kernel[(offset + radius).clamp(0, 2 * radius)]
        band = torch.where(offset.abs() <= radius, weights, torch.zeros_like(weights))
        smoothed = torch.movedim(torch.tensordot(smoothed, band, dims=([axis], [1])), -1, axis)
    return smoothed * alpha


def warp(
    img: torch.Tensor,
    displacement: torch.Tensor,
    axes: Sequence[int],
    mode: str = "bilinear",
    padding_mode: str = "reflection",
) -> torch.Tensor:
    """Resample ``img`` at ``x + d(x)``: ``out[:, x] = img[:, x + d(x)]``, ``d`` non-zero only along ``axes``.

    Args:
        img: ``(C, *S)`` image, ``S`` 2D or 3D.
        displacement: ``(len(axes), *S)`` displacement in voxels along each axis of ``axes``.
        axes: spatial axes (0-based, excluding the channel) that ``displacement`` moves along.
        mode: ``"bilinear"`` (linear in every axis) or ``"nearest"``.
        padding_mode: ``"reflection"`` (scipy's ``"reflect"``), ``"border"`` or ``"zeros"``.

    Returns:
        ``(C, *S)`` tensor with ``img``'s floating dtype (float32 for integer input).
    """
    spatial = img.shape[1:]
    dtype = img.dtype if img.is_floating_point() else torch.float32
    work = torch.float64 if dtype == torch.float64 else torch.float32
    coords = list(torch.meshgrid(*[torch.arange(s, dtype=work, device=img.device) for s in spatial], indexing="ij"))
    for i, axis in enumerate(axes):
        coords[axis] = coords[axis] + displacement[i].to(work)
    # grid_sample: normalised coordinates (align_corners=False), last dimension ordered (W, H) / (D, W, H)
    normalised = [(2.0 * c + 1.0) / s - 1.0 for c, s in zip(coords, spatial)]
    grid = torch.stack(normalised[::-1], dim=-1).unsqueeze(0)
    out = F.grid_sample(img.unsqueeze(0).to(work), grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out[0].to(dtype)


class RandElasticDeformd(RandCorruptiond):
    """Random elastic deformation of the image (not of the target), in scipy's (alpha, sigma) convention.

    After a call, :attr:`displacement` holds the ``(len(axes), *S)`` field in voxels. Every channel and every
    key is deformed by the same field. See the module docstring for the convention and its MONAI counterparts.

    Args:
        keys: image keys to deform, ``(C, H, W[, D])``.
        alpha: scale of the smoothed noise in voxels (TransVW: 991).
        sigma: smoothing standard deviation in voxels (TransVW: 8).
        spatial_axes: spatial axes to deform (TransVW: ``(0, 1)``, in-plane of a ``(H, W, D)`` patch);
            ``None`` deforms every axis.
        mode: ``"bilinear"`` (scipy order 1, as TransVW) or ``"nearest"``.
        padding_mode: ``"reflection"`` (scipy ``"reflect"``, as TransVW), ``"border"`` or ``"zeros"``.
        prob: probability of applying the transform (TransVW stages 2-3: always).
        target_key: where the clean (undeformed) image goes when absent; ``None`` for no target.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        alpha: float = 991.0,
        sigma: float = 8.0,
        spatial_axes: Sequence[int] | None = (0, 1),
        mode: str = "bilinear",
        padding_mode: str = "reflection",
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob=prob, target_key=target_key, allow_missing_keys=allow_missing_keys)
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be positive (voxels), got {sigma!r}.")
        if not float(alpha) >= 0:
            raise ValueError(f"alpha must be non-negative (voxels), got {alpha!r}.")
        if mode not in GRID_MODES:
            raise ValueError(f"mode must be one of {GRID_MODES}, got {mode!r}.")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}.")
        if spatial_axes is not None:
            axes = [int(a) for a in spatial_axes]
            if not axes or len(set(axes)) != len(axes) or any(a < 0 or a > 2 for a in axes):
                raise ValueError(
                    f"spatial_axes must be distinct spatial axes in 0..2 (or None for all), got {spatial_axes!r}."
                )
            spatial_axes = tuple(axes)
        self.alpha, self.sigma = float(alpha), float(sigma)
        self.spatial_axes = spatial_axes
        self.mode, self.padding_mode = mode, padding_mode
        self.axes: tuple[int, ...] = ()
        self.displacement = torch.zeros(0)

    def randomize_corruption(self, spatial_shape: tuple[int, ...]) -> None:
        ndim = len(spatial_shape)
        axes = tuple(range(ndim)) if self.spatial_axes is None else self.spatial_axes
        if max(axes) >= ndim:
            raise ValueError(f"spatial_axes {axes} do not exist in a {ndim}D image of spatial shape {spatial_shape}.")
        noise = torch.from_numpy(self.R.uniform(-1.0, 1.0, (len(axes), *spatial_shape)).astype("float32"))
        self.axes = axes
        self.displacement = elastic_displacement(noise, self.sigma, self.alpha).float()

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        return warp(img, self.displacement.to(img.device), self.axes, self.mode, self.padding_mode)

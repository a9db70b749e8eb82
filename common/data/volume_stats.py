"""What a volume holds, read exactly as the bundles read it: shape, grid, intensities, non-finite voxels.

Volumes are read with MONAI's :class:`~monai.transforms.LoadImage` (``ensure_channel_first=True``, as the
bundles' ``LoadImaged``), so the readers are the ones training uses: nibabel for NIfTI, ITK for NRRD, MHA
and DICOM series folders. A 2D image therefore shows up as one channel and two spatial dimensions, a 4D
NIfTI as ``t`` channels and three spatial dimensions.

The statistics are independent of any bundle setting, so :mod:`common.data.stats_cache` can keep them per
file and :mod:`common.data.check` can judge them against any ``roi_size``, preset or channel count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CT_AIR_HU",
    "GRID_TOLERANCE_MM",
    "PERCENTILES",
    "VolumeStats",
    "ct_like",
    "read_volume_stats",
    "same_grid",
]

#: Percentiles recorded per volume (of the finite voxels).
PERCENTILES: tuple[float, ...] = (0.5, 1.0, 50.0, 99.0, 99.5)
#: A CT volume in Hounsfield units has air (-1000 HU) around or inside the body: its 0.5th percentile lies
#: at or below this value. MRI, PET and CT stored without its rescale intercept do not.
CT_AIR_HU = -500.0
#: CT values stay above this (-1024 is the usual minimum, -2048 or -3024 mark voxels outside the scan).
CT_MIN_HU = -3100.0
#: The 99.5th percentile of CT stays below this (bone reaches about 3000 HU; metal is rarer than 0.5 %).
CT_MAX_HU = 4000.0
#: Voxels used for the percentiles at most (a regular stride over the finite voxels beyond this).
MAX_PERCENTILE_VOXELS = 1 << 24
#: Grids whose voxel-to-world matrices differ by less than this (mm) are the same grid.
GRID_TOLERANCE_MM = 1e-2
#: Distinct values are counted for integer volumes only, up to this many (enough to tell label maps apart).
MAX_DISTINCT_COUNT = 4096


@dataclass
class VolumeStats:
    """Header and intensity facts about one volume (file or DICOM series folder).

    Attributes:
        path: the path read.
        shape: the array shape as loaded, channel first: ``(C, *spatial)``.
        dtype: the stored voxel type (``"int16"``, ``"float32"``, ...).
        affine: the voxel-to-world matrix (RAS, mm) MONAI reports, ``(spatial_dims + 1)`` square.
        nan: number of NaN voxels.
        inf: number of infinite voxels.
        minimum: smallest finite value (``nan`` if there is none).
        maximum: largest finite value (``nan`` if there is none).
        percentiles: value at each of :data:`PERCENTILES` (as strings, JSON keys) of the finite voxels.
        distinct: number of distinct values for integer volumes (capped at :data:`MAX_DISTINCT_COUNT` + 1),
            ``None`` for floating-point volumes.
        digest: SHA-256 of the shape and the voxel values as float32: equal volumes in different
            formats or integer types have equal digests.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    affine: list[list[float]]
    nan: int = 0
    inf: int = 0
    minimum: float = float("nan")
    maximum: float = float("nan")
    percentiles: dict[str, float] = field(default_factory=dict)
    distinct: int | None = None
    digest: str = ""

    @property
    def channels(self) -> int:
        """Number of channels (time points of a 4D NIfTI count as channels, as MONAI loads them)."""
        return int(self.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The spatial sizes, in the stored axis order."""
        return tuple(int(s) for s in self.shape[1:])

    @property
    def spatial_dims(self) -> int:
        """Number of spatial dimensions (2 for a single slice, 3 for a volume)."""
        return len(self.shape) - 1

    @property
    def voxels(self) -> int:
        """Number of values in the array (all channels)."""
        return int(np.prod(self.shape))

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size along each stored axis in mm (the column norms of the affine)."""
        a = np.asarray(self.affine, dtype=float)
        n = a.shape[0] - 1
        return tuple(float(s) for s in np.linalg.norm(a[:n, :n], axis=0))

    @property
    def axcodes(self) -> str:
        """Orientation of the stored axes, e.g. ``"RAS"`` or ``"LPS"`` (from the affine)."""
        import nibabel as nib

        return "".join(str(c) for c in nib.aff2axcodes(np.asarray(self.affine, dtype=float)))

    def percentile(self, q: float) -> float:
        """The recorded ``q``-th percentile (one of :data:`PERCENTILES`)."""
        return float(self.percentiles[_pkey(q)])

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form (non-finite floats become strings)."""
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape)
        for key in ("minimum", "maximum"):
            data[key] = _encode_float(data[key])
        data["percentiles"] = {k: _encode_float(v) for k, v in self.percentiles.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeStats:
        """The inverse of :meth:`to_json`."""
        data = dict(data)
        data["shape"] = tuple(int(s) for s in data["shape"])
        for key in ("minimum", "maximum"):
            data[key] = float(data[key])
        data["percentiles"] = {k: float(v) for k, v in data["percentiles"].items()}
        return cls(**data)


def _pkey(q: float) -> str:
    return f"{q:g}"


def _encode_float(value: float) -> float | str:
    value = float(value)
    return value if np.isfinite(value) else str(value)


def _digest(array: np.ndarray) -> str:
    """SHA-256 of the shape and the values as float32, hashed slab by slab to bound the memory used."""
    h = hashlib.sha256(repr(tuple(array.shape)).encode())
    flat = array.reshape(array.shape[0], array.shape[1], -1) if array.ndim > 2 else array.reshape(1, *array.shape)
    for c in range(flat.shape[0]):
        for i in range(flat.shape[1]):
            h.update(np.ascontiguousarray(flat[c, i], dtype=np.float32).tobytes())
    return h.hexdigest()


def _count_distinct(values: np.ndarray) -> int:
    """Number of distinct integer values, capped at ``MAX_DISTINCT_COUNT + 1``."""
    flat = values.ravel()
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo >= (1 << 24):
        return min(int(np.unique(flat).size), MAX_DISTINCT_COUNT + 1)
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for chunk in np.array_split(flat, max(1, flat.size >> 22)):  # bounded int64 copies
        counts += np.bincount(chunk.astype(np.int64) - lo, minlength=counts.size)
    return min(int(np.count_nonzero(counts)), MAX_DISTINCT_COUNT + 1)


def array_stats(array: np.ndarray, path: str, affine: np.ndarray) -> VolumeStats:
    """Computes :class:`VolumeStats` of a loaded channel-first array.

    Args:
        array: the voxels, ``(C, *spatial)``.
        path: the path it was read from.
        affine: its voxel-to-world matrix.
    """
    stats = VolumeStats(
        path=path,
        shape=tuple(int(s) for s in array.shape),
        dtype=str(array.dtype),
        affine=np.asarray(affine, dtype=float).round(6).tolist(),
    )
    if array.size:
        stats.digest = _digest(array)
    if np.issubdtype(array.dtype, np.floating):
        finite_mask = np.isfinite(array)
        stats.nan = int(np.isnan(array).sum())
        stats.inf = int(array.size - stats.nan - int(finite_mask.sum()))
        finite = array[finite_mask] if stats.nan or stats.inf else array.ravel()
    else:
        finite = array.ravel()
    if finite.size:
        stats.minimum, stats.maximum = float(finite.min()), float(finite.max())
        sample = finite if finite.size <= MAX_PERCENTILE_VOXELS else finite[:: finite.size // MAX_PERCENTILE_VOXELS + 1]
        values = np.percentile(sample, PERCENTILES)
        stats.percentiles = {_pkey(q): float(v) for q, v in zip(PERCENTILES, values)}
        if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
            stats.distinct = _count_distinct(finite)
    return stats


def read_volume_stats(path: str | os.PathLike) -> VolumeStats:
    """Reads a volume with MONAI's ``LoadImage`` (as the bundles do) and computes its :class:`VolumeStats`.

    Args:
        path: a NIfTI, NRRD or MHA file, or a folder holding one DICOM series.

    Returns:
        The statistics.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        Exception: whatever the reader raises for a file it cannot decode (``EOFError`` for a
            truncated ``.nii.gz``, ``RuntimeError`` from ITK, ...).
    """
    from monai.transforms import LoadImage

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or folder: {path}")
    image, meta = LoadImage(image_only=False, ensure_channel_first=True, dtype=None)(path)
    array = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    affine = meta.get("affine")
    affine = np.asarray(affine.cpu().numpy() if hasattr(affine, "cpu") else affine, dtype=float)
    return array_stats(array, path, affine)


def ct_like(stats: VolumeStats) -> bool:
    """Tells whether a volume's intensities look like CT in Hounsfield units.

    CT in HU has air: its 0.5th percentile lies between :data:`CT_MIN_HU` and :data:`CT_AIR_HU`, and its
    99.5th percentile below :data:`CT_MAX_HU`. An MRI volume (non-negative, arbitrary units) or a CT stored
    without its rescale intercept (air at 0) does not.
    """
    if not stats.percentiles:
        return False
    low, high = stats.percentile(0.5), stats.percentile(99.5)
    return CT_MIN_HU <= low <= CT_AIR_HU and high <= CT_MAX_HU


def same_grid(a: VolumeStats, b: VolumeStats) -> bool:
    """Tells whether two volumes share a voxel grid: equal spatial shapes and affines (within
    :data:`GRID_TOLERANCE_MM`), as a label map must share its image's."""
    if a.spatial_shape != b.spatial_shape:
        return False
    return bool(np.allclose(np.asarray(a.affine), np.asarray(b.affine), atol=GRID_TOLERANCE_MM))

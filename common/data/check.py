"""The data check before training: every problem with the input data, one line each, before anything is written.

:func:`check_data` runs at the start of a bundle's workflow (an item of its config's ``initialize`` list)
and behind ``tools/check_data.py``. It reads every volume as the bundle will (MONAI's ``LoadImage``, see
:mod:`common.data.volume_stats`) and reports, naming the file, key or value:

=======  ===================================================================================================
error    a missing or unreadable file (truncated ``.nii.gz``, undecodable DICOM); a volume whose spatial
         dimensions or channel count do not fit the bundle (``spatial_dims``, ``in_channels``; a 4D NIfTI
         loads as channels); NaN or infinite voxels; a label map off its image's grid (``label_key``); an
         ``output_dir`` that cannot be created or written; an empty training list
warning  intensities that do not fit the preset (CT not in HU, or CT given the MRI preset), with the numbers;
         a volume smaller than ``roi_size`` (after ``spacing``), which is padded; no validation list
         (validation and early stopping are off); a validation volume also in the training list; volumes
         with identical voxels; a constant volume
=======  ===================================================================================================

With any error, the check raises :class:`~common.data.errors.DataError` (a ``SystemExit``: the message lists
every problem, the process exits with status 1, no traceback), or with ``debug`` an ordinary exception.
Warnings are logged and returned. Per-volume statistics are cached per file (see
:mod:`common.data.stats_cache` for where), so a large datalist is read once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.data.errors import raise_data_error
from common.data.presets import preset_info
from common.data.stats_cache import StatsCache
from common.data.volume_stats import VolumeStats, ct_like, same_grid

logger = logging.getLogger(__name__)

__all__ = ["DataCheckReport", "Problem", "check_data", "one_line"]

_MAX_REASON = 300


@dataclass(frozen=True)
class Problem:
    """One problem found by the check.

    Attributes:
        level: ``"error"`` (stops the run) or ``"warning"``.
        subject: the file, key or value concerned.
        message: what is wrong, with the numbers.
    """

    level: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.subject}: {self.message}"


@dataclass
class DataCheckReport:
    """The outcome of :func:`check_data`.

    Attributes:
        problems: every problem, in the order found.
        volumes: statistics of each volume read, by path.
        cache_hits: volumes whose statistics came from the cache.
        cache_misses: volumes read from disk.
    """

    problems: list[Problem] = field(default_factory=list)
    volumes: dict[str, VolumeStats] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop a run."""
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems reported without stopping."""
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def lines(self) -> list[str]:
        """One line per problem, errors first."""
        return [str(p) for p in self.errors + self.warnings]

    def summary(self) -> str:
        """One line: volumes checked, from the cache, errors and warnings."""
        n = len(self.volumes)
        return (
            f"Data check: {n} volume{'s' * (n != 1)} ({self.cache_hits} from the cache), "
            f"{len(self.errors)} error{'s' * (len(self.errors) != 1)}, "
            f"{len(self.warnings)} warning{'s' * (len(self.warnings) != 1)}."
        )

    def error(self, subject: object, message: str) -> None:
        """Adds an error."""
        self.problems.append(Problem("error", str(subject), message))

    def warn(self, subject: object, message: str) -> None:
        """Adds a warning."""
        self.problems.append(Problem("warning", str(subject), message))


def one_line(error: BaseException) -> str:
    """An exception as one short line: its type and the meaningful part of its message.

    ITK's multi-line ``itk::ExceptionObject`` texts are reduced to their ``Description``.
    """
    text = str(error)
    if "Description:" in text:
        text = text.split("Description:", 1)[1]
    text = " ".join(text.split())
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _as_tuple(value: Sequence | int | float | None, n: int) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (value,) * n
    values = tuple(value)
    return values if len(values) == n else (values + (values[-1],) * n)[:n]


def _paths(value: object) -> list[str]:
    """The path(s) of an entry's image/label value (a string, a path, or a list of them for channels)."""
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return [os.fspath(v) for v in value]
    return []


def _oriented_size(stats: VolumeStats, orientation: str | None, spacing: tuple | None) -> tuple[list[int], str]:
    """The spatial size the bundle crops from: reordered to ``orientation`` and resampled to ``spacing``."""
    size = list(stats.spatial_shape)
    pixdim = list(stats.spacing)
    axes = "stored axes"
    if orientation and stats.spatial_dims == 3:
        import nibabel as nib

        try:
            ornt = nib.orientations.io_orientation(np.asarray(stats.affine, dtype=float))
            target = nib.orientations.axcodes2ornt(tuple(orientation), labels=(("L", "R"), ("P", "A"), ("I", "S")))
            world = [0] * 3
            world_dim = [1.0] * 3
            for i, (axis, _) in enumerate(ornt):
                world[int(axis)], world_dim[int(axis)] = size[i], pixdim[i]
            size = [world[int(t)] for t, _ in target]
            pixdim = [world_dim[int(t)] for t, _ in target]
            axes = orientation
        except Exception:  # an oblique or degenerate affine: keep the stored order
            pass
    if spacing is not None:
        size = [max(1, int(round(n * s / t))) for n, s, t in zip(size, pixdim, spacing)]
    return size, axes


def _check_image(
    report: DataCheckReport,
    stats: VolumeStats,
    spatial_dims: int,
    roi: tuple | None,
    spacing: tuple | None,
    orientation: str | None,
    preset: str | None,
    in_channels: int | None,
) -> None:
    """Judges one image's statistics (``in_channels=None``: channels are judged per entry by the caller).

    Warnings about intensities and size are left out for an image that already has an error.
    """
    path = stats.path
    errors_before = len(report.errors)
    if in_channels is not None and stats.channels != in_channels:
        report.error(
            path,
            f"loads as {stats.channels} channels of {_fmt_shape(stats.spatial_shape)} (the 4th axis of a 4D image "
            f"becomes channels); the bundle takes in_channels={in_channels}",
        )
    if stats.spatial_dims != spatial_dims:
        report.error(
            path,
            f"is a {stats.spatial_dims}D image (shape {_fmt_shape(stats.spatial_shape)}); "
            f"the bundle needs {spatial_dims}D volumes (spatial_dims={spatial_dims})",
        )
    if stats.voxels == 0:
        report.error(path, f"holds no voxels (shape {_fmt_shape(stats.shape)})")
        return
    for kind, count in (("NaN", stats.nan), ("infinite", stats.inf)):
        if count:
            report.error(
                path,
                f"{count} of {stats.voxels} voxels ({100.0 * count / stats.voxels:.3g} %) are {kind}: "
                f"every loss would be NaN; fix or remove the file",
            )
    if len(report.errors) > errors_before:
        return
    if stats.percentiles and stats.minimum == stats.maximum:
        report.warn(path, f"all voxels equal {stats.minimum:g}: nothing to learn from this volume")
    elif preset is not None and stats.percentiles:
        low, high = stats.percentile(0.5), stats.percentile(99.5)
        if preset == "ct" and not ct_like(stats):
            a, b = (min(max((v + 1000.0) / 2000.0, 0.0), 1.0) for v in (low, high))
            report.warn(
                path,
                f"intensities [{low:.4g}, {high:.4g}] (0.5th-99.5th percentile) do not look like CT in HU (no air "
                f"near -1000 HU); the 'ct' preset squeezes them into [{a:.2f}, {b:.2f}]; if this is MRI, use "
                f"intensity_preset 'mri'",
            )
        elif preset == "mri" and ct_like(stats):
            report.warn(
                path,
                f"intensities [{low:.4g}, {high:.4g}] (0.5th-99.5th percentile) look like CT in HU; the 'mri' preset "
                f"rescales each volume by its own percentiles and drops the HU scale; use intensity_preset 'ct'",
            )
    if roi is not None and stats.spatial_dims == spatial_dims:
        size, axes = _oriented_size(stats, orientation, spacing)
        if any(n < r for n, r in zip(size, roi)):
            padded = [max(n, r) for n, r in zip(size, roi)]
            after = f" after resampling to {'x'.join(f'{s:g}' for s in spacing)} mm" if spacing is not None else ""
            report.warn(
                path,
                f"is {_fmt_shape(size)} voxels ({axes}{after}), smaller than roi_size {_fmt_shape(roi)}: "
                f"padded with background to {_fmt_shape(padded)}",
            )


def _check_output_dir(report: DataCheckReport, output_dir: str | os.PathLike) -> None:
    """Reports an output folder that cannot be created or written (without writing anything)."""
    target = Path(output_dir).expanduser().absolute()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        report.error(f"output_dir {target}", f"cannot be created: {probe} is a file, not a folder")
    elif not os.access(probe, os.W_OK | os.X_OK):
        where = "is" if probe == target else f"would be created in {probe}, which is"
        report.error(f"output_dir {target}", f"cannot be written: it {where} not writable by this user")


def _read(report: DataCheckReport, cache: StatsCache, path: str, role: str, causes: list) -> VolumeStats | None:
    """Statistics of one file, or ``None`` after reporting why it cannot be read."""
    if path in report.volumes:
        return report.volumes[path]
    if not os.path.exists(path):
        report.error(path, f"{role} file not found")
        return None
    try:
        stats = cache.stats(path)
    except Exception as e:  # any reader failure is a problem to report, named by file
        report.error(path, f"{role} cannot be read: {one_line(e)}")
        causes.append(e)
        return None
    report.volumes[path] = stats
    return stats


def check_data(
    data: Sequence[Mapping | str] | None,
    spatial_dims: int = 3,
    in_channels: int = 1,
    roi_size: Sequence[int] | int | None = None,
    spacing: Sequence[float] | float | None = None,
    orientation: str | None = "RAS",
    preset: str | None = None,
    output_dir: str | os.PathLike | None = None,
    validation: Sequence[Mapping | str] | None = None,
    image_key: str = "image",
    label_key: str | None = None,
    cache_dir: str | os.PathLike | None | bool = None,
    debug: bool | None = None,
    raise_on_error: bool = True,
    log: bool = True,
) -> DataCheckReport:
    """Checks a bundle's data before training; stops the run, listing every problem, if any is an error.

    Called from a bundle config's ``initialize`` list, e.g.
    ``"$common.data.check_data(@train#dataset#data, spatial_dims=@spatial_dims, roi_size=@roi_size,
    preset=@intensity_preset, output_dir=@output_dir, validation=@validate#dataset#data)"``.

    Args:
        data: the training entries (``{"image": path, ...}`` dicts with absolute paths, as
            :func:`~common.data.datalist.resolve_training_data` returns them, or plain paths).
        spatial_dims: spatial dimensions every image must have.
        in_channels: channels every image must load as (a 4D NIfTI loads its 4th axis as channels).
        roi_size: the crop size; smaller images are reported as padded (a warning).
        spacing: target voxel size in mm the bundle resamples to (``None``: native grid).
        orientation: axis codes the bundle reorients to, which ``roi_size`` refers to.
        preset: intensity preset (``"ct"`` or ``"mri"``) the intensities are judged against; ``None`` skips it.
        output_dir: the folder the run writes to; it must be creatable and writable.
        validation: the validation entries; ``[]`` gives the warning that validation and early stopping
            are off, ``None`` skips validation checks.
        image_key: the entries' image key.
        label_key: for transfer bundles, the entries' label key: labels are read and must share their
            image's grid (shape and affine).
        cache_dir: statistics cache folder (``None``: the default of :mod:`common.data.stats_cache`;
            ``False``: no cache).
        debug: raise an ordinary exception with a traceback instead of exiting; ``None`` reads
            ``UNITED_SSL_DEBUG``.
        raise_on_error: ``False`` returns the report even with errors (the tools print it themselves).
        log: log the problems (warnings and errors) and a summary line when returning.

    Returns:
        The :class:`DataCheckReport` (warnings included) when there is no error or ``raise_on_error`` is False.

    Raises:
        DataError: a ``SystemExit`` (status 1, no traceback) whose message lists every problem.
        DataCheckFailed: the same, as an ordinary exception, with ``debug``.
    """
    if preset is not None:
        preset_info(preset)  # an unknown preset is a configuration error: ValueError naming it
    report = DataCheckReport()
    cache = StatsCache(cache_dir)
    causes: list[BaseException] = []
    roi = _as_tuple(roi_size, spatial_dims)
    target_spacing = _as_tuple(spacing, spatial_dims)
    lists = [("training", list(data or []))]
    if validation is not None:
        lists.append(("validation", list(validation)))
    if not lists[0][1]:
        report.error("training list", "is empty: no volume to train on")
    image_paths: dict[str, set[str]] = {"training": set(), "validation": set()}
    for name, entries in lists:
        for index, entry in enumerate(entries):
            where = f"{name} entry {index}"
            if isinstance(entry, (str, os.PathLike)):
                entry = {image_key: os.fspath(entry)}
            if not isinstance(entry, Mapping) or not _paths(entry.get(image_key)):
                keys = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
                report.error(where, f"has no {image_key!r} path (keys: {keys})")
                continue
            paths = _paths(entry[image_key])
            images = []
            for path in paths:
                image_paths[name].add(path)
                stats = _read(report, cache, path, "image", causes)
                if stats is not None:
                    images.append(stats)
                    per_image = in_channels if len(paths) == 1 else None
                    _check_image(report, stats, spatial_dims, roi, target_spacing, orientation, preset, per_image)
            channels = sum(s.channels for s in images)
            if len(paths) > 1 and len(images) == len(paths) and channels != in_channels:
                shapes = ", ".join(f"{s.channels} x {_fmt_shape(s.spatial_shape)}" for s in images)
                report.error(
                    where, f"loads as {channels} channels from {len(paths)} files ({shapes}); "
                    f"the bundle takes in_channels={in_channels}",
                )  # fmt: skip
            if label_key is not None:
                label_paths = _paths(entry.get(label_key))
                if not label_paths:
                    report.error(where, f"has no {label_key!r} path (label_key={label_key!r})")
                for label_path in label_paths:
                    label = _read(report, cache, label_path, "label", causes)
                    if label is not None and images and not same_grid(images[0], label):
                        report.error(
                            label_path,
                            f"label map is not on the grid of its image {images[0].path} (shape "
                            f"{_fmt_shape(label.spatial_shape)} vs {_fmt_shape(images[0].spatial_shape)}, spacing "
                            f"{_fmt_shape_f(label.spacing)} vs {_fmt_shape_f(images[0].spacing)} mm, origin "
                            f"{_origin(label)} vs {_origin(images[0])} mm)",
                        )
    if validation is not None:
        if not lists[1][1]:
            report.warn("validation", "no validation volumes: validation and early stopping are off")
        for path in sorted(image_paths["validation"] & image_paths["training"]):
            report.warn(path, "is in both the training and the validation list: the validation loss is not on unseen data")
    seen: dict[str, str] = {}
    for path in sorted(image_paths["training"] | image_paths["validation"]):
        stats = report.volumes.get(path)
        if stats is None or not stats.digest:
            continue
        if stats.digest in seen:
            report.warn(path, f"has the same voxels as {seen[stats.digest]}")
        else:
            seen[stats.digest] = path
    if output_dir is not None:
        _check_output_dir(report, output_dir)
    report.cache_hits, report.cache_misses = cache.hits, cache.misses
    if report.errors and raise_on_error:
        n = len(report.errors)
        head = (
            f"Data check failed with {n} error{'s' * (n != 1)} ({len(report.warnings)} warning"
            f"{'s' * (len(report.warnings) != 1)}); nothing was trained or written. Set UNITED_SSL_DEBUG=1 for a traceback."
        )
        raise_data_error("\n".join([head, *report.lines()]), report.lines(), debug=debug, cause=causes[0] if causes else None)
    if log:  # when raising, the exit message above carries the problems
        for problem in report.errors + report.warnings:
            (logger.error if problem.level == "error" else logger.warning)(str(problem))
        logger.info(report.summary())
    return report


def _fmt_shape_f(values: Sequence[float]) -> str:
    return "x".join(f"{v:.3g}" for v in values)


def _origin(stats: VolumeStats) -> str:
    a = np.asarray(stats.affine, dtype=float)
    return "(" + ", ".join(f"{v:.1f}" for v in a[:-1, -1]) + ")"

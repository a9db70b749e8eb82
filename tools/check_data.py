"""Check a datalist (or a folder of volumes) before training: one line per problem, exit status 1 on errors.

Usage, from the repository root::

    python tools/check_data.py my_data/datalist.json
    python tools/check_data.py my_data/datalist.json --key unlabeled --roi_size "[64,64,64]" --preset ct
    python tools/check_data.py my_data/                       # datalist.json inside, else a folder scan
    python tools/check_data.py my_data/datalist.json --label_key label --key labeled   # transfer data
    python tools/check_data.py my_data/datalist.json --debug  # tracebacks instead of one-line errors

It runs the same check as the bundles run before training (:func:`common.data.check_data`): files that are
missing or unreadable, 2D or 4D images, NaN/Inf voxels, intensities that do not fit the preset, images smaller
than the crop, label maps off their image's grid, no validation list. Volume statistics are cached per file,
so a second run over a large datalist is quick.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import fire

from common.data.check import DataCheckReport, check_data
from common.data.datalist import AUTO, datalist_preset, resolve_training_data


def run_check(
    datalist: str,
    key: str = "unlabeled",
    validation_key: str | None = None,
    label_key: str | None = None,
    roi_size: Sequence[int] | int | None = None,
    spacing: Sequence[float] | float | None = None,
    orientation: str = "RAS",
    preset: str | None = None,
    spatial_dims: int = 3,
    in_channels: int = 1,
    output_dir: str | None = None,
    cache_dir: str | None = None,
    debug: bool = False,
) -> DataCheckReport:
    """Resolves the lists of a datalist (or folder) and checks them; see :func:`main` for the arguments.

    Raises:
        DataError: (a ``SystemExit``) when the datalist or folder cannot be resolved, or, with ``debug``, on
            any error (as ``DataCheckFailed``, with a traceback).
    """
    if os.path.isdir(datalist):
        dataset_dir, source = datalist, AUTO
    else:
        dataset_dir, source = os.path.dirname(os.path.abspath(datalist)), datalist
    entries = resolve_training_data(dataset_dir, source, key, debug=debug)
    if validation_key is None:
        validation_key = "" if label_key else "validation"
    validation = None
    if validation_key:
        validation = resolve_training_data(dataset_dir, source, validation_key, required=False, debug=debug)
    preset = preset or datalist_preset(source, "ct", dataset_dir)
    return check_data(
        entries, spatial_dims=spatial_dims, in_channels=in_channels, roi_size=roi_size, spacing=spacing,
        orientation=orientation, preset=preset, output_dir=output_dir, validation=validation,
        label_key=label_key, cache_dir=cache_dir, debug=debug, raise_on_error=debug, log=False,
    )  # fmt: skip


def main(
    datalist: str,
    key: str = "unlabeled",
    validation_key: str | None = None,
    label_key: str | None = None,
    roi_size: Sequence[int] | int | None = None,
    spacing: Sequence[float] | float | None = None,
    orientation: str = "RAS",
    preset: str | None = None,
    spatial_dims: int = 3,
    in_channels: int = 1,
    output_dir: str | None = None,
    cache_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Checks the volumes of a datalist; prints one line per problem and exits with status 1 on any error.

    Args:
        datalist: a datalist JSON, or a folder (its ``datalist.json`` if present, else the images found in it).
        key: the list to check as training data.
        validation_key: the validation list (may be absent: then a warning says validation is off); default
            ``validation`` for pretraining data and none with ``label_key``; ``""`` skips it.
        label_key: for transfer data, the label key: label maps must load and share their image's grid.
        roi_size: crop size of the bundle; smaller images are reported as padded.
        spacing: target voxel size in mm the bundle resamples to (default: the native grid).
        orientation: axis codes the bundle reorients to (``roi_size`` refers to them).
        preset: ``ct`` or ``mri``; default: the datalist's ``intensity_preset``, else ``ct``.
        spatial_dims: spatial dimensions the bundle needs.
        in_channels: channels the bundle takes.
        output_dir: a folder the run would write to (checked for being writable).
        cache_dir: statistics cache folder (default ``$UNITED_SSL_CHECK_CACHE`` or ``~/.cache/united-ssl/volume-stats``).
        debug: raise with a traceback instead of printing one-line errors.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = run_check(
        datalist, key=key, validation_key=validation_key, label_key=label_key, roi_size=roi_size, spacing=spacing,
        orientation=orientation, preset=preset, spatial_dims=spatial_dims, in_channels=in_channels,
        output_dir=output_dir, cache_dir=cache_dir, debug=debug,
    )  # fmt: skip
    for line in report.lines():
        print(line)
    print(report.summary())
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    fire.Fire(main)

"""Turn a folder of volumes into an MSD-style datalist, and print what was found.

Usage, from the repository root::

    python tools/make_datalist.py /data/ct                       # writes /data/ct/datalist.json
    python tools/make_datalist.py /data/ct --output runs/ct.json --validation_fraction 0.1 --seed 1
    python tools/make_datalist.py /data/ct --skip_unreadable     # list unreadable files, write the rest
    python tools/pretrain.py bundles/rotation --dataset_dir /data/ct   # bundles pick up <dataset_dir>/datalist.json

The folder is scanned recursively for NIfTI, NRRD and MHA files and DICOM series folders (read with ITK, as
MONAI's ``LoadImage`` reads them). The table lists every volume with its shape, spacing, orientation,
intensity range and modality guess (CT in Hounsfield units or not). Label maps found beside the images
(``*_label*``, ``*_seg*``, ``*mask*``, ``labels/`` folders, integer volumes with few values) are paired
with their images by name into ``labeled`` and kept out of the pretraining lists; duplicates (equal voxels)
and unreadable files are listed and left out. The datalist records the intensity preset
(``"intensity_preset"``), which bundles use unless ``--intensity_preset`` overrides it.

Exit status 1, with nothing written, when a file is unreadable (unless ``--skip_unreadable``), no image is
found, or the datalist exists (unless ``--overwrite``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import fire

from common.data.datalist import write_datalist
from common.data.survey import build_datalist, summary_lines, survey_folder


def main(
    folder: str,
    output: str | None = None,
    validation_fraction: float = 0.2,
    skip_unreadable: bool = False,
    seed: int = 0,
    preset: str | None = None,
    overwrite: bool = False,
    cache_dir: str | None = None,
) -> None:
    """Scans ``folder``, prints the summary table and writes the datalist.

    Args:
        folder: the folder of volumes (nested folders are scanned).
        output: the datalist to write; default ``<folder>/datalist.json`` (which bundles find with
            ``--dataset_dir <folder>``). Paths inside are relative to its folder.
        validation_fraction: share of the images held out as ``validation`` (0 for none), chosen with ``seed``.
        skip_unreadable: write the datalist even if some files cannot be read (they are listed, not used).
        seed: seed of the validation split.
        preset: ``ct`` or ``mri``; default: guessed from the intensities (CT when most images are in HU).
        overwrite: replace an existing datalist.
        cache_dir: statistics cache folder (default ``$UNITED_SSL_CHECK_CACHE`` or ``~/.cache/united-ssl/volume-stats``).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = Path(folder).expanduser()
    if not root.is_dir():
        sys.exit(f"error: {root}: {'not a folder' if root.exists() else 'folder not found'}")
    out = Path(output).expanduser() if output else root / "datalist.json"
    if out.exists() and not overwrite:
        sys.exit(f"error: {out}: exists; pass --overwrite to replace it, or --output another file")
    survey = survey_folder(root, cache_dir=cache_dir)
    if not survey.files:
        sys.exit(f"error: {root}: no volumes found (NIfTI, NRRD, MHA files or DICOM series folders)")
    datalist = build_datalist(survey, out, validation_fraction=validation_fraction, seed=seed, preset=preset)
    for line in summary_lines(survey, datalist):
        print(line)
    if survey.unreadable and not skip_unreadable:
        sys.exit(
            f"error: {len(survey.unreadable)} unreadable file(s) (listed above); nothing written. Fix or remove "
            f"them, or pass --skip_unreadable to leave them out."
        )
    if not datalist["unlabeled"]:
        sys.exit(f"error: {root}: no image for the pretraining list 'unlabeled' (see the table); nothing written.")
    write_datalist(datalist, out)
    print(f"Datalist written: {out} (intensity_preset {datalist['intensity_preset']!r})")
    if os.path.normpath(out.parent) == os.path.normpath(root) and out.name == "datalist.json":
        print(f"Use it with: --dataset_dir {root}")
    else:
        print(f"Use it with: --datalist {out}")


if __name__ == "__main__":
    fire.Fire(main)

"""NIfTI and file input/output that never leaves a half-written file at its destination.

Every write goes to a temporary file beside the destination, renamed into place only once it is
complete (see :func:`common.data.atomic.atomic_output`).
"""

from __future__ import annotations

import os
import shutil

import nibabel as nib
import numpy as np

from common.data.atomic import atomic_output


def save_nifti(array: np.ndarray, affine: np.ndarray, dest: str | os.PathLike) -> None:
    """Writes a NIfTI file atomically with both qform and sform set to ``affine`` (code 1, scanner).

    Args:
        array: the voxels, written in their own dtype.
        affine: the 4x4 voxel-to-world (RAS, mm) matrix.
        dest: the file to write; its ending (``.nii`` or ``.nii.gz``) chooses the format.
    """
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_output(dest) as tmp:
        nib.save(img, str(tmp))


def load_nifti(path: str | os.PathLike) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Loads a NIfTI file and its voxels in the stored dtype (no scaling to float).

    Args:
        path: the ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(image, voxels)``.
    """
    img = nib.load(str(path))
    return img, np.asanyarray(img.dataobj)


def copy_file_atomic(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copies a file's bytes so that ``dest`` is either untouched or the complete copy.

    Args:
        src: the file to copy.
        dest: the destination file (its folder is created if needed).
    """
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


__all__ = ["copy_file_atomic", "load_nifti", "save_nifti"]

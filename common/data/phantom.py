"""A small generated CT phantom and a phantom dataset, for unit tests that must not touch the network.

The phantom is a body ellipsoid of soft tissue in air with a few organ-like blobs, a spine-like
bone column and Gaussian noise, in Hounsfield-like units. It is a fallback for tests only: the
demo and the real-data tests use the CT volumes prepared by :mod:`common.data.sample_data`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.data.datalist import write_datalist
from common.data.nifti_io import save_nifti

PHANTOM_VERSION = "1.0"
PHANTOM_SPACING_MM = 3.0
#: Label values of the phantom's label map.
PHANTOM_LABELS: dict[str, str] = {"0": "background", "1": "organ", "2": "bone"}

AIR_HU = -1000.0
BODY_HU = 20.0
BONE_HU = 700.0


def _ellipsoid(grid: tuple[np.ndarray, ...], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Returns the boolean mask of an axis-aligned ellipsoid on a voxel grid."""
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def make_ct_phantom_with_labels(
    shape: tuple[int, int, int] = (48, 48, 40), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generates a CT-like phantom and its label map.

    Args:
        shape: volume shape (x, y, z) in voxels.
        seed: random seed; the same seed gives the same volume.

    Returns:
        ``(image, label)``: the image in HU-like float32 values (air -1000, body about 0-40, organs
        about 40-120, bone about 700, noise sigma 12), and a uint8 label map using
        :data:`PHANTOM_LABELS` (1 organ, 2 bone).
    """
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes of at least 8 voxels, got {shape}.")
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=float)
    grid = np.meshgrid(*(np.arange(s, dtype=float) for s in shape), indexing="ij")
    center = size / 2 + rng.uniform(-0.04, 0.04, 3) * size

    image = np.full(shape, AIR_HU, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    body_radii = size * np.array([0.42, 0.33, 0.6]) * rng.uniform(0.9, 1.0, 3)
    body = _ellipsoid(grid, center, body_radii)
    image[body] = BODY_HU + rng.uniform(-15.0, 15.0)

    for _ in range(int(rng.integers(3, 6))):
        offset = rng.uniform(-0.45, 0.45, 3) * body_radii
        radii = body_radii * rng.uniform(0.15, 0.3, 3)
        organ = _ellipsoid(grid, center + offset, radii) & body
        image[organ] = rng.uniform(40.0, 120.0)
        label[organ] = 1

    spine_center = center + np.array([0.0, -0.6, 0.0]) * body_radii
    spine_radii = np.array([body_radii[0] * 0.12, body_radii[1] * 0.15, size[2]])
    bone = _ellipsoid(grid, spine_center, spine_radii) & body
    image[bone] = BONE_HU + rng.uniform(-50.0, 50.0)
    label[bone] = 2

    image += rng.normal(0.0, 12.0, shape).astype(np.float32)
    np.clip(image, -1024.0, 3071.0, out=image)
    return image, label


def make_ct_phantom(shape: tuple[int, int, int] = (48, 48, 40), seed: int = 0) -> np.ndarray:
    """Generates a CT-like phantom volume in HU-like values (see :func:`make_ct_phantom_with_labels`).

    Args:
        shape: volume shape (x, y, z) in voxels.
        seed: random seed; the same seed gives the same volume.

    Returns:
        A float32 array of ``shape``.
    """
    return make_ct_phantom_with_labels(shape, seed)[0]


def phantom_affine(shape: tuple[int, int, int], spacing: float = PHANTOM_SPACING_MM) -> np.ndarray:
    """Returns an RAS affine with isotropic ``spacing`` that centres the volume on the origin."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (np.asarray(shape, dtype=float) - 1) / 2
    return affine


def write_phantom_dataset(
    out_dir: str | os.PathLike, num_volumes: int = 3, shape: tuple[int, int, int] = (48, 48, 40), seed: int = 0
) -> str:
    """Writes phantom NIfTI volumes, their label maps and a datalist in the sample data's format.

    Volume ``i`` uses seed ``seed + i``. The last volume is the ``validation`` volume and the others
    are ``unlabeled`` (with a single volume it serves both, as the description says); every volume is
    also ``labeled``. ``unlabeled_mr`` and ``labeled_mr`` are empty.

    Args:
        out_dir: destination folder (created if needed).
        num_volumes: number of volumes, at least 1.
        shape: volume shape (x, y, z) in voxels.
        seed: seed of the first volume.

    Returns:
        The path of the written ``datalist.json``.
    """
    if num_volumes < 1:
        raise ValueError(f"num_volumes must be at least 1, got {num_volumes}.")
    out = Path(out_dir)
    affine = phantom_affine(shape)
    entries = []
    for i in range(num_volumes):
        image, label = make_ct_phantom_with_labels(shape, seed + i)
        image_rel, label_rel = f"images/phantom_{i:03d}.nii.gz", f"labels/phantom_{i:03d}.nii.gz"
        save_nifti(image, affine, out / image_rel)
        save_nifti(label, affine, out / label_rel)
        source = {
            "package": "common.data.phantom", "version": PHANTOM_VERSION, "license": "Apache-2.0",
            "member": f"make_ct_phantom(shape={list(shape)}, seed={seed + i})", "note": "generated phantom",
        }  # fmt: skip
        entries.append((image_rel, label_rel, f"phantom-{i:03d}", source))

    def image_entry(i: int) -> dict:
        image_rel, _, subject, source = entries[i]
        return {"image": image_rel, "subject": subject, "source": source}

    validation = num_volumes - 1
    unlabeled = list(range(num_volumes - 1)) or [0]
    ssl_split = {i: "unlabeled" for i in unlabeled}
    ssl_split.setdefault(validation, "validation")
    overlap = "" if num_volumes > 1 else " With one volume, 'validation' reuses the 'unlabeled' volume."
    datalist = {
        "name": "united-ssl-phantom-ct",
        "description": (
            f"{num_volumes} generated CT phantoms ({'x'.join(map(str, shape))} voxels, {PHANTOM_SPACING_MM} mm) "
            f"for unit tests; same format as the sample CT datalist.{overlap} Paths are relative to this file's folder."
        ),
        "tool_version": PHANTOM_VERSION,
        "modality": {"unlabeled": "CT", "validation": "CT", "unlabeled_mr": "MR", "labeled": "CT", "labeled_mr": "MR"},
        "sources": [
            {"package": "common.data.phantom", "version": PHANTOM_VERSION, "license": "Apache-2.0",
             "note": "Synthetic volumes; labels are the generator's own organ and bone masks."}
        ],  # fmt: skip
        "subjects": {entries[i][2]: f"phantom with seed {seed + i}" for i in range(num_volumes)},
        "label_sets": {"phantom": PHANTOM_LABELS},
        "unlabeled": [image_entry(i) for i in unlabeled],
        "validation": [image_entry(validation)],
        "unlabeled_mr": [],
        "labeled": [
            {
                "image": image_rel, "label": label_rel, "subject": subject, "ssl_split": ssl_split[i],
                "num_classes": len(PHANTOM_LABELS), "label_set": "phantom",
                "label_note": "Generator masks: 1 organ-like blobs, 2 bone.",
                "source": {**source, "label_member": "label of " + source["member"]},
            }  # fmt: skip
            for i, (image_rel, label_rel, subject, source) in enumerate(entries)
        ],
        "labeled_mr": [],
    }
    return write_datalist(datalist, out / "datalist.json")

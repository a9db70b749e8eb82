"""2D sample data: axial slices of the real sample volumes, with their label maps, and a datalist.

2D methods (DiRA, CVPR 2022, pretrains on chest X-rays) need 2D images. No chest X-ray ships with an installable
package here, so :func:`write_slice_dataset` cuts the prepared 3D sample volumes (``tools/sample_data.py``) into
axial slices: each volume is reoriented to RAS, every slice ``gap_mm`` apart (at least one voxel) whose body covers
at least ``min_body_fraction`` of the slice is written as a 2D NIfTI (intensities unchanged, e.g. HU for CT; the
affine keeps the slice's in-plane spacing and its position), and label maps are cut at the same indices. The
datalist keeps the source's splits, so the 2D ``validation`` slices come from a subject that no ``unlabeled``
slice comes from, and ``labeled`` pairs slices with label slices for 2D transfer tasks.

Run it with ``python tools/sample_data.py --slices_2d`` (writes ``<cache>/slices_2d/datalist.json``). The folder
is rebuilt only when the source datalist or the settings changed (recorded under ``slicing``). A bundle whose
metadata names :func:`slices_for_bundle` as ``united_ssl.prepare_datalist`` gets the slices of any 3D datalist
written next to it (the test suite does this with the phantom).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from common.data.cache_location import DATALIST_NAME, default_cache_dir
from common.data.datalist import DATALIST_KEYS, read_datalist_json, write_datalist
from common.data.errors import raise_data_error
from common.data.nifti_io import save_nifti

__all__ = [
    "SLICES_FOLDER",
    "axial_slice_indices",
    "body_fraction",
    "slice_datalist",
    "slices_for_bundle",
    "write_slice_dataset",
]

logger = logging.getLogger(__name__)

#: Folder of the slices, next to the source datalist.
SLICES_FOLDER = "slices_2d"
SLICES_VERSION = "1.0"
#: CT body threshold in HU (the bundles' body mask after the CT preset: 0.25 of [-1000, 1000] = -500 HU).
CT_BODY_HU = -500.0
_HINT = "python tools/sample_data.py --slices_2d"


def axial_slice_indices(num_slices: int, slice_spacing: float, gap_mm: float) -> list[int]:
    """Indices of slices ``gap_mm`` apart (at least every slice), centred in the volume.

    Args:
        num_slices: slices along the axial axis.
        slice_spacing: their spacing in mm.
        gap_mm: wanted distance between two kept slices (``<= slice_spacing`` keeps every slice).

    Example: 100 slices of 3 mm with a 6 mm gap keep every second slice, starting at index 0 or 1 so that the
    kept slices sit symmetrically in the volume.
    """
    if num_slices < 1 or slice_spacing <= 0 or gap_mm < 0:
        raise ValueError(f"need num_slices >= 1, slice_spacing > 0, gap_mm >= 0; got {num_slices}, {slice_spacing}, {gap_mm}.")
    step = max(1, int(round(gap_mm / slice_spacing)))
    count = (num_slices - 1) // step + 1
    start = (num_slices - 1 - (count - 1) * step) // 2
    return list(range(start, num_slices, step))[:count]


def body_fraction(image: np.ndarray, modality: str = "CT") -> float:
    """Fraction of the pixels inside the body: above -500 HU for CT; for other modalities above 10 % of the
    slice's 0.5-99.5th percentile range (the bundles' body masks after their presets)."""
    values = np.asarray(image, dtype=np.float32)
    if values.size == 0:
        return 0.0
    if modality.upper() == "CT":
        threshold = CT_BODY_HU
    else:
        low, high = np.percentile(values, [0.5, 99.5])
        if high <= low:
            return 0.0
        threshold = low + 0.1 * (high - low)
    return float((values > threshold).mean())


def _canonical(path: Path) -> nib.Nifti1Image:
    img = nib.load(str(path))
    if len(img.shape) != 3:
        raise ValueError(f"{path}: 2D slicing needs a 3D volume, got shape {img.shape}.")
    return nib.as_closest_canonical(img)


def _slice_affine(affine: np.ndarray, index: int) -> np.ndarray:
    """The affine of axial slice ``index``: the volume's, moved to the slice's position."""
    moved = np.array(affine, dtype=float)
    moved[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, float(index)]) + affine[:3, 3]
    return moved


def _stem(rel: str) -> str:
    name = os.path.basename(rel)
    for ending in (".nii.gz", ".nii"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _complete(datalist: Path, record: dict[str, Any]) -> bool:
    if not datalist.is_file():
        return False
    try:
        data = read_datalist_json(datalist)
    except ValueError:
        return False
    if data.get("slicing") != record:
        return False
    paths = [e[k] for key in DATALIST_KEYS for e in data.get(key) or [] for k in ("image", "label") if k in e]
    return all((datalist.parent / p).is_file() for p in paths)


def write_slice_dataset(
    source_datalist: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    gap_mm: float = 6.0,
    min_body_fraction: float = 0.15,
    keys: Sequence[str] = ("unlabeled", "validation", "labeled"),
    force: bool = False,
) -> str:
    """Write axial 2D slices of a 3D datalist's volumes (and label maps) and their datalist.

    Args:
        source_datalist: an MSD-style datalist of 3D volumes (the sample data's, or the test phantom's).
        out_dir: destination folder (default: ``<source folder>/slices_2d``).
        gap_mm: distance between two kept slices of a volume (consecutive slices are near copies).
        min_body_fraction: slices whose body covers less of the slice are skipped (air above and below a scan).
        keys: the datalist lists to slice; the others are written empty.
        force: rebuild even if the folder is complete for the same source and settings.

    Returns:
        The path of the written ``datalist.json``.

    Raises:
        ValueError: a sliced list ends up empty (every slice below ``min_body_fraction``), a label map is not on
            its image's grid, or a volume is not 3D (messages name the file).
    """
    source = Path(source_datalist).expanduser().resolve()
    data = read_datalist_json(source)
    out = Path(out_dir).expanduser().resolve() if out_dir else source.parent / SLICES_FOLDER
    datalist_path = out / DATALIST_NAME
    unknown = [k for k in keys if k not in DATALIST_KEYS]
    if unknown:
        raise ValueError(f"keys {unknown} are not datalist lists (known: {list(DATALIST_KEYS)}).")
    record = {
        "version": SLICES_VERSION,
        "source_datalist": os.path.relpath(source, out),
        "source_sha256": _sha256(source),
        "axis": "axial (inferior-superior), volumes reoriented to RAS",
        "gap_mm": float(gap_mm),
        "min_body_fraction": float(min_body_fraction),
        "keys": list(keys),
    }
    if not force and _complete(datalist_path, record):
        logger.info("2D slices already prepared in %s; nothing to do.", out)
        return str(datalist_path)

    modality = data.get("modality") or {}
    written: dict[tuple[str, int], str] = {}  # (source image, index) -> slice path: each slice is written once
    chosen: dict[str, list[int]] = {}  # source image -> kept indices (the same in every list)
    lists: dict[str, list[dict]] = {k: [] for k in DATALIST_KEYS}

    def image_slices(rel: str, kind: str) -> tuple[nib.Nifti1Image, list[int]]:
        img = _canonical(source.parent / rel)
        if rel not in chosen:
            volume = np.asanyarray(img.dataobj)
            spacing = float(img.header.get_zooms()[2])
            chosen[rel] = [
                k for k in axial_slice_indices(volume.shape[2], spacing, gap_mm)
                if body_fraction(volume[:, :, k], kind) >= min_body_fraction
            ]  # fmt: skip
        return img, chosen[rel]

    for key in keys:
        for entry in data.get(key) or []:
            rel = entry["image"]
            img, indices = image_slices(rel, str(modality.get(key, "CT")))
            volume = np.asanyarray(img.dataobj)
            label_img = _canonical(source.parent / entry["label"]) if "label" in entry else None
            if label_img is not None and (label_img.shape != img.shape or not np.allclose(label_img.affine, img.affine, atol=1e-3)):
                raise ValueError(f"{entry['label']}: the label map is not on the grid of {rel} (shape {label_img.shape} vs {img.shape}).")
            labels = np.asanyarray(label_img.dataobj) if label_img is not None else None
            for k in indices:
                if (rel, k) not in written:
                    path = f"images/{_stem(rel)}_z{k:03d}.nii.gz"
                    save_nifti(np.asarray(volume[:, :, k], dtype=np.float32), _slice_affine(img.affine, k), out / path)
                    written[(rel, k)] = path
                item = {
                    "image": written[(rel, k)],
                    **{f: entry[f] for f in ("subject", "ssl_split", "num_classes", "label_set", "label_note") if f in entry},
                    "volume": os.path.relpath(source.parent / rel, out),
                    "slice_index": k,
                }
                if labels is not None:
                    label_path = f"labels/{_stem(entry['label'])}_z{k:03d}.nii.gz"
                    save_nifti(np.asarray(labels[:, :, k], dtype=np.uint8), _slice_affine(img.affine, k), out / label_path)
                    item["label"] = label_path
                if "source" in entry:
                    item["source"] = entry["source"]
                lists[key].append(item)
        if (data.get(key) or []) and not lists[key]:
            raise ValueError(
                f"{source}: no slice of the {key!r} volumes has a body fraction >= {min_body_fraction}; lower min_body_fraction."
            )
    datalist = {
        "name": f"{data.get('name', 'datalist')}-slices-2d",
        "description": (
            f"Axial 2D slices ({gap_mm:g} mm apart, body fraction >= {min_body_fraction:g}) of the volumes of "
            f"{record['source_datalist']}, written by common.data.slices; splits as in the source (no validation "
            "slice comes from a training subject). Paths are relative to this file's folder."
        ),
        "tool_version": SLICES_VERSION,
        "spatial_dims": 2,
        "slicing": record,
        **{k: data[k] for k in ("modality", "sources", "subjects", "label_sets", "intensity_preset") if k in data},
        **lists,
    }
    write_datalist(datalist, datalist_path)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in lists.items() if v)
    logger.info("2D slices written to %s (%s).", out, counts)
    return str(datalist_path)


def slice_datalist(dataset_dir: str | os.PathLike) -> str:
    """The datalist a 2D bundle reads from ``dataset_dir``: its ``datalist.json``, else ``"auto"`` (a folder scan).

    Raises:
        DataError: (a ``SystemExit`` with one message) when ``dataset_dir`` is the default sample slices folder
            and it has not been prepared: the message gives the command.
    """
    folder = Path(dataset_dir).expanduser()
    if (folder / DATALIST_NAME).is_file():
        return str(folder / DATALIST_NAME)
    default = Path(default_cache_dir()) / SLICES_FOLDER
    if folder.resolve() == default.resolve():
        message = (
            f"2D sample slices not found: {folder / DATALIST_NAME}. Prepare them from the sample CT volumes with "
            f"`{_HINT}` (it downloads the sample volumes first if needed), or pass your own 2D images with "
            "--dataset_dir FOLDER or --datalist FILE."
        )
        raise_data_error(message, [message])
    return "auto"


def slices_for_bundle(
    bundle_dir: str, overlays: Sequence[str] = (), source_datalist: str | None = None, output: str | None = None, **_: Any
) -> str:
    """Write the 2D slices a 2D bundle trains on from a 3D datalist (``united_ssl.prepare_datalist``).

    Reads ``slice_gap_mm`` and ``slice_min_body_fraction`` from the bundle's ``train.yaml`` and ``overlays``.

    Args:
        bundle_dir: the bundle folder.
        overlays: overlay names (``smoke``, ``demo``) or paths.
        source_datalist: the 3D datalist (default: the sample data's).
        output: the folder to write (default: ``<source folder>/slices_2d``).
        _: other options of the hook's callers (ignored).

    Returns:
        The 2D datalist's path.
    """
    from monai.bundle import ConfigParser

    configs = os.path.join(bundle_dir, "configs")
    files = [os.path.join(configs, "train.yaml")]
    files += [o if os.path.isfile(str(o)) else os.path.join(configs, f"{o}.yaml") for o in overlays]
    parser = ConfigParser()
    parser.read_config(files)
    source = source_datalist or os.path.join(default_cache_dir(), DATALIST_NAME)
    settings = {
        "gap_mm": float(parser.get("slice_gap_mm", 6.0)),
        "min_body_fraction": float(parser.get("slice_min_body_fraction", 0.15)),
    }
    return write_slice_dataset(source, output, **settings)

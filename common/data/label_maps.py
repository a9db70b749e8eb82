"""Telling label maps from images, and pairing label maps with their images by name.

Folders of medical images often hold segmentations beside the images (``case1_seg.nii.gz``,
``labelsTr/case1.nii.gz``, ``masks/``). A self-supervised run must not train on them, and a transfer run
wants them paired with their images. A file is taken for a label map when

* its name (without extension) contains ``_label``, ``_seg`` or ``mask``, or one of the folders between
  the scanned root and the file is named like ``labels``, ``labelsTr``, ``seg``, ``segmentations`` or
  ``masks`` (:func:`label_name_reason`); or
* it stores integers, no negative value and at most :data:`MAX_LABEL_VALUES` distinct values
  (:func:`label_values_reason`). Only the header is read for floating-point files; integer NIfTI files
  are judged on their middle slice first (a CT slice already holds hundreds of values) and read in
  full only when that slice looks like a label map.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_LABEL_VALUES",
    "label_map_reason",
    "label_name_reason",
    "label_values_reason",
    "pair_labels",
    "volume_stem",
]

#: Integer volumes with at most this many distinct values (and none negative) are taken for label maps.
#: TotalSegmentator's largest task has 118 classes; an 8-bit MR image has up to 256 values.
MAX_LABEL_VALUES = 128

_NAME = re.compile(r"_label|_seg|mask", re.IGNORECASE)
_FOLDER = re.compile(r"^(labels?|labels?t[rs]|segs?|segmentations?|masks?)$", re.IGNORECASE)
_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm")
_TOKENS = re.compile(r"[_\-.]?(labels?|segmentations?|seg|masks?)", re.IGNORECASE)
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")  # nnU-Net's image channel suffix, e.g. case1_0000


def volume_stem(path: str | os.PathLike) -> str:
    """A volume's name without its extension (``ct.nii.gz`` -> ``ct``; a DICOM folder keeps its name)."""
    name = Path(path).name
    lower = name.lower()
    for ending in _ENDINGS:
        if lower.endswith(ending):
            return name[: -len(ending)]
    return name


def label_name_reason(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str | None:
    """Why ``path``'s name marks it as a label map, or ``None``.

    Args:
        path: the file.
        root: the scanned folder; only folders below it are looked at (default: the file's own folder).
    """
    p = Path(path)
    stem = volume_stem(p)
    match = _NAME.search(stem)
    if match:
        return f"name contains {match.group(0)!r}"
    parents = p.relative_to(root).parts[:-1] if root is not None and p.is_relative_to(root) else ()
    for part in parents:
        if _FOLDER.match(part):
            return f"in a folder named {part!r}"
    return None


def _header_dtype(path: Path) -> tuple[np.dtype | None, bool]:
    """(stored dtype, True if it is a NIfTI read by nibabel); dtype ``None`` if the header is unreadable."""
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        img = nib.load(str(path))
        slope, inter = img.dataobj.slope, img.dataobj.inter
        scaled = not (slope in (1, None) or np.isnan(slope)) or not (inter in (0, None) or np.isnan(inter))
        return (np.dtype(np.float32) if scaled else img.get_data_dtype()), True
    import itk

    io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
    if io is None:
        return None, False
    io.SetFileName(str(path))
    io.ReadImageInformation()
    kind = io.GetComponentTypeAsString(io.GetComponentType())
    names = {"char": "int8", "unsigned_char": "uint8", "short": "int16", "unsigned_short": "uint16", "int": "int32",
             "unsigned_int": "uint32", "long": "int64", "unsigned_long": "uint64", "long_long": "int64",
             "unsigned_long_long": "uint64", "float": "float32", "double": "float64"}  # fmt: skip
    return (np.dtype(names[kind]) if kind in names else None), False


def _few_values(values: np.ndarray) -> tuple[bool, int, int]:
    """(looks like labels, number of distinct values, minimum) of an integer array."""
    distinct = np.unique(values)
    return bool(distinct.size <= MAX_LABEL_VALUES and distinct[0] >= 0), int(distinct.size), int(distinct[0])


def label_values_reason(path: str | os.PathLike) -> str | None:
    """Why ``path``'s voxels mark it as a label map (integers, none negative, few distinct values), or ``None``.

    Floating-point files are judged on their header alone. Integer NIfTI files are read slice first: a middle
    slice with many values or a negative one settles it as an image without reading the rest.
    Unreadable files give ``None`` (the data check reports them).
    """
    p = Path(path)
    if p.is_dir():
        return None
    try:
        dtype, is_nifti = _header_dtype(p)
        if dtype is None or not (np.issubdtype(dtype, np.integer) or dtype == bool):
            return None
        if is_nifti:
            import nibabel as nib

            img = nib.load(str(p))
            if len(img.shape) >= 3:
                middle = np.asanyarray(img.dataobj[:, :, img.shape[2] // 2])
                if middle.size and not _few_values(middle)[0]:
                    return None
            data = np.asanyarray(img.dataobj)
        else:
            import itk

            data = itk.array_view_from_image(itk.imread(str(p)))
    except Exception:  # unreadable: not for this heuristic to report
        return None
    if data.size == 0:
        return None
    few, count, _ = _few_values(data)
    return f"integer volume with {count} distinct values" if few else None


def label_map_reason(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str | None:
    """Why ``path`` looks like a label map (its name or folder, else its values), or ``None`` for an image."""
    return label_name_reason(path, root) or label_values_reason(path)


def _label_key(stem: str) -> str:
    """A label's name with the label words removed: ``case1_seg`` -> ``case1``, ``mask`` -> ``""``."""
    return _TOKENS.sub("", stem).strip("_-. ")


def _image_key(stem: str) -> str:
    return _CHANNEL_SUFFIX.sub("", stem)


def _common_parts(a: Path, b: Path) -> int:
    n = 0
    for x, y in zip(a.parts, b.parts):
        if x != y:
            break
        n += 1
    return n


def pair_labels(images: Sequence[str], labels: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs label maps with images by name; returns ``(pairs, unpaired labels)``.

    A label pairs with the image whose name (without extension and without nnU-Net's ``_0000`` channel
    suffix) equals the label's name without its label words (``case1_seg`` and ``labelsTr/case1`` both
    pair with ``case1`` or ``case1_0000``), else with the image whose name is the longest prefix of the
    label's name followed by ``_`` or ``-`` (``ct_abdomen_total_fast`` pairs with ``ct_abdomen``), else,
    for a label named only by label words (``seg.nii.gz``, ``mask.nii.gz``), with the only image of its
    folder (or of the parent of a ``labels``-like folder). Among several candidates the one sharing the
    longest folder path with the label wins; a remaining tie leaves the label unpaired.

    Args:
        images: image paths.
        labels: label map paths.

    Returns:
        ``(image, label)`` pairs in the order of ``labels``, and the labels that found no image.
    """
    image_paths = [Path(i) for i in images]
    stems = [volume_stem(i) for i in image_paths]
    pairs: list[tuple[str, str]] = []
    unpaired: list[str] = []
    for label in labels:
        lp = Path(label)
        lstem = volume_stem(lp)
        key = _label_key(lstem)
        candidates = [i for i, s in enumerate(stems) if key and (_image_key(s) == key or s == key)]
        if not candidates:
            prefixes = [i for i, s in enumerate(stems) if lstem.startswith(s + "_") or lstem.startswith(s + "-")]
            longest = max((len(stems[i]) for i in prefixes), default=0)
            candidates = [i for i in prefixes if len(stems[i]) == longest]
        if not candidates and not key:
            folders = {lp.parent, lp.parent.parent} if _FOLDER.match(lp.parent.name) else {lp.parent}
            candidates = [i for i, p in enumerate(image_paths) if p.parent in folders]
            candidates = candidates if len(candidates) == 1 else []
        if len(candidates) > 1:
            best = max(_common_parts(image_paths[i].parent, lp.parent) for i in candidates)
            candidates = [i for i in candidates if _common_parts(image_paths[i].parent, lp.parent) == best]
        if len(candidates) == 1:
            pairs.append((str(image_paths[candidates[0]]), str(label)))
        else:
            unpaired.append(str(label))
    return pairs, unpaired

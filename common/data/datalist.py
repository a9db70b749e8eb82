"""Datalists: load MSD-style JSON datalists, scan folders, and write datalists atomically.

A datalist is a JSON file in the Medical Segmentation Decathlon style. Besides descriptive top-level
fields it holds lists of entries under keys such as ``unlabeled`` (CT volumes for pretraining),
``validation`` (CT volumes for monitoring the self-supervised loss), ``unlabeled_mr`` and ``labeled``
(``{"image", "label", ...}`` pairs for transfer). Paths inside are relative to the datalist's folder,
so a prepared folder can be moved or copied to another machine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.data.atomic import atomic_output
from common.data.cache_location import DATALIST_NAME, default_cache_dir

logger = logging.getLogger(__name__)

#: Keys that every datalist written by this project contains (lists may be empty).
DATALIST_KEYS: tuple[str, ...] = ("unlabeled", "validation", "unlabeled_mr", "labeled", "labeled_mr")

#: File name endings read as single volumes by :func:`datalist_from_folder`.
VOLUME_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")

_PREPARE_HINT = "python tools/sample_data.py"


def _missing_datalist_message(path: Path) -> str:
    """Builds the error text for a datalist file that does not exist."""
    default = Path(default_cache_dir()) / DATALIST_NAME
    if path.resolve() == default.resolve():
        return (
            f"Datalist file not found: {path}. This is the default sample CT cache; prepare it with "
            f"`{_PREPARE_HINT}` (or set UNITED_SSL_DATA to a folder prepared on another machine)."
        )
    return (
        f"Datalist file not found: {path}. Check the path, pass a folder of volumes instead, or prepare "
        f"the sample CT data with `{_PREPARE_HINT} --cache_dir {path.parent}`."
    )


def read_datalist_json(datalist: str | os.PathLike) -> dict[str, Any]:
    """Reads a datalist JSON file without resolving any path.

    Args:
        datalist: path of the JSON file.

    Returns:
        The parsed JSON object.

    Raises:
        FileNotFoundError: if the file does not exist (the message says how to prepare the sample data).
        ValueError: if the file is not valid JSON or its top level is not an object.
    """
    path = Path(datalist)
    if not path.is_file():
        raise FileNotFoundError(_missing_datalist_message(path))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"Datalist {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"Datalist {path} must hold a JSON object at the top level, got {type(data).__name__}.")
    return data


def load_datalist(datalist: str | os.PathLike, key: str, base_dir: str | os.PathLike | None = None) -> list[dict]:
    """Loads one list of a datalist with paths resolved, via ``monai.data.load_decathlon_datalist``.

    Args:
        datalist: path of the MSD-style JSON datalist.
        key: the list to load, e.g. ``"unlabeled"``, ``"validation"`` or ``"labeled"``.
        base_dir: folder that relative paths are resolved against; default: the datalist's folder.

    Returns:
        The entries, each a dict whose ``image`` (and ``label``) values are absolute paths.

    Raises:
        FileNotFoundError: if the datalist file does not exist.
        KeyError: if ``key`` is not in the datalist (the message lists the keys available).
        ValueError: if the list under ``key`` is empty or not a list of objects, or the file is not JSON.
    """
    from monai.data import load_decathlon_datalist

    path = Path(datalist)
    data = read_datalist_json(path)
    if key not in data:
        lists = sorted(k for k, v in data.items() if isinstance(v, list))
        raise KeyError(f"Datalist {path} has no key {key!r}; keys holding lists: {lists}; all keys: {sorted(data)}.")
    entries = data[key]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"Datalist {path}: key {key!r} must hold a list of objects like {{'image': ...}}.")
    if not entries:
        raise ValueError(f"Datalist {path}: the list under key {key!r} is empty.")
    missing_image = [i for i, e in enumerate(entries) if "image" not in e]
    if missing_image:
        raise ValueError(f"Datalist {path}: entries {missing_image} under key {key!r} have no 'image'.")
    return load_decathlon_datalist(path, is_segmentation=True, data_list_key=key, base_dir=base_dir)


def _has_dicom_marker(path: Path) -> bool:
    """Tells whether a file carries the ``DICM`` marker that follows the 128-byte DICOM preamble."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _is_dicom_folder(folder: Path, probe: int = 3) -> bool:
    """Tells whether a folder directly holds DICOM files (``.dcm`` names, or the marker in a few files)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if any(p.name.lower().endswith(".dcm") for p in files):
        return True
    return any(_has_dicom_marker(p) for p in files[:probe])


def datalist_from_folder(folder: str | os.PathLike, extensions: Sequence[str] = VOLUME_EXTENSIONS) -> list[dict]:
    """Lists the volumes below a folder as datalist entries.

    The folder is scanned recursively (hidden files and folders are skipped). Files whose names end
    with one of ``extensions`` become one entry each. A folder that directly holds DICOM files (``.dcm``
    names, or files carrying the ``DICM`` marker) becomes one entry with the folder path, which MONAI's
    ``LoadImage`` reads as a series with ``ITKReader``; such a folder is not scanned further (this
    includes ``folder`` itself). Label maps are not told apart from images: point it at images only.

    Args:
        folder: the folder to scan.
        extensions: file name endings to include (case-insensitive).

    Returns:
        Entries ``{"image": absolute_path}`` sorted by path.

    Raises:
        FileNotFoundError: if ``folder`` does not exist or holds no volume.
        NotADirectoryError: if ``folder`` is a file.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Data folder not found: {root}.")
    if not root.is_dir():
        raise NotADirectoryError(f"Expected a folder of volumes, got a file: {root}.")
    endings = tuple(e.lower() for e in extensions)
    found: list[str] = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if _is_dicom_folder(here):
            found.append(str(here.resolve()))
            dirs[:] = []
            continue
        for name in files:
            if not name.startswith(".") and name.lower().endswith(endings):
                found.append(str((here / name).resolve()))
    if not found:
        raise FileNotFoundError(
            f"No volumes found in {root} (looked for files ending in {list(endings)} and DICOM series folders). "
            f"Point dataset_dir at a folder of CT/MRI volumes, or pass a datalist JSON "
            f"(prepare the sample CT data with `{_PREPARE_HINT}`)."
        )
    return [{"image": p} for p in sorted(found)]


def resolve_training_data(
    dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None, key: str, required: bool = True
) -> list[dict]:
    """Returns the training entries of a bundle: from the datalist if it exists, else from a folder scan.

    Bundles call this from their configs, e.g.
    ``$common.data.resolve_training_data(@dataset_dir, @datalist, 'unlabeled')``.

    Args:
        dataset_dir: folder scanned for volumes when no datalist file is available.
        datalist: path of a datalist JSON, or ``None``/``""`` to scan ``dataset_dir``.
        key: the datalist list to load, e.g. ``"unlabeled"``.
        required: when ``False`` (optional lists such as ``validation``), a datalist without ``key``, an empty
            list, or a folder scan (which has no splits) give ``[]`` instead of an error.

    Returns:
        Entries with absolute paths.

    Raises:
        FileNotFoundError: if neither the datalist nor any volume in ``dataset_dir`` is found.
        KeyError: if the datalist lacks ``key``.
        ValueError: if the datalist's list under ``key`` is empty.
    """
    if datalist and Path(datalist).is_file():
        if not required and not read_datalist_json(datalist).get(key):
            return []
        return load_datalist(datalist, key)
    if not required:
        return []
    if datalist:
        logger.warning("Datalist %s not found; scanning folder %s for volumes instead.", datalist, dataset_dir)
    try:
        return datalist_from_folder(dataset_dir)
    except (FileNotFoundError, NotADirectoryError) as e:
        if datalist:
            raise FileNotFoundError(f"{_missing_datalist_message(Path(datalist))} Scanning dataset_dir failed too: {e}") from e
        raise


def write_datalist(data: dict[str, Any], path: str | os.PathLike) -> str:
    """Writes a datalist JSON atomically (temporary file, then rename).

    Args:
        data: the datalist; must contain every key of :data:`DATALIST_KEYS` with a list value.
        path: the destination file.

    Returns:
        The destination path as a string.

    Raises:
        ValueError: if a required key is missing or does not hold a list.
    """
    bad = [k for k in DATALIST_KEYS if not isinstance(data.get(k), list)]
    if bad:
        raise ValueError(f"Datalist for {path} lacks list values for keys {bad} (required: {list(DATALIST_KEYS)}).")
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    return str(path)

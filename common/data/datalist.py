"""Datalists: load MSD-style JSON datalists, scan folders, and write datalists atomically.

A datalist is a JSON file in the Medical Segmentation Decathlon style. Besides descriptive top-level
fields it holds lists of entries under keys such as ``unlabeled`` (CT volumes for pretraining),
``validation`` (CT volumes for monitoring the self-supervised loss), ``unlabeled_mr`` and ``labeled``
(``{"image", "label", ...}`` pairs for transfer). Paths inside are relative to the datalist's folder,
so a prepared folder can be moved or copied to another machine. ``tools/make_datalist.py`` writes one for
a folder of the user's volumes and records the intensity preset (:func:`datalist_preset`).

Bundles resolve their data with :func:`resolve_training_data`, strictly: ``datalist: auto`` (the default)
means ``<dataset_dir>/datalist.json`` if it exists, else a scan of ``dataset_dir`` that skips label maps;
an explicit datalist or a ``dataset_dir`` that does not exist stops the run with the path named.
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

#: Value of a bundle's ``datalist`` id meaning "``<dataset_dir>/datalist.json`` if it exists, else scan
#: ``dataset_dir``". Any other non-empty value is a datalist path that must exist.
AUTO = "auto"

_PREPARE_HINT = "python tools/sample_data.py"
_MAKE_HINT = "python tools/make_datalist.py FOLDER"


def _is_default_cache(folder: Path) -> bool:
    """Tells whether ``folder`` is the default sample data cache (``$UNITED_SSL_DATA`` or ``.cache/sample_data``)."""
    try:
        return folder.expanduser().resolve() == Path(default_cache_dir()).resolve()
    except OSError:
        return False


def _missing_datalist_message(path: Path) -> str:
    """Builds the error text for a datalist file that does not exist.

    Only the default sample cache is pointed at the sample data tool: a user's own folder is never told
    to receive the sample data.
    """
    if path.name == DATALIST_NAME and _is_default_cache(path.parent):
        return (
            f"Datalist file not found: {path}. This is the default sample CT cache; prepare it with "
            f"`{_PREPARE_HINT}` (or set UNITED_SSL_DATA to a folder prepared on another machine)."
        )
    return (
        f"Datalist file not found: {path}. Check the path given as datalist, or write a datalist for a "
        f"folder of volumes with `{_MAKE_HINT}`."
    )


def _missing_folder_message(folder: Path) -> str:
    """Builds the error text for a ``dataset_dir`` that does not exist."""
    if _is_default_cache(folder):
        return (
            f"Data folder not found: {folder}. This is the default sample CT cache; prepare it with "
            f"`{_PREPARE_HINT}`, or pass your own data with --dataset_dir FOLDER or --datalist FILE."
        )
    return f"Data folder not found: {folder} (dataset_dir). Check the path."


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


def find_volumes(folder: str | os.PathLike, extensions: Sequence[str] = VOLUME_EXTENSIONS) -> list[str]:
    """Lists every volume below a folder: files with a volume ending, and DICOM series folders.

    The folder is scanned recursively (hidden files and folders are skipped). Files whose names end
    with one of ``extensions`` count one each. A folder that directly holds DICOM files (``.dcm`` names,
    or files carrying the ``DICM`` marker) counts once, as the folder path, which MONAI's ``LoadImage``
    reads as a series with ``ITKReader``; such a folder is not scanned further (this includes ``folder``
    itself). Label maps are included: see :func:`datalist_from_folder`.

    Args:
        folder: the folder to scan.
        extensions: file name endings to include (case-insensitive).

    Returns:
        Absolute paths sorted.

    Raises:
        FileNotFoundError: if ``folder`` does not exist.
        NotADirectoryError: if ``folder`` is a file.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(_missing_folder_message(root))
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
    return sorted(found)


def datalist_from_folder(
    folder: str | os.PathLike, extensions: Sequence[str] = VOLUME_EXTENSIONS, skip_label_maps: bool = True
) -> list[dict]:
    """Lists the images below a folder as datalist entries, leaving out files that look like label maps.

    Volumes are found by :func:`find_volumes`. With ``skip_label_maps``, files that look like label maps
    (:func:`common.data.label_maps.label_map_reason`: names with ``_label``, ``_seg`` or ``mask``,
    ``labels``-like folders, integer volumes with few distinct values) are left out, and a warning lists
    each with its reason.

    Args:
        folder: the folder to scan.
        extensions: file name endings to include (case-insensitive).
        skip_label_maps: leave out files that look like label maps.

    Returns:
        Entries ``{"image": absolute_path}`` sorted by path.

    Raises:
        FileNotFoundError: if ``folder`` does not exist or holds no image.
        NotADirectoryError: if ``folder`` is a file.
    """
    from common.data.label_maps import label_map_reason

    root = Path(folder).expanduser()
    found = find_volumes(root, extensions)
    skipped: list[str] = []
    images: list[str] = []
    for path in found:
        reason = label_map_reason(path, root.resolve()) if skip_label_maps else None
        if reason:
            skipped.append(f"{path} ({reason})")
        else:
            images.append(path)
    if skipped:
        logger.warning(
            "Folder scan of %s skipped %d file(s) that look like label maps: %s", root, len(skipped), "; ".join(skipped)
        )
    if not images:
        what = f" ({len(skipped)} label map(s) skipped)" if skipped else ""
        raise FileNotFoundError(
            f"No images found in {root}{what} (looked for files ending in {[e.lower() for e in extensions]} and "
            f"DICOM series folders). Point dataset_dir at a folder of CT/MRI volumes, or pass a datalist JSON "
            f"(`{_MAKE_HINT}` writes one)."
        )
    return [{"image": p} for p in images]


def locate_datalist(dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None) -> Path | None:
    """The datalist file a bundle uses, or ``None`` when ``dataset_dir`` is to be scanned.

    Args:
        dataset_dir: the bundle's data folder.
        datalist: :data:`AUTO` (``<dataset_dir>/datalist.json`` if it exists, else a scan), ``None``/``""``
            (always a scan) or a path, which must exist.

    Raises:
        FileNotFoundError: for an explicit datalist path that does not exist, or a ``dataset_dir`` that
            does not exist when it is needed (the message never suggests putting the sample data into a
            user's own folder).
        IsADirectoryError: for a datalist path that is a folder.
        NotADirectoryError: for a ``dataset_dir`` that is a file.
    """
    if datalist and str(datalist).strip().lower() != AUTO:
        path = Path(datalist).expanduser()
        if path.is_dir():
            raise IsADirectoryError(
                f"datalist must be a JSON file, got a folder: {path}. To scan a folder, pass it as dataset_dir "
                f"(with datalist auto)."
            )
        if not path.is_file():
            raise FileNotFoundError(_missing_datalist_message(path))
        return path
    folder = Path(dataset_dir).expanduser()
    if not folder.is_dir():
        if folder.exists():
            raise NotADirectoryError(f"dataset_dir must be a folder of volumes, got a file: {folder}.")
        raise FileNotFoundError(_missing_folder_message(folder))
    if datalist and (folder / DATALIST_NAME).is_file():
        return folder / DATALIST_NAME
    return None


def resolve_training_data(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None,
    key: str,
    required: bool = True,
    debug: bool | None = None,
) -> list[dict]:
    """Returns a bundle's entries for one datalist key, from a datalist or a folder scan, strictly.

    Bundles call this from their configs, e.g.
    ``$common.data.resolve_training_data(@dataset_dir, @datalist, 'unlabeled')``. Resolution never falls
    back silently: an explicit datalist that does not exist, a missing ``dataset_dir``, a datalist
    without ``key`` or an empty list stop the run with a message naming the file, folder or key.

    Args:
        dataset_dir: the bundle's data folder.
        datalist: :data:`AUTO` (``"auto"``: ``<dataset_dir>/datalist.json`` if it exists, else scan
            ``dataset_dir``), ``None``/``""`` (scan ``dataset_dir``) or the path of a datalist JSON, which
            must exist.
        key: the datalist list to load, e.g. ``"unlabeled"``.
        required: when ``False`` (optional lists such as ``validation``), a datalist without ``key``, an empty
            list, or a folder scan (which has no splits) give ``[]``.
        debug: raise ordinary exceptions with tracebacks; ``None`` reads ``UNITED_SSL_DEBUG``.

    Returns:
        Entries with absolute paths.

    Raises:
        DataError: (a ``SystemExit``: one message, exit status 1, no traceback) for any of the problems
            above; with ``debug`` the original ``FileNotFoundError``, ``IsADirectoryError``,
            ``NotADirectoryError``, ``KeyError`` or ``ValueError`` instead.
    """
    from common.data.errors import debug_requested, raise_data_error

    try:
        path = locate_datalist(dataset_dir, datalist)
        if path is not None:
            if not required and not read_datalist_json(path).get(key):
                return []
            return load_datalist(path, key)
        if not required:
            return []
        return datalist_from_folder(dataset_dir)
    except (OSError, KeyError, ValueError) as e:  # OSError: not found, a folder or file in the wrong place, no access
        if debug_requested(debug):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise_data_error(str(message), [str(message)], debug=False, cause=e)
        raise  # unreachable: raise_data_error always raises


def datalist_preset(datalist: str | os.PathLike | None, default: str, dataset_dir: str | os.PathLike | None = None) -> str:
    """The intensity preset a datalist records (top-level ``"intensity_preset"``), else ``default``.

    ``tools/make_datalist.py`` records the preset it guessed from the intensities. Bundles use it with
    ``intensity_preset: "$common.data.datalist_preset(@datalist, 'ct', @dataset_dir)"``; an explicit
    ``--intensity_preset`` still overrides it.

    Args:
        datalist: a datalist path, :data:`AUTO` (then ``dataset_dir`` is looked in) or ``None``.
        default: the preset when there is no datalist or it records none.
        dataset_dir: the folder :data:`AUTO` looks in.

    Returns:
        The preset name.

    Raises:
        DataError: if the datalist records a preset that does not exist (naming the file and the value).
    """
    from common.data.errors import raise_data_error
    from common.data.presets import PRESETS

    if not datalist:
        return default
    if str(datalist).strip().lower() == AUTO:
        if dataset_dir is None:
            return default
        path = Path(dataset_dir).expanduser() / DATALIST_NAME
    else:
        path = Path(datalist).expanduser()
    if not path.is_file():
        return default  # resolve_training_data reports a missing file
    try:
        value = read_datalist_json(path).get("intensity_preset", default)
    except ValueError:
        return default  # resolve_training_data reports the bad JSON
    if value not in PRESETS:
        message = f"Datalist {path}: intensity_preset {value!r} is not one of {sorted(PRESETS)}."
        raise_data_error(message, [message])
    return str(value)


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

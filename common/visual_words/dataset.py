"""The visual-word dataset: an MSD-style datalist that the TransVW bundle trains on, and its checks.

``tools/discover_visual_words.py`` writes it next to the source datalist. It holds every list of the source
datalist unchanged (so inference and transfer keep their ``validation`` and ``labeled`` lists) plus:

* ``visual_words``: the training volumes, one entry each::

      {"image": "images/a.nii.gz", "source_image": "images/a.nii.gz", "shape": [X, Y, Z],
       "visual_words": [{"label": 3, "crop": 0, "center": [x, y, z], "size": [sx, sy, sz]}, ...]}

  every word an instance crop: its class id, which of the instance's crops it is (0: the base crop of ``roi_size``,
  1...: the rescaled multi-resolution crops), its centre and size in voxels of the grid the bundle's load transforms
  produce (``shape``). One entry per volume rather than per crop, so the bundle's dataset loads and
  caches each volume once however many words it holds; ``source_image`` names the volume in errors after
  ``image`` has been replaced by the loaded array (not ``image_path``: MONAI's ``Spacingd`` takes every key that
  starts with ``image_`` for a metadata dict);
* ``visual_words_validation``: the held-out volumes, in the same form (their words are the held-out instances);
* ``visual_words_info``: the number of classes, the load settings that define the grid (``space``), the discovery
  settings, and per class its reference volume, its coordinate relative to the body box and its instance volumes.

Paths are relative to the file's folder, like every datalist of this project.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.data.atomic import atomic_output
from common.data.errors import raise_data_error

__all__ = [
    "FORMAT_VERSION",
    "HELDOUT_KEY",
    "INFO_KEY",
    "TRAIN_KEY",
    "check_visual_word_datalist",
    "class_centres",
    "read_visual_word_info",
    "rebase_entries",
    "require_visual_words",
    "visual_word_datalist",
    "write_json",
]

TRAIN_KEY = "visual_words"
HELDOUT_KEY = "visual_words_validation"
INFO_KEY = "visual_words_info"
FORMAT_VERSION = "1.0"
#: Load settings that define the grid the words' voxels refer to.
SPACE_KEYS = ("orientation", "spacing", "intensity_preset", "foreground_threshold", "roi_size")

_DISCOVER = "python tools/discover_visual_words.py {bundle}"


def _relative(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``path`` relative to ``folder`` (POSIX separators), or absolute when no relative path exists."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()
    except ValueError:  # another drive
        return os.path.abspath(path)


def rebase_entries(entries: list[Any], from_dir: str | os.PathLike, to_dir: str | os.PathLike) -> list[Any]:
    """Copies of datalist entries whose relative ``image``/``label`` paths are re-expressed from ``to_dir``."""
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("image", "label"):
                value = entry.get(key)
                if isinstance(value, str) and not os.path.isabs(value):
                    entry[key] = _relative(os.path.join(from_dir, value), to_dir)
        out.append(entry)
    return out


def _volume_entry(image: str, shape: Sequence[int], words: list[dict[str, Any]], folder: str) -> dict[str, Any]:
    name = _relative(image, folder)
    return {"image": name, "source_image": name, "shape": [int(s) for s in shape], "visual_words": words}


def visual_word_datalist(
    source: Mapping[str, Any],
    source_path: str | os.PathLike,
    output_path: str | os.PathLike,
    result: Any,
    space: Mapping[str, Any],
    source_keys: tuple[str, str] = ("unlabeled", "validation"),
) -> dict[str, Any]:
    """Build the visual-word datalist from a discovery result.

    Args:
        source: the source datalist (as read, paths relative to its folder).
        source_path: its file.
        output_path: where the visual-word datalist will be written (paths are made relative to its folder).
        result: the :class:`~common.visual_words.discovery.DiscoveryResult`.
        space: the load settings that define the grid (:data:`SPACE_KEYS`).
        source_keys: the source lists the training and held-out volumes came from.

    Returns:
        The datalist as a JSON-ready dict.
    """
    source_dir, folder = os.path.dirname(os.path.abspath(source_path)), os.path.dirname(os.path.abspath(output_path))
    out: dict[str, Any] = {}
    for key, value in source.items():
        out[key] = rebase_entries(value, source_dir, folder) if isinstance(value, list) else value
    settings = result.settings
    out["name"] = f"{source.get('name', Path(source_path).stem)}-visual-words"
    out["description"] = (
        f"TransVW visual words discovered in '{source_keys[0]}' of {_relative(source_path, folder)} with held-out "
        f"instances in '{source_keys[1]}': {settings.num_classes} classes, crops of {list(settings.roi_size)} voxels "
        f"on the grid of the load settings in {INFO_KEY}.space. The other lists are the source datalist's. Paths are "
        "relative to this file's folder."
    )
    out[TRAIN_KEY] = [_volume_entry(v.image, v.shape, v.words, folder) for v in result.train if v.words]
    out[HELDOUT_KEY] = [_volume_entry(v.image, v.shape, v.words, folder) for v in result.heldout if v.words]
    out[INFO_KEY] = {
        "format_version": FORMAT_VERSION,
        "num_classes": settings.num_classes,
        "space": {key: space.get(key) for key in SPACE_KEYS},
        "settings": settings.as_dict(),
        "source_datalist": _relative(source_path, folder),
        "source_keys": {"train": source_keys[0], "heldout": source_keys[1]},
        "autoencoder_loss": [losses[0], losses[-1]] if (losses := result.autoencoder_losses) else None,
        "classes": [
            {
                "label": c.label,
                "reference": _relative(result.train[c.reference].image, folder),
                "relative_center": [round(r, 6) for r in c.relative_center],
                "instances": [_relative(result.train[i].image, folder) for i in c.neighbours],
                "heldout": [_relative(result.heldout[j].image, folder) for j in c.heldout],
            }
            for c in result.classes
        ],
    }
    return out


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> str:
    """Write JSON atomically (temporary file, then rename); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
    return str(path)


def _missing_message(path: Path, bundle: str) -> str:
    return (
        f"No visual-word dataset at {path}. TransVW trains on visual words discovered in the source datalist: run "
        f"`{_DISCOVER.format(bundle=bundle)}` first, with the overlays and overrides of the training (e.g. "
        "`--overlays demo`), or point --datalist at a visual-word datalist."
    )


def require_visual_words(path: str | os.PathLike, bundle: str = "bundles/transvw") -> str:
    """``path`` if the visual-word datalist exists there; else stop with the command that discovers it.

    Raises:
        DataError: (a ``SystemExit`` with one message) when the file does not exist.
    """
    if not Path(path).is_file():
        raise_data_error(_missing_message(Path(path), bundle), [str(path)])
    return str(path)


def read_visual_word_info(path: str | os.PathLike, bundle: str = "bundles/transvw") -> dict[str, Any]:
    """The ``visual_words_info`` record of a visual-word datalist.

    Raises:
        DataError: (a ``SystemExit`` with one message) if the file does not exist (naming the discovery command),
            is not JSON, or has no ``visual_words_info`` (e.g. a plain datalist given as ``--datalist``).
    """
    file = Path(path)
    if not file.is_file():
        raise_data_error(_missing_message(file, bundle), [str(file)])
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise_data_error(f"Visual-word datalist {file} is not valid JSON: {e}", [str(file)])
    if not isinstance(data, dict) or not isinstance(data.get(INFO_KEY), dict):
        raise_data_error(
            f"{file} is not a visual-word datalist (no {INFO_KEY!r}): TransVW needs the datalist written by "
            f"`{_DISCOVER.format(bundle=bundle)}`, not the source datalist it reads.",
            [str(file)],
        )
    return data[INFO_KEY]


def class_centres(path: str | os.PathLike, bundle: str = "bundles/transvw") -> list[list[float]]:
    """Every class's coordinate relative to the body box, by class id (for volumes the discovery never saw)."""
    classes = sorted(read_visual_word_info(path, bundle)["classes"], key=lambda c: c["label"])
    return [list(c["relative_center"]) for c in classes]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def check_visual_word_datalist(
    path: str | os.PathLike, num_classes: int, space: Mapping[str, Any], bundle: str = "bundles/transvw"
) -> dict[str, Any]:
    """Check before training that a visual-word datalist fits the bundle: same classes, same grid.

    The words' voxels refer to the grid the load transforms produced at discovery; a bundle that loads with another
    orientation, spacing, preset, foreground threshold or crop size would crop elsewhere, so it stops here.

    Args:
        path: the visual-word datalist (the bundle's ``datalist``).
        num_classes: the bundle's ``num_classes`` (its head's outputs).
        space: the bundle's load settings (:data:`SPACE_KEYS`).
        bundle: the bundle folder, named in the command the error suggests.

    Returns:
        The ``visual_words_info`` record.

    Raises:
        DataError: one line per mismatch, and the command that discovers words for these settings.
    """
    info = read_visual_word_info(path, bundle)
    problems = []
    if int(info.get("num_classes", -1)) != int(num_classes):
        problems.append(f"num_classes: the dataset has {info.get('num_classes')} classes, the bundle {num_classes}")
    recorded = info.get("space", {})
    for key in SPACE_KEYS:
        if not _same(recorded.get(key), space.get(key)):
            problems.append(f"{key}: discovered with {recorded.get(key)!r}, the bundle loads with {space.get(key)!r}")
    if problems:
        lines = [f"Visual-word datalist {path} does not fit this bundle's settings:"] + [f"  {p}" for p in problems]
        lines.append(
            f"Discover words for these settings with `{_DISCOVER.format(bundle=bundle)}` and the same overlays and "
            "overrides (it writes the bundle's datalist), or train with the settings the dataset records."
        )
        raise_data_error("\n".join(lines), problems)
    return info

"""Surveying a folder of volumes and turning it into an MSD-style datalist (behind ``tools/make_datalist.py``).

:func:`survey_folder` reads every volume below a folder (NIfTI, NRRD, MHA, DICOM series; nested folders)
with the same reader and statistics cache as the data check (:mod:`common.data.volume_stats`,
:mod:`common.data.stats_cache`), and sorts the files into images, label maps (by name, folder or values,
:mod:`common.data.label_maps`), unreadable files and duplicates (equal voxels). :func:`build_datalist`
pairs label maps with their images by name (only when the grids match), guesses the modality from the
intensities (CT in Hounsfield units or not), splits off a deterministic validation list and records the
intensity preset. :func:`summary_lines` renders the table the tool prints. Nothing found is dropped
silently: what is left out of the training lists is listed, with the reason, in the table and under the
datalist's ``"left_out"`` key.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path


from common.data.check import one_line
from common.data.datalist import DATALIST_KEYS, find_volumes
from common.data.label_maps import MAX_LABEL_VALUES, label_name_reason, pair_labels
from common.data.presets import PRESETS
from common.data.stats_cache import StatsCache
from common.data.volume_stats import VolumeStats, ct_like, same_grid

__all__ = ["SurveyedFile", "Survey", "build_datalist", "summary_lines", "survey_folder"]

TOOL_VERSION = "1.0"


@dataclass
class SurveyedFile:
    """One volume found by :func:`survey_folder`.

    Attributes:
        path: absolute path (a DICOM series is its folder).
        stats: its statistics, ``None`` if unreadable.
        error: why it could not be read (one line), else ``None``.
        label_reason: why it is taken for a label map, else ``None`` (an image).
        duplicate_of: the earlier image with the same voxels, else ``None``.
    """

    path: str
    stats: VolumeStats | None = None
    error: str | None = None
    label_reason: str | None = None
    duplicate_of: str | None = None

    @property
    def ct_like(self) -> bool:
        """Whether its intensities look like CT in Hounsfield units."""
        return self.stats is not None and ct_like(self.stats)


@dataclass
class Survey:
    """The volumes below a folder, sorted by role.

    Attributes:
        root: the folder surveyed.
        files: every volume found, sorted by path.
        notes: remarks for the summary (mixed modalities, ...), filled by :func:`build_datalist`.
        placement: absolute path -> the datalist list(s) it went to, or ``"left out"``, filled by
            :func:`build_datalist`.
    """

    root: Path
    files: list[SurveyedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placement: dict[str, str] = field(default_factory=dict)

    @property
    def unreadable(self) -> list[SurveyedFile]:
        return [f for f in self.files if f.error is not None]

    @property
    def labels(self) -> list[SurveyedFile]:
        return [f for f in self.files if f.error is None and f.label_reason]

    @property
    def duplicates(self) -> list[SurveyedFile]:
        return [f for f in self.files if f.error is None and not f.label_reason and f.duplicate_of]

    @property
    def images(self) -> list[SurveyedFile]:
        """Readable, distinct images (the candidates for the training lists)."""
        return [f for f in self.files if f.error is None and not f.label_reason and not f.duplicate_of]


def _values_reason(stats: VolumeStats) -> str | None:
    """Why a volume's values mark it as a label map: integers, none negative, few distinct values."""
    if stats.distinct is None or stats.voxels == 0:
        return None
    if stats.distinct <= MAX_LABEL_VALUES and stats.minimum >= 0:
        return f"integer volume with {stats.distinct} distinct values"
    return None


def survey_folder(folder: str | os.PathLike, cache_dir: str | os.PathLike | None | bool = None) -> Survey:
    """Reads every volume below ``folder`` and sorts it into images, label maps, unreadable files and duplicates.

    Args:
        folder: the folder to scan (recursively; DICOM series folders count as one volume).
        cache_dir: statistics cache folder (see :class:`~common.data.stats_cache.StatsCache`).

    Returns:
        The :class:`Survey`.

    Raises:
        FileNotFoundError: if ``folder`` does not exist.
        NotADirectoryError: if ``folder`` is a file.
    """
    root = Path(folder).expanduser().resolve()
    cache = StatsCache(cache_dir)
    survey = Survey(root=root)
    first_by_digest: dict[str, str] = {}
    for path in find_volumes(root):
        item = SurveyedFile(path=path)
        try:
            item.stats = cache.stats(path)
        except Exception as e:  # any reader failure is listed by path
            item.error = one_line(e)
            survey.files.append(item)
            continue
        item.label_reason = label_name_reason(path, root) or _values_reason(item.stats)
        if not item.label_reason and item.stats.digest:
            item.duplicate_of = first_by_digest.setdefault(item.stats.digest, path)
            if item.duplicate_of == path:
                item.duplicate_of = None
        survey.files.append(item)
    return survey


def _split(paths: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation): a seeded shuffle of the sorted paths; at least one of each when possible."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}.")
    ordered = sorted(paths)
    n_val = int(round(fraction * len(ordered)))
    if fraction > 0 and len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    else:
        n_val = 0
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    validation = set(shuffled[:n_val])
    return [p for p in ordered if p not in validation], [p for p in ordered if p in validation]


def build_datalist(
    survey: Survey,
    output: str | os.PathLike,
    validation_fraction: float = 0.2,
    seed: int = 0,
    preset: str | None = None,
) -> dict:
    """Builds the datalist of a survey, with paths relative to ``output``'s folder.

    Lists: the images of the preset's modality go to ``unlabeled`` and ``validation`` (a seeded split), their
    image/label pairs to ``labeled``. With the CT preset, images that do not look like CT go to
    ``unlabeled_mr`` (pairs to ``labeled_mr``); with the MRI preset, CT-like images go to ``unlabeled_ct``
    (pairs to ``labeled_ct``). Pairs record the list their image is in (``ssl_split``). Label maps that pair
    with no image (or with one on another grid), duplicates and unreadable files are listed under
    ``left_out``.

    Args:
        survey: from :func:`survey_folder`.
        output: the datalist file to be written.
        validation_fraction: share of the images held out for validation (0 for none).
        seed: seed of the split.
        preset: ``"ct"`` or ``"mri"``; ``None`` guesses it: ``"ct"`` when at least half of the images look
            like CT in HU, else ``"mri"``.

    Returns:
        The datalist dictionary (every key of :data:`~common.data.datalist.DATALIST_KEYS` present), with the
        top-level ``"intensity_preset"``.
    """
    base = Path(output).expanduser().resolve().parent
    images = survey.images
    n_ct = sum(f.ct_like for f in images)
    guessed = preset is None
    if preset is None:
        preset = "ct" if images and n_ct * 2 >= len(images) else "mri"
    elif preset not in PRESETS:
        raise ValueError(f"intensity preset must be one of {sorted(PRESETS)}, got {preset!r}.")
    main = [f for f in images if f.ct_like == (preset == "ct")]
    other = [f for f in images if f.ct_like != (preset == "ct")]
    other_key = "unlabeled_mr" if preset == "ct" else "unlabeled_ct"
    other_labeled = "labeled_mr" if preset == "ct" else "labeled_ct"
    if other:
        kind = "do not look like CT in HU" if preset == "ct" else "look like CT in HU"
        survey.notes.append(
            f"{len(other)} image(s) {kind}; they are in {other_key!r}, not in the pretraining list "
            f"(intensity_preset {preset!r})."
        )

    def rel(path: str) -> str:
        return Path(os.path.relpath(path, base)).as_posix()

    training, validation = _split([f.path for f in main], validation_fraction, seed)
    split_of = {p: "unlabeled" for p in training} | {p: "validation" for p in validation}
    split_of |= {f.path: other_key for f in other}
    stats_of = {f.path: f.stats for f in images}

    pairs, unpaired = pair_labels([f.path for f in images], [f.path for f in survey.labels])
    left_out: list[dict] = [{"path": rel(p), "reason": "label map that pairs with no image by name"} for p in unpaired]
    labeled: list[dict] = []
    labeled_other: list[dict] = []
    for image, label in pairs:
        label_stats = next(f.stats for f in survey.labels if f.path == label)
        if not same_grid(stats_of[image], label_stats):
            reason = (
                f"label map whose name matches {rel(image)} but whose grid differs (shape "
                f"{'x'.join(map(str, label_stats.spatial_shape))} vs {'x'.join(map(str, stats_of[image].spatial_shape))})"
            )
            left_out.append({"path": rel(label), "reason": reason})
            continue
        entry = {"image": rel(image), "label": rel(label), "ssl_split": split_of[image]}
        (labeled_other if split_of[image] == other_key else labeled).append(entry)
    left_out += [{"path": rel(f.path), "reason": f"same voxels as {rel(f.duplicate_of)}"} for f in survey.duplicates]
    left_out += [{"path": rel(f.path), "reason": f"unreadable: {f.error}"} for f in survey.unreadable]

    modality = "CT" if preset == "ct" else "MR"
    other_modality = "MR" if preset == "ct" else "CT"
    data = {
        "name": survey.root.name,
        "description": (
            f"Volumes found below {survey.root} by tools/make_datalist.py. 'unlabeled' holds the images for "
            f"pretraining, 'validation' a seeded share of them (validation_fraction {validation_fraction}, seed "
            f"{seed}); 'labeled' pairs images with label maps found beside them (by name). The intensity preset was "
            f"{'guessed' if guessed else 'given'} from the intensities. Paths are relative to this file's folder."
        ),
        "tool_version": TOOL_VERSION,
        "intensity_preset": preset,
        "modality": {"unlabeled": modality, "validation": modality, "labeled": modality,
                     other_key: other_modality, other_labeled: other_modality},  # fmt: skip
        "validation_fraction": validation_fraction,
        "seed": seed,
        "unlabeled": [{"image": rel(p)} for p in training],
        "validation": [{"image": rel(p)} for p in validation],
        "unlabeled_mr": [],
        "labeled": labeled,
        "labeled_mr": [],
        "left_out": left_out,
    }
    data[other_key] = [{"image": rel(f.path)} for f in sorted(other, key=lambda f: f.path)]
    data[other_labeled] = labeled_other
    placed: dict[str, list[str]] = {p: [key] for p, key in split_of.items()}
    for entry_list, key in ((labeled, "labeled"), (labeled_other, other_labeled)):
        for entry in entry_list:
            for path in (os.path.normpath(base / entry["image"]), os.path.normpath(base / entry["label"])):
                if key not in placed.setdefault(path, []):
                    placed[path].append(key)
    for item in left_out:
        placed[os.path.normpath(base / item["path"])] = ["left out"]
    survey.placement = {p: "+".join(keys) for p, keys in placed.items()}
    missing = [k for k in DATALIST_KEYS if k not in data]
    assert not missing, missing
    return data


def _fmt(values, spec: str) -> str:
    return "x".join(format(v, spec) for v in values)


def summary_lines(survey: Survey, datalist: dict | None = None) -> list[str]:
    """The table printed by ``tools/make_datalist.py``: one row per volume, then the counts and what was left out.

    Columns: path (relative to the surveyed folder), role, shape, spacing (mm), orientation, intensity range
    (0.5th-99.5th percentile), modality guess, and the datalist list(s) it went to (after :func:`build_datalist`).
    """
    rows = [("path", "role", "shape", "spacing mm", "orient", "range (p0.5, p99.5)", "modality", "list")]
    for f in survey.files:
        rel_root = Path(os.path.relpath(f.path, survey.root)).as_posix()
        listed = survey.placement.get(f.path, "-")
        if f.stats is None:
            rows.append((rel_root, "UNREADABLE", "-", "-", "-", "-", "-", listed))
            continue
        s = f.stats
        role = "label" if f.label_reason else ("duplicate" if f.duplicate_of else "image")
        shape = _fmt(s.spatial_shape, "d") + (f" x{s.channels}ch" if s.channels != 1 else "")
        rng = f"[{s.percentile(0.5):.4g}, {s.percentile(99.5):.4g}]" if s.percentiles else "-"
        modality = "label" if f.label_reason else ("CT (HU)" if f.ct_like else "not CT")
        axcodes = s.axcodes if s.spatial_dims == 3 else "-"
        rows.append((rel_root, role, shape, _fmt(s.spacing, ".3g"), axcodes, rng, modality, listed))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    images, labels = survey.images, survey.labels
    n_ct = sum(f.ct_like for f in images)
    lines.append("")
    lines.append(
        f"{len(survey.files)} volume(s): {len(images)} image(s) ({n_ct} CT-like, {len(images) - n_ct} not), "
        f"{len(labels)} label map(s), {len(survey.duplicates)} duplicate(s), {len(survey.unreadable)} unreadable."
    )
    for f in labels:
        lines.append(f"label map: {Path(os.path.relpath(f.path, survey.root)).as_posix()}: {f.label_reason}")
    for f in survey.unreadable:
        lines.append(f"unreadable: {Path(os.path.relpath(f.path, survey.root)).as_posix()}: {f.error}")
    if datalist is not None:
        counts = ", ".join(
            f"{k} {len(v)}" for k, v in datalist.items() if isinstance(v, list) and k != "left_out" and (v or k in DATALIST_KEYS)
        )
        lines.append(f"Datalist lists: {counts}; intensity_preset {datalist['intensity_preset']!r}.")
        for item in datalist.get("left_out", []):
            lines.append(f"left out: {item['path']}: {item['reason']}")
    lines.extend(survey.notes)
    return lines

"""Choosing a transfer task's image/label pairs from a datalist list by label set and subject.

The sample datalist's ``labeled`` list mixes label sets (TotalSegmentator's 117 structures, an aorta-only mask) and
subjects (one of which is held out of pretraining). A task keeps the entries whose label maps use its label set and
splits by subject, so that validation never shares a subject with training. Entries without a ``label_set`` or
``subject`` field (a user's own datalist) are kept by those filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["select_entries", "flat_labels"]


def select_entries(
    entries: Iterable[Mapping[str, Any]],
    label_set: str | None = None,
    subjects: Sequence[str] | None = None,
    exclude_subjects: Sequence[str] = (),
    keys: Sequence[str] = ("image", "label"),
) -> list[dict[str, Any]]:
    """The entries of a task, reduced to ``keys``.

    Args:
        entries: datalist entries with resolved paths (e.g. from :func:`common.data.load_datalist`).
        label_set: keep entries whose ``label_set`` is this one (``None``: no filter).
        subjects: keep only these subjects (``None``: every subject).
        exclude_subjects: drop these subjects.
        keys: fields to keep in each entry (MONAI Label passes just ``image`` and ``label``).

    Raises:
        ValueError: an entry lacks one of ``keys``.
    """
    selected = []
    for i, entry in enumerate(entries):
        if label_set is not None and entry.get("label_set", label_set) != label_set:
            continue
        subject = entry.get("subject")
        if subject is not None and (subject in exclude_subjects or (subjects is not None and subject not in subjects)):
            continue
        missing = [k for k in keys if k not in entry]
        if missing:
            raise ValueError(f"datalist entry {i} ({entry.get('image', '?')}) has no {missing}.")
        selected.append({k: entry[k] for k in keys})
    return selected


def flat_labels(source_labels: Sequence[Sequence[int] | int]) -> tuple[list[int], list[int]]:
    """Label-map values and the class each maps to: ``[[5], [1, 2]] -> ([5, 1, 2], [1, 2, 2])``.

    Class ``i`` (from 1; 0 is background) is made of the label values ``source_labels[i - 1]``; used with
    :class:`~monai.transforms.LabelFilterd` (keep these values) and :class:`~monai.transforms.MapLabelValued`.

    Raises:
        ValueError: a label value is listed for two classes.
    """
    values, classes = [], []
    for index, group in enumerate(source_labels, start=1):
        for value in [group] if isinstance(group, int) else group:
            if int(value) in values:
                raise ValueError(f"label value {value} is listed for two classes in {list(source_labels)}.")
            values.append(int(value))
            classes.append(index)
    if not values:
        raise ValueError("source_labels is empty: a task needs at least one class.")
    return values, classes

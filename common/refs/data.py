"""The labeled reference data of ReFs: which datalist entries, how many classes, and an endless batch stream.

The image and label transforms are MONAI's and live in ``refs.yaml`` (the same loading, orientation, spacing and
intensity preset as the self-supervised data, then MONAI's ``RandCropByPosNegLabeld``); this module only selects the
entries, counts the classes and cycles a loader, which MONAI has no helper for.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from monai.data import DataLoader, DistributedSampler

from common.data import load_datalist
from common.data.datalist import locate_datalist
from common.engines.distributed import is_distributed
from common.transfer import flat_labels, select_entries

__all__ = ["ReferenceBatches", "reference_datalist", "reference_entries", "reference_loader", "reference_num_classes", "reference_labels"]


def reference_datalist(dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None) -> str | None:
    """The datalist JSON a bundle uses (``datalist: auto`` resolved as the bundle resolves it), or ``None`` for a scan."""
    path = locate_datalist(dataset_dir, datalist)
    return None if path is None else str(path)


def reference_entries(
    datalist: str | os.PathLike | None, key: str = "labeled", label_set: str | None = "auto", exclude_images: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The ``{"image", "label"}`` pairs of the reference task from ``datalist[key]`` (paths resolved).

    An entry keeps its ``num_classes`` when it records one (:func:`reference_num_classes` reads it).

    Args:
        datalist: path of the datalist JSON (``None``, what :func:`common.data.locate_datalist` returns for a
            folder scan, is refused).
        key: the datalist list of labeled pairs (the sample and phantom datalists: ``labeled``).
        label_set: keep entries whose ``label_set`` is this one; ``"auto"``: the label set most entries use (a
            segmentation task needs one meaning per label value; the sample data mixes TotalSegmentator's 118-class
            maps with an aorta-only map); ``None``: every entry.
        exclude_images: images never used as reference data (``refs.yaml`` passes the validation volumes, which the
            transfer benchmark keeps unseen).

    Raises:
        ValueError: no entry is left (the message names the datalist and the key).
    """
    if datalist is None:
        raise ValueError(
            "refs: the reference task needs a datalist JSON with labeled image/label pairs; this run scans a folder "
            "(datalist: auto without <dataset_dir>/datalist.json). Pass --datalist."
        )
    raw = list(load_datalist(datalist, key))
    if label_set == "auto":
        counts = Counter(e.get("label_set") for e in raw)
        label_set = counts.most_common(1)[0][0] if counts else None
    excluded = {os.path.realpath(p) for p in exclude_images}
    raw = [
        e for e in raw
        if (label_set is None or e.get("label_set", label_set) == label_set) and os.path.realpath(e["image"]) not in excluded
    ]  # fmt: skip
    entries = [
        {**pair, **({"num_classes": e["num_classes"]} if "num_classes" in e else {})}
        for pair, e in zip(select_entries(raw), raw)
    ]
    if not entries:
        raise ValueError(
            f"refs: no labeled reference pairs under {key!r} in {datalist}"
            + (f" with label_set {label_set!r}" if label_set else "")
            + (f" outside the {len(excluded)} excluded validation image(s)" if excluded else "")
            + " (set refs_key / refs_label_set to a list of image/label pairs)."
        )
    return entries


def reference_num_classes(entries: Sequence[Mapping[str, Any]], source_labels: Sequence | None = None) -> int:
    """Classes of the reference task, background included.

    With ``source_labels`` (the transfer bundles' ``[[5], [1, 2]]`` form: label values of each class), one more than
    their number. Without, every label value is its own class: the largest ``num_classes`` the entries record.

    Raises:
        ValueError: no ``source_labels`` and an entry without ``num_classes``.
    """
    if source_labels:
        return len(source_labels) + 1
    missing = [e.get("image") for e in entries if not e.get("num_classes")]
    if missing:
        raise ValueError(
            f"refs: entries {missing[:3]} record no 'num_classes'; set refs_source_labels (e.g. [[5], [1]]) instead."
        )
    return max(int(e["num_classes"]) for e in entries)


def reference_labels(source_labels: Sequence | None) -> tuple[list[int], list[int]] | None:
    """``(label values, class indices)`` for MONAI's ``LabelFilterd`` / ``MapLabelValued``, or ``None`` (keep as is)."""
    return flat_labels(source_labels) if source_labels else None


def reference_loader(dataset: Any, batch_size: int, num_workers: int = 0) -> DataLoader:
    """A shuffling MONAI DataLoader of the reference dataset; under ``torch.distributed`` each rank gets its share.

    Raises:
        ValueError: an empty dataset.
    """
    if len(dataset) == 0:
        raise ValueError("refs: the reference dataset is empty.")
    sampler = DistributedSampler(dataset, shuffle=True, even_divisible=True) if is_distributed() else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, num_workers=num_workers)


class ReferenceBatches(Iterator):
    """An endless stream of batches from ``loader``: a new pass (and sampler epoch) whenever one ends.

    The reference set is usually much smaller than the self-supervised one; the trainer's epochs follow the
    self-supervised loader, and the reference loader is cycled independently. Its position is not part of the
    resumable checkpoint: after a resume the reference stream starts a new pass.
    """

    def __init__(self, loader: Iterable[Mapping[str, torch.Tensor]]) -> None:
        self.loader = loader
        self.passes = 0
        self._iterator: Iterator | None = None

    def __next__(self) -> Mapping[str, torch.Tensor]:
        for _ in range(2):
            if self._iterator is None:
                sampler = getattr(self.loader, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(self.passes)
                self._iterator = iter(self.loader)
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.passes += 1
        raise ValueError("refs: the reference loader yields no batch.")

"""Discover TransVW's visual words in an unlabeled datalist: the dataset the TransVW bundle trains on.

Usage (from the repository root)::

    python tools/discover_visual_words.py bundles/transvw --overlays demo          # the sample CT, CPU, a minute
    python tools/discover_visual_words.py bundles/transvw --source_datalist /data/datalist.json   # your data
    python tools/discover_visual_words.py bundles/transvw --overlays demo --save_crops --montage_classes 6
    python tools/discover_visual_words.py bundles/transvw --discovery_num_neighbours 50

It reads the bundle's ``train.yaml`` with the same overlays and overrides as the training, so the volumes go through
the bundle's own load transforms (orientation, spacing, intensity preset, crop to the body) and the words' voxel
coordinates are valid on the grid the training crops from. It trains a small auto-encoder on the ``unlabeled``
volumes (or takes one with ``--autoencoder FILE``), describes each volume, and for each class picks a reference
volume, its nearest neighbours and nearest ``validation`` volumes, and a coordinate whose crops become the class.
It writes, next to the source datalist (the bundle's ``visual_words_file``: ``visual_words.json``, or
``visual_words_demo.json`` with the demo overlay):

* the visual-word datalist (``visual_words`` and ``visual_words_validation`` lists, plus the source's lists),
* ``<name>_summary.json`` (classes, instances per class, words per volume), ``<name>_montage.png`` (a few classes),
* ``<name>_autoencoder.pt`` (the trained auto-encoder), and with ``--save_crops`` ``<name>_crops.npz``.

The discovery is deterministic under the bundle's ``seed``. A datalist with fewer volumes than the requested
instances per class is refused with both numbers. Any other ``--id value`` is a bundle override.
"""

from __future__ import annotations

from collections.abc import Sequence

import fire

from common.visual_words import discover_for_bundle


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A CLI value as a list: ``"demo,x.yaml"`` -> ``["demo", "x.yaml"]``, lists unchanged, ``None`` -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v for v in str(value).split(",") if v]


def main(
    bundle_dir: str = "bundles/transvw",
    overlays: str | Sequence[str] = (),
    source_datalist: str | None = None,
    output: str | None = None,
    autoencoder: str | None = None,
    save_crops: bool = False,
    montage_classes: int = 4,
    progress: bool = True,
    device: str | None = None,
    **overrides: object,
) -> dict[str, str]:
    """Discover the visual words of a TransVW bundle's data and write the dataset, summary and montage.

    Args:
        bundle_dir: the TransVW bundle folder.
        overlays: overlays of the training (``demo``, ``smoke``, paths), comma-separated.
        source_datalist: datalist with ``unlabeled`` (and ``validation``) volumes; default: the bundle's.
        output: the visual-word datalist to write; default: the bundle's ``visual_words_file`` (next to the source).
        autoencoder: take this trained auto-encoder (``<name>_autoencoder.pt`` of an earlier run) instead of training.
        save_crops: also write every crop (``float16``) to ``<name>_crops.npz``.
        montage_classes: classes shown in the montage (0: none).
        progress: show progress bars.
        device: where the auto-encoder trains (default ``cuda`` when available, else ``cpu``).
        overrides: bundle overrides, as given to the training.

    Returns:
        The written files by kind.
    """
    return discover_for_bundle(
        bundle_dir, as_list(overlays), source_datalist, output, autoencoder, save_crops, montage_classes, progress,
        device, **overrides,
    )  # fmt: skip


if __name__ == "__main__":
    fire.Fire(main, serialize=lambda _: None)

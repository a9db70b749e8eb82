"""What the self-discovery found, for a person: counts per class, a short table and a montage of a few classes.

The montage shows, per row, one class: the central slice (along the last axis) of its base crop in the reference,
in the other training instances and in the held-out instances, so a person can see whether a class is one
anatomical pattern across patients.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.data.atomic import atomic_output
from common.transforms.visual_words import crop_word

__all__ = ["discovery_summary", "format_summary", "save_montage", "word_crops"]


def discovery_summary(result: Any, name: Callable[[str], str] = os.path.basename) -> dict[str, Any]:
    """Counts of a :class:`~common.visual_words.discovery.DiscoveryResult`.

    Args:
        result: the discovery result.
        name: how a volume is named in the summary (default: its file name).

    Returns:
        ``num_classes``, crop totals, the chance level, per class its reference, coordinate and instance counts, per
        volume its number of words, and the auto-encoder's first and last loss.
    """
    scales = result.settings.num_scales
    classes = [
        {
            "label": c.label,
            "reference": name(result.train[c.reference].image),
            "relative_center": [round(r, 4) for r in c.relative_center],
            "training_instances": len(c.neighbours),
            "training_crops": len(c.neighbours) * scales,
            "heldout_crops": len(c.heldout),
        }
        for c in result.classes
    ]
    volumes = [
        {"image": name(v.image), "split": split, "shape": v.shape, "words": len(v.words)}
        for split, group in (("training", result.train), ("held-out", result.heldout))
        for v in group
    ]
    losses = result.autoencoder_losses
    return {
        "num_classes": len(result.classes),
        "chance": 1.0 / len(result.classes),
        "training_crops": sum(c["training_crops"] for c in classes),
        "heldout_crops": sum(c["heldout_crops"] for c in classes),
        "crops_per_training_instance": scales,
        "roi_size": list(result.settings.roi_size),
        "autoencoder_loss": {"first": losses[0], "last": losses[-1], "epochs": len(losses)} if losses else None,
        "classes": classes,
        "volumes": volumes,
    }


def format_summary(summary: dict[str, Any], max_classes: int = 12) -> str:
    """A few lines for the terminal: totals, then one line per class (the first ``max_classes``)."""
    lines = [
        f"{summary['num_classes']} visual-word classes of {summary['roi_size']} voxels: "
        f"{summary['training_crops']} training crops ({summary['crops_per_training_instance']} per instance), "
        f"{summary['heldout_crops']} held-out crops; chance accuracy {summary['chance']:.3f}",
    ]
    if summary.get("autoencoder_loss"):
        ae = summary["autoencoder_loss"]
        lines.append(f"auto-encoder: MSE {ae['first']:.4f} -> {ae['last']:.4f} in {ae['epochs']} epochs")
    header = f"{'class':>5}  {'reference':<32} {'relative centre':<24} {'train inst.':>11} {'crops':>6} {'held-out':>8}"
    lines.append(header)
    for c in summary["classes"][:max_classes]:
        centre = ", ".join(f"{r:.2f}" for r in c["relative_center"])
        lines.append(
            f"{c['label']:>5}  {c['reference'][:32]:<32} {'(' + centre + ')':<24} {c['training_instances']:>11} "
            f"{c['training_crops']:>6} {c['heldout_crops']:>8}"
        )
    if len(summary["classes"]) > max_classes:
        lines.append(f"  ... {len(summary['classes']) - max_classes} more classes in the summary file")
    for v in summary["volumes"]:
        lines.append(f"  {v['split']:<9} {v['image']}: grid {v['shape']}, {v['words']} words")
    return "\n".join(lines)


def word_crops(
    result: Any, load: Callable[[str], torch.Tensor], labels: Sequence[int], base_only: bool = True
) -> dict[int, list[tuple[str, str, torch.Tensor]]]:
    """The crops of some classes, loading each volume once.

    Args:
        result: the discovery result.
        load: the bundle's load transforms, ``path -> (C, *S)``.
        labels: the classes to crop.
        base_only: only the ``roi_size`` crop of each instance (not its rescaled crops).

    Returns:
        Per class, ``(split, image, crop)`` for its reference first, then its other training and held-out instances.
    """
    roi = result.settings.roi_size
    wanted = set(int(k) for k in labels)
    crops: dict[int, list[tuple[str, str, torch.Tensor]]] = {k: [] for k in wanted}
    for split, group in (("training", result.train), ("held-out", result.heldout)):
        for volume in group:
            words = [w for w in volume.words if w["label"] in wanted and (not base_only or w.get("crop", 0) == 0)]
            if not words:
                continue
            img = load(volume.image)
            for word in words:
                crops[word["label"]].append((split, volume.image, crop_word(img, word, roi)))
    references = {c.label: result.train[c.reference].image for c in result.classes}
    for label, items in crops.items():  # the reference first
        items.sort(key=lambda item: (item[0] != "training", item[1] != references.get(label)))
    return crops


def save_montage(
    path: str | os.PathLike,
    crops: dict[int, list[tuple[str, str, torch.Tensor]]],
    references: dict[int, str],
    max_columns: int = 6,
    title: str = "",
) -> str:
    """Write a PNG: one row per class, the central slice (last axis) of each instance's crop, grey in [0, 1].

    Args:
        path: the PNG file.
        crops: per class, ``(split, image, crop)`` as :func:`word_crops` returns them.
        references: per class, its reference image (its column is titled ``ref``).
        max_columns: instances shown per class.
        title: the figure's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(crops)
    columns = max(1, min(max_columns, max((len(v) for v in crops.values()), default=1)))
    fig, axes = plt.subplots(len(labels), columns, figsize=(1.9 * columns, 2.0 * len(labels)), squeeze=False)
    for row, label in enumerate(labels):
        for col in range(columns):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(crops[label]):
                continue
            split, image, crop = crops[label][col]
            array = np.asarray(crop[0].float().numpy())
            if array.ndim == 3:
                array = array[:, :, array.shape[2] // 2]
            ax.imshow(np.rot90(array), cmap="gray", vmin=0.0, vmax=1.0)
            kind = "held-out" if split == "held-out" else ("ref" if image == references.get(label) else "train")
            ax.set_title(f"class {label} {kind}\n{Path(image).name[:22]}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return str(path)

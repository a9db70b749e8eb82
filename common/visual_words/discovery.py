"""TransVW self-discovery of visual words: embed volumes, pick references and neighbours, place the words.

TransVW (Haghighi et al., "Transferable Visual Words: Exploiting the Semantics of Anatomical Patterns for
Self-supervised Learning", IEEE TMI 2021) learns from *visual words*: anatomical patterns that recur across
patients. Its self-discovery (official ``self_discovery/``), which this module follows step by step:

1. train an auto-encoder on the whole training volumes and describe each volume by its bottleneck
   (:mod:`common.visual_words.embedding`);
2. for each class: pick a reference volume not used before (here: the next one of a seeded permutation, reused
   only after every volume has served once), and take its ``num_neighbours`` nearest training volumes (the
   reference first) and its ``num_heldout`` nearest held-out volumes by the Euclidean distance of the descriptions;
3. sample a coordinate in the reference away from earlier classes (``min_distance``) whose crop is mostly body
   (``max_background``) (:func:`common.visual_words.sampling.sample_class_centre`);
4. crop that coordinate in every instance volume: the training instances with ``num_scales`` crops each (the
   ``--multi_res`` crops), the held-out instances with the base crop only. Each coordinate set is one class.

The official defaults are 200 training and 30 held-out instances per class and 200 classes; the United TransVW
pretraining uses 44 classes of 64x64x32 crops. Coordinates are relative to the body box of the volumes as the
bundle's load transforms produce them (:mod:`common.visual_words.sampling`), and the words record voxel centres in
that space, so the training crops are exactly the discovered ones.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from common.visual_words.embedding import build_autoencoder, embed, embedding_input, train_autoencoder
from common.visual_words.sampling import (
    clamp_center,
    multi_resolution_boxes,
    relative_to_voxel,
    sample_class_centre,
)

__all__ = ["DiscoveryResult", "DiscoverySettings", "VisualWordClass", "VolumeWords", "discover_visual_words"]

logger = logging.getLogger(__name__)


@dataclass
class DiscoverySettings:
    """Settings of the self-discovery (defaults: the paper's, for a GPU and a LUNA16-sized dataset).

    Attributes:
        num_classes: visual-word classes (United TransVW: 44; official discovery default 200).
        roi_size: crop size in voxels of the load transforms' grid (TransVW: 64x64x32).
        num_neighbours: training instances per class: the reference and its nearest training volumes (official 200).
        num_heldout: held-out instances per class, from the nearest held-out volumes (official 30).
        num_scales: crops per training instance: the base crop plus rescaled ones (official ``--multi_res``: 3).
        scale_range: in-plane size of the rescaled crops relative to ``roi_size`` (official 50-80 voxels of 64).
        jitter: largest in-plane shift of the rescaled crops, as a fraction of ``roi_size`` (official 10 of 64).
        min_distance: minimum distance between two classes' coordinates, in voxels of the reference (official 5).
        max_background: largest fraction of background voxels in the reference's crop (official: 15 % below -150 HU).
        background_threshold: intensity (after the preset) at or below which a voxel is background.
        max_tries: coordinate draws per reference before moving on to the next reference (official 200).
        embedding_size: size the whole volumes are resized to for the auto-encoder (official 128x128x64).
        autoencoder_channels: channels of the auto-encoder's stride-2 units.
        autoencoder_epochs: training epochs of the auto-encoder.
        autoencoder_lr: its Adam learning rate (official 1e-3).
        autoencoder_batch_size: volumes per auto-encoder step.
        seed: seed of every random choice (references, coordinates, crops) and of the auto-encoder.
    """

    num_classes: int = 44
    roi_size: Sequence[int] = (64, 64, 32)
    num_neighbours: int = 200
    num_heldout: int = 30
    num_scales: int = 3
    scale_range: Sequence[float] = (0.78, 1.25)
    jitter: float = 0.15
    min_distance: float = 5.0
    max_background: float = 0.15
    background_threshold: float = 0.25
    max_tries: int = 200
    embedding_size: Sequence[int] = (128, 128, 64)
    autoencoder_channels: Sequence[int] = (16, 32, 64, 128)
    autoencoder_epochs: int = 100
    autoencoder_lr: float = 1e-3
    autoencoder_batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        self.roi_size = [int(s) for s in self.roi_size]
        self.scale_range = [float(s) for s in self.scale_range]
        self.embedding_size = [int(s) for s in self.embedding_size]
        self.autoencoder_channels = [int(c) for c in self.autoencoder_channels]
        for name in ("num_neighbours", "num_scales", "max_tries", "autoencoder_epochs", "autoencoder_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"visual-word discovery: {name} must be at least 1, got {getattr(self, name)!r}.")
        if self.num_classes < 2:
            raise ValueError(f"visual-word discovery: num_classes must be at least 2, got {self.num_classes}.")
        if self.num_heldout < 0:
            raise ValueError(f"visual-word discovery: num_heldout must be non-negative, got {self.num_heldout}.")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(
                f"visual-word discovery: scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}."
            )
        if not 0.0 <= self.max_background <= 1.0 or self.jitter < 0 or self.min_distance < 0:
            raise ValueError("visual-word discovery: max_background must lie in [0, 1], jitter and min_distance >= 0.")
        factor = 2 ** len(self.autoencoder_channels)
        if any(s % factor for s in self.embedding_size):
            raise ValueError(
                f"visual-word discovery: embedding_size {self.embedding_size} must be divisible by {factor} "
                f"(2 ** the {len(self.autoencoder_channels)} auto-encoder levels)."
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(self).items()}


@dataclass
class VisualWordClass:
    """One discovered class: a coordinate relative to the body box and the volumes it is cropped from.

    Attributes:
        label: the class id.
        reference: index of the reference among the training volumes.
        relative_center: the coordinate, a fraction of each volume's extent per axis.
        neighbours: training volumes of the class (indices; the reference first).
        heldout: held-out volumes of the class (indices into the held-out volumes).
    """

    label: int
    reference: int
    relative_center: list[float]
    neighbours: list[int]
    heldout: list[int]


@dataclass
class VolumeWords:
    """A volume and its words: ``{"label", "crop", "center", "size"}``, voxels of the load transforms' grid.

    ``crop`` numbers an instance's crops: 0 the base crop of ``roi_size`` at the class's coordinate, 1... the rescaled
    (multi-resolution) ones.
    """

    image: str
    shape: list[int]
    words: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DiscoveryResult:
    """What the discovery found: the classes, the words of every volume, the auto-encoder and its curve.

    ``train`` and ``heldout`` list every given volume in order (the classes index them); a volume that is no class's
    instance has no words.
    """

    settings: DiscoverySettings
    classes: list[VisualWordClass]
    train: list[VolumeWords]
    heldout: list[VolumeWords]
    autoencoder: torch.nn.Module
    autoencoder_losses: list[float]
    train_embeddings: np.ndarray
    heldout_embeddings: np.ndarray


def _check_counts(settings: DiscoverySettings, n_train: int, n_heldout: int, train_key: str, heldout_key: str) -> None:
    if n_train < settings.num_neighbours:
        raise ValueError(
            f"visual-word discovery needs {settings.num_neighbours} training volumes per class (num_neighbours: "
            f"the reference and its {settings.num_neighbours - 1} nearest neighbours), but the datalist has {n_train} "
            f"under {train_key!r}. Add volumes or lower num_neighbours to at most {n_train}."
        )
    if n_heldout < settings.num_heldout:
        raise ValueError(
            f"visual-word discovery needs {settings.num_heldout} held-out volumes per class (num_heldout), but the "
            f"datalist has {n_heldout} under {heldout_key!r}. Add volumes or lower num_heldout to at most {n_heldout}."
        )


class _VolumeCache:
    """The last few loaded volumes (references are revisited when classes outnumber volumes)."""

    def __init__(self, load: Callable[[str], torch.Tensor], size: int = 4) -> None:
        self.load, self.size = load, size
        self.items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __call__(self, image: str) -> torch.Tensor:
        if image in self.items:
            self.items.move_to_end(image)
            return self.items[image]
        volume = self.load(image)
        self.items[image] = volume
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return volume


def _nearest(distances: np.ndarray, count: int, first: int | None = None) -> list[int]:
    """Indices of the ``count`` smallest distances (stable on ties), with ``first`` forced to the front."""
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    if first is not None:
        order.remove(first)
        order.insert(0, first)
    return order[:count]


def discover_visual_words(
    train_images: Sequence[str],
    heldout_images: Sequence[str],
    load: Callable[[str], torch.Tensor],
    settings: DiscoverySettings,
    autoencoder_state: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
    train_key: str = "unlabeled",
    heldout_key: str = "validation",
    device: str | torch.device = "cpu",
) -> DiscoveryResult:
    """Discover ``settings.num_classes`` visual words in the training volumes, with held-out instances.

    Args:
        train_images: the training volumes (paths, as the datalist gives them).
        heldout_images: the held-out volumes (their crops score the classifier on patients it never saw).
        load: returns a volume ``(C, *S)`` after the bundle's deterministic load transforms.
        settings: the discovery settings.
        autoencoder_state: a trained auto-encoder's ``state_dict`` (built with ``settings.autoencoder_channels``) to
            take instead of training one.
        progress: show progress bars.
        train_key: datalist key of the training volumes (named in errors).
        heldout_key: datalist key of the held-out volumes (named in errors).
        device: where the auto-encoder trains and embeds.

    Returns:
        The classes, each volume's words, the auto-encoder and its loss curve, the descriptions.

    Raises:
        ValueError: for fewer volumes than the instances requested (naming both numbers), or when no reference has
            room for another class (naming the settings to relax).
    """
    _check_counts(settings, len(train_images), len(heldout_images), train_key, heldout_key)
    rng = np.random.RandomState(int(settings.seed))
    images = list(train_images) + list(heldout_images)
    shapes, inputs = [], []
    for image in tqdm(images, desc="loading volumes", unit="volume", disable=not progress, leave=False):
        volume = load(image)
        shapes.append([int(s) for s in volume.shape[1:]])
        inputs.append(embedding_input(volume, settings.embedding_size))
        del volume
    stacked = torch.stack(inputs).to(device)

    in_channels, spatial_dims = int(stacked.shape[1]), stacked.ndim - 2
    autoencoder = build_autoencoder(settings.autoencoder_channels, in_channels, spatial_dims).to(device)
    losses: list[float] = []
    if autoencoder_state is not None:
        autoencoder.load_state_dict(autoencoder_state, strict=True)
    else:
        losses = train_autoencoder(
            autoencoder, stacked[: len(train_images)], settings.autoencoder_epochs, settings.autoencoder_lr,
            settings.autoencoder_batch_size, settings.seed, progress,
        )  # fmt: skip
    features = embed(autoencoder, stacked)
    train_features, heldout_features = features[: len(train_images)], features[len(train_images) :]

    n_train = len(train_images)
    train_shapes, heldout_shapes = shapes[:n_train], shapes[n_train:]
    references = [int(i) for i in rng.permutation(n_train)]
    cursor = 0
    cache = _VolumeCache(load)
    classes: list[VisualWordClass] = []
    bar = tqdm(range(settings.num_classes), desc="visual words", unit="class", disable=not progress, leave=False)
    for label in bar:
        for _ in range(n_train):
            reference = references[cursor % n_train]
            cursor += 1
            to_train = np.linalg.norm(train_features - train_features[reference], axis=1)
            neighbours = _nearest(to_train, settings.num_neighbours, first=reference)
            heldout: list[int] = []
            if settings.num_heldout:
                to_heldout = np.linalg.norm(heldout_features - train_features[reference], axis=1)
                heldout = _nearest(to_heldout, settings.num_heldout)
            instance_shapes = [train_shapes[i] for i in neighbours] + [heldout_shapes[j] for j in heldout]
            centre = sample_class_centre(
                rng, cache(train_images[reference]), instance_shapes, settings.roi_size,
                [c.relative_center for c in classes], settings.min_distance, settings.max_background,
                settings.background_threshold, settings.max_tries,
            )  # fmt: skip
            if centre is not None:
                classes.append(VisualWordClass(label, reference, centre, neighbours, heldout))
                break
            logger.info("visual word %d: no room in reference %s, trying the next", label, train_images[reference])
        else:
            raise ValueError(
                f"visual-word discovery found room for only {len(classes)} of {settings.num_classes} classes: no "
                f"reference has a coordinate at least {settings.min_distance} voxels from the other classes whose crop "
                f"has at most {settings.max_background:.0%} background after {settings.max_tries} draws. Lower "
                "num_classes or min_distance, or raise max_background."
            )

    train = [VolumeWords(image, shape) for image, shape in zip(train_images, train_shapes)]
    held = [VolumeWords(image, shape) for image, shape in zip(heldout_images, heldout_shapes)]
    for cls in classes:
        for i in cls.neighbours:
            centre = relative_to_voxel(cls.relative_center, train[i].shape)
            boxes = multi_resolution_boxes(
                rng, centre, train[i].shape, settings.roi_size, settings.num_scales, settings.scale_range,
                settings.jitter,
            )  # fmt: skip
            for crop, (center, size) in enumerate(boxes):
                train[i].words.append({"label": cls.label, "crop": crop, "center": center, "size": size})
        for j in cls.heldout:
            centre = relative_to_voxel(cls.relative_center, held[j].shape)
            center = clamp_center(centre, settings.roi_size, held[j].shape)
            held[j].words.append({"label": cls.label, "crop": 0, "center": center, "size": list(settings.roi_size)})
    return DiscoveryResult(settings, classes, train, held, autoencoder, losses, train_features, heldout_features)

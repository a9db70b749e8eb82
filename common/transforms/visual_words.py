"""TransVW's proxy input: crop the volume's visual words at their discovered coordinates, with their class ids.

TransVW (Haghighi et al., "Transferable Visual Words", IEEE TMI 2021) trains on *visual words*: crops taken at the
same anatomical coordinates in a reference volume and its nearest neighbours, each coordinate set a class
(:mod:`common.visual_words` discovers them). The official code extracts every crop into one array before training;
here the bundle's dataset caches each volume once (after its deterministic load transforms) and this transform
crops the words of the volume it receives, so the crops come from the same grid the words were discovered on.

A datalist entry of the visual-word dataset is one volume::

    {"image": "images/a.nii.gz", "shape": [X, Y, Z],
     "visual_words": [{"label": 3, "center": [x, y, z], "size": [sx, sy, sz]}, ...]}

``center`` and ``size`` are voxels of the volume *after* the bundle's load transforms (orientation, spacing,
intensity preset, crop to the body, padding); ``shape`` is that volume's spatial shape, checked on every call so
that a bundle whose load settings differ from the discovery's stops with a clear error instead of training on
misplaced crops. Multi-resolution crops (TransVW's ``--multi_res``) have another ``size`` and are resized to
``roi_size``.

Why custom: MONAI's ``SpatialCropd``/``RandSpatialCropSamplesd`` crop one fixed or random box; here each output is
a listed box with its own class id, read from the entry, padded where a box crosses the volume's border (with 0,
the background of the CT and MRI presets, as ``SpatialPadd`` pads in the load transforms).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Resize
from monai.utils import convert_to_tensor

__all__ = ["VISUAL_WORD_KEYS", "RandVisualWordCropd", "box_start", "crop_box", "crop_word"]

logger = logging.getLogger(__name__)

#: Keys of a visual-word datalist entry that describe the crops; they are not passed on to the crops.
VISUAL_WORD_KEYS = ("visual_words", "shape", "source_image")


def box_start(center: Sequence[int], size: Sequence[int]) -> list[int]:
    """First voxel of a box of ``size`` centred on ``center``: ``center - size // 2`` per axis."""
    return [int(c) - int(s) // 2 for c, s in zip(center, size)]


def crop_box(img: torch.Tensor, center: Sequence[int], size: Sequence[int], pad_value: float = 0.0) -> torch.Tensor:
    """Crop the box of ``size`` centred on ``center`` (first voxel ``center - size // 2``), padding outside.

    Args:
        img: ``(C, *S)`` image.
        center: box centre in voxels, one integer per spatial axis.
        size: box size in voxels.
        pad_value: value of the voxels of the box that lie outside the image.

    Returns:
        ``(C, *size)``: a copy, never a view of ``img``.
    """
    spatial = img.shape[1:]
    if len(center) != len(spatial) or len(size) != len(spatial):
        raise ValueError(
            f"center {list(center)} and size {list(size)} need one value per spatial axis of {tuple(spatial)}."
        )
    if any(int(s) < 1 for s in size):
        raise ValueError(f"box size must be positive, got {list(size)}.")
    start = box_start(center, size)
    inside, pads = [], []
    for s0, edge, dim in zip(start, size, spatial):
        lo, hi = max(s0, 0), min(s0 + int(edge), int(dim))
        if hi <= lo:
            raise ValueError(
                f"box centred on {list(center)} of size {list(size)} lies outside the image of spatial shape "
                f"{tuple(spatial)}."
            )
        inside.append(slice(lo, hi))
        pads.append((lo - s0, s0 + int(edge) - hi))
    out = img[(slice(None), *inside)].clone()
    if any(p for pair in pads for p in pair):
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad: last axis first
        out = F.pad(out, flat, mode="constant", value=pad_value)
    return out


def crop_word(
    img: torch.Tensor, word: Mapping[str, Any], roi_size: Sequence[int], mode: str = "trilinear"
) -> torch.Tensor:
    """The crop of one visual word as the network sees it: its box, resized to ``roi_size`` when it has another size.

    Args:
        img: ``(C, *S)`` volume after the load transforms.
        word: ``{"center": [...], "size": [...]}`` in voxels of ``img``.
        roi_size: the network's input size.
        mode: resize interpolation (``trilinear`` becomes ``bilinear`` for 2D images). No anti-aliasing: the
            multi-resolution factors stay within about 0.8-1.25, and MONAI's anti-aliasing (a zero-padded Gaussian)
            would darken the crop's border.

    Returns:
        ``(C, *roi_size)`` tensor.
    """
    crop = crop_box(img, word["center"], word["size"])
    if list(crop.shape[1:]) == [int(s) for s in roi_size]:
        return crop
    if mode == "trilinear" and crop.ndim == 3:
        mode = "bilinear"
    resized = Resize(spatial_size=[int(s) for s in roi_size], mode=mode)(crop)
    return convert_to_tensor(resized, track_meta=False)


class RandVisualWordCropd(Randomizable, MapTransform):
    """Emit ``num_samples`` visual-word crops of one volume, each with its class id.

    Each call picks ``num_samples`` of the entry's words at random, without replacement while the entry has enough
    (a fresh permutation per call, repeated when it has fewer), crops each word's box from ``keys`` and resizes it
    to ``roi_size`` when the box has another size (multi-resolution words). The outputs keep the entry's other keys
    except :data:`VISUAL_WORD_KEYS`; ``label_key`` becomes the word's class (a ``torch.long`` scalar), so a
    ``label`` of a labelled datalist entry is overwritten.

    An entry without ``words_key`` (a volume the discovery never saw, e.g. a MONAI Label datastore image) can still
    train when ``class_centres`` is given: every class is cropped at its centre relative to the volume's extent, as
    if the volume were a neighbour of every reference. A warning says so once per transform.

    Args:
        keys: image keys to crop, ``(C, *S)``; they share one spatial shape.
        roi_size: spatial size of every output crop (the network input).
        num_samples: crops per call.
        words_key: entry key of the list of words ``{"label", "center", "size"}``.
        label_key: output key of the class id.
        shape_key: entry key of the spatial shape the words were discovered on (checked when present).
        num_classes: when given, every label must lie in ``[0, num_classes)``.
        class_centres: per class, its centre as a fraction of the volume's extent (``center = round(r * (S - 1))``),
            used for entries without words; ``None`` makes such an entry an error.
        mode: interpolation of the resize (``trilinear`` in 3D, ``bilinear`` in 2D; ``area`` also works).
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: on a bad ``num_samples`` or ``roi_size``; at call time for a volume whose spatial shape differs
            from the recorded one, or a label outside ``[0, num_classes)``.
        KeyError: at call time for an entry without words when no ``class_centres`` are given.
    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int],
        num_samples: int = 1,
        words_key: str = "visual_words",
        label_key: str = "label",
        shape_key: str = "shape",
        num_classes: int | None = None,
        class_centres: Sequence[Sequence[float]] | None = None,
        mode: str = "trilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
        if not roi_size or any(int(s) < 1 for s in roi_size):
            raise ValueError(f"roi_size must be positive sizes, got {roi_size!r}.")
        self.roi_size = [int(s) for s in roi_size]
        self.num_samples = int(num_samples)
        self.words_key, self.label_key, self.shape_key = words_key, label_key, shape_key
        self.num_classes = None if num_classes is None else int(num_classes)
        self.class_centres = None if class_centres is None else [[float(v) for v in c] for c in class_centres]
        centres = self.class_centres
        if centres is not None and self.num_classes is not None and len(centres) != self.num_classes:
            raise ValueError(f"{len(self.class_centres)} class centres for num_classes={self.num_classes}.")
        self.mode = mode
        self.selected: list[dict[str, Any]] = []
        self._warned = False

    def randomize(self, data: int) -> None:
        """Draw the indices of this call's words among ``data`` words."""
        order: list[int] = []
        while len(order) < self.num_samples:
            order.extend(int(i) for i in self.R.permutation(data))
        self._indices = order[: self.num_samples]

    def _words(self, d: Mapping[Hashable, Any], spatial: tuple[int, ...]) -> list[dict[str, Any]]:
        name = d.get("source_image", "<unnamed volume>")
        words = d.get(self.words_key)
        if words is None:
            if self.class_centres is None:
                raise KeyError(
                    f"volume {name} has no {self.words_key!r} (keys: {sorted(map(str, d))}): train on the visual-word "
                    "datalist written by tools/discover_visual_words.py."
                )
            if not self._warned:
                logger.warning(
                    "volume %s has no discovered visual words: every class is cropped at its centre relative to the "
                    "volume's extent (as if it were a neighbour of every reference); said once.", name
                )
                self._warned = True
            return [
                {"label": k, "center": [round(r * (s - 1)) for r, s in zip(centre, spatial)], "size": self.roi_size}
                for k, centre in enumerate(self.class_centres)
            ]
        if not words:
            raise ValueError(f"volume {name} has an empty {self.words_key!r} list.")
        recorded = d.get(self.shape_key)
        if recorded is not None and [int(s) for s in recorded] != list(spatial):
            raise ValueError(
                f"volume {name}: its visual words were discovered on a grid of spatial shape {list(recorded)}, but "
                f"the load transforms now give {list(spatial)}. The bundle's orientation, spacing, intensity preset, "
                "foreground threshold or roi_size differ from the discovery's: run tools/discover_visual_words.py "
                "again with the same overlays and overrides as the training."
            )
        return list(words)

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            raise KeyError(f"none of the keys {self.keys} is in the data (keys: {sorted(map(str, d))}).")
        images = {key: convert_to_tensor(d[key], track_meta=False) for key in keys}
        spatial = tuple(int(s) for s in images[keys[0]].shape[1:])
        if len(spatial) != len(self.roi_size):
            raise ValueError(f"roi_size {self.roi_size} does not match the image's spatial shape {spatial}.")
        words = self._words(d, spatial)
        self.randomize(len(words))
        self.selected = [words[i] for i in self._indices]
        base = {k: v for k, v in d.items() if k not in VISUAL_WORD_KEYS}
        outputs = []
        for word in self.selected:
            label = int(word["label"])
            if label < 0 or (self.num_classes is not None and label >= self.num_classes):
                raise ValueError(
                    f"volume {d.get('source_image', '<unnamed volume>')}: visual word label {label} is outside "
                    f"[0, {self.num_classes}); the bundle's num_classes must be the dataset's number of classes."
                )
            out = dict(base)
            for key, img in images.items():
                out[key] = crop_word(img, word, self.roi_size, self.mode)
            out[self.label_key] = torch.tensor(label, dtype=torch.long)
            outputs.append(out)
        return outputs

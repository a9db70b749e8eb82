"""Self-discovery driven by a bundle's configs: the same load transforms, crop size, classes and seed as training.

The words' voxels must refer to the grid the bundle's training pipeline produces (its cached load transforms
reorient, resample, window and crop each volume to the body). The discovery therefore instantiates the bundle's own
``load_transforms`` from ``train.yaml`` with the same overlays and overrides as the training, and records those
load settings in the dataset, which the bundle checks before it trains.

Bundle ids read here: ``load_transforms``, ``source_datalist``, ``source_train_key``, ``source_val_key``,
``visual_words_file`` (the visual-word datalist written), ``num_classes``, ``roi_size``, ``foreground_threshold``,
``seed``, ``visual_word_space`` and ``discovery_<name>`` for every other field of :class:`DiscoverySettings`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose
from monai.utils import convert_to_tensor

from common.data.datalist import load_datalist, read_datalist_json
from common.data.errors import raise_data_error
from common.visual_words.dataset import visual_word_datalist, write_json
from common.visual_words.discovery import DiscoveryResult, DiscoverySettings, discover_visual_words
from common.visual_words.summary import discovery_summary, format_summary, save_montage, word_crops

__all__ = ["bundle_parser", "discover_for_bundle", "discovery_settings", "output_paths"]

logger = logging.getLogger(__name__)


def bundle_parser(bundle_dir: str, overlays: Sequence[str] = (), **overrides: Any) -> ConfigParser:
    """``train.yaml`` of a bundle with overlays (``demo`` -> ``configs/demo.yaml``, or a path) and overrides."""
    configs = os.path.join(bundle_dir, "configs")
    files = [os.path.join(configs, "train.yaml")]
    for overlay in overlays:
        files.append(overlay if os.path.isfile(str(overlay)) else os.path.join(configs, f"{overlay}.yaml"))
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"bundle config(s) {missing} not found (is {bundle_dir!r} the TransVW bundle folder?).")
    parser = ConfigParser()
    parser.read_config(files)
    parser["bundle_root"] = bundle_dir
    for key, value in overrides.items():
        parser[key] = value
    return parser


def discovery_settings(parser: ConfigParser) -> DiscoverySettings:
    """The :class:`DiscoverySettings` of a bundle config."""
    names = [f.name for f in fields(DiscoverySettings)]
    extra = {name: parser.get_parsed_content(f"discovery_{name}") for name in names if f"discovery_{name}" in parser}
    return DiscoverySettings(
        num_classes=int(parser.get_parsed_content("num_classes")),
        roi_size=parser.get_parsed_content("roi_size"),
        background_threshold=float(parser.get_parsed_content("foreground_threshold")),
        seed=int(parser.get_parsed_content("seed")),
        **extra,
    )


def output_paths(datalist: str | os.PathLike) -> dict[str, str]:
    """The files written beside the visual-word datalist ``<stem>.json``."""
    path = Path(datalist)
    stem = path.parent / path.name.removesuffix(".json")
    return {
        "datalist": str(path),
        "summary": f"{stem}_summary.json",
        "montage": f"{stem}_montage.png",
        "autoencoder": f"{stem}_autoencoder.pt",
        "crops": f"{stem}_crops.npz",
    }


def _save_crops(path: str, result: DiscoveryResult, load) -> str:
    """All crops as ``float16`` arrays with their labels (``train_*`` and ``heldout_*``), loading each volume once."""
    from common.transforms.visual_words import crop_word

    arrays: dict[str, Any] = {}
    for split, group in (("train", result.train), ("heldout", result.heldout)):
        images, labels, volumes = [], [], []
        for index, volume in enumerate(group):
            if not volume.words:
                continue
            img = load(volume.image)
            for word in volume.words:
                images.append(crop_word(img, word, result.settings.roi_size).half().numpy())
                labels.append(word["label"])
                volumes.append(index)
        shape = (0, 1, *result.settings.roi_size)
        arrays[f"{split}_images"] = np.stack(images) if images else np.zeros(shape, np.float16)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
        arrays[f"{split}_volumes"] = np.asarray(volumes, dtype=np.int64)
    np.savez_compressed(path, **arrays)
    return path


def discover_for_bundle(
    bundle_dir: str = "bundles/transvw",
    overlays: Sequence[str] = (),
    source_datalist: str | None = None,
    output: str | None = None,
    autoencoder: str | None = None,
    save_crops: bool = False,
    montage_classes: int = 4,
    progress: bool = True,
    device: str | None = None,
    **overrides: Any,
) -> dict[str, str]:
    """Discover the visual words a bundle trains on and write the dataset, a summary and a montage.

    Args:
        bundle_dir: the TransVW bundle folder.
        overlays: the training's overlays (``demo``, ``smoke`` or paths): they set the load settings, the crop size,
            the number of classes and the discovery settings.
        source_datalist: the datalist of the volumes (default: the bundle's ``source_datalist``).
        output: the visual-word datalist to write (default: the bundle's ``visual_words_file``, next to the source).
        autoencoder: a ``state_dict`` file of an auto-encoder trained before with the same settings (default: train
            one and save it as ``<output stem>_autoencoder.pt``).
        save_crops: also write every crop to ``<output stem>_crops.npz`` (``float16``).
        montage_classes: classes shown in ``<output stem>_montage.png`` (0 for none).
        progress: show progress bars.
        device: where the auto-encoder trains (default: ``cuda`` when available).
        overrides: bundle overrides, as for training (``discovery_num_neighbours=2``, ``spacing=...``).

    Returns:
        The written files by kind (``datalist``, ``summary``, ``montage``, ``autoencoder``, ``crops``).

    Raises:
        DataError: (a ``SystemExit`` with one message) for a datalist with too few volumes for the requested
            instances, naming both numbers, and for the other data problems of the datalist.
    """
    if source_datalist is not None:
        overrides["source_datalist"] = os.path.abspath(source_datalist)
    parser = bundle_parser(bundle_dir, overlays, **overrides)
    source = str(parser.get_parsed_content("source_datalist"))
    # the visual-word datalist does not exist yet: ids that read the training datalist (e.g. the intensity preset it
    # records, which the visual-word datalist copies from its source) read the source instead
    parser["datalist"] = source
    settings = discovery_settings(parser)
    train_key = str(parser.get_parsed_content("source_train_key"))
    heldout_key = str(parser.get_parsed_content("source_val_key"))
    paths = output_paths(os.path.normpath(output or parser.get_parsed_content("visual_words_file")))
    if os.path.abspath(paths["datalist"]) == os.path.abspath(source):
        raise ValueError(f"the visual-word datalist would overwrite its source {source}: choose another output.")

    raw = read_datalist_json(source)
    train = [e["image"] for e in load_datalist(source, train_key)]
    heldout = [e["image"] for e in load_datalist(source, heldout_key)] if raw.get(heldout_key) else []
    transforms = Compose(parser.get_parsed_content("load_transforms"))

    def load(image: str) -> torch.Tensor:
        return convert_to_tensor(transforms({"image": image})["image"], track_meta=False)

    state = torch.load(autoencoder, map_location="cpu", weights_only=True) if autoencoder else None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        result = discover_visual_words(train, heldout, load, settings, state, progress, train_key, heldout_key, device)
    except ValueError as e:
        if "visual-word discovery" not in str(e):
            raise
        raise_data_error(f"{source}: {e}", [str(e)], cause=e)
        raise  # unreachable

    space = parser.get_parsed_content("visual_word_space")
    folder = os.path.dirname(os.path.abspath(paths["datalist"]))

    def name(image: str) -> str:
        return Path(os.path.relpath(os.path.abspath(image), folder)).as_posix()

    dataset = visual_word_datalist(raw, source, paths["datalist"], result, space, (train_key, heldout_key))
    written = {"datalist": write_json(dataset, paths["datalist"])}
    summary = discovery_summary(result, name)
    summary["space"] = dict(space)
    written["summary"] = write_json(summary, paths["summary"])
    if not autoencoder:
        torch.save(result.autoencoder.state_dict(), paths["autoencoder"])
        written["autoencoder"] = paths["autoencoder"]
    if montage_classes:
        labels = [c.label for c in result.classes[: int(montage_classes)]]
        references = {c.label: result.train[c.reference].image for c in result.classes}
        title = f"{len(result.classes)} visual words of {list(settings.roi_size)} voxels: central slices of base crops"
        written["montage"] = save_montage(paths["montage"], word_crops(result, load, labels), references, title=title)
    if save_crops:
        written["crops"] = _save_crops(paths["crops"], result, load)
    print(format_summary(summary), flush=True)
    for kind, path in written.items():
        print(f"wrote {kind}: {path}", flush=True)
    return written

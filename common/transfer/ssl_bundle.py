"""What a pretrained self-supervised bundle tells a transfer task: its ``united_ssl`` metadata and a stage's settings.

Every method bundle's ``configs/metadata.json`` carries a ``united_ssl`` section (see ``bundles/rotation``)::

    "united_ssl": {
        "method": "rotation",
        "network_config": "configs/inference.yaml",   # config holding the image-to-image network
        "network_id": "network_def",                  # the network's id in that config
        "out_channels_id": "network_def#decoder#out_channels",
        "out_activation_id": "network_def#decoder#out_activation",
        "components": {"encoder": "encoder", "decoder": "decoder"},   # exported file -> attribute path
        "settings_record": "run.json"
    }

and each stage folder holds the exported components (``<component>.pt``) and ``run.json`` whose ``settings`` are
the run's hyper-parameters by config id. Transfer code reads only these two contracts, so a new method bundle
(another backbone, e.g. a SwinUNETR whose encoder is ``swinViT``) is picked up without code changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.handlers.run_record import RUN_RECORD, read_run_record

__all__ = ["METADATA", "SSLBundle", "read_ssl_bundle", "discover_ssl_bundles", "backbone_settings", "stage_folders"]

#: Where a bundle keeps its metadata, relative to the bundle folder.
METADATA = os.path.join("configs", "metadata.json")
_REQUIRED = ("network_config", "network_id", "out_channels_id", "components")


@dataclass(frozen=True)
class SSLBundle:
    """The ``united_ssl`` section of a pretrained bundle's metadata, with resolved paths.

    Attributes:
        path: the bundle folder (absolute).
        name: the bundle folder's name, e.g. ``rotation``.
        method: the method's name from the metadata (defaults to ``name``).
        network_config: absolute path of the config holding the image-to-image network.
        network_id: id of that network in ``network_config``.
        out_channels_id: id of the network's output channel count (set to the task's classes).
        out_activation_id: id of the output activation (set to ``None`` for a task), or ``None``.
        components: exported component name -> attribute path inside the network (``{"encoder": "encoder"}``).
        settings_record: name of a stage's run record (``run.json``).
    """

    path: str
    name: str
    method: str
    network_config: str
    network_id: str
    out_channels_id: str
    out_activation_id: str | None
    components: dict[str, str] = field(default_factory=dict)
    settings_record: str = RUN_RECORD


def read_ssl_bundle(bundle_dir: str | os.PathLike) -> SSLBundle:
    """Read the ``united_ssl`` section of ``<bundle_dir>/configs/metadata.json``.

    Args:
        bundle_dir: a method bundle's folder, e.g. ``bundles/rotation``.

    Raises:
        FileNotFoundError: the metadata file or its ``network_config`` does not exist (the message names it).
        KeyError: the metadata has no ``united_ssl`` section or lacks one of its required keys (named).
        ValueError: ``components`` is not a mapping of names to attribute paths.
    """
    path = os.path.abspath(os.fspath(bundle_dir))
    meta_file = os.path.join(path, METADATA)
    if not os.path.isfile(meta_file):
        raise FileNotFoundError(f"{meta_file} not found: {bundle_dir!r} is not a bundle folder.")
    with open(meta_file, encoding="utf-8") as f:
        meta = json.load(f)
    section = meta.get("united_ssl")
    if not isinstance(section, Mapping):
        raise KeyError(
            f"{meta_file} has no 'united_ssl' section: {os.path.basename(path)!r} is not a pretrained United SSL "
            "bundle (the section says how a transfer task rebuilds its network)."
        )
    missing = [k for k in _REQUIRED if k not in section]
    if missing:
        raise KeyError(f"{meta_file}: 'united_ssl' lacks {missing} (required: {list(_REQUIRED)}).")
    components = section["components"]
    if not isinstance(components, Mapping) or not components or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in components.items()
    ):
        raise ValueError(f"{meta_file}: 'united_ssl.components' must map component names to attribute paths, got {components!r}.")
    network_config = os.path.join(path, section["network_config"])
    if not os.path.isfile(network_config):
        raise FileNotFoundError(f"{meta_file}: 'united_ssl.network_config' points at {network_config}, which does not exist.")
    name = os.path.basename(path)
    return SSLBundle(
        path=path,
        name=name,
        method=str(section.get("method", name)),
        network_config=network_config,
        network_id=section["network_id"],
        out_channels_id=section["out_channels_id"],
        out_activation_id=section.get("out_activation_id"),
        components=dict(components),
        settings_record=section.get("settings_record", RUN_RECORD),
    )


def discover_ssl_bundles(bundles_root: str | os.PathLike) -> list[SSLBundle]:
    """Every bundle under ``bundles_root`` whose metadata has a ``united_ssl`` section, sorted by name.

    Folders without metadata, or whose metadata has no ``united_ssl`` section (e.g. the transfer bundles), are
    skipped; a ``united_ssl`` section that is malformed raises (a broken method bundle should not vanish silently).
    """
    root = os.fspath(bundles_root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"bundle folder {root} not found.")
    found = []
    for name in sorted(os.listdir(root)):
        meta_file = os.path.join(root, name, METADATA)
        if not os.path.isfile(meta_file):
            continue
        with open(meta_file, encoding="utf-8") as f:
            if "united_ssl" not in json.load(f):
                continue
        found.append(read_ssl_bundle(os.path.join(root, name)))
    return found


def backbone_settings(
    stage_dir: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None, required: bool = True
) -> dict[str, Any]:
    """The settings a pretrained network is rebuilt with: ``<stage_dir>/run.json`` ``settings``, then ``overrides``.

    Args:
        stage_dir: a stage folder of a pretrained bundle, or ``None``/``""`` for none.
        overrides: settings that win over the recorded ones (e.g. ``{"base_channels": 8}`` for a random baseline
            without a stage folder).
        required: when ``True``, a missing stage folder or run record is an error; when ``False`` (random
            initialisation) it gives just ``overrides``.

    Raises:
        FileNotFoundError: ``required`` and no ``run.json`` in ``stage_dir`` (the message names the file).
    """
    settings: dict[str, Any] = {}
    if stage_dir and os.path.isfile(os.path.join(os.fspath(stage_dir), RUN_RECORD)):
        settings.update(read_run_record(os.fspath(stage_dir)).get("settings", {}))
    elif required:
        where = os.path.join(os.fspath(stage_dir), RUN_RECORD) if stage_dir else "(no stage folder given)"
        raise FileNotFoundError(
            f"{where} not found: pretrained weights need the run record of the stage that made them, to rebuild its "
            "network with the same width and levels. Point `pretrained_dir` at a stage folder (e.g. "
            "bundles/rotation/models/stage3) or use `init: random`."
        )
    settings.update(dict(overrides or {}))
    return settings


def stage_folders(output_dir: str | os.PathLike) -> dict[str, str]:
    """The finished stage folders of a pretraining output folder: ``{"stage1": path, ..., "joint": path}``.

    A folder counts when it holds ``encoder.pt`` and a run record.
    """
    root = os.fspath(output_dir)
    found = {}
    for name in ("stage1", "stage2", "stage3", "joint"):
        folder = os.path.join(root, name)
        if os.path.isfile(os.path.join(folder, "encoder.pt")) and os.path.isfile(os.path.join(folder, RUN_RECORD)):
            found[name] = folder
    return found

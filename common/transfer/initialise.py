"""Initialise a target network: random, from a pretrained encoder, or from a pretrained encoder and decoder."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from common.data.atomic import atomic_output
from common.handlers.run_record import RUN_RECORD, read_run_record
from common.transfer.classifier import EncoderClassifier
from common.transfer.input_channels import input_convolutions
from common.transfer.loading import ComponentLoad, load_component, output_layer_keys
from common.transfer.networks import as_bundle

__all__ = ["INITS", "TRANSFER_RECORD", "TransferReport", "components_for", "initialise", "nested_components"]

logger = logging.getLogger(__name__)

#: Initialisations of a transfer task.
INITS = ("random", "encoder", "encoder+decoder")
#: The record a transfer run writes beside its model: what the network was initialised from.
TRANSFER_RECORD = "transfer.json"
#: Preprocessing settings that should match between pretraining and the task (a mismatch is logged).
CHECKED_SETTINGS = ("spacing", "intensity_preset", "orientation")


@dataclass
class TransferReport:
    """What a target network was initialised from.

    Attributes:
        init: ``random``, ``encoder`` or ``encoder+decoder``.
        bundle: the pretrained bundle's folder (``None`` for random).
        method: the pretrained method's name.
        stage_dir: the stage folder the weights came from.
        stage: the stage recorded in its ``run.json``.
        components: one :class:`~common.transfer.loading.ComponentLoad` per loaded component.
        warnings: preprocessing settings that differ from pretraining.
    """

    init: str
    bundle: str | None = None
    method: str | None = None
    stage_dir: str | None = None
    stage: Any = None
    components: list[ComponentLoad] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def pretrained_parameters(self, network: nn.Module) -> set[str]:
        """Names of ``network``'s parameters that hold pretrained values (re-initialised ones excluded)."""
        names: set[str] = set()
        for load in self.components:
            module = network.get_submodule(load.prefix) if load.prefix else network
            names.update(load.loaded_keys([n for n, _ in module.named_parameters()]))
        return names

    def as_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "bundle": self.bundle,
            "method": self.method,
            "stage_dir": self.stage_dir,
            "stage": self.stage,
            "components": [c.as_dict() for c in self.components],
            "warnings": list(self.warnings),
        }


def components_for(network: nn.Module, init: str, bundle_components: Mapping[str, str]) -> dict[str, str]:
    """Component name -> attribute path in ``network`` of the components ``init`` loads.

    A classifier (:class:`~common.transfer.classifier.EncoderClassifier`) holds the encoder component at
    ``encoder`` and has no decoder; a segmentation network is the pretrained network itself, so the paths are the
    bundle's ``components``.

    Raises:
        ValueError: unknown ``init``, or ``encoder+decoder`` for a classifier.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    names = {"random": [], "encoder": ["encoder"], "encoder+decoder": ["encoder", "decoder"]}[init]
    if isinstance(network, EncoderClassifier):
        if "decoder" in names:
            raise ValueError("init 'encoder+decoder' needs a decoder; a classifier has only the encoder: use 'encoder'.")
        return {"encoder": "encoder"} if names else {}
    missing = [n for n in names if n not in bundle_components]
    if missing:
        raise ValueError(f"init {init!r} needs components {missing}, which the bundle's metadata does not list.")
    return {n: bundle_components[n] for n in names}


def nested_components(prefix: str, other_prefixes: Sequence[str]) -> list[str]:
    """Attribute paths, relative to ``prefix``, of the other components that sit inside it.

    A component at the network root (``prefix == ""``, Swin UNETR's decoder) contains every other component
    (``swinViT``); ``decoder`` contains ``decoder.out`` but not ``decoder_head``.
    """
    inside = []
    for other in other_prefixes:
        if other == prefix:
            continue
        if not prefix:
            inside.append(other)
        elif other.startswith(prefix + "."):
            inside.append(other[len(prefix) + 1 :])
    return inside


def _settings_warnings(stage_settings: Mapping[str, Any], task_settings: Mapping[str, Any]) -> list[str]:
    warnings = []
    for key in CHECKED_SETTINGS:
        if key in stage_settings and key in task_settings and _norm(stage_settings[key]) != _norm(task_settings[key]):
            warnings.append(
                f"{key}: pretrained with {stage_settings[key]!r}, this task uses {task_settings[key]!r} "
                "(the features were learned on differently prepared images)"
            )
    return warnings


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [float(v) if isinstance(v, (int, float)) else v for v in value]
    return value


def initialise(
    network: nn.Module,
    init: str,
    bundle_dir: str | os.PathLike | None = None,
    stage_dir: str | os.PathLike | None = None,
    spatial_size: Sequence[int] | None = None,
    task_settings: Mapping[str, Any] | None = None,
    report_path: str | os.PathLike | None = None,
) -> TransferReport:
    """Load a pretrained stage's components into ``network`` as ``init`` says, log it and record it.

    Call it in a bundle's ``initialize`` on the bare ``network_def``, before any DistributedDataParallel wrap, so
    every rank starts from the same weights.

    Args:
        network: the target network from :func:`~common.transfer.networks.build_segmentation_network` or
            :func:`~common.transfer.networks.build_classification_network`.
        init: ``random``, ``encoder`` or ``encoder+decoder`` (segmentation only).
        bundle_dir: the pretrained bundle (its metadata maps components to attribute paths).
        stage_dir: the stage folder with ``<component>.pt`` and ``run.json``.
        spatial_size: a spatial size the network accepts (to find its input convolutions).
        task_settings: the task's ``spacing``, ``intensity_preset``, ``orientation``; differences from the
            pretraining run are logged as warnings.
        report_path: where to write the report as JSON (``None``: not written, e.g. on ranks above 0).

    Returns:
        The report.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    if init == "random":
        report = TransferReport(init=init)
        logger.info("transfer: random initialisation (no pretrained weights loaded)")
    else:
        if not bundle_dir or not stage_dir:
            raise ValueError(f"init {init!r} needs `pretrained_bundle` and `pretrained_dir`; got {bundle_dir!r}, {stage_dir!r}.")
        bundle = as_bundle(bundle_dir)
        stage_dir = os.fspath(stage_dir)
        record = read_run_record(stage_dir) if os.path.isfile(os.path.join(stage_dir, RUN_RECORD)) else {}
        report = TransferReport(init=init, bundle=bundle.path, method=bundle.method, stage_dir=stage_dir, stage=record.get("stage"))
        report.warnings = _settings_warnings(record.get("settings", {}), task_settings or {})
        for warning in report.warnings:
            logger.warning(f"transfer: {warning}")
        paths = components_for(network, init, bundle.components)
        inputs = input_convolutions(network, spatial_size) if spatial_size is not None else []
        for name, prefix in paths.items():
            module = network.get_submodule(prefix)
            exclude = nested_components(prefix, [p for n, p in bundle.components.items() if n != name])
            inside = [c if not prefix else c[len(prefix) + 1 :] for c in inputs if not prefix or c.startswith(prefix + ".")]
            adapt = {f"{c}.weight" for c in inside if not any(c == e or c.startswith(e + ".") for e in exclude)}
            reinit = output_layer_keys(module) if name == "decoder" else []
            path = os.path.join(stage_dir, f"{name}.pt")
            report.components.append(
                load_component(module, path, name, prefix, reinitialise=reinit, adapt_input=adapt, exclude=exclude)
            )
    if report_path:
        with atomic_output(report_path) as tmp:
            tmp.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report

"""Loading exported components into a target network, strictly, with a report of what was loaded.

Strict means: every key of the component must be in the file and every key of the file in the component, with
equal shapes. Two differences are allowed, both reported:

* the **output layer of the decoder** (its last module with parameters), when only its output-channel dimension
  differs (pretraining restores 1 channel, the task predicts K classes): it keeps its fresh initialisation;
* the **input convolutions**, when only their input-channel dimension differs (1-channel CT weights for a
  4-channel MRI task): the file's weights are expanded with :func:`~common.transfer.input_channels.expand_input_weight`.

Anything else (a missing, unexpected or mismatched key) stops with an error naming the file and the keys.
MONAI's ``CheckpointLoader(strict_shape=False)`` is not used: in MONAI 1.6.1 it silently loads nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from common.transfer.input_channels import expand_input_weight

__all__ = ["ComponentLoad", "load_component", "output_layer_keys"]

logger = logging.getLogger(__name__)


@dataclass
class ComponentLoad:
    """What loading one component did.

    Attributes:
        component: the component's name (``encoder``, ``decoder``).
        file: the file it came from.
        prefix: the component's attribute path inside the target network (``encoder``, ``swinViT``).
        loaded: tensors copied from the file (adapted ones included).
        total: tensors of the component.
        reinitialised: keys left at their fresh initialisation (the decoder's output layer).
        adapted: keys whose input channels were adapted.
        excluded: attribute paths inside the component that belong to other components (not loaded from this file).
    """

    component: str
    file: str
    prefix: str
    loaded: int
    total: int
    reinitialised: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def loaded_keys(self, state_keys: Collection[str]) -> list[str]:
        """Keys of ``state_keys`` (the component's) that hold pretrained values, prefixed with :attr:`prefix`."""
        skip = set(self.reinitialised)
        others = tuple(f"{p}." for p in self.excluded)
        kept = [k for k in state_keys if k not in skip and not (others and k.startswith(others))]
        return [f"{self.prefix}.{k}" if self.prefix else k for k in kept]


def output_layer_keys(module: nn.Module) -> list[str]:
    """State-dict keys of the last module (registration order) that holds parameters: a decoder's output layer."""
    last = None
    for name, sub in module.named_modules():
        if any(True for _ in sub.parameters(recurse=False)):
            last = name
    if last is None:
        return []
    prefix = f"{last}." if last else ""
    sub = module.get_submodule(last)
    return [prefix + k for k in sub.state_dict().keys() if "." not in k]


def _differs_only_in(a: torch.Size, b: torch.Size, dim: int) -> bool:
    return len(a) == len(b) > dim and all(x == y for i, (x, y) in enumerate(zip(a, b)) if i != dim)


def load_component(
    module: nn.Module,
    path: str,
    name: str,
    prefix: str = "",
    reinitialise: Collection[str] = (),
    adapt_input: Collection[str] = (),
    exclude: Collection[str] = (),
) -> ComponentLoad:
    """Load ``<component>.pt`` into ``module`` strictly, allowing the two reported differences.

    Args:
        module: the destination component inside the target network.
        path: the exported state dict (e.g. ``<stage_dir>/encoder.pt``).
        name: the component's name, for messages.
        prefix: the component's attribute path in the target network, for the report.
        reinitialise: keys that may differ in their first (output-channel) dimension and then keep their fresh values.
        adapt_input: convolution weight keys that may differ in their second (input-channel) dimension.
        exclude: attribute paths inside ``module`` that belong to other components (Swin UNETR's decoder is the
            network root, its encoder ``swinViT``): their keys are neither expected in the file nor touched.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: missing, unexpected or mismatched keys (the message names the file and the keys).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"transfer: {path} not found. Point `pretrained_dir` at a stage folder holding {name}.pt "
            f"(a decoder exists from stage 2 on), or choose another `init`."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise RuntimeError(f"transfer: {path} does not hold a state dict (got {type(state).__name__}).")
    others = tuple(f"{p}." for p in exclude)
    expected = {k: v for k, v in module.state_dict().items() if not (others and k.startswith(others))}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reinitialised, adapted, mismatched = [], [], []
    for key in sorted(set(expected) & set(state)):
        theirs, ours = state[key].shape, expected[key].shape
        if theirs == ours:
            continue
        if key in reinitialise and _differs_only_in(theirs, ours, 0):
            reinitialised.append(key)
        elif key in adapt_input and _differs_only_in(theirs, ours, 1):
            state[key] = expand_input_weight(state[key], ours[1])
            adapted.append(key)
            logger.info(f"transfer: {name}.{key} adapted from {theirs[1]} to {ours[1]} input channels")
        else:
            mismatched.append(f"{key}: file {tuple(theirs)} vs network {tuple(ours)}")
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f"transfer: {path} does not match the {name} of the target network (were the pretraining settings, "
            f"e.g. width or levels, used to build it?).\n"
            f"  missing keys ({len(missing)}): {missing[:10]}\n  unexpected keys ({len(unexpected)}): {unexpected[:10]}\n"
            f"  shape mismatches ({len(mismatched)}): {mismatched[:10]}"
        )
    for key in reinitialised:
        state[key] = expected[key]
    result = module.load_state_dict(state, strict=not others)
    if others and (result.unexpected_keys or set(result.missing_keys) - (set(module.state_dict()) - set(expected))):
        raise RuntimeError(f"transfer: {path}: {name} did not load exactly ({result}).")  # unreachable after the checks above
    report = ComponentLoad(
        name, path, prefix, len(state) - len(reinitialised), len(expected), reinitialised, adapted, sorted(exclude)
    )
    logger.info(f"transfer: loaded {name} ({report.loaded} of {report.total} tensors) from {path}")
    if reinitialised:
        logger.info(f"transfer: {name} output layer re-initialised for the task's classes: {reinitialised}")
    return report
